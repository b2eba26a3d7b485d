import { TracelabError } from '@tracelab/contracts';
import type { Command } from 'commander';
import { readInput } from '../input.js';
import { workloadSpec } from '../workload.js';
import { attachPrograms, loadObjectFile } from './attach.js';
import {
  machineOptions,
  runWorkload,
  targetSteps,
  withTarget,
  type MachineOpts,
} from './engine.js';
import { formatMap } from './map-dump.js';
import { Progress } from './progress.js';

interface MapsOpts extends MachineOpts {
  section?: string;
  map?: string;
  run: boolean;
}

/** `tracelab maps dump`: an object's maps after a traced run (or as loaded), as bpftool dumps them. */
export function registerMaps(program: Command, env: NodeJS.ProcessEnv): void {
  const maps = program.command('maps').description("BPF maps of a clang object's programs");
  machineOptions(
    maps
      .command('dump')
      .description(
        'load an object, attach its programs by section, run a workload and dump its maps (hex, and decoded when the object has BTF)',
      )
      .argument('<file>', 'BPF ELF object (.o) built by clang -target bpf')
      .option('--section <name>', 'only the programs of this section')
      .option('--map <name>', 'only this map')
      .option('--no-run', 'dump the maps as loaded: no attach, no workload'),
    env,
  ).action(async (file: string, opts: MapsOpts, cmd: Command) => {
    const bytes = readInput(file);
    const workload = workloadSpec(opts.workload, false);
    const progress = new Progress(targetSteps(opts) + 3, opts.btf !== undefined);
    await withTarget(opts, cmd, progress, async (target) => {
      const loaded = await progress.step(`loading ${file}`, () =>
        loadObjectFile(target, file, bytes, opts.section, null),
      );
      if ('verdict' in loaded) {
        // the verdict belongs to `tracelab verify` / `attach`; here only that it failed, and why
        throw new TracelabError(loaded.code, `${file}: rejected: ${loaded.message}`);
      }
      const chosen = loaded.maps.filter((m) => opts.map === undefined || m.name === opts.map);
      if (chosen.length === 0) {
        throw new TracelabError(
          'ENOENT',
          `${file}: no map '${opts.map}' (have ${loaded.maps.map((m) => m.name).join(', ') || 'none'})`,
        );
      }
      if (opts.run) {
        await progress.step('attaching', () => attachPrograms(target, loaded.programs, null));
        await runWorkload(target, workload, opts, progress);
      }
      for (const m of chosen) process.stdout.write(await formatMap(target, m));
    });
  });
}
