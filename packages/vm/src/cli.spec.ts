import { describe, expect, it } from 'vitest';
import { VmError } from './errors.js';
import { vmCli } from './cli.js';

function cli(argv: string[], files: Record<string, string | Uint8Array>, stdin?: string) {
  let out = '';
  let err = '';
  const code = vmCli(argv, {
    readFile: (p) => {
      const f = files[p];
      if (f === undefined) return new VmError('ENOENT', `no such file ${p}`);
      return typeof f === 'string' ? new TextEncoder().encode(f) : f;
    },
    ...(stdin === undefined ? {} : { readStdin: () => stdin }),
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
  });
  return { code, out, err };
}

const SUM =
  'mov %r0, 0\nldxb %r1, [%r1]\nloop:\nadd %r0, %r1\nsub %r1, 1\njne %r1, 0, loop\nexit\n';

describe('vm cli', () => {
  it('asm prints one instruction per line of hex', () => {
    const r = cli(['asm', 'p.s'], { 'p.s': 'r0 = 7\nexit' });
    expect(r).toEqual({
      code: 0,
      out: 'b7 00 00 00 07 00 00 00\n95 00 00 00 00 00 00 00\n',
      err: '',
    });
  });

  it('disasm reads hex text or raw bytes', () => {
    const hex = 'b7 00 00 00 07 00 00 00 95 00 00 00 00 00 00 00';
    const raw = Uint8Array.of(0xb7, 0, 0, 0, 7, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0);
    for (const f of [hex, raw]) {
      const r = cli(['disasm', 'p'], { p: f });
      expect(r.code).toBe(0);
      expect(r.out).toContain('\tr0 = 7\n');
      expect(r.out).toContain('\texit\n');
    }
    expect(cli(['disasm', 'p', '--conformance'], { p: hex }).out).toContain('\tmov %r0, 7\n');
  });

  it('run assembles, maps --mem at r1 and prints r0, on both engines', () => {
    for (const extra of [[], ['--jit']]) {
      expect(cli(['run', 'p.s', '--mem', '04', ...extra], { 'p.s': SUM })).toEqual({
        code: 0,
        out: '0xa\n',
        err: '',
      });
    }
    expect(cli(['run', 'p.s', '--mem-file', 'm'], { 'p.s': SUM, m: Uint8Array.of(3) }).out).toBe(
      '0x6\n',
    );
  });

  it('run --trace prints each instruction with the registers it sees', () => {
    const r = cli(['run', 'p.s', '--mem', '02', '--trace'], { 'p.s': SUM });
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ {4}0: r0 = 0 +r1=0x7f0000000000 r2=0x1 r10=0x/);
    expect(lines.filter((l) => l.includes('r0 += r1'))).toHaveLength(2);
    expect(lines.at(-1)).toBe('0x3');
  });

  it('plugin speaks the bpf_conformance protocol', () => {
    const prog = '71 10 02 00 00 00 00 00 95 00 00 00 00 00 00 00';
    expect(cli(['plugin', 'aa bb 11'], {}, prog)).toEqual({ code: 0, out: '11\n', err: '' });
    expect(cli(['plugin', 'aa bb 11', '--jit'], {}, prog).out).toBe('11\n');
    expect(cli(['plugin'], {}, prog)).toMatchObject({
      code: 1,
      err: 'EFAULT: insn 0: unmapped read of 1 byte(s) at 0x2\n',
    });
    expect(cli(['plugin', '--elf'], {}, prog).code).toBe(1);
    expect(cli(['plugin'], {}, 'zz').err).toContain('program: EINVAL');
    expect(cli(['plugin'], {}).code).toBe(1);
  });

  it('reports errors with positions and exit codes', () => {
    expect(cli(['run', 'p.s'], { 'p.s': 'mov %r0, 1\nbogus\n' })).toMatchObject({
      code: 1,
      err: 'p.s: EINVAL: line 2 col 1: unknown mnemonic "bogus"\n',
    });
    expect(cli(['run', 'p.s'], { 'p.s': 'ldxw %r0, [%r1+8]\nexit' }).err).toContain(
      'EFAULT: insn 0: unmapped read of 4 byte(s) at 0x8',
    );
    expect(cli(['run', 'nope'], {}).code).toBe(1);
    expect(cli(['frob', 'x'], {}).code).toBe(2);
    expect(cli(['run', 'p.s', '--what'], { 'p.s': SUM }).code).toBe(2);
    expect(cli(['disasm', 'p'], { p: 'b7 00 00' }).err).toContain('not a multiple of 8');
  });
});
