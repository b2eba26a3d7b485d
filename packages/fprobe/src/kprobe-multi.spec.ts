import { describe, expect, it } from 'vitest';
import { PtRegs } from '@tracelab/arch-isa';
import type { CallSpec } from '@tracelab/kernel';
import { machine, node, run, type Machine } from '../test/helpers.js';
import {
  BPF_F_KPROBE_MULTI_RETURN,
  kprobeMultiLinkAttach,
  type KprobeMultiOpts,
  type KprobeMultiRunCtx,
} from './kprobe-multi.js';

/** kprobe_multi_test's eight targets, each called once by TREE. */
const TARGETS = [
  'ksys_read',
  '__fdget_pos',
  'vfs_read',
  'rw_verify_area',
  'security_file_permission',
  'new_sync_read',
  'fsnotify_access',
  'fput',
];
const TREE: CallSpec = {
  fn: 'ksys_read',
  ret: 8,
  args: [3, 0x1000, 4096],
  calls: [
    { fn: '__fdget_pos', ret: 1 },
    {
      fn: 'vfs_read',
      ret: 8,
      calls: [
        { fn: 'rw_verify_area', ret: 0, calls: [{ fn: 'security_file_permission', ret: 0 }] },
        { fn: 'new_sync_read', ret: 8 },
        { fn: 'fsnotify_access' },
      ],
    },
    { fn: 'fput' },
  ],
};

const addrOf = (m: Machine, name: string): bigint =>
  m.image.functions[m.image.indexOf(name)]?.addr as bigint;

/** A counting program that checks bpf_get_func_ip and the cookie against the expectation. */
function counter(m: Machine, cookieFor: (name: string, ret: boolean) => bigint) {
  const seen = { entry: 0, ret: 0, bad: [] as string[] };
  const prog = (regs: PtRegs, rc: KprobeMultiRunCtx): number => {
    const fn = m.image.functions.find((f) => f.addr === rc.entryIp)?.name ?? '?';
    if (rc.isReturn) seen.ret++;
    else seen.entry++;
    if (rc.cookie !== cookieFor(fn, rc.isReturn)) seen.bad.push(`${fn}:${rc.cookie}`);
    if (!rc.isReturn && fn === 'ksys_read' && regs.read('di') !== 3n) seen.bad.push('arg0');
    return 0;
  };
  return { prog, seen };
}

