import { describe, expect, it } from 'vitest';
import { ARCHES, fnIndex, machine, must, ok, READ, run, type Machine } from '../test/helpers.js';
import { FgraphOps, type FtraceGraphRet } from './fgraph.js';
import {
  FGRAPH_ARRAY_SIZE,
  FGRAPH_FRAME_OFFSET,
  FGRAPH_TYPE_BITMAP,
  markerBitmap,
  markerType,
  SHADOW_STACK_SIZE,
  SHADOW_STACK_TASK_VARS,
} from './shadow-stack.js';

const names = (m: Machine, fns: readonly number[]): string[] =>
  fns.map((f) => m.image.functions[f]?.name ?? '?');

/** A user that records entries and returns by function name. */
function recorder(m: Machine, name: string, want: (fn: string) => boolean = () => true) {
  const ents: string[] = [];
  const rets: string[] = [];
  const retvals: bigint[] = [];
  const gops = new FgraphOps({
    name,
    entryfunc: (t) => {
      const fn = m.image.functions[t.fn]?.name ?? '?';
      ents.push(fn);
      return want(fn) ? 1 : 0;
    },
    retfunc: (t, _g, fregs) => {
      rets.push(m.image.functions[t.fn]?.name ?? '?');
      retvals.push(fregs.returnValue());
    },
  });
  return { gops, ents, rets, retvals };
}

describe('registration', () => {
  it('takes 16 users and refuses the 17th with ENOSPC', () => {
    const m = machine();
    const users = Array.from(
      { length: FGRAPH_ARRAY_SIZE },
      (_, i) => new FgraphOps({ name: `u${i}`, entryfunc: () => 0 }),
    );
    for (const u of users) expect(m.fg.register(u)).toBeNull();
    expect(users.map((u) => u.idx).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 16 }, (_, i) => i),
    );
    const extra = new FgraphOps({ entryfunc: () => 0 });
    const err = m.fg.register(extra);
    expect(err?.code).toBe('ENOSPC');
    expect(err?.errno).toBe(-28);
    expect(m.fg.unregister(users[3] as FgraphOps)).toBeNull();
    expect(m.fg.register(extra)).toBeNull();
    expect(extra.idx).toBe(3);
  });

  it('refuses double registration and unregistering a stranger', () => {
    const m = machine();
    const g = new FgraphOps({ entryfunc: () => 0 });
    expect(m.fg.register(g)).toBeNull();
    expect(m.fg.register(g)?.code).toBe('EBUSY');
    expect(m.fg.unregister(g)).toBeNull();
    expect(m.fg.unregister(g)?.code).toBe('EINVAL');
  });

  it('reuses a freed index last (LRU), so frames in flight rarely meet a new user', () => {
    const m = machine();
    const a = new FgraphOps({ entryfunc: () => 0 });
    const b = new FgraphOps({ entryfunc: () => 0 });
    m.fg.register(a);
    m.fg.unregister(a);
    m.fg.register(b);
    expect(a.idx).toBe(-1);
    expect(b.idx).toBe(1);
  });

  it("zeroes the user's task variable in every task when it registers", () => {
    const m = machine();
    const other = ok(m.kernel.createTask('cat', { pid: 50, cpu: 0 }));
    const g = new FgraphOps({ entryfunc: () => 0 });
    m.fg.register(g);
    const idx = g.idx;
    for (const t of [m.task, other]) must(m.fg.stackOf(t)).setTaskVar(idx, 0xdead);
    m.fg.unregister(g);
    m.fg.register(new FgraphOps({ entryfunc: () => 0 }));
    const again = new FgraphOps({ entryfunc: () => 0 });
    // Cycle the LRU until the same index comes back.
    while (again.idx !== idx) {
      m.fg.unregister(again);
      expect(m.fg.register(again)).toBeNull();
    }
    for (const t of [m.task, other]) {
      const st = must(m.fg.stackOf(t));
      expect(st.taskVar(idx)).toBe(0);
      expect(st.lo(SHADOW_STACK_TASK_VARS + idx)).toBe(0);
    }
  });
});

