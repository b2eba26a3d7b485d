import { FunctionsReplySchema, MapDumpReplySchema } from '@tracelab/contracts';
import { afterEach, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './stack.js';

describe('the main job demo', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('shows an fprobe event and a BPF map counting calls per function', async () => {
    stack = await startStack({ agentId: 'demo', host: '127.0.0.1', port: 0, demo: true });
    const a = `${stack.url}/v1/agents/demo`;
    const get = async (path: string) => fetch(`${a}${path}`);
    // every vfs_read call opens one call tree in function_graph's trace
    const graph = await (await get('/tracefs/trace')).text();
    const reads = graph.split('\n').filter((l) => /\|\s+vfs_read\(\) \{$/.test(l)).length;
    expect(reads).toBeGreaterThan(0);

    const events = (await (await get('/tracefs/instances/demo/trace')).text())
      .split('\n')
      .filter((l) => / vfs_read_count: \(vfs_read\+0x0\/0x[0-9a-f]+\) count=0x[0-9a-f]+$/.test(l));
    expect(events).toHaveLength(reads);

    const demo = stack.demo;
    if (demo === undefined) throw new Error('no demo program');
    const dump = MapDumpReplySchema.parse(await (await get(`/maps/${demo.mapFd}`)).json());
    const fns = FunctionsReplySchema.parse(
      await (await get('/functions?pattern=vfs_*&limit=1000')).json(),
    ).functions;
    const counts = new Map(
      dump.entries.map((e) => [
        Buffer.from(e.key, 'hex').readBigUInt64LE(0),
        Buffer.from(e.value, 'hex').readBigUInt64LE(0),
      ]),
    );
    const vfsRead = fns.find((f) => f.name === 'vfs_read');
    expect(counts.get(BigInt(vfsRead?.addr ?? -1))).toBe(BigInt(reads));
    // every key is the address of a vfs_* function
    const addrs = new Set(fns.map((f) => BigInt(f.addr)));
    for (const key of counts.keys()) expect(addrs.has(key)).toBe(true);
    expect(counts.size).toBeGreaterThan(1);
  });
});
