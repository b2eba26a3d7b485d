import { readFileSync } from 'node:fs';
import { KernelImage } from '@tracelab/kernel';
import { sourceLineStr } from '@tracelab/verifier';
import { describe, expect, it } from 'vitest';
import { BpfObject, verifyObject } from './index.js';

// The simulated kernel's BTF declares the functions these programs attach to (vfs_read, ...).
const image = KernelImage.builtin('x86_64');
if (image instanceof Error) throw image;
const btf = image.btf;
if (btf === null) throw new Error('the built-in image has BTF');

function open(name: string): BpfObject {
  const obj = BpfObject.open(readFileSync(new URL(`../testdata/${name}.bpfel.o`, import.meta.url)));
  obj.setTargetBtf(btf as NonNullable<typeof btf>);
  return obj;
}

// Realistic programs clang built from libbpf's headers; the kernel accepts each of them.
const accepted: [string, string][] = [
  ['minimal', 'socket'],
  ['latency', 'fentry/vfs_read'],
  ['latency', 'fexit/vfs_read'],
  ['legacy', 'tracepoint/syscalls/sys_enter_openat'],
  ['legacy', 'tp/syscalls/sys_enter_close'],
  ['ringbuf', 'tp_btf/sched_process_exec'],
  // task is a trusted pointer (btf_trace_task_newtask), so bpf_task_acquire takes it; the
  // acquired reference is null-checked, read and released.
  ['kfunc', 'tp_btf/task_newtask'],
  ['counts', 'kprobe/do_sys_openat2'],
  ['counts', 'fentry/vfs_read'],
  ['counts', 'kprobe.multi/vfs_*'],
  ['tailcall', 'socket'],
  // run_sum's loop is bounded by its constant 16; run_loop's bpf_loop callback only accumulates
  // into the caller's stack, which the kernel widens until the callback's runs converge.
  ['loops', 'syscall'],
  // bump() looks up the outer map, null-checks the inner map it gets and looks that up.
  ['mapinmap', 'syscall'],
];

/**
 * Programs of rejected.c and what the kernel says about each: the message do_check ends with,
 * BPF_PROG_LOAD's errno, and the source line verbose_linfo names before the failing instruction.
 */
const rejected: [string, string, number, string, string][] = [
  // `goto -1` re-enters insn 2 in the very state it left (is_state_visited, exact match).
  ['spin_on_empty', 'EINVAL', 22, 'infinite loop detected at insn 2', 'for (;;) { @ rejected.c:19'],
  // fp-32 plus (0..7) << 3 reads up to fp+32: check_stack_access_within_bounds, max_off > 0.
  [
    'peek_past_array',
    'EINVAL',
    22,
    'invalid variable-offset read from stack R1 var_off=(0x0; 0x38) off=-32 size=8',
    'return slots[skb->mark & 7]; @ rejected.c:34',
  ],
  // The lookup's result is map_value_or_null until a null check; check_mem_access refuses it.
  [
    'count_unchecked',
    'EACCES',
    13,
    "R0 invalid mem access 'map_value_or_null'",
    '*count += 1; @ rejected.c:44',
  ],
];

describe('verifyObject', () => {
  it.each(accepted)('%s: %s passes the verifier', (name, section) => {
    const verdicts = verifyObject(open(name), { btf, logLevel: 1 }).filter(
      (v) => v.section === section,
    );
    expect(verdicts.length).toBeGreaterThan(0);
    for (const { result } of verdicts) {
      expect(result.error).toBeNull();
      expect(result.ok).toBe(true);
      expect(result.stats.processedInsns).toBeGreaterThan(0);
      expect(result.log).toMatch(/^processed \d+ insns \(limit 1000000\)/m);
    }
  });

  it.each(rejected)('rejected.c: %s fails with %s', (name, errnoName, errno, message, line) => {
    const verdict = verifyObject(open('rejected'), { logLevel: 1 }).find((v) => v.name === name);
    const result = verdict?.result;
    expect(result?.ok).toBe(false);
    expect(result?.errnoName).toBe(errnoName);
    expect(result?.errno).toBe(errno);
    expect(result?.error?.message).toBe(message);
    const source = result?.error?.source;
    expect(source === null || source === undefined ? null : sourceLineStr(source)).toBe(line);
    // The log names the line, then the failing instruction, then the message.
    const log = (result?.log ?? '').split('\n');
    const at = log.indexOf(message);
    expect(at).toBeGreaterThan(1);
    expect(log[at - 1]).toMatch(new RegExp(`^${result?.error?.insn}: \\(`));
    expect(
      log
        .slice(0, at - 1)
        .reverse()
        .find((l) => l.startsWith('; ')),
    ).toBe(`; ${line}`);
  });

  it('every rejected program parses and links like an accepted one', () => {
    const linked = open('rejected').link();
    expect(linked.programs.map((p) => p.def.name)).toEqual(rejected.map(([name]) => name));
    for (const p of linked.programs) expect(p.lineInfo.length).toBeGreaterThan(0);
  });

  it('verifies every loader fixture program', () => {
    const objects = [...new Set([...accepted.map(([name]) => name), 'rejected'])];
    let us = 0;
    let programs = 0;
    for (const name of objects) {
      for (const { result } of verifyObject(open(name), { btf })) {
        us += result.stats.timeUs;
        programs++;
        expect(result.stats.processedInsns).toBeLessThan(100_000);
      }
    }
    console.log(`loader fixtures: ${programs} programs verified in ${(us / 1000).toFixed(1)} ms`);
    expect(programs).toBeGreaterThan(accepted.length);
  });
});
