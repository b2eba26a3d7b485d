import { readFileSync } from 'node:fs';
import { it } from 'vitest';
import { dumpObject, formatObjectInfo, objectInfo } from './index.js';

it('shows', () => {
  const b = readFileSync(new URL(`../testdata/latency.bpfel.o`, import.meta.url));
  console.log(formatObjectInfo(objectInfo(b)));
  console.log(dumpObject(b, 'fexit/vfs_read').slice(0, 1500));
});
