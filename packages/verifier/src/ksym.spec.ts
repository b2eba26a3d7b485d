import { describe, expect, it } from 'vitest';
import { BtfBuilder } from '@tracelab/btf';
import { assemble } from '@tracelab/vm';
import { type MapDef, verify } from './index.js';

/**
 * A small kernel BTF with what typed ksyms and map pointers read: a struct variable, an int and
 * an array variable, a per-CPU struct variable in .data..percpu, a function, and the structs
 * behind array and hash maps (struct bpf_map first, as in the kernel).
 */
function kernelBtf() {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  const u32 = b.int('u32', 4);
  const char = b.int('char', 1, { signed: true });
  const task = b.reserve();
  const taskPtr = b.ptr(task);
  b.set(
    task,
    b.layout('struct', 'task_struct', [
      { name: 'pid', type: int },
      { name: 'comm', type: b.array(char, 16) },
      { name: 'parent', type: taskPtr },
    ]),
  );
  const rq = b.struct('rq', [{ name: 'cpu', type: int }]);
  const map = b.struct('bpf_map', [
    { name: 'map_type', type: u32 },
    { name: 'key_size', type: u32 },
    { name: 'value_size', type: u32 },
    { name: 'max_entries', type: u32 },
  ]);
  b.struct('bpf_array', [
    { name: 'map', type: map },
    { name: 'elem_size', type: u32 },
  ]);
  const ids = {
    init_task: b.var('init_task', b.const(task)),
    max_threads: b.var('max_threads', int),
    linux_banner: b.var('linux_banner', b.array(char, 64)),
    runqueues: b.var('runqueues', rq),
    vfs_read: b.function('vfs_read', int, [{ name: 'count', type: int }]),
    task_struct: task,
  };
  b.datasec('.data..percpu', [{ type: ids.runqueues, offset: 0, size: 4 }]);
  return { btf: b.build(), ids };
}

const { btf, ids } = kernelBtf();
const inner: MapDef = { type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 };
const maps = new Map<number, MapDef>([
  [1, { type: 'array_of_maps', keySize: 4, valueSize: 4, maxEntries: 2, inner }],
  [2, { type: 'array', keySize: 4, valueSize: 8, maxEntries: 2, name: 'counts' }],
  [3, { type: 'hash', keySize: 4, valueSize: 8, maxEntries: 2, name: 'calls' }],
]);
/** r0 = the inner map outer[0] holds, or the program ends with 0. */
const INNER = `*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
r1 = map_fd[1, 0] ll
call 1
if r0 == 0 goto out`;

