import type { Bench } from 'tinybench';
import { type Insn, assemble } from '@tracelab/vm';
import { verify } from '../src/index.js';

function asm(text: string): Insn[] {
  const r = assemble(text);
  if (!Array.isArray(r)) throw r;
  return r;
}

/** 4k instructions of straight-line ALU and stack traffic. */
function straightLine(n: number): Insn[] {
  const lines = ['r0 = 0', 'r2 = 1'];
  for (let k = 0; lines.length < n - 1; k++) {
    const slot = -8 * ((k % 8) + 1);
    lines.push(
      `r2 += ${k % 7}`,
      `*(u64 *)(r10 - ${-slot}) = r2`,
      `r3 = *(u64 *)(r10 - ${-slot})`,
      'r0 ^= r3',
    );
  }
  lines.length = n - 1;
  lines.push('exit');
  return asm(lines.join('\n'));
}

/** 32 sequential bounded loops, each counting to 16 with a branch in its body. */
function loops(count: number): Insn[] {
  const lines = ['r0 = 0'];
  for (let k = 0; k < count; k++) {
    lines.push(
      `r1 = 0`,
      `l${k}: r1 += 1`,
      `if r1 > 8 goto s${k}`,
      `r0 += 1`,
      `s${k}: if r1 < 16 goto l${k}`,
    );
  }
  lines.push('r0 = 0', 'exit');
  return asm(lines.join('\n'));
}

export default function (bench: Bench): void {
  const line = straightLine(4096);
  const loop = loops(32);
  bench
    .add('verify 4k-insn straight line', () => {
      const r = verify(line, { progType: 'socket_filter' });
      if (!r.ok) throw new Error(r.error?.message);
    })
    .add('verify 32 sequential bounded loops', () => {
      const r = verify(loop, { progType: 'socket_filter' });
      if (!r.ok) throw new Error(r.error?.message);
    });
}
