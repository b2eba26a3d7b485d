import { readFileSync } from 'node:fs';
import { KernelImage } from '@tracelab/kernel';
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
  ['counts', 'kprobe/do_sys_openat2'],
  ['counts', 'fentry/vfs_read'],
  ['counts', 'kprobe.multi/vfs_*'],
  ['tailcall', 'socket'],
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
});
