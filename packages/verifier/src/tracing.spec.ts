import { describe, expect, it } from 'vitest';
import { BtfBuilder } from '@tracelab/btf';
import { type Insn, assemble } from '@tracelab/vm';
import { verify } from './index.js';

/** A small kernel BTF: struct task_struct { int pid; struct task_struct *parent; },
 * int wake_up_process(struct task_struct *p, int flags) and the tracepoint typedef
 * typedef void (*btf_trace_task_newtask)(void *, struct task_struct *, u64). */
function kernelBtf() {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  const task = b.reserve();
  const ptr = b.ptr(task);
  b.set(
    task,
    b.layout('struct', 'task_struct', [
      { name: 'pid', type: int },
      { name: 'parent', type: ptr },
    ]),
  );
  b.function('wake_up_process', int, [
    { name: 'p', type: ptr },
    { name: 'flags', type: int },
  ]);
  const u64 = b.typedef('u64', b.int('unsigned long long', 8, { signed: false }));
  b.typedef('btf_trace_task_newtask', b.ptr(b.funcProto(0, [b.ptr(0), ptr, u64])));
  return b.build();
}

function asm(t: string): Insn[] {
  const r = assemble(t);
  if (!Array.isArray(r)) throw r;
  return r;
}

const btf = kernelBtf();
const base = {
  progType: 'tracing' as const,
  btf,
  attachTarget: 'wake_up_process',
  logLevel: 2 as const,
};

describe('tracing programs typed by BTF', () => {
  it('reads fields through a typed argument and walks pointers', () => {
    const res = verify(
      asm(`r1 = *(u64 *)(r1 + 0)
r2 = *(u32 *)(r1 + 0)
r1 = *(u64 *)(r1 + 8)
r2 = *(u32 *)(r1 + 0)
r0 = 0
exit`),
      { ...base, attachType: 'fentry' },
    );
    expect(res.error).toBeNull();
    expect(res.log).toContain('R1=trusted_ptr_task_struct()');
    expect(res.log).toContain('R1=untrusted_ptr_task_struct()');
  });

  it('rejects an argument the function does not have', () => {
    const res = verify(asm('r0 = *(u64 *)(r1 + 16)\nr0 = 0\nexit'), {
      ...base,
      attachType: 'fentry',
    });
    expect(res.error?.message).toBe("func 'wake_up_process' doesn't have 3-th argument");
  });

  it('gives fexit the return value after the arguments', () => {
    const res = verify(asm('r0 = *(u64 *)(r1 + 16)\nr0 = 0\nexit'), {
      ...base,
      attachType: 'fexit',
    });
    expect(res.ok).toBe(true);
  });

  it('rejects reads past the struct and writes through BTF pointers', () => {
    const past = verify(asm('r1 = *(u64 *)(r1 + 0)\nr0 = *(u32 *)(r1 + 16)\nr0 = 0\nexit'), {
      ...base,
      attachType: 'fentry',
    });
    expect(past.error?.message).toBe('access beyond struct task_struct at off 16 size 4');
    const write = verify(asm('r1 = *(u64 *)(r1 + 0)\n*(u32 *)(r1 + 0) = 1\nr0 = 0\nexit'), {
      ...base,
      attachType: 'fentry',
    });
    expect(write.error?.message).toBe('only read is supported');
  });

  it('rejects an unaligned context offset', () => {
    const res = verify(asm('r0 = *(u32 *)(r1 + 4)\nr0 = 0\nexit'), {
      ...base,
      attachType: 'fentry',
    });
    expect(res.error?.message).toBe("func 'wake_up_process' offset 4 is not multiple of 8");
  });
});

describe('tp_btf programs typed by the btf_trace_<tracepoint> typedef', () => {
  const tp = { ...base, attachType: 'raw_tp' as const, attachTarget: 'task_newtask' };

  it('types the slots after the probe data: a trusted task pointer, then a scalar', () => {
    const res = verify(
      asm(`r2 = *(u64 *)(r1 + 8)
r1 = *(u64 *)(r1 + 0)
r0 = *(u32 *)(r1 + 0)
r0 = 0
exit`),
      tp,
    );
    expect(res.error).toBeNull();
    expect(res.log).toMatch(/^0: .*; R1=ctx\(\) R2=scalar\(\)/m);
    expect(res.log).toMatch(/^1: .*; R1=trusted_ptr_task_struct\(\)/m);
  });

  it('rejects a slot past the arguments: a tracepoint has no return value', () => {
    const res = verify(asm('r0 = *(u64 *)(r1 + 16)\nr0 = 0\nexit'), tp);
    expect(res.ok).toBe(false);
    expect(res.errno).toBe(13);
    expect(res.error?.message).toBe("func 'task_newtask' doesn't have 3-th argument");
    expect(res.log).toContain("func 'task_newtask' doesn't have 3-th argument");
  });

  it('reads an untyped argument array for a tracepoint without a typedef', () => {
    const res = verify(asm('r0 = *(u64 *)(r1 + 0)\nr0 = *(u32 *)(r0 + 0)\nr0 = 0\nexit'), {
      ...tp,
      attachTarget: 'sched_switch',
    });
    expect(res.error?.message).toBe("R0 invalid mem access 'scalar'");
  });
});

describe('log and stats', () => {
  it('prints each processed instruction kernel-style and the processed line', () => {
    const res = verify(asm('r0 = 0\nif r1 == 0 goto +1\nr0 = 1\nexit'), {
      progType: 'kprobe',
      logLevel: 1,
    });
    const lines = res.log.trim().split('\n');
    expect(lines[0]).toBe('0: (b7) r0 = 0');
    expect(lines[1]).toBe('1: (15) if r1 == 0x0 goto pc+1');
    expect(lines.at(-1)).toMatch(
      /^processed \d+ insns \(limit 1000000\) max_states_per_insn \d+ total_states \d+ peak_states \d+ mark_read 0$/,
    );
    expect(res.stats.processedInsns).toBeGreaterThanOrEqual(4);
  });

  it('level 2 appends the register state to each instruction', () => {
    const res = verify(asm('r0 = 7\nexit'), { progType: 'kprobe', logLevel: 2 });
    expect(res.log.split('\n')[0]).toMatch(/^0: \(b7\) r0 = 7\s+; R0=7 R1=ctx\(\) R10=fp0$/);
  });

  it('prunes paths that reach a verified state and says so', () => {
    const diamonds = ['r6 = *(u32 *)(r1 + 0)', 'r7 = 0'];
    for (let k = 0; k < 16; k++) {
      diamonds.push(`if r6 > ${k} goto +2`, 'r7 += 1', 'goto +1', 'r7 += 2', 'r6 >>= 1');
    }
    diamonds.push('r0 = 0', 'exit');
    const res = verify(asm(diamonds.join('\n')), { progType: 'kprobe', logLevel: 1 });
    expect(res.ok).toBe(true);
    expect(res.log).toMatch(/^\d+: safe$/m);
    // Without pruning the 16 diamonds would take 2^16 paths.
    expect(res.stats.processedInsns).toBeLessThan(2000);
    expect(res.stats.peakStates).toBeLessThanOrEqual(res.stats.totalStates);
  });

  it('level 0 keeps no log', () => {
    expect(verify(asm('exit'), { progType: 'kprobe' }).log).toBe('');
  });
});
