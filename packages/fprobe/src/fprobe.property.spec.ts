import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CallSpec } from '@tracelab/kernel';
import { machine, run } from '../test/helpers.js';
import { Fprobe } from './fprobe.js';
import { FprobeIpTable } from './ip-table.js';

describe('FprobeIpTable', () => {
  it('behaves as a map of ip -> list under any add/remove sequence, and shrinks back', () => {
    const op = fc.record({
      add: fc.boolean(),
      ip: fc.integer({ min: 0, max: 63 }).map((i) => (0x81000000 + i * 16) >>> 0),
      v: fc.integer({ min: 0, max: 3 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const t = new FprobeIpTable<number>();
        const model = new Map<number, number[]>();
        for (const o of ops) {
          const cur = model.get(o.ip) ?? [];
          if (o.add) {
            t.add(o.ip, o.v);
            model.set(o.ip, [...cur, o.v]);
          } else {
            const at = cur.indexOf(o.v);
            expect(t.remove(o.ip, o.v)).toBe(at >= 0);
            if (at >= 0) cur.splice(at, 1);
            if (cur.length === 0) model.delete(o.ip);
          }
          expect(t.size).toBe(model.size);
        }
        for (let i = 0; i < 64; i++) {
          const ip = (0x81000000 + i * 16) >>> 0;
          expect(t.lookup(ip) ?? null).toEqual(model.get(ip) ?? null);
        }
        for (const [ip, vs] of model) for (const v of [...vs]) t.remove(ip, v);
        expect(t.size).toBe(0);
        expect(t.capacity).toBe(16);
      }),
      { numRuns: 200 },
    );
  }, 60_000);
});

const FNS = [
  'ksys_read',
  'vfs_read',
  'rw_verify_area',
  'security_file_permission',
  'fsnotify_access',
];

const callTree: fc.Memo<CallSpec> = fc.memo((n) =>
  fc.record({
    fn: fc.constantFrom(...FNS),
    ret: fc.integer({ min: 0, max: 100 }),
    calls: n > 1 ? fc.array(callTree(n - 1), { maxLength: 3 }) : fc.constant([]),
  }),
);

describe('in-flight unregister', () => {
  it('no exit handler runs for an fprobe unregistered since its entry; stacks balance', () => {
    fc.assert(
      fc.property(
        callTree(4),
        fc.array(fc.subarray(FNS, { minLength: 1 }), { minLength: 3, maxLength: 3 }),
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 40 }),
        (tree, targets, actions) => {
          const m = machine();
          // A generation per probe, bumped at every (un)registration: an exit is legal only if
          // the probe is registered and its generation did not change since the entry.
          const gen = [0, 0, 0];
          let bad = 0;
          let exits = 0;
          const probes = targets.map(
            (_t, k) =>
              new Fprobe({
                name: `p${k}`,
                entryDataSize: 8,
                entryHandler: (_fp, _ip, _r, _f, d) => d?.setWord(0, gen[k] as number),
                exitHandler: (fp, _ip, _r, _f, d) => {
                  exits++;
                  if (!fp.registered || d?.lo(0) !== gen[k]) bad++;
                },
              }),
          );
          probes.forEach((fp, k) => {
            expect(m.fp.registerFprobeSyms(fp, targets[k] as string[])).toBeNull();
          });
          let step = 0;
          const actor = new Fprobe({
            name: 'actor',
            entryHandler: () => {
              const a = actions[step++ % actions.length] as number;
              if (a >= 3) return;
              const fp = probes[a] as Fprobe;
              gen[a] = (gen[a] as number) + 1;
              if (fp.registered) m.fp.unregisterFprobe(fp);
              else m.fp.registerFprobeSyms(fp, targets[a] as string[]);
            },
          });
          m.fp.registerFprobe(actor, '*');
          run(m, tree);
          const st = m.fg.stackOf(m.task);
          expect(bad).toBe(0);
          expect(exits).toBeLessThanOrEqual(m.fp.stats.graphEntries * 3);
          if (st !== null) {
            expect(st.curr).toBe(0);
            expect(st.depth).toBe(-1);
          }
        },
      ),
      { numRuns: 40 },
    );
  }, 120_000);
});
