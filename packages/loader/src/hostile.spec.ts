import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BpfObject,
  LoaderError,
  dumpObject,
  linkObject,
  objectInfo,
  parseElf,
  parseObject,
} from './index.js';

const fixture = (name: string): Uint8Array =>
  new Uint8Array(readFileSync(new URL(`../testdata/${name}`, import.meta.url)));

const FIXTURES = [
  'minimal',
  'counts',
  'latency',
  'ringbuf',
  'loops',
  'legacy',
  'core',
  'kfunc',
  'rejected',
].flatMap((n) => [`${n}.bpfel.o`, `${n}.bpfeb.o`]);

/** Everything the loader does with untrusted bytes, up to linking. */
function consume(bytes: Uint8Array): void {
  const obj = parseObject(bytes);
  objectInfo(bytes, obj.btf === undefined ? {} : { targetBtf: obj.btf });
  dumpObject(bytes);
  linkObject(obj, {
    targetBtf: obj.btf,
    kconfig: { LINUX_KERNEL_VERSION: 1, CONFIG_BPF_SYSCALL: 1 },
    ksym: () => 0n,
  });
}

/** Runs consume and returns the error it raised (undefined if the bytes were accepted). */
function errorOf(bytes: Uint8Array): unknown {
  try {
    consume(bytes);
    return undefined;
  } catch (e) {
    return e;
  }
}

function expectLoaderError(e: unknown): void {
  if (e !== undefined && !(e instanceof LoaderError)) {
    throw new Error(`not a LoaderError: ${String(e)}`);
  }
}

const base = fixture('latency.bpfel.o');
const elf = parseElf(base);
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const shoff = Number(dv(base).getBigUint64(40, true));
const shdr = (name: string): number => {
  const s = elf.sections.find((x) => x.name === name);
  if (s === undefined) throw new Error(`fixture lacks ${name}`);
  return shoff + s.index * 64;
};
const mutate = (f: (b: Uint8Array, v: DataView) => void): Uint8Array => {
  const b = base.slice();
  f(b, dv(b));
  return b;
};

