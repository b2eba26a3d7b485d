import { exportStore } from '@tracelab/collector';
import { StreamKindSchema } from '@tracelab/contracts';
import { type Command, InvalidArgumentError } from 'commander';

const FORMATS = ['ftrace', 'perfetto', 'folded'] as const;
type Format = (typeof FORMATS)[number];

function format(value: string): Format {
  const f = FORMATS.find((x) => x === value);
  if (f === undefined) throw new InvalidArgumentError(`expected one of ${FORMATS.join(', ')}`);
  return f;
}

function stream(value: string): string {
  if (!StreamKindSchema.safeParse(value).success) {
    throw new InvalidArgumentError(`expected one of ${StreamKindSchema.options.join(', ')}`);
  }
  return value;
}

/** `tracelab export`: what a collector stored, as ftrace text, Perfetto JSON or folded stacks. */
export function registerExport(program: Command): void {
  program
    .command('export')
    .description('export a stored trace stream (tracelab start --store DIR) for people and tools')
    .requiredOption('--store <dir>', 'the collector store directory')
    .option('--agent <id>', 'agent id', 'agent-0')
    .option('--stream <stream>', 'stream kind', stream, 'trace')
    .option(
      '--format <format>',
      `${FORMATS.join(', ')} (perfetto opens in ui.perfetto.dev)`,
      format,
      'ftrace' as Format,
    )
    .action((opts: { store: string; agent: string; stream: string; format: Format }) => {
      const out = exportStore(opts.store, {
        agent: opts.agent,
        stream: opts.stream,
        format: opts.format,
      });
      process.stdout.write(out.endsWith('\n') ? out : `${out}\n`);
    });
}
