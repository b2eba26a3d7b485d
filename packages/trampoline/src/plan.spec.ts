import { readFileSync } from 'node:fs';
import { ARCHES, type ArchName, type FuncModelLike } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatGrouping, groupTargets } from './groups.js';
import { formatPlan, marshalPlan, planFits, type MarshalPlan } from './plan.js';

type Args = [number, number][];
interface PlanCase {
  what: string;
  arch: ArchName;
  ret: number;
  args: Args;
  moves: string[];
  stackBytes: number;
  natural: boolean;
  saveArgs: boolean;
}
const fx = JSON.parse(readFileSync(new URL('../testdata/plans.json', import.meta.url), 'utf8')) as {
  plans: PlanCase[];
  rejected: { what: string; arch: ArchName; ret: number; args: Args; code: string }[];
  groups: { what: string; arch: ArchName; models: [number, Args][]; m: number }[];
};

const model = (ret: number, args: Args): FuncModelLike => ({
  retSize: ret,
  retFlags: 0,
  nrArgs: args.length,
  argSize: args.map((a) => a[0]),
  argFlags: args.map((a) => a[1]),
});

describe('marshalling plans', () => {
  it.each(fx.plans)('$what', (c) => {
    const p = marshalPlan(c.arch, model(c.ret, c.args)) as MarshalPlan;
    expect(p).not.toBeInstanceOf(TracelabError);
    expect(p.moves).toEqual(c.moves);
    expect(p.ctxSlots).toBe(c.moves.length);
    expect(p.stackBytes).toBe(c.stackBytes);
    expect(p.saveArgsBeforeCall).toBe(c.saveArgs);
    expect(p.key.includes(' natural ')).toBe(c.natural);
    expect(formatPlan('f', p)).toContain(`ctx[-1] = ${c.moves.length}`);
  });

  it.each(fx.rejected)('rejects: $what', (c) => {
    const p = marshalPlan(c.arch, model(c.ret, c.args));
    expect(p).toBeInstanceOf(TracelabError);
    expect((p as TracelabError).code).toBe(c.code);
  });

  it('equal keys mean equal move tables; a plan always fits itself', () => {
    const arb = fc.record({
      arch: fc.constantFrom(...ARCHES),
      ret: fc.constantFrom(0, 1, 2, 4, 8),
      args: fc.array(
        fc.oneof(
          fc.tuple(fc.constantFrom(1, 2, 4, 8), fc.constantFrom(0, 2)),
          fc.tuple(fc.constantFrom(12, 16), fc.constant(1)),
        ),
        { maxLength: 12 },
      ),
    });
    fc.assert(
      fc.property(arb, arb, (a, b) => {
        const pa = marshalPlan(a.arch, model(a.ret, a.args));
        const pb = marshalPlan(b.arch, model(b.ret, b.args));
        if (pa instanceof TracelabError || pb instanceof TracelabError) return;
        expect(planFits(pa, pa)).toBe(true);
        if (pa.key === pb.key && !pa.key.includes(' natural ')) {
          expect([...pa.src]).toEqual([...pb.src]);
        }
        if (planFits(pa, pb)) expect(pb.src.slice(0, pa.ctxSlots * 2)).toEqual(pa.src);
      }),
      { numRuns: 500 },
    );
  });
});

describe('multi-attach grouping', () => {
  it.each(fx.groups)('$what', (c) => {
    const g = groupTargets(
      c.arch,
      c.models.map(([ret, args], i) => ({ name: `f${i}`, model: model(ret, args) })),
    );
    expect(g.m).toBe(c.m);
    expect(g.n).toBe(c.models.length);
    // Every member fits its group's leader plan.
    for (const grp of g.groups) {
      for (const name of grp.members) {
        const i = Number(name.slice(1));
        const [ret, args] = c.models[i] as [number, Args];
        expect(planFits(marshalPlan(c.arch, model(ret, args)) as MarshalPlan, grp.plan)).toBe(true);
      }
    }
    expect(formatGrouping(g)).toContain(`M=${c.m} trampolines`);
  });

  it('reports the functions that cannot be attached and why', () => {
    const g = groupTargets('x86_64', [
      { name: 'ok', model: model(4, [[4, 0]]) },
      {
        name: 'vararg',
        model: new TracelabError(
          'EINVAL',
          'The function vararg with variable args is unsupported.',
        ),
      },
    ]);
    expect(g.rejected).toEqual([
      { name: 'vararg', reason: 'The function vararg with variable args is unsupported.' },
    ]);
    expect(formatGrouping(g)).toContain(
      'rejected 1: The function with variable args is unsupported. (e.g. vararg)',
    );
  });
});