describe('hostile objects get errors naming section and offset', () => {
  const cases: [string, Uint8Array, RegExp][] = [
    [
      'empty file',
      new Uint8Array(0),
      /ENOEXEC: .*shorter than an ELF64 header \(section ELF header, offset 0x0\)/,
    ],
    ['bad magic', mutate((b) => (b[0] = 0)), /ENOEXEC: not an ELF file.*ELF header, offset 0x0/],
    ['ELF32', mutate((b) => (b[4] = 1)), /ENOEXEC: ELF class 1.*offset 0x4/],
    ['bad data encoding', mutate((b) => (b[5] = 9)), /ENOEXEC: unknown ELF data encoding 9/],
    [
      'executable, not relocatable',
      mutate((_, v) => v.setUint16(16, 2, true)),
      /ENOEXEC: ELF type 2 is not ET_REL.*offset 0x10/,
    ],
    [
      'x86-64 machine',
      mutate((_, v) => v.setUint16(18, 62, true)),
      /ENOEXEC: ELF machine 62 is not EM_BPF.*offset 0x12/,
    ],
    [
      'section headers past the end',
      mutate((_, v) => v.setBigUint64(40, 1n << 40n, true)),
      /EINVAL: section headers at .* beyond the file.*offset 0x28/,
    ],
    [
      'wrong e_shentsize',
      mutate((_, v) => v.setUint16(58, 40, true)),
      /e_shentsize 40.*offset 0x3a/,
    ],
    [
      'too many sections',
      mutate((_, v) => v.setUint16(60, 0x7fff, true)),
      /section headers at .* do not fit/,
    ],
    [
      'e_shstrndx out of range',
      mutate((_, v) => v.setUint16(62, 999, true)),
      /e_shstrndx 999 out of range/,
    ],
    [
      'section contents past the end',
      mutate((_, v) => v.setBigUint64(shdr('.data') + 32, 1n << 30n, true)),
      /EINVAL: contents .* beyond the file .*section #\d+, offset 0x/,
    ],
    [
      'huge u64 size',
      mutate((_, v) => v.setBigUint64(shdr('.data') + 32, 1n << 62n, true)),
      /E2BIG: sh_size 0x4000000000000000 is too large/,
    ],
    [
      'symbol table entry size',
      mutate((_, v) => v.setBigUint64(shdr('.symtab') + 56, 16n, true)),
      /EINVAL: symbol entry size 16 is not 24 \(section \.symtab\)/,
    ],
    [
      'relocation against a missing symbol',
      mutate((_, v) => {
        const rel = elf.sections.find((s) => s.name === '.relfexit/vfs_read');
        v.setUint32((rel?.offset ?? 0) + 12, 0xffff, true);
      }),
      /EINVAL: relocation #0 names symbol #65535 .*section \.relfexit\/vfs_read, offset 0x8/,
    ],
    [
      'unknown relocation type on lddw',
      mutate((_, v) => {
        const rel = elf.sections.find((s) => s.name === '.relfexit/vfs_read');
        v.setUint32((rel?.offset ?? 0) + 8, 7, true);
      }),
      /EINVAL: lddw relocation #0 has unsupported type 7 \(section \.relfexit\/vfs_read, offset 0x0\)/,
    ],
    [
      'relocation outside its section',
      mutate((_, v) => {
        const rel = elf.sections.find((s) => s.name === '.relfexit/vfs_read');
        v.setBigUint64(rel?.offset ?? 0, 0x100000n, true);
      }),
      /relocation #0 at 0x100000 outside fexit\/vfs_read/,
    ],
    [
      'relocation not on an instruction boundary',
      mutate((_, v) => {
        const rel = elf.sections.find((s) => s.name === '.relfexit/vfs_read');
        v.setBigUint64(rel?.offset ?? 0, 0x23n, true);
      }),
      /offset 0x23 is not an instruction boundary/,
    ],
    [
      'corrupt BTF',
      mutate((_, v) => {
        const btf = elf.sections.find((s) => s.name === '.BTF');
        v.setUint16(btf?.offset ?? 0, 0x1234, true);
      }),
      /invalid BTF: .*\(section \.BTF\)/,
    ],
    [
      'corrupt BTF.ext record size',
      mutate((_, v) => {
        const ext = elf.sections.find((s) => s.name === '.BTF.ext');
        const o = ext?.offset ?? 0;
        const hdrLen = v.getUint32(o + 4, true);
        v.setUint32(o + hdrLen + v.getUint32(o + 8, true), 3, true);
      }),
      /record size 3 invalid \(section \.BTF\.ext, offset 0x/,
    ],
    [
      'function symbol outside its section',
      mutate((_, v) => {
        const sym = elf.symbols.find((s) => s.name === 'read_exit');
        const st = elf.sections.find((s) => s.name === '.symtab');
        v.setBigUint64((st?.offset ?? 0) + (sym?.index ?? 0) * 24 + 16, 0x10000n, true);
      }),
      /function 'read_exit' .* outside the section \(section fexit\/vfs_read/,
    ],
  ];
  it.each(cases)('%s', (_name, bytes, msg) => {
    const e = errorOf(bytes);
    expect(e).toBeInstanceOf(LoaderError);
    expect(String((e as Error).message)).toMatch(msg);
  });

  it('unsupported program sections are EOPNOTSUPP naming the section', () => {
    const b = mutate((bytes) => {
      // Rename "fexit/vfs_read" to "xdpit/vfs_read" everywhere (section and BTF.ext names).
      const text = new TextDecoder('latin1').decode(bytes);
      for (
        let at = text.indexOf('fexit/vfs_read\0');
        at >= 0;
        at = text.indexOf('fexit/vfs_read\0', at + 1)
      )
        bytes.set(new TextEncoder().encode('xdpit'), at);
    });
    const e = errorOf(b) as LoaderError;
    expect(e).toBeInstanceOf(LoaderError);
    expect(e.code).toBe('EOPNOTSUPP');
    expect(e.section).toBe('xdpit/vfs_read');
    expect(e.errno).toBe(-95);
  });

  it('missing sections: objects without BTF still open, BTF maps need it', () => {
    const noBtf = mutate((bytes) => {
      const text = new TextDecoder('latin1').decode(bytes);
      bytes.set(new TextEncoder().encode('.XTF'), text.indexOf('.BTF\0'));
    });
    expect(() => BpfObject.open(noBtf)).toThrow(/BTF-defined maps need a \.BTF section/);
  });
});

describe('fuzz: no input makes the loader throw anything but LoaderError', () => {
  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => expectLoaderError(errorOf(bytes))),
      { numRuns: 300 },
    );
  });

  it('random bytes behind a valid ELF64 BPF header', () => {
    const head = base.subarray(0, 64);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (tail) => {
        const b = new Uint8Array(64 + tail.length);
        b.set(head);
        b.set(tail, 64);
        expectLoaderError(errorOf(b));
      }),
      { numRuns: 300 },
    );
  });

  it.each(FIXTURES)('%s truncated anywhere', (name) => {
    const bytes = fixture(name);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), (n) =>
        expectLoaderError(errorOf(bytes.subarray(0, n))),
      ),
      { numRuns: 60 },
    );
  });

  it.each(FIXTURES)('%s with corrupted bytes', (name) => {
    const bytes = fixture(name);
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: bytes.length - 1 }), fc.integer({ min: 0, max: 255 })),
          {
            minLength: 1,
            maxLength: 8,
          },
        ),
        (edits) => {
          const b = bytes.slice();
          for (const [at, v] of edits) b[at] = v;
          expectLoaderError(errorOf(b));
        },
      ),
      { numRuns: 150 },
    );
  });
});
