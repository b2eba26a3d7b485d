import { ARCHES, type ArchName } from '@tracelab/arch-isa';
import { createWriteStream } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { registerAttach } from './commands/attach.js';
import { registerBtf } from './commands/btf.js';
import { agentId } from './commands/engine.js';
import { registerExport } from './commands/export.js';
import { registerFprobe } from './commands/fprobe.js';
import { arch, positiveInt } from './workload.js';
import { registerKernel } from './commands/kernel.js';
import { registerMaps } from './commands/maps.js';
import { registerObj } from './commands/obj.js';
import { registerTrace } from './commands/trace.js';
import { registerTrampoline } from './commands/trampoline.js';
import { registerVerify } from './commands/verify.js';
import { registerVm } from './commands/vm.js';
import { startStack } from './stack.js';
import { VERSION } from './version.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return n;
}

interface StartOpts {
  host: string;
  port: number;
  agentId: string;
  events?: string;
  store?: string;
  demo: boolean;
  arch: ArchName;
  cpus: number;
}

/**
 * The `tracelab` command line; later layers add their subcommands here. `configure` runs before
 * the subcommands are added so they inherit its settings (tests use it to capture output).
 */
export function buildProgram(
  env: NodeJS.ProcessEnv = process.env,
  configure?: (program: Command) => void,
): Command {
  const program = new Command('tracelab')
    .description("The Linux kernel's function-tracing and eBPF stack, executable in TypeScript")
    .version(VERSION, '-V, --version')
    .showHelpAfterError();
  configure?.(program);

  program
    .command('info')
    .description('print the version, the runtime and how the apps connect')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const info = {
        name: 'tracelab',
        version: VERSION,
        node: process.version,
        platform: `${process.platform}-${process.arch}`,
        transport: env.TRACELAB_NATS_URL ? 'nats' : 'local',
        natsUrl: env.TRACELAB_NATS_URL ?? null,
      };
      if (opts.json) console.log(JSON.stringify(info, null, 2));
      else {
        console.log(`tracelab ${info.version} (node ${info.node}, ${info.platform})`);
        console.log(
          info.natsUrl
            ? `transport: NATS at ${info.natsUrl}`
            : 'transport: in-process bus (set TRACELAB_NATS_URL for NATS)',
        );
      }
    });

  program
    .command('start')
    .description('run agent, gateway and collector; in one process unless TRACELAB_NATS_URL is set')
    .option('--host <host>', 'gateway listen address', env.TRACELAB_HOST ?? '127.0.0.1')
    .option(
      '--port <port>',
      'gateway port (0 picks a free one)',
      port,
      env.TRACELAB_PORT ? port(env.TRACELAB_PORT) : 8080,
    )
    .option(
      '--agent-id <id>',
      "this agent's id on the bus",
      agentId,
      env.TRACELAB_AGENT_ID ?? 'agent-0',
    )
    .option('--events <file>', 'collect trace events into FILE as JSON lines')
    .option(
      '--store <dir>',
      'store trace batches per agent and stream in DIR (for tracelab export)',
    )
    .option(
      '--no-demo',
      'start with an idle kernel instead of one traced run of the syscalls workload',
    )
    .option(
      '--arch <arch>',
      `the simulated machine's architecture (${ARCHES.join(', ')})`,
      arch,
      'x86_64' as ArchName,
    )
    .option('--cpus <n>', "the simulated machine's CPUs", positiveInt, 2)
    .action(async (opts: StartOpts) => {
      const out = opts.events ? createWriteStream(opts.events, { flags: 'a' }) : undefined;
      const stack = await startStack({
        natsUrl: env.TRACELAB_NATS_URL,
        agentId: opts.agentId,
        host: opts.host,
        port: opts.port,
        sink: out ? (event) => out.write(`${JSON.stringify(event)}\n`) : undefined,
        machine: { arch: opts.arch, cpus: opts.cpus },
        ...(opts.store ? { storeDir: opts.store } : {}),
        demo: opts.demo,
        ...(env.TRACELAB_TOKEN ? { token: env.TRACELAB_TOKEN } : {}),
      });
      console.log(
        `tracelab ${VERSION}: agent ${opts.agentId} on ${env.TRACELAB_NATS_URL ? `NATS ${env.TRACELAB_NATS_URL}` : 'the in-process bus'}`,
      );
      console.log(
        `gateway listening at ${stack.url}  (live page: ${stack.url}/, API docs: ${stack.url}/documentation)`,
      );
      if (stack.demo) {
        const agentUrl = `${stack.url}/v1/agents/${opts.agentId}`;
        console.log(
          `demo: function_graph of vfs_read over one run of the syscalls workload: curl ${agentUrl}/tracefs/trace`,
        );
        console.log(
          `demo: fprobe event demo/vfs_read_count (vfs_read count=$arg3) in the tracing instance demo: curl ${agentUrl}/tracefs/instances/demo/trace`,
        );
        console.log(
          `demo: BPF program count_calls (fd ${stack.demo.progFd}, kprobe_multi on vfs_*) counts calls per function address in map fd ${stack.demo.mapFd}: curl ${agentUrl}/maps/${stack.demo.mapFd}  (addresses: ${agentUrl}/functions?pattern=vfs_*)`,
        );
      }
      if (opts.store)
        console.log(
          `collected batches go to ${opts.store}; tracelab export --store ${opts.store} --format perfetto`,
        );
      console.log(
        env.TRACELAB_TOKEN
          ? 'mutating routes take the bearer token from TRACELAB_TOKEN'
          : `bearer token for mutating routes: ${stack.token}  (set TRACELAB_TOKEN to choose one)`,
      );
      console.log(
        `try: curl -X POST -H "authorization: Bearer ${env.TRACELAB_TOKEN ? '$TRACELAB_TOKEN' : stack.token}" -H 'content-type: application/json' -d '{"workload":"syscalls"}' ${stack.url}/v1/agents/${opts.agentId}/run`,
      );
      const shutdown = (signal: string) => {
        console.log(`${signal}: shutting down`);
        void stack.close().then(
          () => out?.end(),
          (err: unknown) => {
            console.error(`shutdown failed: ${(err as Error).message}`);
            process.exitCode = 1;
          },
        );
      };
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
    });

  registerBtf(program);
  registerKernel(program);
  registerTrace(program, env);
  registerObj(program);
  registerVerify(program);
  registerVm(program);
  registerTrampoline(program);
  registerExport(program);
  registerFprobe(program, env);
  registerAttach(program, env);
  registerMaps(program, env);
  return program;
}
