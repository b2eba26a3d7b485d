import { describe, expect, it } from 'vitest';
import { FTRACE_OPS_FL_ENABLED } from '@tracelab/ftrace-core';
import { ARCHES, fnName, machine, READ, run, type Machine } from '../test/helpers.js';
import { FPROBE_DATA_SIZE_MAX_LONGS, Fprobe, type FprobeInit } from './fprobe.js';

interface Log {
  ents: string[];
  exits: string[];
  entIps: number[];
  retIps: number[];
  exitRetIps: number[];
  retvals: bigint[];
}

/** An fprobe that logs its calls by function name. */
function probe(m: Machine, init: FprobeInit & { exit?: boolean; entryRet?: number } = {}) {
  const log: Log = { ents: [], exits: [], entIps: [], retIps: [], exitRetIps: [], retvals: [] };
  const fp = new Fprobe({
    entryHandler: (_fp, ip, retIp, _fregs, _data, _cpu, fn) => {
      log.ents.push(fnName(m, fn));
      log.entIps.push(ip);
      log.retIps.push(retIp);
      return init.entryRet ?? 0;
    },
    exitHandler:
      init.exit === false
        ? undefined
        : (_fp, _ip, retIp, fregs, _data, _cpu, fn) => {
            log.exits.push(fnName(m, fn));
            log.exitRetIps.push(retIp);
            log.retvals.push(fregs.returnValue());
          },
    ...init,
  });
  return { fp, log };
}

describe.each(ARCHES)('%s: test_fprobe scenarios', (arch) => {
  it('entry-only fprobe goes through the ftrace_ops, not fgraph', () => {
    const m = machine(arch);
    const { fp, log } = probe(m, { exit: false });
    expect(m.fp.registerFprobeSyms(fp, ['vfs_read'])).toBeNull();
    expect(m.ft.ops).toEqual([m.fp.ftraceOps]);
    expect(m.fg.dispatch).toBe('none');
    run(m, READ);
    expect(log.ents).toEqual(['vfs_read']);
    // Handlers get the low halves as int32s.
    expect(log.entIps).toEqual([(m.image.addrLo[m.image.indexOf('vfs_read')] as number) | 0]);
    // The caller's return address lies inside ksys_read.
    const ksys = m.image.indexOf('ksys_read');
    const off = ((log.retIps[0] as number) >>> 0) - (m.image.addrLo[ksys] as number);
    expect(off).toBeGreaterThan(0);
    expect(off).toBeLessThan(m.image.functions[ksys]?.size as number);
    expect(log.exits).toEqual([]);
  });

  it('entry and exit handlers see the same ret_ip; exit sees the return value', () => {
    const m = machine(arch);
    const { fp, log } = probe(m);
    expect(m.fp.registerFprobeSyms(fp, ['vfs_read', 'rw_verify_area'])).toBeNull();
    expect(m.fg.dispatch).toBe('single');
    expect((m.fp.ftraceOps.flags & FTRACE_OPS_FL_ENABLED) === 0).toBe(true);
    run(m, READ);
    expect(log.ents).toEqual(['vfs_read', 'rw_verify_area']);
    expect(log.exits).toEqual(['rw_verify_area', 'vfs_read']);
    expect(log.exitRetIps).toEqual([log.retIps[1], log.retIps[0]]);
    expect(log.retvals).toEqual([0n, 4n]);
    const st = m.fg.stackOf(m.task);
    expect(st?.curr).toBe(0);
    expect(fp.nmissed).toBe(0);
  });

  it('entry data travels from entry to exit on the shadow stack', () => {
    const m = machine(arch);
    const seen: number[] = [];
    const fp = new Fprobe({
      entryDataSize: 2 * 8,
      entryHandler: (_fp, ip, _r, _f, data) => {
        data?.setWord(0, (ip ^ 0x5a5a) >>> 0, 7);
        data?.setWord(1, 0xdead, 0);
      },
      exitHandler: (_fp, ip, _r, _f, data) => {
        seen.push(((data?.lo(0) as number) ^ 0x5a5a) === ip ? 1 : 0, data?.hi(0) as number);
        seen.push(data?.lo(1) as number, data?.words as number);
      },
    });
    expect(m.fp.registerFprobe(fp, 'vfs_read')).toBeNull();
    run(m, READ);
    expect(seen).toEqual([1, 7, 0xdead, 2]);
  });

  it('an entry handler returning non-zero skips the exit and is not a miss', () => {
    const m = machine(arch);
    const { fp, log } = probe(m, { entryRet: 1 });
    m.fp.registerFprobeSyms(fp, ['vfs_read']);
    run(m, READ);
    expect(log.ents).toEqual(['vfs_read']);
    expect(log.exits).toEqual([]);
    expect(fp.nmissed).toBe(0);
    // Nobody wanted the return: the frame was dropped, the return address left alone.
    expect(m.fg.stats.hooked).toBe(0);
  });

  it('DISABLED stops both handlers until enabled again', () => {
    const m = machine(arch);
    const a = probe(m);
    const b = probe(m, { exit: false });
    m.fp.registerFprobeSyms(a.fp, ['vfs_read']);
    m.fp.registerFprobeSyms(b.fp, ['vfs_read']);
    a.fp.disable();
    b.fp.disable();
    run(m, READ);
    expect([a.log.ents, a.log.exits, b.log.ents]).toEqual([[], [], []]);
    a.fp.enable();
    b.fp.enable();
    run(m, READ);
    expect([a.log.ents, a.log.exits, b.log.ents]).toEqual([
      ['vfs_read'],
      ['vfs_read'],
      ['vfs_read'],
    ]);
  });

  it('several fprobes on one function each get their own data', () => {
    const m = machine(arch);
    const out: number[] = [];
    const mk = (tag: number) =>
      new Fprobe({
        entryDataSize: 8,
        entryHandler: (_fp, _ip, _r, _f, d) => d?.setWord(0, tag),
        exitHandler: (_fp, _ip, _r, _f, d) => {
          out.push(d?.lo(0) as number);
        },
      });
    const p = [mk(11), mk(22), mk(33)];
    for (const fp of p) expect(m.fp.registerFprobeSyms(fp, ['vfs_read'])).toBeNull();
    run(m, READ);
    expect(out).toEqual([11, 22, 33]);
  });
});