describe('kprobe_multi_test', () => {
  const idx = (n: string) => BigInt(TARGETS.indexOf(n) + 1);
  const cookies = TARGETS.map((_, i) => BigInt(i + 1));

  it.each([
    ['symbols', (_m: Machine): KprobeMultiOpts => ({ syms: TARGETS, cookies })],
    [
      'addresses',
      (m: Machine): KprobeMultiOpts => ({ addrs: TARGETS.map((t) => addrOf(m, t)), cookies }),
    ],
  ])('8 targets via %s: cookies 1..8 on entry', (_how, opts) => {
    const m = machine();
    const c = counter(m, (n) => idx(n));
    const link = kprobeMultiLinkAttach(m.fp, c.prog, opts(m));
    if (link instanceof Error) throw link;
    run(m, TREE);
    expect(c.seen).toEqual({ entry: 8, ret: 0, bad: [] });
    expect(link.addrs.every((a, i) => i === 0 || (link.addrs[i - 1] as bigint) < a)).toBe(true);
    expect(link.detach()).toBeNull();
    run(m, TREE);
    expect(c.seen.entry).toBe(8);
  });

  it('8 targets on return with cookies 8..1; regs hold the return value', () => {
    const m = machine();
    const rev = TARGETS.map((_, i) => BigInt(8 - i));
    const rets: bigint[] = [];
    const c = counter(m, (n) => 9n - idx(n));
    const link = kprobeMultiLinkAttach(
      m.fp,
      (regs, rc) => {
        if (m.image.functions.find((f) => f.addr === rc.entryIp)?.name === 'ksys_read') {
          rets.push(regs.read('ax'));
        }
        return c.prog(regs, rc);
      },
      { syms: TARGETS, cookies: rev, flags: BPF_F_KPROBE_MULTI_RETURN },
    );
    if (link instanceof Error) throw link;
    run(m, TREE);
    expect(c.seen).toEqual({ entry: 0, ret: 8, bad: [] });
    expect(rets).toEqual([8n]);
  });

  it('pattern attaches to every matching function', () => {
    const m = machine();
    const c = counter(m, () => 0n);
    const link = kprobeMultiLinkAttach(m.fp, c.prog, { pattern: '*_read' });
    if (link instanceof Error) throw link;
    run(m, TREE);
    // ksys_read, vfs_read, new_sync_read.
    expect(c.seen.entry).toBe(3);
  });

  it('session: return runs only after an entry that returned 0; the session cookie survives', () => {
    const m = machine();
    const log: string[] = [];
    const link = kprobeMultiLinkAttach(
      m.fp,
      (_regs, rc) => {
        const fn = m.image.functions.find((f) => f.addr === rc.entryIp)?.name ?? '?';
        if (!rc.isReturn) {
          rc.session?.setWord(0, TARGETS.indexOf(fn) * 10);
          log.push(`+${fn}`);
          return fn.includes('read') ? 0 : 1;
        }
        log.push(`-${fn}:${rc.session?.lo(0) as number}`);
        return 0;
      },
      { syms: TARGETS, session: true },
    );
    if (link instanceof Error) throw link;
    run(m, TREE);
    expect(log.filter((l) => l.startsWith('+'))).toHaveLength(8);
    expect(log.filter((l) => l.startsWith('-'))).toEqual([
      '-new_sync_read:50',
      '-vfs_read:20',
      '-ksys_read:0',
    ]);
  });

  it.each<[string, KprobeMultiOpts, string]>([
    ['pattern with syms', { pattern: 'vfs_*', syms: ['vfs_read'] }, 'EINVAL'],
    ['pattern with cookies', { pattern: 'vfs_*', cookies: [1n] }, 'EINVAL'],
    ['syms and addrs', { syms: ['vfs_read'], addrs: [1n] }, 'EINVAL'],
    ['neither syms nor addrs', {}, 'EINVAL'],
    ['cnt 0', { syms: ['vfs_read'], cnt: 0 }, 'EINVAL'],
    ['cnt INT_MAX', { syms: ['vfs_read'], cnt: 0x7fffffff }, 'E2BIG'],
    ['cnt 2^20 + 1', { syms: ['vfs_read'], cnt: (1 << 20) + 1 }, 'E2BIG'],
    ['unknown flags', { syms: ['vfs_read'], flags: 2 }, 'EINVAL'],
    ['link flags', { syms: ['vfs_read'], linkFlags: 1 }, 'EINVAL'],
    ['a bogus symbol', { syms: ['vfs_read', 'bpf_fentry_test_xxx'] }, 'ENOENT'],
    ['an address that is not a function entry', { addrs: [0x1234n] }, 'ENOENT'],
    ['pt_regs of another arch', { syms: ['vfs_read'], regs: [new PtRegs('arm64')] }, 'EINVAL'],
    ['fewer pt_regs than CPUs', { syms: ['vfs_read'], regs: [] }, 'EINVAL'],
  ])('refuses %s', (_what, opts, code) => {
    const m = machine();
    const link = kprobeMultiLinkAttach(m.fp, () => 0, opts);
    expect(link instanceof Error ? link.code : 'attached').toBe(code);
    expect(m.ft.ops).toEqual([]);
  });

  it('pt_regs from ftrace_partial_regs: only saved registers are real', () => {
    const m = machine();
    const real: string[][] = [];
    const link = kprobeMultiLinkAttach(
      m.fp,
      (regs) => {
        real.push(regs.realFields());
        return 0;
      },
      { syms: ['vfs_read'] },
    );
    if (link instanceof Error) throw link;
    run(m, TREE);
    const r = real[0] as string[];
    for (const f of ['di', 'si', 'dx', 'cx', 'r8', 'r9', 'sp', 'ip']) expect(r).toContain(f);
    for (const f of ['bx', 'r12', 'r15']) expect(r).not.toContain(f);
  });

  it('the per-CPU active guard skips a nested run and counts a miss', () => {
    const m = machine();
    let depth = 0;
    const link = kprobeMultiLinkAttach(
      m.fp,
      () => {
        depth++;
        // A program whose helper reaches traced code: the nested hit must not run the program.
        if (depth === 1) m.kernel.run(m.cpu, node(m.image, { fn: 'fput' }));
        return 0;
      },
      { syms: ['vfs_read', 'fput'] },
    );
    if (link instanceof Error) throw link;
    run(m, { fn: 'vfs_read' });
    expect(depth).toBe(1);
    expect(link.stats).toEqual({ runs: 1, misses: 1 });
  });

  it('the guard is per CPU, not per link: another link nested inside a program misses', () => {
    // bpf_prog_active is one per-CPU counter for all kprobe programs; a second link running
    // inside the first would also rebuild the pt_regs the first program is still reading.
    const m = machine();
    const seen: string[] = [];
    const outer = kprobeMultiLinkAttach(
      m.fp,
      () => {
        seen.push('outer');
        m.kernel.run(m.cpu, node(m.image, { fn: 'fput' }));
        return 0;
      },
      { syms: ['vfs_read'] },
    );
    const inner = kprobeMultiLinkAttach(
      m.fp,
      () => {
        seen.push('inner');
        return 0;
      },
      { syms: ['fput'] },
    );
    if (outer instanceof Error) throw outer;
    if (inner instanceof Error) throw inner;
    run(m, { fn: 'vfs_read' });
    expect(seen).toEqual(['outer']);
    expect(inner.stats).toEqual({ runs: 0, misses: 1 });
    // Outside any program the inner link runs as usual, and the counter is back at 0.
    run(m, { fn: 'fput' });
    expect(seen).toEqual(['outer', 'inner']);
    expect(m.cpu.bpfProgActive).toBe(0);
  });
});