describe('the shared ftrace_ops', () => {
  it('one ftrace_ops carries every user; one user skips the filter test', () => {
    const m = machine();
    const a = recorder(m, 'a');
    const b = recorder(m, 'b');
    expect(m.fg.dispatch).toBe('none');
    expect(m.ft.ops).toEqual([]);
    m.fg.register(a.gops);
    expect(m.fg.dispatch).toBe('single');
    expect(m.ft.ops).toEqual([m.fg.sharedOps]);
    m.fg.register(b.gops);
    expect(m.fg.dispatch).toBe('list');
    expect(m.ft.ops).toEqual([m.fg.sharedOps]);
    m.fg.unregister(a.gops);
    expect(m.fg.dispatch).toBe('single');
    m.fg.unregister(b.gops);
    expect(m.ft.ops).toEqual([]);
    const vfsRead = fnIndex(m.image, 'vfs_read');
    expect(m.ft.siteTarget[vfsRead]).toBe(0);
  });

  it('the shared filter is the union of the users filters', () => {
    const m = machine();
    const a = recorder(m, 'a');
    const b = recorder(m, 'b');
    m.fg.register(a.gops);
    m.fg.register(b.gops);
    m.fg.setFilter(a.gops, 'vfs_read');
    m.fg.setFilter(b.gops, 'ksys_read');
    expect(m.ft.readFilter(m.fg.sharedOps).trim().split('\n').sort()).toEqual([
      'ksys_read',
      'vfs_read',
    ]);
  });

  it('keeps the shadow stack at 4 KiB per task', () => {
    const m = machine();
    m.fg.register(recorder(m, 'a').gops);
    expect(SHADOW_STACK_SIZE).toBe(4096);
    expect(must(m.fg.stackOf(m.task)).buffer.byteLength).toBe(4096);
  });
});

describe.each(ARCHES)('%s: entry and return', (arch) => {
  it('calls entry and return callbacks in call order, restores every return address', () => {
    const m = machine(arch);
    const r = recorder(m, 'rec');
    expect(m.fg.register(r.gops)).toBeNull();
    run(m, READ);
    const order = [
      'ksys_read',
      'vfs_read',
      'rw_verify_area',
      'security_file_permission',
      'fsnotify_access',
    ];
    expect(r.ents).toEqual(order);
    expect(r.rets).toEqual([
      'security_file_permission',
      'rw_verify_area',
      'fsnotify_access',
      'vfs_read',
      'ksys_read',
    ]);
    // Return values from the return register, as the workload set them.
    expect(r.retvals.slice(0, 2)).toEqual([0n, 0n]);
    expect(r.retvals[4]).toBe(4n);
    const st = must(m.fg.stackOf(m.task));
    expect(st.curr).toBe(0);
    expect(st.depth).toBe(-1);
    expect(m.fg.stats.hooked).toBe(5);
  });

  it('an entry returning 0 gets no return callback and leaves the return address alone', () => {
    const m = machine(arch);
    const r = recorder(m, 'rec', (fn) => fn === 'vfs_read');
    m.fg.register(r.gops);
    run(m, READ);
    expect(r.ents).toHaveLength(5);
    expect(r.rets).toEqual(['vfs_read']);
    expect(m.fg.stats.hooked).toBe(1);
  });

  it('gives each user its own filter when several are registered', () => {
    const m = machine(arch);
    const a = recorder(m, 'a');
    const b = recorder(m, 'b');
    m.fg.register(a.gops);
    m.fg.register(b.gops);
    expect(m.fg.setFilter(a.gops, 'vfs_*')).toBeNull();
    expect(m.fg.setFilter(b.gops, 'rw_verify_area security_*')).toBeNull();
    run(m, READ);
    expect(a.ents).toEqual(['vfs_read']);
    expect(b.ents).toEqual(['rw_verify_area', 'security_file_permission']);
    expect(b.rets).toEqual(['security_file_permission', 'rw_verify_area']);
    // Functions outside every user's filter keep their NOP.
    expect(m.ft.siteTarget[fnIndex(m.image, 'ksys_read')]).toBe(0);
    expect(m.ft.siteTarget[fnIndex(m.image, 'vfs_read')]).not.toBe(0);
  });

  it("one user's notrace hash hides functions from it only", () => {
    const m = machine(arch);
    const a = recorder(m, 'a');
    const b = recorder(m, 'b');
    m.fg.register(a.gops);
    m.fg.register(b.gops);
    m.fg.setFilter(a.gops, 'vfs_read', { notrace: true });
    run(m, READ);
    expect(a.ents).not.toContain('vfs_read');
    expect(b.ents).toContain('vfs_read');
  });

  it('no return callback after unregister, even for frames already in flight', () => {
    const m = machine(arch);
    const r = recorder(m, 'rec');
    m.fg.register(r.gops);
    m.kernel.observer = {
      onCall: (_c, fn) => {
        if (m.image.functions[fn]?.name === 'security_file_permission') m.fg.unregister(r.gops);
      },
    };
    run(m, READ);
    expect(r.ents).toEqual(['ksys_read', 'vfs_read', 'rw_verify_area']);
    expect(r.rets).toEqual([]);
    expect(must(m.fg.stackOf(m.task)).curr).toBe(0);
  });
});

