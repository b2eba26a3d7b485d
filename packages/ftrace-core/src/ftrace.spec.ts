import { describe, expect, it } from 'vitest';
import { FtraceRegs } from '@tracelab/arch-isa';
import { ENTRY_CONTINUE, KernelError } from '@tracelab/kernel';
import { fnIndex, machine, node, run, type Machine } from '../test/helpers.js';
import {
  FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER,
  FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF,
  FTRACE_OPS_FL_DELETED,
  FTRACE_OPS_FL_DYNAMIC,
  FTRACE_OPS_FL_IPMODIFY,
  FTRACE_OPS_FL_PERMANENT,
  FTRACE_OPS_FL_SAVE_REGS,
  FTRACE_OPS_FL_SAVE_REGS_IF_SUPPORTED,
  FtraceOps,
  type FtraceFunc,
  type FtraceOpsCmd,
} from './ops.js';
import { DISPATCH_LIST, DISPATCH_SINGLE, DISPATCH_STUB } from './ftrace.js';
import {
  FTRACE_FL_CALL_OPS_EN,
  FTRACE_FL_DIRECT_EN,
  FTRACE_FL_ENABLED,
  FTRACE_FL_REGS_EN,
  FTRACE_FL_TOUCHED,
  FTRACE_FL_TRAMP_EN,
  ftraceRecCount,
  recFlagNames,
} from './records.js';

const nop: FtraceFunc = () => undefined;

function counter(): { func: FtraceFunc; hits: string[] } {
  const hits: string[] = [];
  return { hits, func: (_ip, _p, _op, _f, _cpu, fn) => void hits.push(`${fn}`) };
}

function target(m: Machine, name: string): string {
  const d = m.kernel.decodeEntry(fnIndex(m.image, name));
  if (d instanceof KernelError) throw d;
  return d.kind === 'nop' ? 'nop' : m.kernel.symbolize(d.target);
}

const readPath = {
  fn: 'ksys_read',
  args: [3, 4096, 128],
  calls: [{ fn: 'vfs_read', args: [11, 4096, 128, 0], calls: [{ fn: 'rw_verify_area' }] }],
};

