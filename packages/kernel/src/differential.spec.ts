import {
  ARCHES,
  encodeEntryCall,
  encodeEntryNop,
  ENTRY_CALL,
  EntryDecoder,
} from '@tracelab/arch-isa';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KernelError } from './errors.js';
import { KernelImage } from './image.js';
import { ENTRY_CONTINUE, Kernel } from './machine.js';
import { runCompiled } from './run.js';
import { builtinWorkload, compileWorkload, type WorkloadSpec } from './workload.js';

/**
 * Differential: a workload traced through no-op handlers on a random set of functions must make
 * the same calls, returns, stacks and times as the untraced run.
 */
describe('traced versus untraced execution', () => {
  it.each(ARCHES)(
    '%s: random patch sets change nothing but the handler count',
    (arch) => {
      const image0 = KernelImage.builtin(arch) as KernelImage;
      const traceable = image0.functions.filter((f) => f.traceable).map((f) => f.name);
      const spec = builtinWorkload('syscalls', arch) as WorkloadSpec;
      const run = (
        patched: ReadonlySet<string>,
        unpatch: ReadonlySet<string>,
      ): { log: string[]; hits: number } => {
        const image = KernelImage.builtin(arch) as KernelImage;
        const k = new Kernel({ image, cpus: 2 });
        const caller = k.symbolAddress('ftrace_caller') as bigint;
        let hits = 0;
        k.registerHandler(caller, 'ftrace_caller', () => (hits++, ENTRY_CONTINUE));
        for (const name of patched) {
          const at = k.symbolAddress(name) as bigint;
          k.textPoke(at, encodeEntryCall(arch, at, caller) as Uint8Array, `enable ${name}`);
        }
        for (const name of unpatch) {
          k.textPoke(k.symbolAddress(name) as bigint, encodeEntryNop(arch), `disable ${name}`);
        }
        const log: string[] = [];
        k.observer = {
          onReturn: (c, fn) =>
            void log.push(
              `${c.id} ${fn} ${c.regs.returnValue()} ${c.clock} ${k.stackTrace(c, 4).join(',')}`,
            ),
        };
        const w = compileWorkload(image, spec);
        if (w instanceof KernelError) throw w;
        const r = runCompiled(k, w, 11);
        if (r instanceof KernelError) throw r;
        expect(r.fault).toBeNull();
        // Every traceable entry still decodes: patched ones as calls, the rest as nops.
        const d = new EntryDecoder(arch);
        for (const f of image.functions) {
          if (!f.traceable) continue;
          const kind = d.decode(k.text, image.textOffset(f.index));
          expect(kind === ENTRY_CALL).toBe(patched.has(f.name) && !unpatch.has(f.name));
        }
        return { log, hits };
      };
      const base = run(new Set(), new Set());
      const called = new Set(base.log.map((l) => image0.functions[Number(l.split(' ')[1])]?.name));
      fc.assert(
        fc.property(
          fc.uniqueArray(fc.constantFrom(...traceable), { maxLength: 40 }),
          fc.uniqueArray(fc.constantFrom(...traceable), { maxLength: 5 }),
          (on, off) => {
            const traced = run(new Set(on), new Set(off));
            expect(traced.log).toEqual(base.log);
            const live = on.filter((n) => !off.includes(n) && called.has(n));
            expect(traced.hits > 0).toBe(live.length > 0);
          },
        ),
        { numRuns: 5 },
      );
    },
    60_000,
  );
});
