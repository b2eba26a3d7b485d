import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KernelImage } from '@tracelab/kernel';
import { ok } from '../test/helpers.js';
import {
  formatFprobeEvent,
  imageTarget,
  parseFprobeEvent,
  ProbeParseError,
  PROBE_ERRORS,
  type ProbeErrorName,
} from './dynevent.js';

const image = ok(KernelImage.builtin('x86_64'));
const lookup = (s: string) => imageTarget(image, s);

const cases = readFileSync(new URL('../testdata/fprobe_syntax_errors.txt', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l.length > 0 && !l.startsWith('#'))
  .map((l) => {
    const [marked, err] = l.split('\t') as [string, ProbeErrorName];
    const pos = marked.indexOf('^');
    return { command: marked.slice(0, pos) + marked.slice(pos + 1), pos, err, marked };
  });

describe('fprobe event syntax errors (fprobe_syntax_errors.tc)', () => {
  it.each(cases)('$marked -> $err', ({ command, pos, err }) => {
    let got: unknown = null;
    try {
      parseFprobeEvent(command, lookup);
    } catch (e) {
      got = e;
    }
    expect(got).toBeInstanceOf(ProbeParseError);
    const pe = got as ProbeParseError;
    expect([pe.err, pe.pos]).toEqual([err, pos]);
    const log = pe.format().split('\n');
    expect(log[0]).toBe(`trace_fprobe: error: ${PROBE_ERRORS[err]}`);
    expect((log[2] as string).indexOf('^') - '  Command: '.length).toBe(pos);
  });
});

describe('fprobe event definitions', () => {
  it.each([
    ['f vfs_read', 'f:fprobes/vfs_read__entry vfs_read'],
    ['f vfs_read%return $retval', 'f:fprobes/vfs_read__exit vfs_read%return arg1=$retval'],
    ['f:my/ev vfs_read count=$arg3:u32', 'f:my/ev vfs_read count=$arg3:u32'],
    ['f:ev2 vfs_read file count', 'f:fprobes/ev2 vfs_read file=file count=count'],
    // A bare $argN is listed as the BTF parameter it was rewritten to; $arg* as all of them.
    ['f vfs_read $arg1 $arg3:u32', 'f:fprobes/vfs_read__entry vfs_read file=file count=count:u32'],
    [
      'f vfs_read%return $arg* r=$retval',
      'f:fprobes/vfs_read__exit vfs_read%return file=file buf=buf count=count pos=pos r=$retval',
    ],
    [
      'f vfs_read p=+8(+0($arg1)):x32[4] s=@jiffies c=$comm i=\\-1 b=$arg2:b3@4/8',
      'f:fprobes/vfs_read__entry vfs_read p=+8(+0($arg1)):x32[4] s=@jiffies c=$comm i=\\-1 b=$arg2:b3@4/8',
    ],
  ])('%s', (cmd, listed) => {
    const ev = parseFprobeEvent(cmd, lookup);
    expect(formatFprobeEvent(ev)).toBe(listed);
  });

  it('keeps $argN as the N-th argument word where the function has no BTF parameters', () => {
    const noBtf = () => ({ params: null, returnsVoid: false, wordSize: 8 as const });
    const ev = parseFprobeEvent('f vfs_read $arg3 n=$arg9', noBtf);
    expect(formatFprobeEvent(ev)).toBe('f:fprobes/vfs_read__entry vfs_read arg1=$arg3 n=$arg9');
    expect(ev.args.map((a) => a.fetch)).toEqual([
      { kind: 'arg', n: 3 },
      { kind: 'arg', n: 9 },
    ]);
    expect(() => parseFprobeEvent('f vfs_read $arg*', noBtf)).toThrow(PROBE_ERRORS.NOSUP_BTFARG);
  });

  it('resolves BTF argument names to their positions and types arrays and bitfields', () => {
    const ev = parseFprobeEvent('f vfs_read count p=+8(+0($arg1)):x32[4] b=$arg2:b3@4/8', lookup);
    expect(ev.args[0]?.fetch).toEqual({ kind: 'btfarg', name: 'count', index: 2 });
    expect(ev.args[1]?.type).toMatchObject({ name: 'x32', size: 4, array: 4 });
    expect(ev.args[2]?.type.bitfield).toEqual({ width: 3, offset: 4, container: 8 });
  });
});
