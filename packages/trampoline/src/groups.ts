import type { ArchName, FuncModelLike } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import { marshalPlan, type MarshalPlan } from './plan.js';

/** A function to attach to: its name and its model, or why it has none. */
export interface AttachTarget {
  readonly name: string;
  readonly model: FuncModelLike | TracelabError;
}

/** One trampoline of a multi-attach: the plan it was built for and the functions it serves. */
/** The longest plan of the group; every member's moves are a prefix of its moves. */
export type PlanGroup = PlanBucket<string>;

export interface Grouping {
  readonly arch: ArchName;
  /** Functions asked for. */
  readonly n: number;
  /** Trampolines needed (groups.length). */
  readonly m: number;
  /** Largest group first. */
  readonly groups: readonly PlanGroup[];
  /** Functions that cannot be attached, with the kernel-style reason. */
  readonly rejected: readonly { name: string; reason: string }[];
  /** Member name -> index into groups. */
  readonly groupOf: ReadonlyMap<string, number>;
}

/** Full-length keys by plan: plans are cached per function, so each key is built once. */
const fullKeys = new WeakMap<MarshalPlan, string>();

const fullKey = (plan: MarshalPlan): string => {
  let k = fullKeys.get(plan);
  if (k === undefined) fullKeys.set(plan, (k = prefixKey(plan, plan.ctxSlots)));
  return k;
};

const prefixKey = (plan: MarshalPlan, slots: number): string => {
  let k = `${plan.retSrc[0]}:${plan.retSrc[1]}|`;
  for (let i = 0; i < slots * 2; i++) k += `${plan.src[i]},`;
  return k;
};

/** A plan group of items: the leader plan and its members. */
export interface PlanBucket<T> {
  readonly plan: MarshalPlan;
  readonly members: T[];
}

/**
 * Groups items by marshalling plan, one bucket per trampoline. Longer plans are placed first so
 * a shorter plan joins the trampoline whose moves it begins with; the lookup is a hash of every
 * prefix of every leader, so grouping is linear in the number of items.
 */
export function groupPlans<T>(items: readonly { plan: MarshalPlan; item: T }[]): PlanBucket<T>[] {
  const sorted = [...items].sort((a, b) => b.plan.ctxSlots - a.plan.ctxSlots);
  const buckets: PlanBucket<T>[] = [];
  const byPrefix = new Map<string, PlanBucket<T>>();
  for (const { plan, item } of sorted) {
    let b = byPrefix.get(fullKey(plan));
    if (b === undefined) {
      b = { plan, members: [] };
      buckets.push(b);
      for (let s = 0; s <= plan.ctxSlots; s++) {
        const k = prefixKey(plan, s);
        if (!byPrefix.has(k)) byPrefix.set(k, b);
      }
    }
    b.members.push(item);
  }
  return buckets.sort((a, b) => b.members.length - a.members.length);
}

/** Multi-attach: N functions -> M trampolines, one per distinct marshalling plan. */
export function groupTargets(arch: ArchName, targets: readonly AttachTarget[]): Grouping {
  const rejected: { name: string; reason: string }[] = [];
  const planned: { plan: MarshalPlan; item: string }[] = [];
  for (const t of targets) {
    if (t.model instanceof TracelabError) {
      rejected.push({ name: t.name, reason: t.model.message });
      continue;
    }
    const plan = marshalPlan(arch, t.model);
    if (plan instanceof TracelabError) rejected.push({ name: t.name, reason: plan.message });
    else planned.push({ plan, item: t.name });
  }
  const groups = groupPlans(planned);
  const groupOf = new Map<string, number>();
  groups.forEach((g, i) => {
    for (const name of g.members) groupOf.set(name, i);
  });
  return { arch, n: targets.length, m: groups.length, groups, rejected, groupOf };
}

/** The report `tracelab trampoline groups --arch A [GLOB]` prints. */
export function formatGrouping(g: Grouping, top = 10): string {
  const lines = [
    `${g.arch}: N=${g.n} functions, ${g.n - g.rejected.length} attachable, M=${g.m} trampolines, ${g.rejected.length} rejected`,
  ];
  g.groups.slice(0, top).forEach((grp, i) => {
    const ex = grp.members.slice(0, 3).join(', ');
    lines.push(`  #${i} ${grp.members.length} functions  ${grp.plan.key}  (e.g. ${ex})`);
  });
  if (g.groups.length > top) lines.push(`  ... ${g.groups.length - top} more groups`);
  const reasons = new Map<string, { count: number; example: string }>();
  for (const r of g.rejected) {
    const why = r.reason
      .replace(/^[A-Z0-9]+: /, '')
      .replace(/The function \S+ /, 'The function ')
      .replace(/ \(type id \d+\)$/, '')
      .replace(/arg\d+ /, 'argN ')
      .replace(/has \d+ arguments/, 'has >12 arguments')
      .replace(/take \d+ words/, 'take >12 words');
    const e = reasons.get(why);
    if (e === undefined) reasons.set(why, { count: 1, example: r.name });
    else e.count++;
  }
  for (const [why, { count, example }] of [...reasons].sort((a, b) => b[1].count - a[1].count)) {
    lines.push(`  rejected ${count}: ${why} (e.g. ${example})`);
  }
  return `${lines.join('\n')}\n`;
}