describe.each(ARCHES)('%s: reserved data', (arch) => {
  // The kernel's selftest: four users keep 1, 2, 4 and 8 bytes and read them back at return.
  const CASES = [
    { bytes: 1, value: 123n },
    { bytes: 2, value: 12345n },
    { bytes: 4, value: 1234567890n },
    { bytes: 8, value: 1234567890123456789n },
  ];

  function storer(m: Machine, c: (typeof CASES)[number], seen: string[]): FgraphOps {
    const put = (v: DataView, at: number): void => {
      if (c.bytes === 1) v.setUint8(at, Number(c.value));
      else if (c.bytes === 2) v.setUint16(at, Number(c.value), true);
      else if (c.bytes === 4) v.setUint32(at, Number(c.value), true);
      else v.setBigUint64(at, c.value, true);
    };
    const get = (v: DataView, at: number): bigint =>
      c.bytes === 1
        ? BigInt(v.getUint8(at))
        : c.bytes === 2
          ? BigInt(v.getUint16(at, true))
          : c.bytes === 4
            ? BigInt(v.getUint32(at, true))
            : v.getBigUint64(at, true);
    const gops: FgraphOps = new FgraphOps({
      name: `store${c.bytes}`,
      entryfunc: () => {
        const w = m.fg.reserveData(gops, c.bytes);
        if (w < 0) return 0;
        put(must(m.fg.currentStack).view, w * 8);
        return 1;
      },
      retfunc: (t) => {
        const w = m.fg.retrieveData(gops);
        const name = m.image.functions[t.fn]?.name ?? '?';
        if (w < 0) seen.push(`${c.bytes}:${name}:none`);
        else
          seen.push(
            `${c.bytes}:${name}:${get(must(m.fg.currentStack).view, w * 8)}:${m.fg.retrievedWords}`,
          );
      },
    });
    return gops;
  }

  it.each(CASES)('one user storing $bytes bytes reads $value back', (c) => {
    const m = machine(arch);
    const seen: string[] = [];
    m.fg.register(storer(m, c, seen));
    run(m, { fn: 'vfs_read', calls: [{ fn: 'rw_verify_area' }] });
    expect(seen).toEqual([
      `${c.bytes}:rw_verify_area:${c.value}:1`,
      `${c.bytes}:vfs_read:${c.value}:1`,
    ]);
  });

  it('four users together each read their own value', () => {
    const m = machine(arch);
    const seen: string[] = [];
    for (const c of CASES) m.fg.register(storer(m, c, seen));
    run(m, { fn: 'vfs_read', calls: [{ fn: 'rw_verify_area' }] });
    const expected = (fn: string): string[] => CASES.map((c) => `${c.bytes}:${fn}:${c.value}:1`);
    expect(seen).toEqual([...expected('rw_verify_area'), ...expected('vfs_read')]);
  });

  it('lays the frame out as record, bitmap marker, then data and data markers', () => {
    const m = machine(arch);
    let layout: number[] = [];
    const a: FgraphOps = new FgraphOps({
      entryfunc: () => (m.fg.reserveData(a, 24) >= 0 ? 1 : 0),
    });
    const b: FgraphOps = new FgraphOps({
      entryfunc: () => (m.fg.reserveData(b, 8) >= 0 ? 1 : 0),
      retfunc: () => {
        const st = must(m.fg.currentStack);
        layout = Array.from({ length: st.curr }, (_, i) => st.lo(i));
      },
    });
    m.fg.register(a);
    m.fg.register(b);
    run(m, { fn: 'vfs_read' });
    // Hand-encoded: bitmap marker with users 0 and 1 (bit 0 doubles as the always-set bit,
    // bit 28 records that user 0 itself asked): (3 << 12) | (1 << 10) | 4.
    expect(layout[4]).toBe((1 << 28) | (3 << 12) | (1 << 10) | 4);
    // User 0's 3 words at 5..7, its marker at 8: idx 0, size-1 = 2, type 2, offset 8.
    expect(layout[8]).toBe((0 << 17) | (2 << 12) | (2 << 10) | 8);
    // User 1's word at 9, its marker at 10: idx 1, size-1 = 0, type 2, offset 10.
    expect(layout[10]).toBe((1 << 17) | (0 << 12) | (2 << 10) | 10);
    expect(layout).toHaveLength(11);
  });

  it('reserves once per entry callback, at most 256 bytes, and drops data when entry says 0', () => {
    const m = machine(arch);
    const got: number[] = [];
    let keep = 0;
    const g: FgraphOps = new FgraphOps({
      entryfunc: () => {
        got.push(m.fg.reserveData(g, 257), m.fg.reserveData(g, 0));
        got.push(m.fg.reserveData(g, 256), m.fg.reserveData(g, 8));
        return keep;
      },
    });
    m.fg.register(g);
    let top = -1;
    const probe = new FgraphOps({
      entryfunc: () => {
        top = must(m.fg.currentStack).curr;
        return 0;
      },
    });
    m.fg.register(probe);
    run(m, { fn: 'vfs_read' });
    expect(got).toEqual([-1, -1, FGRAPH_FRAME_OFFSET + 1, -1]);
    // The dropped reservation is gone when the next user runs.
    expect(top).toBe(FGRAPH_FRAME_OFFSET + 1);
    keep = 1;
    got.length = 0;
    run(m, { fn: 'vfs_read' });
    expect(top).toBe(FGRAPH_FRAME_OFFSET + 1 + 32 + 1);
  });

  it('retrieves data of parent frames by depth', () => {
    const m = machine(arch);
    const seen: string[] = [];
    const g: FgraphOps = new FgraphOps({
      entryfunc: (t) => {
        const w = m.fg.reserveData(g, 8);
        must(m.fg.currentStack).setWord(w, t.fn, 0);
        return 1;
      },
      retfunc: (t) => {
        const st = must(m.fg.currentStack);
        const chain: string[] = [];
        for (let d = 0; ; d++) {
          const w = m.fg.retrieveData(g, d);
          if (w < 0) break;
          chain.push(m.image.functions[st.lo(w)]?.name ?? '?');
        }
        seen.push(`${m.image.functions[t.fn]?.name}<-${chain.join('<-')}`);
      },
    });
    m.fg.register(g);
    run(m, READ);
    expect(seen[0]).toBe(
      'security_file_permission<-security_file_permission<-rw_verify_area<-vfs_read<-ksys_read',
    );
    expect(seen[4]).toBe('ksys_read<-ksys_read');
  });
});

