import { describe, expect, it } from 'vitest';
import { BtfBuilder } from '@tracelab/btf';
import { BPF_PSEUDO_KFUNC_CALL, type Insn, assemble } from '@tracelab/vm';
import { type VerifyOptions, verify } from './index.js';

/**
 * A small kernel BTF: task_struct (with a pointer member, as the real one), file, cgroup, the
 * generic kfuncs the programs call, and two plain kernel functions to attach to.
 */
function kernelBtf() {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  const long = b.int('long', 8, { signed: true });
  const u64 = b.int('u64', 8);
  const task = b.reserve();
  const taskPtr = b.ptr(task);
  b.set(
    task,
    b.layout('struct', 'task_struct', [
      { name: 'pid', type: int },
      { name: 'parent', type: taskPtr },
    ]),
  );
  const struct = (name: string): number => {
    const id = b.reserve();
    b.set(id, b.layout('struct', name, [{ name: 'flags', type: int }]));
    return b.ptr(id);
  };
  const file = struct('file');
  const cgrp = struct('cgroup');
  b.function('bpf_task_acquire', taskPtr, [{ name: 'p', type: taskPtr }]);
  b.function('bpf_task_release', 0, [{ name: 'p', type: taskPtr }]);
  b.function('bpf_cgroup_from_id', cgrp, [{ name: 'cgid', type: u64 }]);
  b.function('bpf_cgroup_release', 0, [{ name: 'cgrp', type: cgrp }]);
  b.function('bpf_task_under_cgroup', long, [
    { name: 'task', type: taskPtr },
    { name: 'ancestor', type: cgrp },
  ]);
  b.function('wake_up_process', int, [{ name: 'p', type: taskPtr }]);
  b.function('fput_task', int, [
    { name: 'f', type: file },
    { name: 'p', type: taskPtr },
  ]);
  return b.build();
}

const btf = kernelBtf();
const KFUNCS = [
  'bpf_task_acquire',
  'bpf_task_release',
  'bpf_cgroup_from_id',
  'bpf_cgroup_release',
  'bpf_task_under_cgroup',
  'wake_up_process',
];

/** Assembles text; `call kfunc_N` (helper 1000+N) becomes a kfunc call of KFUNCS[N]'s FUNC id. */
function asm(text: string): Insn[] {
  const r = assemble(
    text.replace(/call kfunc_(\d)/g, (_m, n: string) => `call ${1000 + Number(n)}`),
  );
  if (!Array.isArray(r)) throw r;
  return r.map((i) => {
    if (i.code !== 0x85 || i.imm < 1000) return i;
    const id = btf.find(KFUNCS[i.imm - 1000] as string, 'func') as number;
    return { ...i, src: BPF_PSEUDO_KFUNC_CALL, imm: id };
  });
}

const fentry: VerifyOptions = {
  progType: 'tracing',
  attachType: 'fentry',
  btf,
  attachTarget: 'wake_up_process',
  logLevel: 2,
};

// The task argument, acquired, null-checked, read and released.
const ACQUIRE_RELEASE = `r1 = *(u64 *)(r1 + 0)
call kfunc_0
if r0 == 0 goto out
r6 = r0
r2 = *(u32 *)(r6 + 0)
r1 = r6
call kfunc_1
out:
r0 = 0
exit`;