describe('registration rules', () => {
  it('register by glob with an exclusion glob', () => {
    const m = machine();
    const { fp, log } = probe(m, { exit: false });
    expect(m.fp.registerFprobe(fp, '*read*', 'ksys_*')).toBeNull();
    run(m, READ);
    expect(log.ents).toEqual(['vfs_read']);
    expect(fp.fns.map((f) => fnName(m, f))).not.toContain('ksys_read');
  });

  it('register by ips; a non-entry address is -ENOENT', () => {
    const m = machine();
    const { fp, log } = probe(m);
    const fn = m.image.indexOf('fsnotify_access');
    const addr = m.image.functions[fn]?.addr as bigint;
    expect(m.fp.registerFprobeIps(fp, [addr + 1n])?.code).toBe('ENOENT');
    expect(fp.registered).toBe(false);
    expect(m.fp.registerFprobeIps(fp, [addr])).toBeNull();
    run(m, READ);
    expect(log.exits).toEqual(['fsnotify_access']);
  });

  it.each([
    [
      'a missing symbol among good ones',
      (m: Machine, fp: Fprobe) => m.fp.registerFprobeSyms(fp, ['vfs_read', 'no_such_fn']),
      'ENOENT',
    ],
    [
      'a glob matching nothing',
      (m: Machine, fp: Fprobe) => m.fp.registerFprobe(fp, 'zz_nothing*'),
      'ENOENT',
    ],
    ['an empty ip list', (m: Machine, fp: Fprobe) => m.fp.registerFprobeIps(fp, []), 'EINVAL'],
  ])('refuses %s', (_what, reg, code) => {
    const m = machine();
    const { fp } = probe(m);
    expect(reg(m, fp)?.code).toBe(code);
    expect(fp.registered).toBe(false);
    expect(m.ft.ops).toEqual([]);
  });

  it('entry_data_size up to 15 longs; one byte more is -E2BIG', () => {
    const m = machine();
    const ok = new Fprobe({
      entryDataSize: FPROBE_DATA_SIZE_MAX_LONGS * 8,
      exitHandler: () => undefined,
    });
    expect(m.fp.registerFprobeSyms(ok, ['vfs_read'])).toBeNull();
    expect(ok.dataWords).toBe(15);
    const big = new Fprobe({
      entryDataSize: FPROBE_DATA_SIZE_MAX_LONGS * 8 + 1,
      exitHandler: () => undefined,
    });
    const err = m.fp.registerFprobeSyms(big, ['vfs_read']);
    expect(err?.code).toBe('E2BIG');
    expect(err?.errno).toBe(-7);
  });

  it('unregistering an unregistered fprobe is -EINVAL; registering twice -EBUSY', () => {
    const m = machine();
    const { fp } = probe(m);
    expect(m.fp.unregisterFprobe(fp)?.code).toBe('EINVAL');
    expect(m.fp.registerFprobeSyms(fp, ['vfs_read'])).toBeNull();
    expect(m.fp.registerFprobeSyms(fp, ['vfs_read'])?.code).toBe('EBUSY');
    expect(m.fp.unregisterFprobe(fp)).toBeNull();
    expect(m.fp.unregisterFprobe(fp)?.code).toBe('EINVAL');
    expect(m.fg.dispatch).toBe('none');
    expect(m.ft.ops).toEqual([]);
  });

  it('the last fprobe leaving a function restores its NOP; shared functions stay patched', () => {
    const m = machine();
    const a = probe(m, { exit: false });
    const b = probe(m, { exit: false });
    m.fp.registerFprobeSyms(a.fp, ['vfs_read', 'ksys_read']);
    m.fp.registerFprobeSyms(b.fp, ['vfs_read']);
    m.fp.unregisterFprobe(a.fp);
    expect(m.ft.siteTarget[m.image.indexOf('ksys_read')]).toBe(0);
    expect(m.ft.siteTarget[m.image.indexOf('vfs_read')]).not.toBe(0);
    run(m, READ);
    expect(b.log.ents).toEqual(['vfs_read']);
    expect(a.log.ents).toEqual([]);
  });

  it('graph fprobes added later extend the shared fgraph filter', () => {
    const m = machine();
    const a = probe(m);
    const b = probe(m);
    m.fp.registerFprobeSyms(a.fp, ['vfs_read']);
    m.fp.registerFprobeSyms(b.fp, ['fsnotify_access']);
    run(m, READ);
    expect(a.log.exits).toEqual(['vfs_read']);
    expect(b.log.exits).toEqual(['fsnotify_access']);
    m.fp.unregisterFprobe(b.fp);
    expect(m.ft.siteTarget[m.image.indexOf('fsnotify_access')]).toBe(0);
  });
});

