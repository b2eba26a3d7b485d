import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PtRegs } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import {
  builtinWorkload,
  compileWorkload,
  fileAddress,
  kernelEnv,
  type CallNode,
  type Cpu,
  type Task,
} from '@tracelab/kernel';
import { ARCHES, EventSink, machine, ok, type Machine } from '../test/helpers.js';
import { verify } from '@tracelab/verifier';
import { MAX_STRING_SIZE } from './fetch-bpf.js';
import {
  BPF_MAP_TYPE_ARRAY,
  installHelpers,
  MapTable,
  mapResolver,
  Program,
  Vm,
} from '@tracelab/vm';
import { imageTarget, parseFprobeEvent } from './dynevent.js';
import { EventFilterError } from './event-filter.js';
import { TraceEventRing } from './event-ring.js';
import { compileFetchArgs } from './fetch-bpf.js';
import { FprobeTraceEvent } from './trace-event.js';

const rows = readFileSync(new URL('../testdata/fprobe_fetchargs.txt', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l.length > 0 && !l.startsWith('#'))
  .map((l) => {
    const [def, comm, args] = l.split('\t') as [string, string, string];
    return { def, comm, args };
  });

interface WorkloadTask {
  task: Task;
  calls: readonly CallNode[];
}

/** The built-in syscalls workload's tasks on the machine's CPU, each call runnable once. */
function syscallTasks(m: Machine): WorkloadTask[] {
  const spec = ok(builtinWorkload('syscalls', m.kernel.arch));
  const w = ok(compileWorkload(m.image, spec));
  return w.tasks.map((t) => ({
    task:
      m.kernel.tasks.find((k) => k.pid === t.spec.pid) ??
      ok(m.kernel.createTask(t.spec.comm, { pid: t.spec.pid ?? 0, cpu: 0 })),
    calls: t.calls,
  }));
}

function runTask(m: Machine, t: WorkloadTask): void {
  m.kernel.switchTo(m.cpu, t.task);
  for (const c of t.calls) {
    const fault = m.kernel.run(m.cpu, c);
    if (fault !== null) throw new Error(fault.toString());
  }
}

const expand = (m: Machine, text: string) =>
  text.replace(
    /\{file:(\d+)\}/g,
    (_s, fd: string) => `0x${fileAddress(m.kernel.arch, Number(fd)).toString(16)}`,
  );

/** The part of a trace line after the event's "(...)" location. */
const argsOf = (line: string) => line.slice(line.indexOf(')') + 2);

describe.each(ARCHES)('fprobe event fetch args on %s (testdata/fprobe_fetchargs.txt)', (arch) => {
  it.each(rows)('$def [$comm]', ({ def, comm, args }) => {
    const m = machine(arch);
    const sink = new EventSink(m);
    const ev = sink.add(def);
    expect(ev.verdict.ok).toBe(true);
    const t = syscallTasks(m).find((x) => x.task.comm === comm);
    if (t === undefined) throw new Error(`no task ${comm}`);
    runTask(m, t);
    expect(ev.stats.errors).toBe(0);
    const lines = sink.lines;
    expect(lines.length).toBeGreaterThan(0);
    expect(argsOf(lines[0] as string)).toBe(expand(m, args));
  });
});

describe('fprobe event trace lines', () => {
  it('prints entry lines as print_fentry_event: task-pid, cpu, flags, time, (SYM+0x0/0xSIZE)', () => {
    const m = machine('x86_64');
    const sink = new EventSink(m);
    sink.add('f vfs_read count=$arg3:u32');
    const t = syscallTasks(m).find((x) => x.task.comm === 'cat') as WorkloadTask;
    runTask(m, t);
    const size = m.image.functions[m.image.indexOf('vfs_read')]?.size as number;
    const lines = sink.lines;
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^ {13}cat-2001    \\[000\\] \\S{5} +\\d+\\.\\d{6}: vfs_read__entry: \\(vfs_read\\+0x0/0x${size.toString(16)}\\) count=4096$`,
      ),
    );
  });

  it('prints exit lines as print_fexit_event: (CALLER+off/size <- SYM), the caller being where the return lands', () => {
    const m = machine('x86_64');
    const sink = new EventSink(m);
    sink.add('f vfs_read%return r=$retval:u32');
    // At entry on x86 the word at the stack pointer is the return address ($stack0).
    sink.add('f vfs_read ra=$stack0:symbol');
    runTask(m, syscallTasks(m).find((x) => x.task.comm === 'bash') as WorkloadTask);
    const lines = sink.lines;
    expect(lines).toHaveLength(2);
    const ra = /ra=(ksys_read\+0x[0-9a-f]+\/0x[0-9a-f]+)$/.exec(lines[0] as string)?.[1];
    expect(ra).toBeDefined();
    expect(lines[1]).toMatch(/: vfs_read__exit: \((\S+) <- vfs_read\) r=128$/);
    expect(lines[1]).toContain(`(${ra as string} <- vfs_read)`);
  });

  it('stops writing lines when disabled and counts every hit', () => {
    const m = machine('arm64');
    const sink = new EventSink(m);
    const ev = sink.add('f vfs_write n=$arg3:u32');
    const bash = syscallTasks(m).find((x) => x.task.comm === 'bash') as WorkloadTask;
    runTask(m, bash);
    expect(ev.disableIn(sink.ring)).toBeNull();
    expect(ev.enabled).toBe(false);
    runTask(m, bash);
    expect(sink.lines.map(argsOf)).toEqual(['n=64']);
    expect(ev.stats).toEqual({ hits: 1, errors: 0, filtered: 0 });
  });

  it('stores entries as its format lays them out, in every ring it is enabled in', () => {
    const m = machine('riscv64');
    const sink = new EventSink(m);
    const ev = sink.add('f ksys_read n=$arg3:u32');
    const other = new TraceEventRing(1, 4096);
    expect(ev.enableIn(other)).toBeNull();
    runTask(m, syscallTasks(m).find((x) => x.task.comm === 'cat') as WorkloadTask);
    const fn = m.image.functions[m.image.indexOf('ksys_read')];
    for (const ring of [sink.ring, other]) {
      const got: number[][] = [];
      ring.read((cpu, _ts, bytes, at, len) => {
        const v = new DataView(bytes.buffer, at, len);
        // trace_entry (type, flags, preempt count, pid), __probe_ip at 8, n (u32) at 16.
        got.push([cpu, len, v.getUint16(0, true), v.getInt32(4, true), v.getUint32(16, true)]);
        expect(v.getBigUint64(8, true)).toBe(fn?.addr);
      }, false);
      expect(got).toEqual([[0, 20, ev.id, 2001, 4096]]);
    }
    expect(ev.disableIn(other)).toBeNull();
    expect(ev.enabled).toBe(true);
  });
});

describe('fprobe event fetch args over kernel memory', () => {
  /** A kmalloc'ed object: a pointer at +0 to a string at +16, and the string. */
  function object(m: Machine, text: string): bigint {
    const at = ok(m.kernel.kmalloc(64));
    const p = new Uint8Array(8);
    new DataView(p.buffer).setBigUint64(0, at + 16n, true);
    m.kernel.mm.write(at, p);
    m.kernel.mm.write(at + 16n, new TextEncoder().encode(`${text}\0`));
    return at;
  }

  function hit(m: Machine, def: string, arg: bigint): string {
    const sink = new EventSink(m);
    sink.add(def);
    const fault = m.kernel.run(m.cpu, callOf(m, 'getname', [`0x${arg.toString(16)}`]));
    expect(fault).toBeNull();
    return argsOf(sink.lines[0] as string);
  }

  function callOf(m: Machine, fn: string, args: string[]): CallNode {
    const w = ok(
      compileWorkload(m.image, {
        name: 't',
        tasks: [{ comm: 't', calls: [{ fn, args, cost: 10 }] }],
      }),
    );
    return w.tasks[0]?.calls[0] as CallNode;
  }

  it.each(ARCHES)(
    'reads strings, pointer chains and string arrays with probe_read_kernel(_str) on %s',
    (arch) => {
      const m = machine(arch);
      const at = object(m, 'etc/passwd');
      expect(hit(m, 'f getname s=$arg1:string', at + 16n)).toBe('s="etc/passwd"');
      // The last dereference is the string's address (FETCH_OP_ST_STRING replaces the DEREF).
      expect(hit(m, 'f getname s=+0($arg1):string p=+0($arg1):x64', at + 16n)).toBe(
        `s="etc/passwd" p=0x${Buffer.from('etc/pass').readBigUInt64LE(0).toString(16)}`,
      );
      expect(hit(m, 'f getname s=+0(+0($arg1)):string p=+0($arg1):x64', at)).toBe(
        `s="etc/passwd" p=0x${(at + 16n).toString(16)}`,
      );
      expect(hit(m, 'f getname s=+0(+0($arg1)):string c=+0(+0($arg1)):char[3]', at)).toBe(
        `s="etc/passwd" c={'e','t','c'}`,
      );
      expect(hit(m, 'f getname a=+0($arg1):string[2]', at)).toBe('a={"etc/passwd",(fault)}');
      // %pS of an address in no function: all its hex digits.
      expect(hit(m, 'f getname s=+0($arg1):symstr', at)).toBe(`s="0x${(at + 16n).toString(16)}"`);
      expect(hit(m, 'f getname s=+4(+0($arg1)):string', at)).toBe('s="passwd"');
    },
  );

  it('keeps MAX_STRING_SIZE - 1 bytes of a longer string', () => {
    const m = machine('x86_64');
    const at = ok(m.kernel.kmalloc(5000));
    m.kernel.mm.write(at, new Uint8Array(5000).fill(0x61));
    const got = hit(m, 'f getname s=$arg1:string', at);
    expect(got).toBe(`s="${'a'.repeat(4095)}"`);
  });

  it('reads @SYM+off and @ADDR from the kernel text', () => {
    const m = machine('x86_64');
    const fn = m.image.functions[m.image.indexOf('ksys_read')];
    const off = m.image.textOffset(m.image.indexOf('ksys_read'));
    const b = m.kernel.text;
    const le32 = (o: number) =>
      (b[o] as number) |
      ((b[o + 1] as number) << 8) |
      ((b[o + 2] as number) << 16) |
      (((b[o + 3] as number) << 24) >>> 0);
    const addr = (fn?.addr as bigint) + 4n;
    expect(
      hit(m, `f getname a=@ksys_read:x8 b=@ksys_read+4:u32 c=@0x${addr.toString(16)}:u32`, 0n),
    ).toBe(
      `a=0x${(b[off] as number).toString(16)} b=${le32(off + 4) >>> 0} c=${le32(off + 4) >>> 0}`,
    );
    expect(hit(m, 'f getname f=@ksys_read:symbol s=@ksys_read:symstr', 0n)).toMatch(
      /^f=0x[0-9a-f]+ s="0x[0-9a-f]+"$/,
    );
  });

  it('reads $stack as the stack pointer inside the task stack and $stackN from it', () => {
    const m = machine('x86_64');
    const sink = new EventSink(m);
    sink.add('f getname sp=$stack:u64 s0=$stack0:symbol');
    m.kernel.run(m.cpu, callOf(m, 'getname', ['0']));
    const lines = sink.lines;
    const sp = BigInt(/sp=(\d+)/.exec(lines[0] as string)?.[1] ?? '0');
    expect(sp > m.task.stackBase && sp < m.task.stackBase + 16384n).toBe(true);
    // The outermost call returns to user space: not a kernel symbol.
    expect(lines[0]).toMatch(/s0=0x[0-9a-f]+$/);
  });

  it('rejects what cannot be compiled with the kernel errno', () => {
    const m = machine('x86_64');
    const miss = FprobeTraceEvent.create(m.fp, 'f getname v=@no_such_symbol:u32', 1);
    expect(miss).toBeInstanceOf(TracelabError);
    expect((miss as TracelabError).code).toBe('ENOENT');
    const arr = FprobeTraceEvent.create(m.fp, 'f getname v=$arg1:u32[2]', 1);
    expect((arr as TracelabError).code).toBe('EINVAL');
  });

  it('runs on every CPU with its own vm', () => {
    const m = machine('x86_64', 2);
    const sink = new EventSink(m);
    sink.add('f getname p=$arg1:u32');
    const cpu1 = m.kernel.cpus[1] as Cpu;
    const t2 = ok(m.kernel.createTask('worker', { pid: 42, cpu: 1 }));
    m.kernel.switchTo(cpu1, t2);
    expect(m.kernel.run(cpu1, callOf(m, 'getname', ['7']))).toBeNull();
    expect(m.kernel.run(m.cpu, callOf(m, 'getname', ['9']))).toBeNull();
    // Readers merge the CPUs by time; each CPU's entry carries its own task and value.
    const got = sink.lines.map((l) => /(\S+)\s+\[(\d+)\].* p=(\d+)$/.exec(l)?.slice(1));
    expect(got.sort((a, b) => Number(b?.[1]) - Number(a?.[1]))).toEqual([
      ['worker-42', '001', '7'],
      ['bash-1977', '000', '9'],
    ]);
  });
});

describe('fprobe event fetch args on i386', () => {
  const call = (m: Machine, fn: string, args: (string | number)[], ret = 0): CallNode =>
    ok(
      compileWorkload(m.image, {
        name: 't',
        tasks: [{ comm: 't', calls: [{ fn, args, cost: 10, ret }] }],
      }),
    ).tasks[0]?.calls[0] as CallNode;

  it('places BTF arguments as the call does and reads $argN as regs_get_kernel_argument', () => {
    const m = machine('i386');
    const sink = new EventSink(m);
    sink.add(
      'f vfs_fsync_range file start end datasync a2=$arg2 a3=$arg3 a4=$arg4 a5=$arg5 s1=$stack1',
    );
    const file = `0x${fileAddress('i386', 3).toString(16)}`;
    const fault = m.kernel.run(
      m.cpu,
      call(m, 'vfs_fsync_range', [file, '0x100000002', '0x300000004', 1]),
    );
    expect(fault).toBeNull();
    // regparm(3): file in eax, start (loff_t) in the edx:ecx pair, end has no pair of registers
    // left so it goes whole to the stack (sp+4 low, sp+8 high), datasync at sp+12. $argN counts
    // words: eax, edx, ecx, then the stack above the return address.
    expect(argsOf(sink.lines[0] as string)).toBe(
      `file=${file} start=4294967298 end=12884901892 datasync=1 a2=0x2 a3=0x1 a4=0x4 a5=0x3 s1=0x4`,
    );
  });

  it('reads $retval as eax, and edx:eax for a 64-bit return', () => {
    const m = machine('i386');
    const ev = parseFprobeEvent('f vfs_llseek%return r=$retval n=$retval:s32', (s) =>
      imageTarget(m.image, s),
    );
    const maps = new MapTable(m.kernel.mm, 0xd9000000n, 1);
    const map = ok(
      maps.create({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 16, maxEntries: 1 }),
    );
    const fetch = ok(compileFetchArgs(ev, { arch: 'i386', image: m.image, mapFd: map.id }));
    const verdict = verify(fetch.insns, {
      progType: 'kprobe',
      arch: 'i386',
      maps: new Map([[map.id, { type: 'array', keySize: 4, valueSize: 16, maxEntries: 1 }]]),
    });
    expect(verdict.ok).toBe(true);
    const prog = ok(Program.load(fetch.insns, { resolveLddw: mapResolver(maps) }));
    const vm = ok(Vm.create({ memory: m.kernel.mm, stackBase: 0xd8000000n }));
    installHelpers(vm, maps, kernelEnv(m.kernel, 0));
    const regs = new PtRegs('i386');
    regs.write('ax', 0xfffffffen);
    regs.write('dx', 0x5n);
    const at = ok(m.kernel.kmalloc(regs.bytes.length));
    m.kernel.mm.write(at, regs.bytes);
    expect(vm.run(prog, at)).toBe(0);
    const rec = (map.values as { view: DataView }).view;
    // loff_t r: s64 from edx:eax; n: the s32 of eax alone.
    expect([rec.getBigInt64(0, true), rec.getInt32(8, true)]).toEqual([0x5fffffffen, -2]);
  });
});

describe('%return events read the arguments saved at entry', () => {
  it.each(['x86_64', 'arm64', 'riscv64'] as const)(
    'each call keeps its own saved arguments, nested calls included, on %s',
    (arch) => {
      const m = machine(arch);
      const sink = new EventSink(m);
      const ev = sink.add('f vfs_read%return file count c=$arg3:u32 r=$retval');
      expect(ev.fp.entryDataSize).toBe(24);
      const f = (fd: number) => `0x${fileAddress(arch, fd).toString(16)}`;
      const w = ok(
        compileWorkload(m.image, {
          name: 't',
          tasks: [
            {
              comm: 't',
              calls: [
                {
                  fn: 'vfs_read',
                  args: [f(3), '0x7ffd0000', 100, 0],
                  ret: 17,
                  cost: 10,
                  calls: [{ fn: 'vfs_read', args: [f(0), '0x7ffd1000', 7, 0], ret: 5, cost: 10 }],
                },
              ],
            },
          ],
        }),
      );
      expect(m.kernel.run(m.cpu, w.tasks[0]?.calls[0] as CallNode)).toBeNull();
      // The inner call returns first; x0/a0 held the return value at each exit.
      expect(sink.lines.map(argsOf)).toEqual([
        `file=${f(0)} count=7 c=7 r=5`,
        `file=${f(3)} count=100 c=100 r=17`,
      ]);
      expect(ev.stats).toEqual({ hits: 2, errors: 0, filtered: 0 });
    },
  );
});

describe('fprobe event filters (events/GROUP/EVENT/filter)', () => {
  const runAll = (m: Machine) => {
    for (const t of syscallTasks(m)) runTask(m, t);
  };

  it('keeps a filter per instance: refused entries take no ring space and are counted', () => {
    const m = machine('x86_64');
    const sink = new EventSink(m);
    const ev = sink.add('f vfs_write n=$arg3:u32');
    const other = new EventSink(m);
    other.events.push(ev);
    expect(ev.enableIn(other.ring)).toBeNull();
    expect(ev.readFilter(sink.ring)).toBe('none\n');
    expect(ev.setFilter(sink.ring, 'n >= 80 && common_pid != 1234\n')).toBeNull();
    expect(ev.readFilter(sink.ring)).toBe('n >= 80 && common_pid != 1234\n');
    expect(ev.readFilter(other.ring)).toBe('none\n');
    // The writes: bash 64 bytes, sshd (pid 1234) 512, logger 80.
    runAll(m);
    expect(sink.lines.map(argsOf)).toEqual(['n=80']);
    expect(sink.lines[0]).toMatch(/^ +logger-3003 /);
    expect(other.lines.map(argsOf)).toEqual(['n=64', 'n=512', 'n=80']);
    expect(sink.ring.written()).toBe(1);
    expect(ev.stats).toEqual({ hits: 3, errors: 0, filtered: 2 });
  });

  it('replaces the filter even when a write fails, leaving the event unfiltered; 0 clears', () => {
    const m = machine('arm64');
    const sink = new EventSink(m);
    const ev = sink.add('f vfs_write n=$arg3:u32');
    expect(ev.setFilter(sink.ring, 'n == 512')).toBeNull();
    const err = ev.setFilter(sink.ring, 'n >= 80 && pid == 1\n');
    expect(err).toBeInstanceOf(EventFilterError);
    expect([err?.code, err?.err, err?.pos]).toEqual(['EINVAL', 'FIELD_NOT_FOUND', 15]);
    expect(ev.readFilter(sink.ring)).toBe(
      'n >= 80 && pid == 1\n               ^\nparse_error: Field not found\n\n',
    );
    runAll(m);
    expect(sink.lines.map(argsOf)).toEqual(['n=64', 'n=512', 'n=80']);
    expect(ev.stats.filtered).toBe(0);
    expect(ev.setFilter(sink.ring, '0\n')).toBeNull();
    expect(ev.readFilter(sink.ring)).toBe('none\n');
    // A write to the group's filter file reports every failure at the start of the filter.
    const group = ev.setFilter(sink.ring, 'pid == 1', true);
    expect(group?.err).toBe('BAD_SUBSYS_FILTER');
    expect(ev.readFilter(sink.ring)).toBe(
      "pid == 1\n^\nparse_error: Couldn't find or set field in one of a subsystem's events\n\n",
    );
  });

  it('filters on string arguments, the current comm and the CPU', () => {
    const m = machine('riscv64', 2);
    const sink = new EventSink(m);
    const ev = sink.add('f vfs_read c=$comm n=$arg3:u32');
    expect(ev.setFilter(sink.ring, 'c ~ "ca*" || comm == "bash" && n < 100')).toBeNull();
    runAll(m);
    expect(sink.lines.map(argsOf)).toEqual(['c="cat" n=4096']);
    expect(ev.setFilter(sink.ring, 'comm != "cat" && cpu == 0')).toBeNull();
    runAll(m);
    expect(sink.lines.map(argsOf).slice(1)).toEqual(['c="bash" n=128']);
    expect(ev.setFilter(sink.ring, 'CPU == 1')).toBeNull();
    const cpu1 = m.kernel.cpus[1] as Cpu;
    const cat = syscallTasks(m).find((t) => t.task.comm === 'cat') as WorkloadTask;
    m.kernel.switchTo(cpu1, cat.task);
    for (const c of cat.calls) expect(m.kernel.run(cpu1, c)).toBeNull();
    runTask(m, cat);
    // Read by time: CPU 1's clock had not moved before.
    expect(sink.entries().map((e) => [e.cpu, argsOf(e.line)])).toEqual([
      [1, 'c="cat" n=4096'],
      [0, 'c="cat" n=4096'],
      [0, 'c="bash" n=128'],
    ]);
  });

  it.each(ARCHES)('matches __probe_ip.function against kallsyms on %s', (arch) => {
    const m = machine(arch);
    const sink = new EventSink(m);
    const ev = sink.add('f vfs_read n=$arg3:u32');
    const fn = m.image.functions[m.image.indexOf('vfs_read')] as { addr: bigint };
    expect(ev.setFilter(sink.ring, '__probe_ip.function == ksys_read')).toBeNull();
    runAll(m);
    expect(sink.lines).toEqual([]);
    expect(
      ev.setFilter(sink.ring, `__probe_ip.function == 0x${(fn.addr + 2n).toString(16)}`),
    ).toBeNull();
    runAll(m);
    expect(sink.lines.map(argsOf)).toEqual(['n=128', 'n=4096']);
    const bad = ev.setFilter(sink.ring, 'common_type.function == vfs_read');
    expect(bad?.err).toBe('ILLEGAL_FIELD_OP');
  });

  it("matches an exit's return site with __probe_ret_ip.function", () => {
    const m = machine('x86_64');
    const sink = new EventSink(m);
    const ev = sink.add('f vfs_read%return r=$retval:u32');
    expect(ev.setFilter(sink.ring, '__probe_ret_ip.function != ksys_read')).toBeNull();
    runAll(m);
    expect(sink.lines).toEqual([]);
    expect(ev.setFilter(sink.ring, '__probe_ret_ip.function == ksys_read && r > 128')).toBeNull();
    runAll(m);
    expect(sink.lines.map(argsOf)).toEqual(['r=4096']);
  });

  it('builds the buffered entry for the longest strings the event can store', () => {
    const m = machine('x86_64');
    const sink = new EventSink(m);
    sink.ring.resize(1 << 20);
    // The string, then at +4112 the address of ksys_read for the symstr.
    const ev = sink.add('f getname s=$arg1:string y=+4112($arg1):symstr');
    expect(ev.setFilter(sink.ring, 's ~ "x*"')).toBeNull();
    const at = ok(m.kernel.kmalloc(8192));
    const text = 'x'.repeat(MAX_STRING_SIZE + 10);
    m.kernel.mm.write(at, new TextEncoder().encode(`${text}\0`));
    const fn = m.image.functions[m.image.indexOf('ksys_read')] as { addr: bigint };
    const word = new Uint8Array(8);
    new DataView(word.buffer).setBigUint64(0, fn.addr, true);
    m.kernel.mm.write(at + 4112n, word);
    const w = ok(
      compileWorkload(m.image, {
        name: 't',
        tasks: [{ comm: 't', calls: [{ fn: 'getname', args: [`0x${at.toString(16)}`], cost: 1 }] }],
      }),
    );
    expect(m.kernel.run(m.cpu, w.tasks[0]?.calls[0] as CallNode)).toBeNull();
    expect(sink.lines.map(argsOf)).toEqual([
      expect.stringMatching(
        new RegExp(`^s="${text.slice(0, MAX_STRING_SIZE - 1)}" y="ksys_read\\+0x0/0x[0-9a-f]+"$`),
      ),
    ]);
  });
});
