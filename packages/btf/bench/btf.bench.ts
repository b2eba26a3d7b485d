import { existsSync, readFileSync } from 'node:fs';
import type { Bench } from 'tinybench';
import { BtfBuilder, dumpBtf, funcModel, parseBtf, validateBtf } from '../src/index.js';

const VMLINUX = '/sys/kernel/btf/vmlinux';

/** A synthetic kernel-sized stand-in when the machine has no vmlinux BTF. */
function synthetic(): Uint8Array {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  const long = b.int('long', 8, { signed: true });
  for (let i = 0; i < 20000; i++) {
    const s = b.struct(`s${i}`, [
      { name: 'a', type: int },
      { name: 'b', type: long },
    ]);
    b.function(`f${i}`, int, [
      { name: 'p', type: b.ptr(s) },
      { name: 'n', type: long },
    ]);
  }
  return b.write();
}

export default function setup(bench: Bench): void {
  const real = existsSync(VMLINUX);
  if (!real) console.warn(`btf bench: ${VMLINUX} is absent; using a synthetic 100k-type BTF`);
  const blob = real ? readFileSync(VMLINUX) : synthetic();
  const label = real ? 'vmlinux' : 'synthetic';
  const btf = parseBtf(blob).index();
  const funcs = btf.funcs();
  const names = funcs.slice(0, 1000).map((f) => f.name);
  let k = 0;

  bench
    .add(`parse ${label}`, () => {
      parseBtf(blob);
    })
    .add(`parse + index ${label}`, () => {
      parseBtf(blob).index();
    })
    .add(`find FUNC by name (${label})`, () => {
      btf.find(names[k++ % names.length] as string, 'func');
    })
    .add(`funcModel one function (${label})`, () => {
      funcModel(btf, (funcs[k++ % funcs.length] as { id: number }).id);
    })
    .add(`C dump ${label}`, () => {
      dumpBtf(btf, 'c');
    })
    .add(`parse + C dump ${label} (tracelab btf dump --format c)`, () => {
      dumpBtf(blob, 'c');
    })
    .add(`raw dump ${label}`, () => {
      dumpBtf(btf, 'raw');
    })
    .add(`validate ${label}`, () => {
      validateBtf(btf);
    });
}
