import { ARCHES, archInfo, encodeEntryCall, FtraceRegs, type ArchName } from '@tracelab/arch-isa';
import { MemFault } from '@tracelab/vm';
import { describe, expect, it } from 'vitest';
import { KernelError } from './errors.js';
import { KernelImage } from './image.js';
import {
  ENTRY_CONTINUE,
  ENTRY_SKIP,
  fileAddress,
  Kernel,
  NR_OPEN_FILES,
  type CallNode,
  type Cpu,
  TEXT_POKE_LOG_SIZE,
} from './machine.js';
import type { Task } from './task.js';
import { compileWorkload, type CallSpec } from './workload.js';

function boot(arch: ArchName, cpus = 1): { k: Kernel; cpu: Cpu; task: Task } {
  const image = KernelImage.builtin(arch);
  if (image instanceof KernelError) throw image;
  const k = new Kernel({ image, cpus });
  const task = k.createTask('test', { pid: 42 });
  if (task instanceof KernelError) throw task;
  const cpu = k.cpus[0] as Cpu;
  k.switchTo(cpu, task);
  return { k, cpu, task };
}

function node(k: Kernel, call: CallSpec): CallNode {
  const w = compileWorkload(k.image, { name: 't', tasks: [{ comm: 't', calls: [call] }] });
  if (w instanceof KernelError) throw w;
  return w.tasks[0]?.calls[0] as CallNode;
}

const addrOf = (k: Kernel, name: string): bigint => {
  const a = k.symbolAddress(name);
  if (a instanceof KernelError) throw a;
  return a;
};

/** Patches fn's entry to call `target`, as ftrace would. */
function patch(k: Kernel, fn: string, target: bigint): void {
  const bytes = encodeEntryCall(k.arch, addrOf(k, fn), target);
  if (bytes instanceof Error) throw bytes;
  expect(k.textPoke(addrOf(k, fn), bytes, `enable ${fn}`)).toBeNull();
}

const readWord =
  (k: Kernel) =>
  (a: bigint): bigint => {
    const v = k.mm.load(a, archInfo(k.arch).wordSize as 4 | 8);
    if (v instanceof MemFault) throw new Error(v.message);
    return v;
  };

const ARGS: Record<ArchName, string[]> = {
  x86_64: ['0xffff888000001000', '0x7ffd0000', '300', '0xffffc90000004f00'],
  arm64: ['0xffff000000001000', '0x7ffd0000', '300', '0xffff800100004f00'],
  riscv64: ['0xffffffd800001000', '0x7ffd0000', '300', '0xffffffc600004f00'],
  i386: ['0xd0001000', '0x7ffd0000', '300', '0xf0004f00'],
};