describe('registration patches call sites through text_poke', () => {
  it('a static ops: sites call ftrace_caller, its func is called directly', () => {
    const m = machine();
    const c = counter();
    const ops = new FtraceOps({ name: 'a', func: c.func, static: true });
    expect(m.ft.setFilter(ops, 'vfs_read ksys_read')).toBeNull();
    expect(m.ft.registerFtraceFunction(ops)).toBeNull();
    expect(target(m, 'vfs_read')).toBe('ftrace_caller+0x0/0x' + sizeHex(m, 'ftrace_caller'));
    expect(target(m, 'rw_verify_area')).toBe('nop');
    expect(m.ft.dispatchMode).toBe(DISPATCH_SINGLE);
    run(m, readPath);
    expect(c.hits).toEqual(
      [fnIndex(m.image, 'ksys_read'), fnIndex(m.image, 'vfs_read')].map(String),
    );
    expect(m.ft.stats.listWalks).toBe(0);
    expect(m.ft.unregisterFtraceFunction(ops)).toBeNull();
    expect(target(m, 'vfs_read')).toBe('nop');
    expect(m.ft.dispatchMode).toBe(DISPATCH_STUB);
    const reasons = m.kernel.textPokeLog().map((p) => p.reason);
    expect(reasons.filter((r) => r === 'ftrace: enable')).toHaveLength(2);
    expect(reasons.filter((r) => r === 'ftrace: disable')).toHaveLength(2);
  });

  it('a dynamic ops on x86-64 gets its own trampoline; two ops share ftrace_caller and the list', () => {
    const m = machine();
    const a = counter();
    const b = counter();
    const opsA = new FtraceOps({ name: 'a', func: a.func });
    const opsB = new FtraceOps({ name: 'b', func: b.func });
    m.ft.setFilter(opsA, 'vfs_read');
    m.ft.setFilter(opsB, 'vfs_read rw_verify_area');
    expect(m.ft.registerFtraceFunction(opsA)).toBeNull();
    expect(opsA.flags & FTRACE_OPS_FL_DYNAMIC).not.toBe(0);
    expect(target(m, 'vfs_read')).toMatch(/^ftrace_trampoline\+0x0\//);
    run(m, readPath);
    expect(m.ft.stats.trampolineHits).toBe(1);
    expect(m.ft.registerFtraceFunction(opsB)).toBeNull();
    expect(m.ft.dispatchMode).toBe(DISPATCH_LIST);
    expect(target(m, 'vfs_read')).toMatch(/^ftrace_caller\+/);
    // rw_verify_area has only b: b's trampoline.
    expect(target(m, 'rw_verify_area')).toMatch(/^ftrace_trampoline\+/);
    run(m, readPath);
    expect(a.hits).toHaveLength(2);
    expect(b.hits).toEqual(
      [fnIndex(m.image, 'vfs_read'), fnIndex(m.image, 'rw_verify_area')].map(String),
    );
    expect(m.ft.stats.listWalks).toBe(1);
    const rec = m.ft.recFlags[fnIndex(m.image, 'vfs_read')] as number;
    expect(ftraceRecCount(rec)).toBe(2);
    expect(rec & FTRACE_FL_TRAMP_EN).toBe(0);
    expect(m.ft.unregisterFtraceFunction(opsA)).toBeNull();
    expect(target(m, 'vfs_read')).toMatch(/^ftrace_trampoline\+/);
  });

  it('notrace removes functions and an empty filter means every function', () => {
    const m = machine();
    const ops = new FtraceOps({ name: 'all', func: nop, static: true });
    expect(m.ft.setFilter(ops, 'vfs_*', { notrace: true })).toBeNull();
    expect(m.ft.registerFtraceFunction(ops)).toBeNull();
    expect(target(m, 'vfs_read')).toBe('nop');
    expect(target(m, 'ksys_read')).toMatch(/^ftrace_caller/);
    const enabled = m.ft.enabledFunctions().trimEnd().split('\n');
    expect(enabled).toHaveLength(m.ft.table.functions.length - countMatching(m, /^vfs_/));
    expect(m.ft.readFilter(ops)).toBe('#### all functions enabled ####\n');
    // Narrowing the filter of a live ops repatches at once.
    expect(m.ft.setFilter(ops, 'ksys_read')).toBeNull();
    expect(target(m, 'ksys_write')).toBe('nop');
    expect(target(m, 'ksys_read')).toMatch(/^ftrace_caller/);
  });

  it('arm64 uses CALL_OPS for a single ops instead of the list', () => {
    const m = machine('arm64');
    const c = counter();
    const ops = new FtraceOps({ name: 'a', func: c.func });
    m.ft.setFilter(ops, 'vfs_read');
    expect(m.ft.registerFtraceFunction(ops)).toBeNull();
    const rec = m.ft.recFlags[fnIndex(m.image, 'vfs_read')] as number;
    expect(rec & FTRACE_FL_CALL_OPS_EN).not.toBe(0);
    run(m, readPath);
    expect(c.hits).toHaveLength(1);
    expect(m.ft.stats.listWalks).toBe(0);
    expect(m.ft.enabledFunctions()).toBe('vfs_read (1)       O   \tops: a (a+0x0/0x10)\n');
  });
});

describe('registration failures', () => {
  it('SAVE_REGS needs WITH_REGS unless SAVE_REGS_IF_SUPPORTED', () => {
    const m = machine('arm64');
    const bad = new FtraceOps({ name: 'r', func: nop, flags: FTRACE_OPS_FL_SAVE_REGS });
    const err = m.ft.registerFtraceFunction(bad);
    expect(err?.code).toBe('EINVAL');
    expect(err?.message).toContain('SAVE_REGS');
    const okOps = new FtraceOps({
      name: 'r2',
      func: nop,
      flags: FTRACE_OPS_FL_SAVE_REGS_IF_SUPPORTED,
    });
    expect(m.ft.registerFtraceFunction(okOps)).toBeNull();
    expect(okOps.flags & FTRACE_OPS_FL_SAVE_REGS).not.toBe(0);
    const x86 = machine('x86_64');
    const r = new FtraceOps({ name: 'r', func: nop, flags: FTRACE_OPS_FL_SAVE_REGS });
    expect(x86.ft.registerFtraceFunction(r)).toBeNull();
  });

  it('a second IPMODIFY ops on a function fails with EBUSY; disjoint ones coexist', () => {
    const m = machine();
    const flags = FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_SAVE_REGS;
    const a = new FtraceOps({ name: 'a', func: nop, flags });
    const b = new FtraceOps({ name: 'b', func: nop, flags });
    const c = new FtraceOps({ name: 'c', func: nop, flags });
    m.ft.setFilter(a, 'vfs_read');
    m.ft.setFilter(b, 'vfs_*');
    m.ft.setFilter(c, 'ksys_read');
    expect(m.ft.registerFtraceFunction(a)).toBeNull();
    const err = m.ft.registerFtraceFunction(b);
    expect(err?.code).toBe('EBUSY');
    expect(err?.message).toContain('vfs_read');
    expect(m.ft.registerFtraceFunction(c)).toBeNull();
    // Growing a live IPMODIFY ops onto a taken function fails too, and leaves it as it was.
    expect(m.ft.setFilter(c, 'vfs_read', { append: true })?.code).toBe('EBUSY');
    expect(m.ft.readFilter(c)).toBe('ksys_read\n');
  });

  it('PERMANENT and ftrace_enabled refuse each other; double and stray calls fail', () => {
    const m = machine();
    const p = new FtraceOps({ name: 'p', func: nop, flags: FTRACE_OPS_FL_PERMANENT });
    expect(m.ft.setFtraceEnabled(false)).toBeNull();
    expect(m.ft.registerFtraceFunction(p)?.code).toBe('EBUSY');
    expect(m.ft.setFtraceEnabled(true)).toBeNull();
    expect(m.ft.registerFtraceFunction(p)).toBeNull();
    expect(m.ft.setFtraceEnabled(false)?.code).toBe('EBUSY');
    expect(m.ft.registerFtraceFunction(p)?.code).toBe('EBUSY');
    const q = new FtraceOps({ name: 'q', func: nop });
    expect(m.ft.unregisterFtraceFunction(q)?.code).toBe('EBUSY');
    const d = new FtraceOps({ name: 'd', func: nop, flags: FTRACE_OPS_FL_DELETED });
    expect(m.ft.registerFtraceFunction(d)?.code).toBe('EINVAL');
  });

  it('ftrace_enabled=0 turns every site back into a NOP and 1 restores them', () => {
    const m = machine();
    const ops = new FtraceOps({ name: 'a', func: nop, static: true });
    m.ft.setFilter(ops, 'vfs_read');
    m.ft.registerFtraceFunction(ops);
    m.ft.setFtraceEnabled(false);
    expect(target(m, 'vfs_read')).toBe('nop');
    m.ft.setFtraceEnabled(true);
    expect(target(m, 'vfs_read')).toMatch(/^ftrace_caller/);
  });
});

describe('the two callers', () => {
  it('ftrace_caller hands a sparse ftrace_regs; ftrace_regs_caller a full pt_regs', () => {
    const m = machine();
    const seen: { caller: string; arg0: bigint; r15: string }[] = [];
    const look: FtraceFunc = (_ip, _p, _op, fregs) => {
      if (fregs === null) throw new Error('no fregs');
      let r15 = 'held';
      try {
        fregs.read('r15');
      } catch {
        r15 = 'not held';
      }
      seen.push({ caller: fregs.caller, arg0: fregs.argument(0), r15 });
    };
    const plain = new FtraceOps({ name: 'plain', func: look, static: true });
    m.ft.setFilter(plain, 'vfs_read');
    m.ft.registerFtraceFunction(plain);
    run(m, readPath);
    const regs = new FtraceOps({ name: 'regs', func: look, flags: FTRACE_OPS_FL_SAVE_REGS });
    m.ft.setFilter(regs, 'ksys_read');
    m.ft.registerFtraceFunction(regs);
    expect(target(m, 'ksys_read')).toMatch(/^ftrace_trampoline/);
    expect((m.ft.recFlags[fnIndex(m.image, 'ksys_read')] as number) & FTRACE_FL_REGS_EN).not.toBe(
      0,
    );
    run(m, readPath);
    expect(seen).toEqual([
      { caller: 'caller', arg0: 11n, r15: 'not held' },
      { caller: 'regs_caller', arg0: 3n, r15: 'held' },
      { caller: 'caller', arg0: 11n, r15: 'not held' },
    ]);
  });

  it('passes ip and the parent ip inside the caller', () => {
    const m = machine('riscv64');
    const got: string[] = [];
    const ops = new FtraceOps({
      name: 'p',
      static: true,
      func: (ip, parent) => {
        got.push(
          `${m.kernel.symbolize(m.ft.address(ip))} <- ${m.kernel.symbolize(m.ft.address(parent))}`,
        );
      },
    });
    m.ft.setFilter(ops, 'vfs_read');
    m.ft.registerFtraceFunction(ops);
    run(m, readPath);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(/^vfs_read\+0x0\/0x[0-9a-f]+ <- ksys_read\+0x[0-9a-f]+\/0x[0-9a-f]+$/);
  });

  it.each(['x86_64', 'arm64', 'riscv64', 'i386'] as const)(
    '%s: the traced body sees its arguments after callbacks that call kernel code or write ftrace_regs',
    (arch) => {
      const m = machine(arch);
      const vfsRead = fnIndex(m.image, 'vfs_read');
      const nested = node(m.image, { fn: 'rw_verify_area', args: [9, 99, 999], cost: 1 });
      // What vfs_read's leaf body leaves in its 2nd and 3rd argument registers when it returns
      // (the first is the return register on arm64, riscv64 and i386).
      let seen: bigint[] = [];
      m.kernel.observer = {
        onReturn: (cpu, fn) => {
          if (fn === vfsRead) seen = [1, 2].map((n) => cpu.regs.argument(n));
        },
      };
      const callsKernel = new FtraceOps({
        name: 'nested',
        flags: FTRACE_OPS_FL_SAVE_REGS_IF_SUPPORTED,
        func: (_ip, _p, _op, _f, cpu) => {
          expect(m.kernel.run(cpu, nested)).toBeNull();
        },
      });
      m.ft.setFilter(callsKernel, 'vfs_read');
      expect(m.ft.registerFtraceFunction(callsKernel)).toBeNull();
      run(m, { fn: 'vfs_read', args: [3, 4096, 128, 0], cost: 1 });
      expect(seen).toEqual([4096n, 128n]);
      expect(m.ft.unregisterFtraceFunction(callsKernel)).toBeNull();
      if (arch === 'i386') return; // no ftrace_regs to write to without WITH_ARGS or SAVE_REGS
      const writes = new FtraceOps({
        name: 'writes',
        func: (_ip, _p, _op, fregs) => (fregs as FtraceRegs).setArgument(1, 77n),
      });
      m.ft.setFilter(writes, 'vfs_read');
      expect(m.ft.registerFtraceFunction(writes)).toBeNull();
      run(m, { fn: 'vfs_read', args: [3, 4096, 128, 0], cost: 1 });
      expect(seen).toEqual([77n, 128n]);
    },
  );

  it('a callback may make the function return at once (override_function_with_return)', () => {
    const m = machine();
    const child = counter();
    const skip = new FtraceOps({
      name: 'skip',
      flags: FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY,
      func: (_ip, _p, _op, fregs) => {
        const f = fregs as FtraceRegs;
        f.setReturnValue(0xfffffff2n);
        f.overrideFunctionWithReturn((a) => {
          const v = m.kernel.mm.load(a, 8);
          return typeof v === 'bigint' ? v : 0n;
        });
      },
    });
    const watch = new FtraceOps({ name: 'watch', func: child.func, static: true });
    m.ft.setFilter(skip, 'vfs_read');
    m.ft.setFilter(watch, 'rw_verify_area');
    m.ft.registerFtraceFunction(skip);
    m.ft.registerFtraceFunction(watch);
    run(m, readPath);
    expect(child.hits).toHaveLength(0);
    expect(m.ft.enabledFunctions()).toContain(
      'vfs_read (1) R I     M \ttramp: ftrace_trampoline+0x0/0x100 (skip+0x0/0x10) ->skip+0x0/0x10\n',
    );
  });
});

describe('ip modification', () => {
  it('an IPMODIFY callback that moves ip to another function runs that body instead', () => {
    const m = machine();
    const vfsWrite = m.image.addrLo[fnIndex(m.image, 'vfs_write')] as number;
    const patch = new FtraceOps({
      name: 'klp',
      flags: FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY,
      func: (_ip, _p, _op, fregs) => {
        const f = fregs as FtraceRegs;
        f.setHalves(f.fieldIndex('ip'), vfsWrite, m.ft.textHigh);
      },
    });
    const parents: string[] = [];
    const watch = new FtraceOps({
      name: 'watch',
      static: true,
      func: (_ip, parent) => void parents.push(m.kernel.symbolize(m.ft.address(parent))),
    });
    m.ft.setFilter(patch, 'vfs_read');
    m.ft.setFilter(watch, 'rw_verify_area');
    m.ft.registerFtraceFunction(patch);
    m.ft.registerFtraceFunction(watch);
    run(m, readPath);
    // The child is now called from inside the replacement's body.
    expect(parents).toHaveLength(1);
    expect(parents[0]).toMatch(/^vfs_write\+0x/);
  });
});

describe('enabled_functions and touched_functions', () => {
  it('shows flags and counts as ops with different flags come and go', () => {
    const m = machine();
    const a = new FtraceOps({ name: 'a', func: nop, static: true });
    const r = new FtraceOps({ name: 'r', func: nop, static: true, flags: FTRACE_OPS_FL_SAVE_REGS });
    m.ft.setFilter(a, 'vfs_read vfs_write');
    m.ft.setFilter(r, 'vfs_read');
    m.ft.registerFtraceFunction(a);
    expect(m.ft.enabledFunctions()).toBe(
      'vfs_read (1)           \nvfs_write (1)           \n'.replace(
        /\(1\) {11}/g,
        '(1)           ',
      ),
    );
    m.ft.registerFtraceFunction(r);
    expect(m.ft.enabledFunctions()).toBe('vfs_read (2) R         \nvfs_write (1)           \n');
    expect(target(m, 'vfs_read')).toMatch(/^ftrace_regs_caller/);
    m.ft.unregisterFtraceFunction(a);
    expect(m.ft.enabledFunctions()).toBe('vfs_read (1) R         \n');
    m.ft.unregisterFtraceFunction(r);
    expect(m.ft.enabledFunctions()).toBe('');
    expect(m.ft.touchedFunctions()).toBe('vfs_read (0)           \nvfs_write (0)           \n');
    const rec = m.ft.recFlags[fnIndex(m.image, 'vfs_read')] as number;
    expect(recFlagNames(rec)).toEqual(['TOUCHED']);
    expect(rec & FTRACE_FL_ENABLED).toBe(0);
    expect(rec & FTRACE_FL_TOUCHED).not.toBe(0);
  });
});

describe('direct calls', () => {
  function trampoline(m: Machine, name: string): { addr: bigint; hits: number[] } {
    const addr = m.kernel.allocText(name, 64);
    if (addr instanceof KernelError) throw addr;
    const t = { addr, hits: [] as number[] };
    m.kernel.registerHandler(addr, name, (_cpu, fn) => {
      t.hits.push(fn);
      return ENTRY_CONTINUE;
    });
    return t;
  }

  it('register, share with another ops, modify and unregister', () => {
    const m = machine();
    const t1 = trampoline(m, 'bpf_trampoline_1');
    const t2 = trampoline(m, 'bpf_trampoline_2');
    const h1 = (cpu: Parameters<FtraceFunc>[4], fn: number): number => {
      t1.hits.push(fn);
      return ENTRY_CONTINUE;
    };
    const h2 = (cpu: Parameters<FtraceFunc>[4], fn: number): number => {
      t2.hits.push(fn);
      return ENTRY_CONTINUE;
    };
    const d = new FtraceOps({ name: 'direct', func: nop });
    m.ft.setFilter(d, 'vfs_read');
    expect(m.ft.registerFtraceDirect(d, t1.addr, h1)).toBeNull();
    expect(target(m, 'vfs_read')).toBe('bpf_trampoline_1+0x0/0x40');
    const vr = fnIndex(m.image, 'vfs_read');
    expect((m.ft.recFlags[vr] as number) & FTRACE_FL_DIRECT_EN).not.toBe(0);
    run(m, readPath);
    expect(t1.hits).toEqual([vr]);
    const regsCaller = `ftrace_regs_caller+0x0/0x${sizeHex(m, 'ftrace_regs_caller')}`;
    expect(m.ft.enabledFunctions()).toBe(
      `vfs_read (1)     D   M \ttramp: ${regsCaller} (call_direct_funcs+0x0/0x10)\n\tdirect-->bpf_trampoline_1+0x0/0x40\n`,
    );
    // A second ops on the function: the site goes to ftrace_caller, which jumps to the target.
    const other = counter();
    const o = new FtraceOps({ name: 'o', func: other.func });
    m.ft.setFilter(o, 'vfs_read');
    m.ft.registerFtraceFunction(o);
    expect(target(m, 'vfs_read')).toMatch(/^ftrace_caller/);
    run(m, readPath);
    expect(t1.hits).toEqual([vr, vr]);
    expect(other.hits).toEqual([String(vr)]);
    expect(m.ft.stats.directJumps).toBe(1);
    m.ft.unregisterFtraceFunction(o);
    const before = m.kernel.textPokeLog().length;
    expect(m.ft.modifyFtraceDirect(d, t2.addr, h2)).toBeNull();
    const steps = m.kernel
      .textPokeLog()
      .slice(before)
      .map((p) => m.kernel.symbolize(decodeTarget(m, p.new, p.addr)));
    expect(steps).toEqual([expect.stringMatching(/^ftrace_caller/), 'bpf_trampoline_2+0x0/0x40']);
    run(m, readPath);
    expect(t2.hits).toEqual([vr]);
    expect(m.ft.unregisterFtraceDirect(d, t1.addr)?.code).toBe('EINVAL');
    expect(m.ft.unregisterFtraceDirect(d, t2.addr)).toBeNull();
    expect(target(m, 'vfs_read')).toBe('nop');
  });

  it('a second direct on a function is EBUSY, an empty filter EINVAL', () => {
    const m = machine();
    const t = trampoline(m, 'bpf_trampoline_1');
    const h = (): number => ENTRY_CONTINUE;
    const a = new FtraceOps({ name: 'a', func: nop });
    const b = new FtraceOps({ name: 'b', func: nop });
    const e = new FtraceOps({ name: 'e', func: nop });
    m.ft.setFilter(a, 'vfs_read');
    m.ft.setFilter(b, 'vfs_*');
    expect(m.ft.registerFtraceDirect(a, t.addr, h)).toBeNull();
    expect(m.ft.registerFtraceDirect(b, t.addr, h)?.code).toBe('EBUSY');
    expect(m.ft.registerFtraceDirect(e, t.addr, h)?.code).toBe('EINVAL');
    expect(machine('i386').ft.registerFtraceDirect(a, t.addr, h)?.code).toBe('ENODEV');
  });

  it('shares a function with an IPMODIFY ops only through ops_func', () => {
    const m = machine();
    const t = trampoline(m, 'bpf_trampoline_1');
    const h = (): number => ENTRY_CONTINUE;
    const cmds: FtraceOpsCmd[] = [];
    const d = new FtraceOps({ name: 'd', func: nop });
    m.ft.setFilter(d, 'vfs_read');
    m.ft.registerFtraceDirect(d, t.addr, h);
    const ipm = new FtraceOps({
      name: 'livepatch',
      func: nop,
      flags: FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_SAVE_REGS,
    });
    m.ft.setFilter(ipm, 'vfs_read');
    expect(m.ft.registerFtraceFunction(ipm)?.code).toBe('EBUSY');
    d.opsFunc = (_op, cmd) => {
      cmds.push(cmd);
      return 0;
    };
    expect(m.ft.registerFtraceFunction(ipm)).toBeNull();
    expect(cmds).toEqual([FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER]);
    // The other order: a direct ops joining an IPMODIFY function asks SHARE_IPMODIFY_SELF.
    const d2 = new FtraceOps({
      name: 'd2',
      func: nop,
      opsFunc: (_o, cmd) => (cmds.push(cmd), -16),
    });
    const ipm2 = new FtraceOps({
      name: 'lp2',
      func: nop,
      flags: FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_SAVE_REGS,
    });
    m.ft.setFilter(ipm2, 'ksys_read');
    m.ft.registerFtraceFunction(ipm2);
    m.ft.setFilter(d2, 'ksys_read');
    const t2 = trampoline(m, 'bpf_trampoline_2');
    const err = m.ft.registerFtraceDirect(d2, t2.addr, h);
    expect(err?.code).toBe('EBUSY');
    expect(cmds.at(-1)).toBe(FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF);
  });
});

function decodeTarget(m: Machine, bytes: Uint8Array, addr: bigint): bigint {
  const text = m.kernel.text;
  const off = Number(addr - m.image.textBase);
  const saved = text.slice(off, off + bytes.length);
  text.set(bytes, off);
  const d = m.kernel.decodeEntry(m.image.lookup(addr)?.fn.index as number);
  text.set(saved, off);
  if (d instanceof KernelError || d.kind !== 'call') return 0n;
  return d.target;
}

function sizeHex(m: Machine, name: string): string {
  return (m.image.functions[fnIndex(m.image, name)]?.size as number).toString(16);
}

function countMatching(m: Machine, re: RegExp): number {
  return m.ft.table.functions.filter((f) => re.test(f.name)).length;
}
