import { describe, expect, it } from 'vitest';
import { assemble } from './asm.js';
import { VmError } from './errors.js';
import type { Insn } from './insn.js';
import { AddressSpace } from './memory.js';
import { Program } from './program.js';
import { DEFAULT_STACK_BASE, Vm } from './vm.js';

function prog(asm: string): Program {
  return Program.load(assemble(asm) as Insn[]) as Program;
}

describe('helper and kfunc registries', () => {
  for (const jit of [false, true]) {
    const engine = jit ? 'jit' : 'interpreter';
    const run = (vm: Vm, p: Program, ctx = 0n) => (jit ? vm.runJit(p, ctx) : vm.run(p, ctx));

    it(`call kfuncs by BTF id and helpers returning numbers, bigints or r0 in place (${engine})`, () => {
      const vm = Vm.create() as Vm;
      vm.kfuncs.set(77001, (v) => v.argNum(1) * 3);
      vm.setHelper(40, () => 0xfedcba9876543210n);
      vm.setHelper(41, (v) => v.setR0(-1, 0x7fffffff));
      vm.setHelper(42, () => -14);
      const p = prog(`
        mov %r1, 5
        call runtime 77001
        mov %r6, %r0
        call 40
        mov %r7, %r0
        call 41
        mov %r8, %r0
        call 42
        jne %r0, -14, fail
        jne %r6, 15, fail
        lddw %r1, 0xfedcba9876543210
        jne %r7, %r1, fail
        lddw %r1, 0x7fffffffffffffff
        jne %r8, %r1, fail
        mov %r0, 1
        exit
      fail:
        mov %r0, 0
        exit`);
      expect(run(vm, p)).toBe(0);
      expect(vm.r0).toBe(1n);
    });

    it(`a helper may fail the run, which names the calling instruction (${engine})`, () => {
      const vm = Vm.create() as Vm;
      vm.setHelper(9, (v) => v.abort(new VmError('EFAULT', 'bad pointer from the program')));
      expect(run(vm, prog('mov %r0, 0\ncall 9\nexit'))).toBe(-14);
      expect(vm.errorPc).toBe(1);
      expect(vm.error?.message).toBe('EFAULT: bad pointer from the program');
    });

    it(`r10-relative and computed stack addresses reach the same bytes in every frame (${engine})`, () => {
      const vm = Vm.create() as Vm;
      // Frame 0 writes below its own 512 bytes; the callee's frame is the next 512 down, so its
      // [r10-8] is the caller's [r10-520].
      const p = prog(`
        stdw [%r10-600], 7
        mov %r1, %r10
        add %r1, -600
        ldxdw %r6, [%r1+0]
        call local sub
        ldxdw %r0, [%r10-520]
        add %r0, %r6
        exit
      sub:
        stdw [%r10-8], 35
        mov %r1, %r10
        ldxdw %r0, [%r1-8]
        exit`);
      expect(run(vm, p)).toBe(0);
      expect(vm.r0).toBe(42n);
    });

    it(`r1 carries the context (${engine})`, () => {
      const vm = Vm.create() as Vm;
      expect(run(vm, prog('mov %r0, %r1\nexit'), 0xffff888012345678n)).toBe(0);
      expect(vm.r0).toBe(0xffff888012345678n);
    });
  }

  it('Vm.create reports a stack that cannot be mapped', () => {
    const memory = new AddressSpace();
    expect(Vm.create({ memory })).toBeInstanceOf(Vm);
    const again = Vm.create({ memory });
    expect(again).toBeInstanceOf(VmError);
    expect((again as VmError).code).toBe('EEXIST');
    // One vm per CPU: each gets its own stack in the shared address space.
    expect(Vm.create({ memory, stackBase: DEFAULT_STACK_BASE + 0x10000n })).toBeInstanceOf(Vm);
  });
});
