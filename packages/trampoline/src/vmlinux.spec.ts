import { BtfBuilder } from '@tracelab/btf';
import { TracelabError } from '@tracelab/contracts';
import { describe, expect, it } from 'vitest';
import { btfGrouping, btfPlanText, btfTargets } from './vmlinux.js';
import { marshalPlan, type MarshalPlan } from './plan.js';
import type { FuncModelLike } from '@tracelab/arch-isa';

/** A small 64-bit kernel's BTF: what /sys/kernel/btf/vmlinux holds, in miniature. */
function miniVmlinux(): Uint8Array {
  const b = new BtfBuilder({ ptrSize: 8 });
  const int = b.int('int', 4, { signed: true });
  const long = b.int('long', 8, { signed: true });
  const ulong = b.int('long unsigned int', 8);
  const ll = b.int('long long', 8, { signed: true });
  const sizeT = b.typedef('size_t', ulong);
  const pair = b.struct('pair', [
    { name: 'a', type: long },
    { name: 'b', type: long, bitsOffset: 64 },
  ]);
  b.function('f_long', sizeT, [
    { name: 'a', type: long },
    { name: 'b', type: ll },
    { name: 'c', type: int },
  ]);
  b.function('f_struct', int, [
    { name: 'p', type: pair },
    { name: 'x', type: int },
  ]);
  b.function('f_var', int, [{ name: 'fmt', type: int }], { variadic: true });
  return b.write();
}

const modelOf = (arch: 'x86_64' | 'i386', name: string, ilp32?: boolean): FuncModelLike => {
  const t = btfTargets(arch, miniVmlinux(), ilp32 === undefined ? {} : { ilp32 }).find(
    (x) => x.name === name,
  );
  return t?.model as FuncModelLike;
};

describe('targets from a BTF blob', () => {
  it('distills each FUNC with the arch pointer size; long is 4 bytes on a 32-bit build', () => {
    expect(modelOf('x86_64', 'f_long')).toMatchObject({ argSize: [8, 8, 4], retSize: 8 });
    expect(modelOf('i386', 'f_long')).toMatchObject({ argSize: [4, 8, 4], retSize: 4 });
    expect(modelOf('i386', 'f_long', false)).toMatchObject({ argSize: [8, 8, 4], retSize: 8 });
    // regparm(3): eax; the long long takes the edx:ecx pair; the int goes to the stack.
    expect((marshalPlan('i386', modelOf('i386', 'f_long')) as MarshalPlan).moves).toEqual([
      'ax',
      'dx:cx',
      '+4',
    ]);
  });

  it('groups, rejects variadic functions with the kernel message, filters by glob', () => {
    const g = btfGrouping('x86_64', miniVmlinux());
    expect([g.n, g.m]).toEqual([3, 1]);
    expect(g.rejected.map((r) => r.name)).toEqual(['f_var']);
    expect(g.rejected[0]?.reason).toContain('with variable args is unsupported');
    expect(btfGrouping('x86_64', miniVmlinux(), { glob: 'f_s*' }).n).toBe(1);
  });

  it('prints one plan, or why there is none', () => {
    const text = btfPlanText('x86_64', miniVmlinux(), 'f_struct') as string;
    expect(text).toContain('arg0: struct 16 bytes <- di, si -> ctx[0..1]');
    expect(text).toContain('arg1: 4 bytes <- dx -> ctx[2]');
    expect((btfPlanText('x86_64', miniVmlinux(), 'nope') as TracelabError).code).toBe('ENOENT');
    expect((btfPlanText('x86_64', miniVmlinux(), 'f_var') as TracelabError).message).toContain(
      'variable args',
    );
  });
});