describe('call path', () => {
  it.each(ARCHES)('%s: an untraced call nest runs and unwinds the stack exactly', (arch) => {
    const { k, cpu } = boot(arch);
    const sp = cpu.regs.stackPointer();
    const n = node(k, {
      fn: 'ksys_read',
      cost: 10,
      calls: [{ fn: 'vfs_read', cost: 20, ret: 5, calls: [{ fn: 'rw_verify_area', cost: 30 }] }],
    });
    expect(k.run(cpu, n)).toBeNull();
    expect(cpu.regs.stackPointer()).toBe(sp);
    expect(cpu.depth).toBe(0);
    expect(cpu.clock).toBe(60);
    expect(cpu.calls).toBe(3);
  });

  it.each(ARCHES)('%s: a patched entry reaches the handler with ABI-placed arguments', (arch) => {
    const { k, cpu } = boot(arch);
    const seen: { args: bigint[]; parent: string; ip: bigint }[] = [];
    const caller = addrOf(k, 'ftrace_caller');
    const fregs = new FtraceRegs(arch, { caller: arch === 'i386' ? 'regs_caller' : 'caller' });
    expect(
      k.registerHandler(caller, 'ftrace_caller', (c) => {
        fregs.saveFrom(c.regs);
        const args = [0, 1, 2, 3].map((n) => fregs.argument(n, readWord(k)));
        const ret = fregs.returnAddress(readWord(k));
        seen.push({
          args,
          parent: k.image.lookup(ret)?.fn.name ?? '?',
          ip: fregs.instructionPointer(),
        });
        return ENTRY_CONTINUE;
      }),
    ).toBeNull();
    patch(k, 'vfs_read', caller);
    const n = node(k, {
      fn: 'ksys_read',
      calls: [{ fn: 'vfs_read', args: ARGS[arch], calls: [{ fn: 'rw_verify_area' }] }],
    });
    expect(k.run(cpu, n)).toBeNull();
    expect(seen).toEqual([
      { args: ARGS[arch].map((a) => BigInt(a)), parent: 'ksys_read', ip: addrOf(k, 'vfs_read') },
    ]);
  });

  it('i386 passes a 64-bit argument in the eax:edx pair', () => {
    const { k, cpu } = boot('i386');
    const caller = addrOf(k, 'ftrace_regs_caller');
    let pair: [bigint, bigint] = [0n, 0n];
    k.registerHandler(caller, 'ftrace_regs_caller', (c) => {
      pair = [c.regs.read('ax'), c.regs.read('dx')];
      return ENTRY_CONTINUE;
    });
    patch(k, 'tick_do_update_jiffies64', caller);
    expect(
      k.run(cpu, node(k, { fn: 'tick_do_update_jiffies64', args: ['0x1122334455667788'] })),
    ).toBeNull();
    expect(pair).toEqual([0x55667788n, 0x11223344n]);
  });

  it('an entry that calls text with no code is a fault value', () => {
    const { k, cpu } = boot('x86_64');
    patch(k, 'vfs_read', addrOf(k, 'ftrace_caller'));
    const f = k.run(cpu, node(k, { fn: 'vfs_read' }));
    expect(f?.code).toBe('EFAULT');
    expect(f?.message).toMatch(/vfs_read entry calls 0x[0-9a-f]+, which holds no code/);
  });

  it.each(ARCHES)('%s: ENTRY_SKIP after override_function_with_return skips the body', (arch) => {
    const { k, cpu } = boot(arch);
    const caller = addrOf(k, 'ftrace_caller');
    const fregs = new FtraceRegs(arch, { caller: arch === 'i386' ? 'regs_caller' : 'caller' });
    k.registerHandler(caller, 'ftrace_caller', (c) => {
      fregs.saveFrom(c.regs);
      fregs.overrideFunctionWithReturn(readWord(k));
      fregs.setReturnValue(42n);
      fregs.restoreTo(c.regs);
      return ENTRY_SKIP;
    });
    patch(k, 'vfs_read', caller);
    const seen: string[] = [];
    k.observer = { onCall: (_c, fn) => void seen.push(k.image.functions[fn]?.name ?? '?') };
    const sp = cpu.regs.stackPointer();
    expect(
      k.run(cpu, node(k, { fn: 'vfs_read', ret: 7, calls: [{ fn: 'rw_verify_area' }] })),
    ).toBeNull();
    expect(seen).toEqual(['vfs_read']);
    expect(cpu.regs.returnValue()).toBe(42n);
    expect(cpu.regs.stackPointer()).toBe(sp);
  });

  it.each(ARCHES)(
    '%s: a return hook gives back the real return address; stack traces match untraced',
    (arch) => {
      const traces = (traced: boolean): string[] => {
        const { k, cpu, task } = boot(arch);
        const rth = addrOf(k, 'return_to_handler');
        const slot = k.allocTaskSlot();
        task.slots[slot] = [];
        const saved = (t: Task): bigint[] => t.slots[slot] as bigint[];
        const info = archInfo(arch);
        if (traced) {
          const caller = addrOf(k, 'ftrace_caller');
          k.registerHandler(caller, 'ftrace_caller', (c) => {
            const t = c.current as Task;
            if (info.ptRoles.lr === null) {
              const sp = c.regs.stackPointer();
              saved(t).push(readWord(k)(sp));
              k.mm.store(sp, info.wordSize as 4 | 8, rth);
            } else {
              saved(t).push(c.regs.read(info.ptRoles.lr));
              c.regs.write(info.ptRoles.lr, rth);
            }
            return ENTRY_CONTINUE;
          });
          k.registerHandler(rth, 'return_to_handler', (c) => {
            c.regs.setInstructionPointer(saved(c.current as Task).pop() as bigint);
            return ENTRY_CONTINUE;
          });
          k.graphRetAddr = (t, addr, state) =>
            addr === rth ? (saved(t)[saved(t).length - 1 - state.index++] as bigint) : addr;
          for (const fn of ['ksys_read', 'vfs_read', 'rw_verify_area', 'security_file_permission'])
            patch(k, fn, caller);
        }
        let trace: string[] = [];
        k.observer = {
          onCall: (c, fn) => {
            if (k.image.functions[fn]?.name === 'security_file_permission') {
              trace = k.stackTrace(c).map((a) => k.image.lookup(a)?.fn.name ?? '?');
            }
          },
        };
        const n = node(k, {
          fn: 'ksys_read',
          calls: [
            {
              fn: 'vfs_read',
              calls: [
                { fn: 'rw_verify_area', calls: [{ fn: 'security_file_permission' }] },
                { fn: 'fsnotify_access' },
              ],
            },
          ],
        });
        expect(k.run(cpu, n)).toBeNull();
        if (traced) expect(saved(task)).toEqual([]);
        return trace;
      };
      const untraced = traces(false);
      expect(untraced).toEqual([
        'security_file_permission',
        'rw_verify_area',
        'vfs_read',
        'ksys_read',
      ]);
      expect(traces(true)).toEqual(untraced);
    },
  );

  it.each(ARCHES)('%s: return hooks chain until real text is reached', (arch) => {
    const { k, cpu } = boot(arch);
    const info = archInfo(arch);
    const hookA = k.allocText('hook_a', 16) as bigint;
    const hookB = k.allocText('hook_b', 16) as bigint;
    const caller = addrOf(k, 'ftrace_caller');
    const ran: string[] = [];
    let real = 0n;
    // The entry hook sends the return to hook A; A passes it on to B; B restores the caller.
    k.registerHandler(caller, 'ftrace_caller', (c) => {
      if (info.ptRoles.lr === null) {
        const sp = c.regs.stackPointer();
        real = readWord(k)(sp);
        k.mm.store(sp, info.wordSize as 4 | 8, hookA);
      } else {
        real = c.regs.read(info.ptRoles.lr);
        c.regs.write(info.ptRoles.lr, hookA);
      }
      return ENTRY_CONTINUE;
    });
    k.registerHandler(hookA, 'hook_a', (c) => {
      ran.push('a');
      c.regs.setInstructionPointer(hookB);
      return ENTRY_CONTINUE;
    });
    k.registerHandler(hookB, 'hook_b', (c) => {
      ran.push('b');
      c.regs.setInstructionPointer(real);
      return ENTRY_CONTINUE;
    });
    patch(k, 'vfs_read', caller);
    const sp = cpu.regs.stackPointer();
    expect(k.run(cpu, node(k, { fn: 'vfs_read', ret: 3 }))).toBeNull();
    expect(ran).toEqual(['a', 'b']);
    expect(cpu.regs.returnValue()).toBe(3n);
    expect(cpu.regs.stackPointer()).toBe(sp);
  });

  it('kernels built on one image patch their own text', () => {
    const image = KernelImage.builtin('x86_64') as KernelImage;
    const a = new Kernel({ image });
    const b = new Kernel({ image });
    const fn = image.indexOf('vfs_read');
    const before = b.entryBytes(fn);
    const call = encodeEntryCall('x86_64', addrOf(a, 'vfs_read'), addrOf(a, 'ftrace_caller'));
    if (call instanceof Error) throw call;
    expect(a.textPoke(addrOf(a, 'vfs_read'), call, 'test')).toBeNull();
    expect(a.entryBytes(fn)).toEqual(call);
    expect(b.entryBytes(fn)).toEqual(before);
  });

  it('a return hook that returns to itself is a fault, not a hang', () => {
    const { k, cpu } = boot('x86_64');
    const loop = k.allocText('hook_loop', 16) as bigint;
    const caller = addrOf(k, 'ftrace_caller');
    k.registerHandler(caller, 'ftrace_caller', (c) => {
      k.mm.store(c.regs.stackPointer(), 8, loop);
      return ENTRY_CONTINUE;
    });
    k.registerHandler(loop, 'hook_loop', (c) => {
      c.regs.setInstructionPointer(loop);
      return ENTRY_CONTINUE;
    });
    patch(k, 'vfs_read', caller);
    const f = k.run(cpu, node(k, { fn: 'vfs_read' }));
    expect(f?.code).toBe('ELOOP');
    expect(f?.message).toMatch(/vfs_read: more than \d+ return hooks in a row/);
  });

  it.each(ARCHES)(
    '%s: a trampoline runs the original with callOrig, then returns for it',
    (arch) => {
      const { k, cpu } = boot(arch);
      const tramp = k.allocText('bpf_trampoline_6442', 128) as bigint;
      const fregs = new FtraceRegs(arch, { caller: arch === 'i386' ? 'regs_caller' : 'caller' });
      const log: string[] = [];
      k.observer = { onCall: (_c, fn) => void log.push(k.image.functions[fn]?.name ?? '?') };
      k.registerHandler(tramp, 'bpf_trampoline_6442', (c) => {
        log.push('fentry');
        expect(k.callOrig(c, tramp + 0x40n)).toBeNull();
        fregs.saveFrom(c.regs);
        log.push(`fexit ret=${fregs.returnValue()}`);
        fregs.overrideFunctionWithReturn((a) => k.readWord(a) as bigint);
        fregs.restoreTo(c.regs);
        return ENTRY_SKIP;
      });
      patch(k, 'vfs_read', tramp);
      const sp = cpu.regs.stackPointer();
      const n = node(k, {
        fn: 'ksys_read',
        calls: [{ fn: 'vfs_read', ret: 300, cost: 100, calls: [{ fn: 'rw_verify_area' }] }],
      });
      expect(k.run(cpu, n)).toBeNull();
      expect(log).toEqual(['ksys_read', 'vfs_read', 'fentry', 'rw_verify_area', 'fexit ret=300']);
      expect(cpu.regs.stackPointer()).toBe(sp);
      expect(cpu.clock).toBe(50 + 100 + 50);
      expect(k.callOrig(cpu, tramp)?.message).toContain('outside an entry handler');
    },
  );

  it('a return to the wrong address is a fault', () => {
    const { k, cpu } = boot('arm64');
    const caller = addrOf(k, 'ftrace_caller');
    k.registerHandler(caller, 'ftrace_caller', (c) => {
      c.regs.write('x30', addrOf(k, 'vfs_write'));
      return ENTRY_CONTINUE;
    });
    patch(k, 'vfs_read', caller);
    const f = k.run(cpu, node(k, { fn: 'vfs_read' }));
    expect(f?.message).toMatch(/vfs_read returned to 0x[0-9a-f]+, not its caller/);
  });

  it('calls into unmapped text or the middle of a function are fault values', () => {
    const { k, cpu } = boot('x86_64');
    const base = node(k, { fn: 'vfs_read' });
    const f = k.callAddress(cpu, 0xffffffff00000000n, base);
    expect(f?.code).toBe('EFAULT');
    expect(f?.memFault?.kind).toBe('unmapped');
    cpu.fault = null;
    const g = k.callAddress(cpu, addrOf(k, 'vfs_read') + 4n, base);
    expect(g?.message).toContain('not a function entry');
    cpu.fault = null;
    expect(k.callAddress(cpu, addrOf(k, 'vfs_read'), base)).toBeNull();
  });

  it('deep recursion overflows the kernel stack as a fault, not a crash', () => {
    const { k, cpu } = boot('riscv64');
    let spec: CallSpec = { fn: 'lookup_fast' };
    for (let i = 0; i < 2000; i++) spec = { fn: 'link_path_walk', calls: [spec] };
    const f = k.run(cpu, node(k, spec));
    expect(f?.message).toMatch(/kernel stack overflow in link_path_walk at depth \d+/);
  });
});