describe.each(ARCHES)('%s: stack limits and unwinding', (arch) => {
  it('deep recursion overruns the shadow stack: counted, execution unchanged', () => {
    const deep = (n: number): import('@tracelab/kernel').CallSpec =>
      n === 0
        ? { fn: 'lookup_fast', cost: 5 }
        : { fn: 'link_path_walk', cost: 5, ret: n, calls: [deep(n - 1)] };
    const calls = (traced: boolean): { seq: string[]; overrun: number; rets: number } => {
      const m = machine(arch);
      const seq: string[] = [];
      m.kernel.observer = {
        onReturn: (c, fn) => seq.push(`${fn}:${c.regs.returnValue()}:${c.clock}`),
      };
      let rets = 0;
      if (traced) {
        m.fg.register(new FgraphOps({ entryfunc: () => 1, retfunc: () => void rets++ }));
      }
      run(m, deep(150));
      const st = m.fg.stackOf(m.task);
      return { seq, overrun: st?.overrun ?? 0, rets };
    };
    const plain = calls(false);
    const traced = calls(true);
    expect(traced.seq).toEqual(plain.seq);
    // 491 usable words hold 98 five-word frames; the other 53 calls are left unhooked.
    expect(traced.rets).toBe(98);
    expect(traced.overrun).toBe(151 - 98);
  });

  it('stack traces through return_to_handler are the same as untraced', () => {
    const trace = (traced: boolean): string[] => {
      const m = machine(arch);
      if (traced) m.fg.register(new FgraphOps({ entryfunc: () => 1 }));
      let out: string[] = [];
      let raw: bigint[] = [];
      m.kernel.observer = {
        onCall: (c, fn) => {
          if (m.image.functions[fn]?.name === 'fsnotify_access') {
            out = m.kernel.stackTrace(c).map((a) => m.image.lookup(a)?.fn.name ?? '?');
          }
        },
      };
      const probe = new FgraphOps({
        entryfunc: (t, _g, _f, c) => {
          if (m.image.functions[t.fn]?.name === 'security_file_permission') {
            raw = m.kernel.stackTrace(c);
          }
          return 0;
        },
      });
      if (traced) m.fg.register(probe);
      run(m, READ);
      if (traced) expect(raw.length).toBeGreaterThan(3);
      return out;
    };
    const plain = trace(false);
    expect(plain).toEqual(['fsnotify_access', 'vfs_read', 'ksys_read']);
    expect(trace(true)).toEqual(plain);
  });

  it('hooks the return address on the real stack with return_to_handler while in flight', () => {
    const m = machine(arch);
    m.fg.register(new FgraphOps({ entryfunc: () => 1 }));
    let bitmapType = -1;
    let users = -1;
    m.kernel.observer = {
      onCall: (_c, fn) => {
        if (m.image.functions[fn]?.name !== 'rw_verify_area') return;
        const st = must(m.fg.stackOf(m.task));
        const [, parent] = st.frames();
        const v = st.lo((parent as number) + FGRAPH_FRAME_OFFSET);
        bitmapType = markerType(v);
        users = markerBitmap(v);
      },
    };
    run(m, READ);
    expect(bitmapType).toBe(FGRAPH_TYPE_BITMAP);
    expect(users).toBe(1);
    expect(names(m, [fnIndex(m.image, 'vfs_read')])).toEqual(['vfs_read']);
  });
});

