// The vm benchmark programs (issue 3): each with the r0 it must return, so a bench that
// computes the wrong thing is caught before it is timed.
export interface BenchProgram {
  name: string;
  asm: string;
  /** Bytes of input memory at r1 (length in r2), byte i holding (i * 7) & 0xff. */
  mem?: number;
  result: bigint;
}

export const PROGRAMS: BenchProgram[] = [
  {
    name: 'loop sum 1e7',
    asm: `
      mov %r0, 0
      mov %r1, 0
    loop:
      add %r0, %r1
      add %r1, 1
      jlt %r1, 10000000, loop
      exit`,
    result: 49999995000000n,
  },
  {
    name: 'lcg hash 64-bit',
    asm: `
      lddw %r2, 6364136223846793005
      lddw %r3, 1442695040888963407
      mov %r0, 0
      mov %r1, 1
      mov %r4, 0
    loop:
      mul %r1, %r2
      add %r1, %r3
      mov %r5, %r1
      rsh %r5, 33
      xor %r0, %r5
      lsh %r0, 5
      xor %r0, %r1
      add %r4, 1
      jlt %r4, 1000000, loop
      exit`,
    result: 797246327951559041n,
  },
  {
    name: 'alu32 mix',
    asm: `
      mov32 %r0, 7
      mov32 %r1, 0
    loop:
      mul32 %r0, 1103515245
      add32 %r0, 12345
      mov32 %r2, %r0
      rsh32 %r2, 7
      xor32 %r0, %r2
      and32 %r0, 0x7fffffff
      sub32 %r0, %r1
      add32 %r1, 1
      jlt %r1, 1000000, loop
      exit`,
    result: 1094975516n,
  },
  {
    name: 'stack load/store',
    asm: `
      mov %r0, 0
      mov %r1, 0
      stdw [%r10-8], 0
      stdw [%r10-16], 1
    loop:
      ldxdw %r2, [%r10-8]
      ldxdw %r3, [%r10-16]
      add %r2, %r3
      stxdw [%r10-8], %r2
      stxw [%r10-20], %r1
      ldxw %r4, [%r10-20]
      add %r0, %r4
      add %r1, 1
      jlt %r1, 1000000, loop
      ldxdw %r2, [%r10-8]
      add %r0, %r2
      exit`,
    result: 499999500000n + 1000000n,
  },
  {
    name: 'byte sum 4 MiB',
    asm: `
      mov %r0, 0
      mov %r3, %r1
      add %r3, %r2
    loop:
      ldxb %r4, [%r1]
      add %r0, %r4
      add %r1, 1
      jlt %r1, %r3, loop
      exit`,
    mem: 4 << 20,
    result: 534773760n,
  },
  {
    name: 'bpf-to-bpf calls 1e6',
    asm: `
      mov %r6, 0
      mov %r0, 0
    loop:
      mov %r1, %r6
      call local inc
      add %r6, 1
      jlt %r6, 1000000, loop
      exit
    inc:
      add %r0, 1
      exit`,
    result: 1000000n,
  },
  {
    name: 'helper calls 1e6',
    asm: `
      mov %r6, 0
      mov %r7, 0
    loop:
      mov %r1, %r6
      call 2
      add %r7, %r0
      add %r6, 1
      jlt %r6, 1000000, loop
      mov %r0, %r7
      exit`,
    result: 0n,
  },
  {
    name: 'prime count < 2e5',
    asm: `
      mov %r0, 0
      mov %r1, 2
    outer:
      mov %r2, 2
    inner:
      mov %r3, %r2
      mul %r3, %r2
      jgt %r3, %r1, prime
      mov %r4, %r1
      mod %r4, %r2
      jeq %r4, 0, next
      add %r2, 1
      ja inner
    prime:
      add %r0, 1
    next:
      add %r1, 1
      jlt %r1, 200000, outer
      exit`,
    result: 17984n,
  },
];