describe('kfunc calls', () => {
  it('acquires, null-checks and releases a task (KF_ACQUIRE | KF_RCU | KF_RET_NULL)', () => {
    const res = verify(asm(ACQUIRE_RELEASE), fentry);
    expect(res.error).toBeNull();
    expect(res.log).toMatch(/R0=trusted_ptr_or_null_task_struct\(/);
    expect(res.log).toMatch(/R6=trusted_ptr_task_struct\(/);
  });

  it('checks scalar arguments and types R0 from a scalar or pointer return', () => {
    const res = verify(
      asm(`r6 = *(u64 *)(r1 + 0)
r1 = 7
call kfunc_2
if r0 == 0 goto out
r7 = r0
r1 = r6
r2 = r7
call kfunc_4
r6 = r0
r1 = r7
call kfunc_3
r0 = 0
out:
exit`),
      fentry,
    );
    expect(res.error).toBeNull();
    expect(res.log).toMatch(/R0=trusted_ptr_or_null_cgroup\(/);
    expect(res.log).toMatch(/call kernel-function#\d+ +; R0=scalar\(\) /);
  });

  const rejected: [string, string, Partial<VerifyOptions>, string, number][] = [
    [
      'an acquired task that is never released',
      'r1 = *(u64 *)(r1 + 0)\ncall kfunc_0\nr0 = 0\nexit',
      {},
      'Unreleased reference id=1 alloc_insn=1',
      22,
    ],
    [
      'a maybe-NULL result passed on without a check',
      'r1 = *(u64 *)(r1 + 0)\ncall kfunc_0\nr1 = r0\ncall kfunc_1\nr0 = 0\nexit',
      {},
      'Possibly NULL pointer passed to trusted arg0',
      13,
    ],
    [
      'a trusted but unreferenced pointer to a release kfunc',
      'r1 = *(u64 *)(r1 + 0)\ncall kfunc_1\nr0 = 0\nexit',
      {},
      'release kernel function bpf_task_release expects refcounted PTR_TO_BTF_ID',
      22,
    ],
    [
      'an untrusted pointer (a walked field) to a KF_RCU kfunc',
      'r1 = *(u64 *)(r1 + 0)\nr1 = *(u64 *)(r1 + 8)\ncall kfunc_0\nr0 = 0\nexit',
      {},
      'R1 must be a rcu pointer',
      22,
    ],
    [
      'a pointer where the prototype has a u64',
      'r1 = *(u64 *)(r1 + 0)\ncall kfunc_2\nr0 = 0\nexit',
      {},
      'R1 is not a scalar',
      22,
    ],
    [
      'a scalar where the prototype has a struct task_struct *',
      'r1 = 1\ncall kfunc_0\nr0 = 0\nexit',
      {},
      'arg#0 pointer type STRUCT task_struct must point to scalar, or struct with scalar',
      22,
    ],
    [
      'a struct file * where the prototype has a struct task_struct *',
      'r1 = *(u64 *)(r1 + 0)\ncall kfunc_0\nr0 = 0\nexit',
      { attachTarget: 'fput_task' },
      'kernel function bpf_task_acquire args#0 expected pointer to STRUCT task_struct but R1 has a pointer to STRUCT file',
      22,
    ],
    ['R1-R5 after the call', 'r1 = 7\ncall kfunc_2\nr0 = r1\nexit', {}, 'R1 !read_ok', 13],
    [
      'R0 of a void kfunc',
      ACQUIRE_RELEASE.replace('out:\nr0 = 0\nexit', 'out:\nr0 += 0\nr0 = 0\nexit'),
      {},
      'R0 !read_ok',
      13,
    ],
    [
      'a kernel function no kfunc set registers',
      'r1 = *(u64 *)(r1 + 0)\ncall kfunc_5\nr0 = 0\nexit',
      {},
      'calling kernel function wake_up_process is not allowed',
      13,
    ],
    [
      'a kfunc of the generic set from a kprobe program',
      'r1 = 7\ncall kfunc_2\nr0 = 0\nexit',
      { progType: 'kprobe', attachType: undefined, attachTarget: undefined },
      'calling kernel function bpf_cgroup_from_id is not allowed',
      13,
    ],
  ];

  it.each(rejected)('rejects %s', (_what, text, opts, message, errno) => {
    const res = verify(asm(text), { ...fentry, ...opts });
    expect(res.error?.message).toBe(message);
    expect(res.errno).toBe(errno);
    expect(res.log).toContain(message);
  });

  it('rejects a BTF id that is not a FUNC, and kfunc calls without kernel BTF', () => {
    const task = btf.find('task_struct', 'struct') as number;
    const call = (imm: number): Insn[] => [
      { code: 0x85, dst: 0, src: BPF_PSEUDO_KFUNC_CALL, off: 0, imm, imm2: 0 },
      ...asm('r0 = 0\nexit'),
    ];
    const notFunc = verify(call(task), fentry);
    expect(notFunc.error?.message).toBe(`kernel btf_id ${task} is not a function`);
    expect(notFunc.errnoName).toBe('EINVAL');
    // An id past the BTF's last type is no function either (not a crash).
    expect(verify(call(btf.typeCount), fentry).error?.message).toBe(
      `kernel btf_id ${btf.typeCount} is not a function`,
    );
    const noBtf = verify(call(task), { progType: 'syscall' });
    expect(noBtf.error?.message).toBe(
      'calling kernel function is not supported without CONFIG_DEBUG_INFO_BTF',
    );
    expect(noBtf.errnoName).toBe('ENOTSUPP');
  });
});
