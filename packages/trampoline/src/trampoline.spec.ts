import { readFileSync } from 'node:fs';
import { archInfo, ARCHES, readReturn, type ArchName } from '@tracelab/arch-isa';
import { BtfBuilder } from '@tracelab/btf';
import { TracelabError } from '@tracelab/contracts';
import { Ftrace, FtraceOps } from '@tracelab/ftrace-core';
import { BUILTIN_IMAGE, Kernel, KernelImage, type CallNode, type Cpu } from '@tracelab/kernel';
import { assemble, MemFault, Program, type Insn } from '@tracelab/vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BPF_MAX_TRAMP_LINKS,
  BPF_TRAMP_FENTRY,
  BPF_TRAMP_FEXIT,
  BPF_TRAMP_MODIFY_RETURN,
  Trampolines,
} from './trampoline.js';

interface Fixture {
  functions: { proto: string; args: number[]; ret: number }[];
  extra: string[];
}
const fx = JSON.parse(
  readFileSync(new URL('../testdata/selftest.json', import.meta.url), 'utf8'),
) as Fixture;
const nameOf = (proto: string): string => /(\w+)\(/.exec(proto)?.[1] as string;

interface Rig {
  k: Kernel;
  cpu: Cpu;
  ft: Ftrace;
  tr: Trampolines;
  /** Scratch kernel memory the test programs write their verdicts to. */
  mem: bigint;
}

function boot(arch: ArchName, jit = false): Rig {
  const image = KernelImage.builtin(arch, [
    ...BUILTIN_IMAGE,
    { subsystem: 'bpf_test', protos: [...fx.functions.map((f) => f.proto), ...fx.extra] },
  ]);
  if (!(image instanceof KernelImage)) throw image;
  const k = new Kernel({ image, cpus: 2 });
  const task = k.createTask('test_progs', { pid: 42 });
  if (!('pid' in task)) throw task;
  const cpu = k.cpus[0] as Cpu;
  k.switchTo(cpu, task);
  const ft = Ftrace.attach(k);
  if (!(ft instanceof Ftrace)) throw ft;
  const mem = k.kmalloc(4096) as bigint;
  return { k, cpu, ft, tr: new Trampolines(k, { ftrace: ft, jit }), mem };
}

function prog(text: string, name = 'prog'): Program {
  const insns = assemble(text);
  if (!Array.isArray(insns)) throw insns;
  const p = Program.load(insns as Insn[], { name });
  if (!(p instanceof Program)) throw p;
  return p;
}

function node(
  k: Kernel,
  name: string,
  args: readonly number[],
  ret: number,
  children: CallNode[] = [],
): CallNode {
  const fn = k.image.indexOf(name);
  expect(fn).toBeGreaterThanOrEqual(0);
  return {
    fn,
    argLo: Uint32Array.from(args),
    argHi: new Uint32Array(args.length),
    gen: null,
    cost: 10,
    retLo: ret,
    retHi: 0,
    repeat: 1,
    children,
  };
}

const word = (k: Kernel, addr: bigint): bigint => {
  const v = k.mm.load(addr, 8);
  if (v instanceof MemFault) throw new Error(v.message);
  return v;
};

/**
 * A program that checks what the kernel's selftest checks: each argument in ctx, the return
 * value (fexit), and the four tracing helpers; it adds 1 to mem[0] when all hold, and counts its
 * runs in mem[8].
 */
/** `if r2 != a goto out`, through r3 when a does not fit an imm32. */
const cmp = (a: number | bigint): string[] =>
  BigInt(a) <= 0x7fffffffn
    ? [`jne %r2, ${a}, out`]
    : [`lddw %r3, 0x${BigInt(a).toString(16)}`, 'jne %r2, %r3, out'];

function checker(
  kind: 'fentry' | 'fexit',
  args: readonly (number | bigint)[],
  ret: number,
  ip: bigint,
  mem: bigint,
): Program {
  const n = args.length;
  const l: string[] = ['mov %r6, %r1', `lddw %r7, 0x${mem.toString(16)}`, 'mov %r8, 0'];
  args.forEach((a, i) => l.push(`ldxdw %r2, [%r6+${8 * i}]`, ...cmp(a)));
  if (kind === 'fexit') l.push(`ldxdw %r2, [%r6+${8 * n}]`, `jne %r2, ${ret}, out`);
  l.push('mov %r1, %r6', 'call 185', `jne %r0, ${n}, out`);
  args.forEach((a, i) =>
    l.push(
      'mov %r1, %r6',
      `mov %r2, ${i}`,
      'mov %r3, %r10',
      'add %r3, -8',
      'call 183',
      'jne %r0, 0, out',
      'ldxdw %r2, [%r10-8]',
      ...cmp(a),
    ),
  );
  l.push(
    'mov %r1, %r6',
    `mov %r2, ${n}`,
    'mov %r3, %r10',
    'add %r3, -8',
    'call 183',
    'jne %r0, -22, out',
  );
  l.push('mov %r1, %r6', 'mov %r2, %r10', 'add %r2, -8', 'call 184');
  if (kind === 'fexit') l.push('jne %r0, 0, out', 'ldxdw %r2, [%r10-8]', `jne %r2, ${ret}, out`);
  else l.push('jne %r0, -95, out');
  l.push('mov %r1, %r6', 'call 173', `lddw %r2, 0x${ip.toString(16)}`, 'jne %r0, %r2, out');
  l.push('mov %r8, 1');
  l.push('out:', 'ldxdw %r2, [%r7+0]', 'add %r2, %r8', 'stxdw [%r7+0], %r2');
  l.push('ldxdw %r2, [%r7+8]', 'add %r2, 1', 'stxdw [%r7+8], %r2', 'mov %r0, 0', 'exit');
  return prog(l.join('\n'), `${kind}_check`);
}

/** Appends `id` to a log at mem (mem[0] = length) and returns `ret`. */
function logger(id: number, mem: bigint, ret = 0): Program {
  return prog(
    [
      `lddw %r7, 0x${mem.toString(16)}`,
      'ldxdw %r2, [%r7+0]',
      'mov %r3, %r2',
      'lsh %r3, 3',
      'add %r3, %r7',
      `stdw [%r3+8], ${id}`,
      'add %r2, 1',
      'stxdw [%r7+0], %r2',
      `mov %r0, ${ret}`,
      'exit',
    ].join('\n'),
    `log${id}`,
  );
}

function readLog(k: Kernel, mem: bigint): number[] {
  const n = Number(word(k, mem));
  return Array.from({ length: n }, (_, i) => Number(word(k, mem + 8n + BigInt(8 * i))));
}

describe('fentry/fexit selftest values on every ABI', () => {
  for (const [arch, jit] of [
    ...ARCHES.map((a) => [a, false] as const),
    ['x86_64', true] as const,
  ]) {
    it.each(fx.functions)(`${arch}${jit ? ' (JIT)' : ''}: $proto`, ({ proto, args, ret }) => {
      const { k, cpu, tr, mem } = boot(arch, jit);
      const name = nameOf(proto);
      const ip = k.symbolAddress(name) as bigint;
      const fentry = tr.attach(checker('fentry', args, ret, ip, mem), BPF_TRAMP_FENTRY, name);
      const fexit = tr.attach(checker('fexit', args, ret, ip, mem + 16n), BPF_TRAMP_FEXIT, name);
      expect(fentry).not.toBeInstanceOf(TracelabError);
      expect(fexit).not.toBeInstanceOf(TracelabError);
      const fault = k.run(cpu, node(k, name, args, ret));
      expect(fault).toBeNull();
      expect([word(k, mem), word(k, mem + 8n)]).toEqual([1n, 1n]);
      expect([word(k, mem + 16n), word(k, mem + 24n)]).toEqual([1n, 1n]);
      // The caller still gets the original's return value, and the stack is balanced.
      expect(readReturn(k.callPlacement(k.image.indexOf(name)), cpu.regs)).toBe(BigInt(ret));
      expect(cpu.depth).toBe(0);
      expect(tr.stats.errors).toBe(0);
    });
  }
});

describe('fmod_ret', () => {
  it.each(ARCHES)(
    '%s: zero runs the original, non-zero skips it and becomes the return',
    (arch) => {
      const { k, cpu, tr, mem } = boot(arch);
      let childCalls = 0;
      const child = k.image.indexOf('bpf_fentry_test_child');
      k.observer = { onCall: (_c, fn) => void (fn === child && childCalls++) };
      const call = (): CallNode =>
        node(k, 'bpf_modify_return_test', [1, 0x1000], 4, [
          node(k, 'bpf_fentry_test_child', [], 0),
        ]);
      const fexitLog = mem + 512n;
      tr.attach(prog('mov %r0, 0\nexit'), BPF_TRAMP_MODIFY_RETURN, 'bpf_modify_return_test');
      const fx2 = prog(
        [
          'mov %r6, %r1',
          `lddw %r7, 0x${fexitLog.toString(16)}`,
          'ldxdw %r2, [%r6+16]',
          'stxdw [%r7+0], %r2',
          'mov %r0, 0',
          'exit',
        ].join('\n'),
      );
      tr.attach(fx2, BPF_TRAMP_FEXIT, 'bpf_modify_return_test');
      const fn = k.image.indexOf('bpf_modify_return_test');
      expect(k.run(cpu, call())).toBeNull();
      expect(childCalls).toBe(1);
      expect(readReturn(k.callPlacement(fn), cpu.regs)).toBe(4n);
      expect(word(k, fexitLog)).toBe(4n);
      // A newer fmod_ret that returns non-zero: the body is skipped, fexit sees its value.
      tr.attach(prog('mov %r0, 1234\nexit'), BPF_TRAMP_MODIFY_RETURN, 'bpf_modify_return_test');
      expect(k.run(cpu, call())).toBeNull();
      expect(childCalls).toBe(1);
      expect(readReturn(k.callPlacement(fn), cpu.regs)).toBe(1234n);
      expect(word(k, fexitLog)).toBe(1234n);
      expect(cpu.depth).toBe(0);
    },
  );
});

describe('link order and limits', () => {
  it.each(ARCHES)('%s: fentry newest first, fmod_ret, fexit newest first', (arch) => {
    const { k, cpu, tr, mem } = boot(arch);
    const f = 'bpf_fentry_test2';
    tr.attach(logger(1, mem), BPF_TRAMP_FENTRY, f);
    tr.attach(logger(2, mem), BPF_TRAMP_FENTRY, f);
    tr.attach(logger(3, mem), BPF_TRAMP_FEXIT, f);
    tr.attach(logger(4, mem), BPF_TRAMP_FEXIT, f);
    tr.attach(logger(5, mem), BPF_TRAMP_MODIFY_RETURN, f);
    tr.attach(logger(6, mem), BPF_TRAMP_MODIFY_RETURN, f);
    expect(k.run(cpu, node(k, f, [2, 3], 5))).toBeNull();
    expect(readLog(k, mem)).toEqual([2, 1, 6, 5, 4, 3]);
  });

  it('38 links at most (-E2BIG), the same program twice (-EBUSY)', () => {
    const { tr } = boot('x86_64');
    const p = prog('mov %r0, 0\nexit');
    expect(tr.attach(p, BPF_TRAMP_FENTRY, 'bpf_fentry_test1')).not.toBeInstanceOf(TracelabError);
    expect((tr.attach(p, BPF_TRAMP_FENTRY, 'bpf_fentry_test1') as TracelabError).code).toBe(
      'EBUSY',
    );
    for (let i = 1; i < BPF_MAX_TRAMP_LINKS; i++) {
      const r = tr.attach(
        prog('mov %r0, 0\nexit'),
        i % 2 === 0 ? BPF_TRAMP_FENTRY : BPF_TRAMP_FEXIT,
        'bpf_fentry_test1',
      );
      expect(r).not.toBeInstanceOf(TracelabError);
    }
    const over = tr.attach(prog('mov %r0, 0\nexit'), BPF_TRAMP_FEXIT, 'bpf_fentry_test1');
    expect((over as TracelabError).code).toBe('E2BIG');
    expect(
      tr.links('bpf_fentry_test1').fentry.length + tr.links('bpf_fentry_test1').fexit.length,
    ).toBe(38);
  });

  it('rejects notrace functions and unknown names', () => {
    const { tr } = boot('arm64');
    const p = prog('mov %r0, 0\nexit');
    expect((tr.attach(p, BPF_TRAMP_FENTRY, 'ftrace_caller') as TracelabError).code).toBe('EINVAL');
    expect((tr.attach(p, BPF_TRAMP_FENTRY, 'no_such_fn') as TracelabError).code).toBe('ENOENT');
  });
});

describe('sharing the function with ftrace ops', () => {
  it.each(['x86_64', 'arm64', 'riscv64'] as const)(
    '%s: a function tracer and a trampoline both run',
    (arch) => {
      const { k, cpu, ft, tr, mem } = boot(arch);
      let seen = 0;
      const ops = new FtraceOps({ name: 'counter', func: () => void seen++ });
      expect(ft.setFilterFunctions(ops, [k.image.indexOf('bpf_fentry_test3')])).toBeNull();
      expect(ft.registerFtraceFunction(ops)).toBeNull();
      const l = tr.attach(logger(7, mem), BPF_TRAMP_FEXIT, 'bpf_fentry_test3');
      expect(l).not.toBeInstanceOf(TracelabError);
      expect(ft.enabledFunctions()).toMatch(/bpf_fentry_test3 \(2\).* D /);
      expect(k.run(cpu, node(k, 'bpf_fentry_test3', [4, 5, 6], 15))).toBeNull();
      expect([seen, readLog(k, mem)]).toEqual([1, [7]]);
      // Alone again: the site calls the trampoline directly.
      expect(ft.unregisterFtraceFunction(ops)).toBeNull();
      expect(k.run(cpu, node(k, 'bpf_fentry_test3', [4, 5, 6], 15))).toBeNull();
      expect([seen, readLog(k, mem)]).toEqual([1, [7, 7]]);
      expect(k.decodeEntry(k.image.indexOf('bpf_fentry_test3'))).toMatchObject({ kind: 'call' });
      expect(tr.detach(l as never)).toBeNull();
      expect(ft.enabledFunctions()).toBe('');
    },
  );

  it('i386 has no direct calls: the site is poked, and a site ftrace owns is -EBUSY', () => {
    const { k, cpu, ft, tr, mem } = boot('i386');
    const l = tr.attach(logger(1, mem), BPF_TRAMP_FENTRY, 'bpf_fentry_test1');
    expect(l).not.toBeInstanceOf(TracelabError);
    expect(k.run(cpu, node(k, 'bpf_fentry_test1', [1], 2))).toBeNull();
    expect(readLog(k, mem)).toEqual([1]);
    const ops = new FtraceOps({ name: 'counter', func: () => undefined });
    ft.setFilterFunctions(ops, [k.image.indexOf('bpf_fentry_test2')]);
    expect(ft.registerFtraceFunction(ops)).toBeNull();
    const busy = tr.attach(logger(2, mem), BPF_TRAMP_FENTRY, 'bpf_fentry_test2');
    expect((busy as TracelabError).code).toBe('EBUSY');
  });
});

/** Adds 1 to the u64 at mem. */
const counter = (mem: bigint): Program =>
  prog(
    [
      `lddw %r7, 0x${mem.toString(16)}`,
      'ldxdw %r2, [%r7+0]',
      'add %r2, 1',
      'stxdw [%r7+0], %r2',
      'mov %r0, 0',
      'exit',
    ].join('\n'),
    'count',
  );

describe('multi-attach', () => {
  // By hand from the ABIs: on the 64-bit arches every selftest function passes its arguments in
  // order, so one image serves all; on i386 the leaves of the plan tree are test2..test6.
  const expected: Record<ArchName, number> = { x86_64: 1, arm64: 1, riscv64: 1, i386: 5 };
  it.each(ARCHES)('%s: one program on a glob, M images, detach part', (arch) => {
    const { k, cpu, tr, mem } = boot(arch);
    const link = tr.attach(counter(mem), BPF_TRAMP_FEXIT, 'bpf_fentry_test*');
    if (link instanceof TracelabError) throw link;
    expect(link.fns.size).toBe(7);
    expect(tr.imageCount).toBe(expected[arch]);
    const runAll = (): void => {
      for (const f of fx.functions.slice(0, 6)) {
        expect(k.run(cpu, node(k, nameOf(f.proto), f.args, f.ret))).toBeNull();
        expect(readReturn(k.callPlacement(k.image.indexOf(nameOf(f.proto))), cpu.regs)).toBe(
          BigInt(f.ret),
        );
      }
    };
    runAll();
    expect(word(k, mem)).toBe(6n);
    expect(tr.detach(link, ['bpf_fentry_test1', 'bpf_fentry_test2'])).toBeNull();
    expect(link.fns.size).toBe(5);
    runAll();
    expect(word(k, mem)).toBe(10n);
    expect(tr.detach(link)).toBeNull();
    expect(tr.imageCount).toBe(0);
    runAll();
    expect(word(k, mem)).toBe(10n);
    // Every site is back to the idle NOP.
    for (const f of fx.functions.slice(0, 6)) {
      expect(k.decodeEntry(k.image.indexOf(nameOf(f.proto)))).toMatchObject({ kind: 'nop' });
    }
  });

  // One image serves functions of 1 to 6 arguments: each call's ctx holds its own count and
  // arguments, the later slots of the leader's plan unused.
  const summer = (mem: bigint): Program =>
    prog(
      [
        'mov %r6, %r1',
        'call 185',
        'mov %r8, %r0',
        'mov %r9, 0',
        'mov %r7, 0',
        'loop:',
        'jge %r7, %r8, done',
        'mov %r1, %r6',
        'mov %r2, %r7',
        'mov %r3, %r10',
        'add %r3, -8',
        'call 183',
        'ldxdw %r2, [%r10-8]',
        'add %r9, %r2',
        'add %r7, 1',
        'ja loop',
        'done:',
        `lddw %r1, 0x${mem.toString(16)}`,
        'ldxdw %r2, [%r1+0]',
        'add %r2, %r9',
        'stxdw [%r1+0], %r2',
        'ldxdw %r2, [%r1+8]',
        'add %r2, %r8',
        'stxdw [%r1+8], %r2',
        'mov %r0, 0',
        'exit',
      ].join('\n'),
      'sum_args',
    );
  for (const kind of [BPF_TRAMP_FENTRY, BPF_TRAMP_FEXIT] as const) {
    it.each(ARCHES)(
      `%s: a shared image builds each function's own ctx (${kind === BPF_TRAMP_FENTRY ? 'fentry' : 'fexit'})`,
      (arch) => {
        const { k, cpu, tr, mem } = boot(arch);
        const six = fx.functions.slice(0, 6);
        const link = tr.attach(
          summer(mem),
          kind,
          six.map((f) => nameOf(f.proto)),
        );
        expect(link).not.toBeInstanceOf(TracelabError);
        for (const f of six) expect(k.run(cpu, node(k, nameOf(f.proto), f.args, f.ret))).toBeNull();
        const sums = six.reduce((s, f) => s + f.args.reduce((a, b) => a + b, 0), 0);
        expect([word(k, mem), word(k, mem + 8n)]).toEqual([BigInt(sums), 21n]);
        expect(tr.imageCount).toBe(expected[arch]);
        expect(tr.stats.errors).toBe(0);
      },
    );
  }

  it('a function with its own extra link moves to its own image and back', () => {
    const { k, cpu, tr, mem } = boot('x86_64');
    const all = tr.attach(counter(mem), BPF_TRAMP_FENTRY, 'bpf_fentry_test*') as never;
    const one = tr.attach(counter(mem + 8n), BPF_TRAMP_FENTRY, 'bpf_fentry_test3');
    expect(tr.imageCount).toBe(2);
    expect(tr.imageOf('bpf_fentry_test3')).not.toBe(tr.imageOf('bpf_fentry_test4'));
    expect(k.run(cpu, node(k, 'bpf_fentry_test3', [4, 5, 6], 15))).toBeNull();
    expect([word(k, mem), word(k, mem + 8n)]).toEqual([1n, 1n]);
    expect(tr.detach(one as never)).toBeNull();
    expect(tr.imageCount).toBe(1);
    expect(tr.detach(all)).toBeNull();
  });
});

describe('unwinding through a trampoline', () => {
  it.each(ARCHES)('%s: the original returns into the image, which the stack shows', (arch) => {
    const { k, cpu, tr, mem } = boot(arch);
    tr.attach(counter(mem), BPF_TRAMP_FEXIT, 'bpf_fentry_test2');
    const child = k.image.indexOf('bpf_fentry_test_child');
    let trace: string[] = [];
    k.observer = {
      onCall: (c, fn) => {
        if (fn === child) trace = k.stackTrace(c).map((a) => k.symbolize(a).replace(/\+.*/, ''));
      },
    };
    const outer = node(k, 'bpf_fentry_test1', [1], 2, [
      node(k, 'bpf_fentry_test2', [2, 3], 5, [node(k, 'bpf_fentry_test_child', [], 0)]),
    ]);
    expect(k.run(cpu, outer)).toBeNull();
    expect(trace).toEqual([
      'bpf_fentry_test_child',
      'bpf_fentry_test2',
      'bpf_trampoline',
      'bpf_fentry_test1',
    ]);
    expect(word(k, mem)).toBe(1n);
  });
});

describe('detaching while calls are in flight', () => {
  const KINDS = [BPF_TRAMP_FENTRY, BPF_TRAMP_FEXIT, BPF_TRAMP_MODIFY_RETURN] as const;
  const FNS = ['bpf_fentry_test1', 'bpf_fentry_test2', 'bpf_fentry_test3', 'bpf_fentry_test_child'];

  /** A nested call tree: test3 -> (test1, test2 -> (child, test1)), each with its ret. */
  const tree = (k: Kernel): CallNode =>
    node(k, 'bpf_fentry_test3', [4, 5, 6], 15, [
      node(k, 'bpf_fentry_test1', [1], 2),
      node(k, 'bpf_fentry_test2', [2, 3], 5, [
        node(k, 'bpf_fentry_test_child', [], 0),
        node(k, 'bpf_fentry_test1', [1], 2),
      ]),
    ]);

  interface Op {
    at: number;
    attach: boolean;
    kind: (typeof KINDS)[number];
    fn: string;
    pick: number;
  }
  const op: fc.Arbitrary<Op> = fc.record({
    at: fc.nat({ max: 6 }),
    attach: fc.boolean(),
    kind: fc.constantFrom(...KINDS),
    fn: fc.constantFrom(...FNS),
    pick: fc.nat(),
  });

  it.each(ARCHES)(
    '%s: attach/detach at random calls keeps execution and stacks right',
    (arch) => {
      fc.assert(
        fc.property(
          fc.array(op, { maxLength: 8 }),
          fc.array(op, { maxLength: 4 }),
          (during, before) => {
            const { k, cpu, tr, mem } = boot(arch);
            const links: { detach: () => void }[] = [];
            const apply = (o: Op): void => {
              if (o.attach || links.length === 0) {
                const l = tr.attach(counter(mem), o.kind, o.fn);
                if (!(l instanceof TracelabError)) {
                  links.push({ detach: () => expect(tr.detach(l)).toBeNull() });
                }
              } else {
                const [l] = links.splice(o.pick % links.length, 1);
                l?.detach();
              }
            };
            for (const o of before) apply(o);
            // Untraced reference: stacks (without trampoline frames) and the caller's view.
            const sp0 = cpu.regs.stackPointer();
            const fp0 = cpu.regs.framePointer();
            let n = 0;
            const traces: string[][] = [];
            k.observer = {
              onCall: (c) => {
                traces.push(
                  k
                    .stackTrace(c)
                    .map((a) => k.symbolize(a).replace(/\+.*/, ''))
                    .filter((s) => s !== 'bpf_trampoline'),
                );
                for (const o of during) if (o.at === n) apply(o);
                n++;
              },
            };
            expect(k.run(cpu, tree(k))).toBeNull();
            expect(cpu.depth).toBe(0);
            expect(cpu.regs.stackPointer()).toBe(sp0);
            expect(cpu.regs.framePointer()).toBe(fp0);
            expect(readReturn(k.callPlacement(k.image.indexOf('bpf_fentry_test3')), cpu.regs)).toBe(
              15n,
            );
            expect(tr.stats.errors).toBe(0);
            const ref = boot(arch);
            const refTraces: string[][] = [];
            ref.k.observer = {
              onCall: (c) =>
                void refTraces.push(
                  ref.k.stackTrace(c).map((a) => ref.k.symbolize(a).replace(/\+.*/, '')),
                ),
            };
            expect(ref.k.run(ref.cpu, tree(ref.k))).toBeNull();
            expect(traces).toEqual(refTraces);
            // Everything detached: no image left once nothing is in flight.
            k.observer = null;
            for (const l of links.splice(0)) l.detach();
            expect(tr.imageCount).toBe(0);
          },
        ),
        { numRuns: 40 },
      );
      // A generous ceiling: the machine is shared, and this spec is about correctness, not speed.
    },
    120_000,
  );
});

describe('struct arguments up to 16 bytes', () => {
  /** A kernel whose BTF has a 16-byte struct passed by value, first and after five u64s. */
  function structKernel(arch: ArchName): Rig {
    const b = new BtfBuilder({ ptrSize: archInfo(arch).wordSize });
    const int = b.int('int', 4, { signed: true });
    const u64 = b.int('long long unsigned int', 8);
    const pair = b.struct('pair', [
      { name: 'a', type: u64 },
      { name: 'b', type: u64, bitsOffset: 64 },
    ]);
    for (const f of ['ftrace_caller', 'ftrace_regs_caller']) b.function(f, 0, []);
    b.function('f_struct', int, [
      { name: 'p', type: pair },
      { name: 'x', type: int },
    ]);
    b.function('f_struct_late', int, [
      ...['a', 'b', 'c', 'd', 'e'].map((name) => ({ name, type: u64 })),
      { name: 'p', type: pair },
      { name: 'x', type: int },
    ]);
    const image = KernelImage.fromBtf(arch, b.write());
    if (!(image instanceof KernelImage)) throw image;
    const k = new Kernel({ image });
    const task = k.createTask('structs');
    if (!('pid' in task)) throw task;
    const cpu = k.cpus[0] as Cpu;
    k.switchTo(cpu, task);
    const ft = Ftrace.attach(k);
    if (!(ft instanceof Ftrace)) throw ft;
    return { k, cpu, ft, tr: new Trampolines(k, { ftrace: ft }), mem: k.kmalloc(256) as bigint };
  }

  const P = 0x1122334455667788n;
  // The workload passes a struct's first 8 bytes; the rest of it is zero. Each 8 bytes is a slot.
  const cases = [
    { fn: 'f_struct', values: [P, 7n], ctx: [P, 0n, 7n], ret: 9 },
    {
      fn: 'f_struct_late',
      values: [1n, 2n, 3n, 4n, 5n, P, 7n],
      ctx: [1n, 2n, 3n, 4n, 5n, P, 0n, 7n],
      ret: 23,
    },
  ];
  for (const arch of ARCHES) {
    it.each(cases)(`${arch}: $fn`, ({ fn, values, ctx, ret }) => {
      const { k, cpu, tr, mem } = structKernel(arch);
      const ip = k.symbolAddress(fn) as bigint;
      expect(
        tr.attach(checker('fexit', ctx, ret, ip, mem), BPF_TRAMP_FEXIT, fn),
      ).not.toBeInstanceOf(TracelabError);
      const call = node(k, fn, [], ret);
      const n: CallNode = {
        ...call,
        argLo: Uint32Array.from(values, (v) => Number(v & 0xffffffffn)),
        argHi: Uint32Array.from(values, (v) => Number(v >> 32n)),
      };
      expect(k.run(cpu, n)).toBeNull();
      expect([word(k, mem), word(k, mem + 8n)]).toEqual([1n, 1n]);
    });
  }
});

describe('updating a trampoline in place', () => {
  it.each(ARCHES)('%s: a new link moves the sites to the new image in one poke each', (arch) => {
    const { k, cpu, tr, mem } = boot(arch);
    tr.attach(logger(1, mem), BPF_TRAMP_FENTRY, 'bpf_fentry_test1');
    const first = tr.imageOf('bpf_fentry_test1');
    const before = k.textPokeLog().length;
    tr.attach(logger(2, mem), BPF_TRAMP_FEXIT, 'bpf_fentry_test1');
    const pokes = k.textPokeLog().slice(before);
    // modify_ftrace_direct routes the site through ftrace_caller (a stub ops), then to the new
    // image; without direct calls the site's call is rewritten once. Never back to the NOP.
    expect(pokes.map((p) => p.reason)).toEqual(
      arch === 'i386' ? ['bpf: modify'] : ['ftrace: modify', 'ftrace: modify'],
    );
    expect(tr.imageOf('bpf_fentry_test1')).not.toBe(first);
    expect(k.run(cpu, node(k, 'bpf_fentry_test1', [1], 2))).toBeNull();
    expect(readLog(k, mem)).toEqual([1, 2]);
  });
});

describe('verifying tracing programs against the target BTF', () => {
  it('the return slot is readable in fexit, not in fentry; typed args are', () => {
    const { k, cpu, ft } = boot('x86_64');
    const tr = new Trampolines(k, { ftrace: ft, verify: true });
    // bpf_fentry_test1(int a): ctx[0] is a, ctx[1] the return value.
    const readRet = (): Program => prog('r0 = *(u64 *)(r1 + 8)\nr0 = 0\nexit');
    const fentry = tr.attach(readRet(), BPF_TRAMP_FENTRY, 'bpf_fentry_test1');
    expect(fentry).toBeInstanceOf(TracelabError);
    expect((fentry as TracelabError).message).toContain('fentry/bpf_fentry_test1');
    expect(tr.attach(readRet(), BPF_TRAMP_FEXIT, 'bpf_fentry_test1')).not.toBeInstanceOf(
      TracelabError,
    );
    // Typed argument and the ctx helpers pass (raw kernel addresses would not: programs
    // write through maps, which these specs do not need).
    const typed = prog(
      [
        'r6 = r1',
        'r2 = *(u64 *)(r6 + 0)',
        'r1 = r6',
        'call 185',
        'r1 = r6',
        'r2 = 0',
        'r3 = r10',
        'r3 += -8',
        'call 183',
        'r0 = 0',
        'exit',
      ].join('\n'),
    );
    expect(tr.attach(typed, BPF_TRAMP_FENTRY, 'bpf_fentry_test1')).not.toBeInstanceOf(
      TracelabError,
    );
    expect(k.run(cpu, node(k, 'bpf_fentry_test1', [1], 2))).toBeNull();
    expect(tr.stats.errors).toBe(0);
  });
});

describe('recursion', () => {
  it.each(ARCHES)(
    '%s: a program whose helper reaches the traced function again is skipped there (prog->active)',
    (arch) => {
      const image = KernelImage.builtin(arch, [
        ...BUILTIN_IMAGE,
        { subsystem: 'bpf_test', protos: [...fx.functions.map((f) => f.proto), ...fx.extra] },
      ]) as KernelImage;
      const k = new Kernel({ image });
      const task = k.createTask('rec');
      if (!('pid' in task)) throw task;
      const cpu = k.cpus[0] as Cpu;
      k.switchTo(cpu, task);
      const ft = Ftrace.attach(k) as Ftrace;
      const mem = k.kmalloc(64) as bigint;
      // Helper 6 stands for a helper whose kernel code calls a traced function.
      const tr = new Trampolines(k, {
        ftrace: ft,
        setupVm: (vm) =>
          vm.setHelper(6, () =>
            k.run(cpu, node(k, 'bpf_fentry_test1', [1], 2)) === null ? 0 : -14,
          ),
      });
      const p = prog(
        [
          `lddw %r7, 0x${mem.toString(16)}`,
          'ldxdw %r2, [%r7+0]',
          'add %r2, 1',
          'stxdw [%r7+0], %r2',
          'call 6',
          'stxdw [%r7+8], %r0',
          'mov %r0, 0',
          'exit',
        ].join('\n'),
      );
      expect(tr.attach(p, BPF_TRAMP_FENTRY, 'bpf_fentry_test1')).not.toBeInstanceOf(TracelabError);
      expect(k.run(cpu, node(k, 'bpf_fentry_test1', [1], 2))).toBeNull();
      // The outer run counted once; the nested call ran its function but not the program.
      expect([word(k, mem), word(k, mem + 8n), tr.stats.misses]).toEqual([1n, 0n, 1]);
      expect(cpu.depth).toBe(0);
    },
  );
});

describe('interrupts inside a traced call', () => {
  it.each(ARCHES)('%s: a hardirq that calls a traced function nests its own frame', (arch) => {
    const { k, cpu, tr, mem } = boot(arch);
    tr.attach(counter(mem), BPF_TRAMP_FEXIT, 'bpf_fentry_test1');
    tr.attach(counter(mem + 8n), BPF_TRAMP_FEXIT, 'bpf_fentry_test2');
    k.irqs.push({
      name: 'timer',
      context: 'hardirq',
      periodNs: 5,
      calls: [node(k, 'bpf_fentry_test1', [1], 2)],
    });
    const outer = { ...node(k, 'bpf_fentry_test2', [2, 3], 5), cost: 100 };
    const sp0 = cpu.regs.stackPointer();
    expect(k.run(cpu, outer)).toBeNull();
    // The body's clock passes at least one period: the irq's call ran through its own frame.
    expect(word(k, mem)).toBeGreaterThan(0n);
    expect(word(k, mem + 8n)).toBe(1n);
    expect(readReturn(k.callPlacement(k.image.indexOf('bpf_fentry_test2')), cpu.regs)).toBe(5n);
    expect(cpu.regs.stackPointer()).toBe(sp0);
  });
});
