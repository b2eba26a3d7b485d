import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBtf } from './btf.js';
import { dumpBtf } from './dump.js';
import { funcModel, summarizeFuncModels } from './func-model.js';
import { validateBtf } from './validate.js';

const VMLINUX = '/sys/kernel/btf/vmlinux';
const hasVmlinux = existsSync(VMLINUX);
const hasClang = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v clang'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (hasVmlinux && !hasClang) {
  console.warn('vmlinux.spec: clang is absent; the vmlinux.h compile check is skipped');
}
const hasBpftool = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v bpftool'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!hasVmlinux)
  console.warn(`vmlinux.spec: ${VMLINUX} is absent; the machine-BTF tests are skipped`);
if (hasVmlinux && !hasBpftool)
  console.warn('vmlinux.spec: bpftool is absent; comparisons with bpftool are skipped');

const bpftool = (...args: string[]) =>
  execFileSync('bpftool', ['btf', 'dump', 'file', VMLINUX, ...args], {
    maxBuffer: 1 << 30,
    encoding: 'utf8',
  });

describe.skipIf(!hasVmlinux)('the machine vmlinux BTF', () => {
  const btf = hasVmlinux ? parseBtf(readFileSync(VMLINUX)) : undefined;
  const get = () => btf as NonNullable<typeof btf>;

  it('passes strict validation', () => {
    expect(validateBtf(get())).toEqual([]);
  }, 60_000);

  it('answers the member paths tracing programs use', () => {
    const b = get();
    const pid = b.offsetOf('task_struct.pid');
    expect(b.sizeOf(pid.type)).toBe(4);
    expect(b.memberAt(b.get('task_struct', 'struct'), pid.byteOffset, 4).path).toBe('pid');
    const fam = b.offsetOf('sock.__sk_common.skc_family');
    expect(b.memberAt(b.get('sock', 'struct'), fam.byteOffset, 2).path).toBe(
      '__sk_common.skc_family',
    );
    expect(b.offsetOf('sock.__sk_common.skc_family').byteOffset).toBeLessThan(
      b.sizeOf(b.get('sock', 'struct')),
    );
    const wake = b.funcs().find((f) => f.name === 'wake_up_process');
    expect(wake).toBeDefined();
    const r = funcModel(b, wake?.id ?? 0);
    expect(r.ok && r.model).toEqual({
      retSize: 4,
      retFlags: 2,
      nrArgs: 1,
      argSize: [8],
      argFlags: [0],
    });
  });

  it('distills a model or a kernel rejection for every function', () => {
    const s = summarizeFuncModels(get());
    expect(s.modeled + s.rejected).toBe(s.functions);
    expect(s.maxArgs).toBeLessThanOrEqual(12);
    console.info('vmlinux func models:', JSON.stringify(s));
  }, 60_000);

  it.skipIf(!hasBpftool)(
    'has the type and function counts of bpftool raw dump, and the same listing',
    () => {
      const theirs = bpftool();
      const ids = theirs.match(/^\[\d+\] /gm) ?? [];
      const funcs = theirs.match(/^\[\d+\] FUNC '/gm) ?? [];
      expect(get().typeCount - 1).toBe(ids.length);
      expect(get().funcs().length).toBe(funcs.length);
      expect(dumpBtf(get(), 'raw') === theirs).toBe(true);
    },
    120_000,
  );

  it.skipIf(!hasBpftool)(
    'C dump equals bpftool format c',
    () => {
      expect(dumpBtf(get(), 'c') === bpftool('format', 'c')).toBe(true);
    },
    120_000,
  );

  it.skipIf(!hasClang)(
    'C dump compiles with clang -target bpf',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'btf-vmlinux-'));
      try {
        writeFileSync(join(dir, 'vmlinux.h'), dumpBtf(get(), 'c'));
        writeFileSync(
          join(dir, 'prog.c'),
          '#include "vmlinux.h"\nint pid_of(struct task_struct *t) { return t->pid + t->tgid; }\n',
        );
        execFileSync('clang', ['-target', 'bpf', '-O2', '-c', 'prog.c', '-o', 'prog.o'], {
          cwd: dir,
          stdio: 'pipe',
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