/** [name, program, errno (0 accepts), message or a line the log must hold]. */
const cases: [string, string, number, string][] = [
  [
    'a struct variable reads as PTR_TO_BTF_ID through its BTF fields',
    `r1 = btf_id[${ids.init_task}, 0] ll
r0 = *(u32 *)(r1 + 0)
r2 = *(u64 *)(r1 + 24)
r0 = *(u32 *)(r2 + 0)
exit`,
    0,
    'R1=ptr_task_struct()',
  ],
  [
    'a walked pointer member is an untrusted BTF pointer',
    `r1 = btf_id[${ids.init_task}, 0] ll
r2 = *(u64 *)(r1 + 24)
r0 = 0
exit`,
    0,
    'R2=untrusted_ptr_task_struct()',
  ],
  [
    'a struct variable is read-only',
    `r1 = btf_id[${ids.init_task}, 0] ll
*(u32 *)(r1 + 0) = 1
r0 = 0
exit`,
    13,
    'only read is supported',
  ],
  [
    'a struct variable is read within its type',
    `r1 = btf_id[${ids.init_task}, 0] ll
r0 = *(u64 *)(r1 + 32)
exit`,
    13,
    'access beyond struct task_struct at off 32 size 8',
  ],
  [
    'an int variable is read-only memory of its size',
    `r1 = btf_id[${ids.max_threads}, 0] ll
r0 = *(u32 *)(r1 + 0)
exit`,
    0,
    'R1=rdonly_mem(sz=4)',
  ],
  [
    'an int variable is read within its size',
    `r1 = btf_id[${ids.max_threads}, 0] ll
r0 = *(u64 *)(r1 + 0)
exit`,
    13,
    'invalid access to memory, mem_size=4 off=0 size=8',
  ],
  [
    'an array variable is memory of the whole array',
    `r1 = btf_id[${ids.linux_banner}, 0] ll
r0 = *(u64 *)(r1 + 56)
exit`,
    0,
    'R1=rdonly_mem(sz=64)',
  ],
  [
    'an int variable is not written',
    `r1 = btf_id[${ids.max_threads}, 0] ll
*(u32 *)(r1 + 0) = 1
r0 = 0
exit`,
    13,
    'R1 cannot write into rdonly_mem',
  ],
  [
    'a per-CPU variable is not read directly',
    `r1 = btf_id[${ids.runqueues}, 0] ll
r0 = *(u32 *)(r1 + 0)
exit`,
    13,
    'R1 is ptr_rq access percpu memory: off=0',
  ],
  [
    'a function is read-only memory of size 0',
    `r1 = btf_id[${ids.vfs_read}, 0] ll
r0 = *(u8 *)(r1 + 0)
exit`,
    13,
    'invalid access to memory, mem_size=0 off=0 size=1',
  ],
  [
    'an id that is no type is ENOENT',
    `r1 = btf_id[9999, 0] ll
r0 = 0
exit`,
    2,
    'ldimm64 insn specifies invalid btf_id 9999.',
  ],
  [
    'an id that is neither VAR nor FUNC',
    `r1 = btf_id[${ids.task_struct}, 0] ll
r0 = 0
exit`,
    22,
    `pseudo btf_id ${ids.task_struct} in ldimm64 isn't KIND_VAR or KIND_FUNC`,
  ],
  [
    'a module BTF fd',
    `r1 = btf_id[${ids.init_task}, 3] ll
r0 = 0
exit`,
    22,
    'invalid module BTF object FD specified.',
  ],
  [
    'a map pointer reads as its kernel struct',
    `r1 = map_fd[2, 0] ll
r0 = *(u32 *)(r1 + 16)
exit`,
    0,
    'R1=map_ptr(map=counts,ks=4,vs=8)',
  ],
  [
    'an inner map pointer reads as struct bpf_array',
    `${INNER}
r0 = *(u32 *)(r0 + 12)
out: exit`,
    0,
    'R0=map_ptr(ks=4,vs=8)',
  ],
  [
    'an inner map pointer is never written',
    `${INNER}
*(u32 *)(r0 + 0) = 1
out: r0 = 0
exit`,
    13,
    'only read from bpf_array is supported',
  ],
  [
    'a map pointer is not read below its start',
    `r1 = map_fd[2, 0] ll
r0 = *(u64 *)(r1 - 8)
exit`,
    13,
    'R1 is bpf_array invalid negative access: off=-8',
  ],
  [
    'a map type whose struct the BTF lacks',
    `r1 = map_fd[3, 0] ll
r0 = *(u32 *)(r1 + 0)
exit`,
    524,
    'map_ptr access not supported for map type 1',
  ],
];

describe('typed ksyms (ld_imm64 src 3) and map pointers read through BTF', () => {
  it.each(cases)('%s', (_name, text, errno, line) => {
    const insns = assemble(text);
    if (!Array.isArray(insns)) throw insns;
    const res = verify(insns, { progType: 'kprobe', btf, maps, logLevel: 2 });
    expect(res.errno).toBe(errno);
    if (errno === 0) expect(res.log).toContain(line);
    else expect(res.error?.message).toBe(line);
  });

  it('a typed ksym needs the kernel BTF', () => {
    const insns = assemble(`r1 = btf_id[${ids.init_task}, 0] ll\nr0 = 0\nexit`);
    if (!Array.isArray(insns)) throw insns;
    const res = verify(insns, { progType: 'kprobe', logLevel: 1 });
    expect([res.errno, res.error?.message]).toEqual([
      22,
      'kernel is missing BTF, make sure CONFIG_DEBUG_INFO_BTF=y is specified in Kconfig.',
    ]);
  });
});