describe('return record', () => {
  it('carries calltime, rettime and depth', () => {
    const m = machine();
    const rets: FtraceGraphRet[] = [];
    m.fg.register(
      new FgraphOps({
        entryfunc: () => 1,
        retfunc: (t) => void rets.push({ ...t }),
      }),
    );
    m.cpu.clock = 1000;
    run(m, { fn: 'vfs_read', cost: 200, calls: [{ fn: 'rw_verify_area', cost: 50 }] });
    const [inner, outer] = rets as [FtraceGraphRet, FtraceGraphRet];
    expect(inner.depth).toBe(1);
    expect(outer.depth).toBe(0);
    expect(inner.rettime - inner.calltime).toBe(50);
    expect(outer.rettime - outer.calltime).toBe(250);
    expect(outer.calltime).toBe(1000);
  });
});

// What return_to_handler saves on each arch (ftrace_64.S, ftrace_32.S, entry-ftrace.S,
// mcount-dyn.S): the return value registers and the frame pointer, never the arguments; fgraph
// then points ip at the real return address.
const RETURN_HELD: Record<(typeof ARCHES)[number], string[]> = {
  x86_64: ['ax', 'bp', 'dx', 'ip', 'sp'],
  i386: ['ax', 'bp', 'dx', 'ip'],
  arm64: ['fp', 'pc', 'x0', 'x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7'],
  riscv64: ['a0', 'a1', 'epc', 'ra', 's0'],
};

describe.each(ARCHES)('%s: return ftrace_regs', (arch) => {
  it('holds what return_to_handler saves, ip at the real return address', () => {
    const m = machine(arch);
    const seen: { held: string[]; ret: bigint; ip: string }[] = [];
    m.fg.register(
      new FgraphOps({
        entryfunc: () => 1,
        retfunc: (t, _g, fregs) => {
          if (t.fn !== fnIndex(m.image, 'vfs_read')) return;
          seen.push({
            held: Object.keys(fregs.toObject()).sort(),
            ret: fregs.returnValue(),
            ip: m.kernel.symbolize(fregs.instructionPointer()),
          });
        },
      }),
    );
    run(m, READ);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.held).toEqual(RETURN_HELD[arch]);
    expect(seen[0]?.ret).toBe(4n);
    expect(seen[0]?.ip).toMatch(/^ksys_read\+0x[0-9a-f]+\//);
  });
});
