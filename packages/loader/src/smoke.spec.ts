import { readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'vitest';
import { parseObject } from './object.js';
import { linkObject } from './link.js';
import { parseBtf } from '@tracelab/btf';

const dir = new URL('../testdata/', import.meta.url);
describe('smoke', () => {
  it('parses', () => {
    const target = parseObject(readFileSync(new URL('target.bpfel.o', dir))).btf;
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.o'))) {
      const o = parseObject(readFileSync(new URL(f, dir)));
      console.log(f, o.license, o.kernVersion, o.programs.map((p) => `${p.name}@${p.section}`), o.maps.map((m) => `${m.name}:${m.type}/${m.keySize}/${m.valueSize}/${m.maxEntries}`), o.externs.map(e=>e.name));
      const l = linkObject(o, { targetBtf: target ?? parseBtf(new Uint8Array()), kconfig: { LINUX_KERNEL_VERSION: 1, CONFIG_BPF_SYSCALL: true }, ksym: () => 0x1000n });
      console.log(l.programs.map((p) => `${p.def.name}:${p.insns.length} funcs=${p.funcs.map(f=>f.name)} fi=${p.funcInfo.length} li=${p.lineInfo.length}`), l.coreRelos.map((c) => `${c.kindName} ${c.accessStr} ${c.origVal}->${c.newVal}${c.poison ? ' POISON' : ''}`));
    }
  });
});
