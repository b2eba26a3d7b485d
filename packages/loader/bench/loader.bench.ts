import { readFileSync } from 'node:fs';
import { parseBtf } from '@tracelab/btf';
import type { Bench } from 'tinybench';
import { BpfObject, linkObject, parseObject } from '../src/index.js';

const fixture = (name: string): Uint8Array =>
  new Uint8Array(readFileSync(new URL(`../testdata/${name}`, import.meta.url)));

/** Open (parse + checks), link (relocations + CO-RE) and load+run costs of the fixtures. */
export default function register(bench: Bench): void {
  const latency = fixture('latency.bpfel.o');
  const ringbuf = fixture('ringbuf.bpfel.o');
  const loops = fixture('loops.bpfel.o');
  const vmlinux = parseBtf(fixture('vmlinux-min.btf')).index();
  const ringbufObj = parseObject(ringbuf);
  bench.add('open latency.bpfel.o', () => {
    parseObject(latency);
  });
  bench.add('link ringbuf.bpfel.o with CO-RE (vmlinux subset)', () => {
    linkObject(ringbufObj, { targetBtf: vmlinux });
  });
  bench.add('open+load loops.bpfel.o', () => {
    BpfObject.open(loops).load();
  });
  const loaded = BpfObject.open(loops).load();
  bench.add('run run_sum (calls + globals)', () => {
    loaded.run('run_sum');
  });
  bench.add('run run_loop (bpf_loop x10 callbacks)', () => {
    loaded.run('run_loop');
  });
}