describe('misses and in-flight unregister', () => {
  it('a failed reservation counts nmissed on every enabled fprobe at the ip and calls nothing', () => {
    const m = machine();
    // Three probes of 15 longs + header need 48 words; fgraph gives at most 32 per user.
    const ps = [0, 1, 2].map(() => probe(m, { entryDataSize: FPROBE_DATA_SIZE_MAX_LONGS * 8 }));
    for (const p of ps) m.fp.registerFprobeSyms(p.fp, ['vfs_read']);
    const off = probe(m, { exit: true });
    m.fp.registerFprobeSyms(off.fp, ['vfs_read']);
    off.fp.disable();
    run(m, READ);
    expect(ps.map((p) => p.fp.nmissed)).toEqual([1, 1, 1]);
    expect(off.fp.nmissed).toBe(0);
    expect(ps.flatMap((p) => p.log.ents)).toEqual([]);
  });

  it('an fprobe unregistered during the call never gets its exit handler', () => {
    const m = machine();
    const victim = probe(m);
    m.fp.registerFprobeSyms(victim.fp, ['vfs_read']);
    const killer = new Fprobe({
      entryHandler: () => {
        m.fp.unregisterFprobe(victim.fp);
      },
    });
    m.fp.registerFprobeSyms(killer, ['security_file_permission']);
    run(m, READ);
    expect(victim.log.ents).toEqual(['vfs_read']);
    expect(victim.log.exits).toEqual([]);
    expect(m.fp.stats.staleExits).toBe(0);
    expect(m.fg.stackOf(m.task)?.curr).toBe(0);
  });

  it('re-registering in flight does not revive the old frame', () => {
    const m = machine();
    const victim = probe(m);
    const keep = probe(m);
    m.fp.registerFprobeSyms(victim.fp, ['vfs_read']);
    m.fp.registerFprobeSyms(keep.fp, ['vfs_read']);
    const killer = new Fprobe({
      entryHandler: () => {
        m.fp.unregisterFprobe(victim.fp);
        m.fp.registerFprobeSyms(victim.fp, ['vfs_read']);
      },
    });
    m.fp.registerFprobeSyms(killer, ['security_file_permission']);
    run(m, READ);
    expect(victim.log.exits).toEqual([]);
    expect(keep.log.exits).toEqual(['vfs_read']);
    expect(m.fp.stats.staleExits).toBe(1);
  });

  it('an exit already seen at return does not outlive unregistration or an id sharing its slot', () => {
    const m = machine();
    const a = probe(m);
    // keep holds the fgraph user, so a's old frame still comes back to fprobe.
    const keep = probe(m);
    m.fp.registerFprobeSyms(keep.fp, ['rw_verify_area']);
    m.fp.registerFprobeSyms(a.fp, ['vfs_read']);
    run(m, READ);
    expect(a.log.exits).toEqual(['vfs_read']);
    // A killer unregisters and re-registers a in flight: the old frame's record is stale.
    const killer = new Fprobe({
      entryHandler: () => {
        m.fp.unregisterFprobe(a.fp);
        m.fp.registerFprobeSyms(a.fp, ['vfs_read']);
      },
    });
    m.fp.registerFprobeSyms(killer, ['security_file_permission']);
    run(m, READ);
    expect(a.log.exits).toEqual(['vfs_read']);
    expect(m.fp.stats.staleExits).toBe(1);
    m.fp.unregisterFprobe(killer);
    run(m, READ);
    expect(a.log.exits).toEqual(['vfs_read', 'vfs_read']);
    // Ids run on: b gets one 64 * k above a's, and each sees only its own exits.
    const idA = a.fp.id;
    let b = probe(m);
    while (m.fp.registerFprobeSyms(b.fp, ['vfs_read']) === null && (b.fp.id - idA) % 64 !== 0) {
      m.fp.unregisterFprobe(b.fp);
      b = probe(m);
    }
    expect((b.fp.id - idA) % 64).toBe(0);
    run(m, READ);
    expect(a.log.exits).toEqual(['vfs_read', 'vfs_read', 'vfs_read']);
    expect(b.log.exits).toEqual(['vfs_read']);
    expect(m.fg.stackOf(m.task)?.curr).toBe(0);
  });
});