describe('text, handlers and objects', () => {
  it('text_poke logs every change and refuses non-text', () => {
    const { k } = boot('arm64');
    const at = addrOf(k, 'vfs_read');
    const before = k.entryBytes(k.image.indexOf('vfs_read'));
    patch(k, 'vfs_read', addrOf(k, 'ftrace_caller'));
    const log = k.textPokeLog();
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ seq: 1, addr: at, old: before, reason: 'enable vfs_read' });
    expect(k.decodeEntry(k.image.indexOf('vfs_read'))).toMatchObject({
      kind: 'call',
      target: addrOf(k, 'ftrace_caller'),
    });
    expect(k.textPoke(0x1000n, new Uint8Array(4), 'x')?.code).toBe('EFAULT');
    expect(k.textPokeLog()).toHaveLength(1);
  });

  it('text_poke keeps the newest TEXT_POKE_LOG_SIZE records and counts them all', () => {
    const { k } = boot('x86_64');
    const fn = k.image.indexOf('vfs_read');
    const at = addrOf(k, 'vfs_read');
    const nop = k.entryBytes(fn);
    const total = TEXT_POKE_LOG_SIZE + 10;
    for (let i = 0; i < total; i++) expect(k.textPoke(at, nop, `poke ${i}`)).toBeNull();
    const log = k.textPokeLog();
    expect(k.textPokeCount).toBe(total);
    expect(log).toHaveLength(TEXT_POKE_LOG_SIZE);
    expect(log[0]).toMatchObject({ seq: 11, reason: 'poke 10' });
    expect(log.at(-1)).toMatchObject({ seq: total, reason: `poke ${total - 1}` });
    expect(log.every((r, i) => i === 0 || r.seq === (log[i - 1] as { seq: number }).seq + 1)).toBe(
      true,
    );
  });

  it('handlers: one per address, only in text', () => {
    const { k } = boot('x86_64');
    const a = addrOf(k, 'ftrace_caller');
    expect(k.registerHandler(a, 'one', () => ENTRY_CONTINUE)).toBeNull();
    expect(k.registerHandler(a, 'two', () => ENTRY_CONTINUE)?.code).toBe('EBUSY');
    expect(k.registerHandler(0x10n, 'x', () => ENTRY_CONTINUE)?.code).toBe('EFAULT');
    expect(k.unregisterHandler(a)).toBeNull();
    expect(k.unregisterHandler(a)?.code).toBe('ENOENT');
    expect(k.symbolAddress('nope')).toBeInstanceOf(KernelError);
  });

  it('handlers a few bytes apart are each found, also after the other goes', () => {
    const { k, cpu } = boot('x86_64');
    const base = k.allocText('pair', 64);
    if (base instanceof KernelError) throw base;
    const hits: string[] = [];
    // Two handlers in one 16-byte stretch of text, and a third in the next one.
    const at = [base, base + 8n, base + 16n];
    at.forEach((a, i) =>
      expect(
        k.registerHandler(a, `h${i}`, () => {
          hits.push(`h${i}`);
          return ENTRY_CONTINUE;
        }),
      ).toBeNull(),
    );
    const call = node(k, { fn: 'vfs_read', args: [3, 0, 4], cost: 1 });
    const via = (target: bigint): string[] => {
      hits.length = 0;
      patch(k, 'vfs_read', target);
      expect(k.run(cpu, call)).toBeNull();
      return [...hits];
    };
    expect(via(at[0] as bigint)).toEqual(['h0']);
    expect(via(at[1] as bigint)).toEqual(['h1']);
    expect(via(at[2] as bigint)).toEqual(['h2']);
    expect(k.unregisterHandler(at[0] as bigint)).toBeNull();
    expect(via(at[1] as bigint)).toEqual(['h1']);
    expect(k.unregisterHandler(at[1] as bigint)).toBeNull();
    expect(via(at[2] as bigint)).toEqual(['h2']);
    patch(k, 'vfs_read', at[1] as bigint);
    expect(k.run(cpu, call)?.message).toMatch(/holds no code/);
  });

  it('allocText gives reachable trampoline text that shows in symbols', () => {
    const { k, cpu } = boot('arm64');
    const t = k.allocText('bpf_trampoline_1', 256);
    if (t instanceof KernelError) throw t;
    expect(k.symbolize(t + 8n)).toBe('bpf_trampoline_1+0x8/0x100');
    let hits = 0;
    k.registerHandler(t, 'bpf_trampoline_1', () => (hits++, ENTRY_CONTINUE));
    patch(k, 'tcp_v4_rcv', t);
    expect(k.run(cpu, node(k, { fn: 'tcp_v4_rcv' }))).toBeNull();
    expect(hits).toBe(1);
    expect(k.allocText('x', 0)).toBeInstanceOf(KernelError);
  });

  it('task_struct fields sit at their BTF offsets', () => {
    const { k, task } = boot('x86_64');
    const btf = k.image.btf;
    if (btf === null) throw new Error('no btf');
    const pid = k.mm.load(
      task.taskStruct + BigInt(btf.offsetOf('task_struct.pid').bitsOffset / 8),
      4,
    );
    expect(pid).toBe(42n);
    const comm = k.mm.readCString(
      task.taskStruct + BigInt(btf.offsetOf('task_struct.comm').bitsOffset / 8),
      16,
    );
    expect(new TextDecoder().decode(comm as Uint8Array)).toBe('test');
  });

  it.each(ARCHES)('%s: the boot file table holds a struct file per fd at BTF offsets', (arch) => {
    const { k } = boot(arch);
    const btf = k.image.btf;
    if (btf === null) throw new Error('no btf');
    const at = (fd: number, member: string): bigint =>
      fileAddress(arch, fd) + BigInt(btf.offsetOf(`file.${member}`).bitsOffset / 8);
    expect(k.mm.load(at(3, 'f_mode'), 4)).toBe(3n);
    expect(k.mm.load(at(3, 'f_pos'), 8)).toBe(0n);
    // The workloads pass &file->f_pos as vfs_read's ppos, as file_ppos() does.
    expect(at(3, 'f_pos')).toBe(fileAddress(arch, 3) + 8n);
    expect(k.mm.regionAt(fileAddress(arch, NR_OPEN_FILES - 1))?.name).toBe('kmalloc');
  });

  it('rejects duplicate pids and bad cpus', () => {
    const { k } = boot('x86_64');
    expect((k.createTask('x', { pid: 42 }) as KernelError).code).toBe('EEXIST');
    expect((k.createTask('x', { cpu: 3 }) as KernelError).message).toContain('cpu 3');
  });
});

describe('interrupt contexts', () => {
  it('an NMI arrives inside a hardirq, but no irq inside an NMI', () => {
    const image = KernelImage.builtin('x86_64') as KernelImage;
    const k = new Kernel({ image });
    const task = k.createTask('t') as Task;
    const cpu = k.cpus[0] as Cpu;
    k.switchTo(cpu, task);
    const irq = (fn: string, cost: number): CallNode => node(k, { fn, cost });
    k.irqs.push(
      { name: 'tick', context: 'hardirq', periodNs: 1000, calls: [irq('hrtimer_interrupt', 4000)] },
      { name: 'perf', context: 'nmi', periodNs: 1500, calls: [irq('perf_event_nmi_handler', 10)] },
    );
    const seen: string[] = [];
    k.observer = {
      onCall: (c, fn) => void seen.push(`${k.image.functions[fn]?.name}:${c.context}`),
    };
    expect(k.run(cpu, node(k, { fn: 'vfs_read', cost: 2000, repeat: 3 }))).toBeNull();
    expect(seen).toContain('hrtimer_interrupt:hardirq');
    expect(seen).toContain('perf_event_nmi_handler:nmi');
    expect(
      seen.filter((s) => s.startsWith('hrtimer_interrupt')).every((s) => s.endsWith(':hardirq')),
    ).toBe(true);
    // The NMI's calls run while hrtimer_interrupt (hardirq) is still on the stack.
    const nested = seen.findIndex(
      (s, i) => s === 'perf_event_nmi_handler:nmi' && seen[i - 1] === 'hrtimer_interrupt:hardirq',
    );
    expect(nested).toBeGreaterThan(0);
    expect(cpu.preemptCount).toBe(0);
  });
});
