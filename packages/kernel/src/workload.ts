import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { ArchName } from '@tracelab/arch-isa';
import { KernelError } from './errors.js';
import type { KernelImage } from './image.js';
import { fileAddress, type ArgGenerator, type CallNode, type IrqSource } from './machine.js';

const Int = z.number().int();
/** A 64-bit value: a safe integer, or a decimal/hex string for values past 2^53. */
const Value = z.union([
  Int,
  z.string().regex(/^(-?\d+|0x[0-9a-fA-F]+)$/, 'expected a decimal or 0x-hex integer'),
]);
const Arg = z.union([
  Value,
  z.object({ seq: z.object({ start: Int, step: Int.optional() }).strict() }).strict(),
  z.object({ random: z.object({ min: Int.min(0), max: Int.max(0xffffffff) }).strict() }).strict(),
]);

export interface CallSpec {
  fn: string;
  args?: z.infer<typeof Arg>[];
  /** Nanoseconds the body itself takes (default 50). */
  cost?: number;
  ret?: z.infer<typeof Value>;
  repeat?: number;
  calls?: CallSpec[];
}

export const CallSchema: z.ZodType<CallSpec> = z.lazy(() =>
  z
    .object({
      fn: z.string().min(1),
      args: z.array(Arg).max(12).optional(),
      cost: z.number().min(0).max(1e12).optional(),
      ret: Value.optional(),
      repeat: Int.min(1).max(1_000_000).optional(),
      calls: z.array(CallSchema).optional(),
    })
    .strict(),
);

export const TaskSchema = z
  .object({
    comm: z.string().min(1).max(15),
    pid: Int.min(1).max(16383).optional(),
    tgid: Int.min(1).max(16383).optional(),
    cpu: Int.min(0).max(63).optional(),
    /** How many times the task runs its call list. */
    loops: Int.min(1).max(1_000_000).optional(),
    calls: z.array(CallSchema).min(1),
  })
  .strict();

export const IrqSchema = z
  .object({
    name: z.string().min(1),
    context: z.enum(['hardirq', 'softirq', 'nmi']),
    periodNs: z.number().positive(),
    calls: z.array(CallSchema).min(1),
  })
  .strict();

/** A workload file (JSON or YAML): tasks with call trees, and periodic interrupts. */
export const WorkloadSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    cpus: Int.min(1).max(64).optional(),
    seed: Int.optional(),
    tasks: z.array(TaskSchema).min(1),
    irqs: z.array(IrqSchema).optional(),
  })
  .strict();

export type WorkloadSpec = z.infer<typeof WorkloadSchema>;
export type TaskSpec = z.infer<typeof TaskSchema>;

const pathOf = (path: readonly PropertyKey[]): string =>
  path.reduce<string>(
    (acc, p) =>
      typeof p === 'number' ? `${acc}[${p}]` : acc === '' ? String(p) : `${acc}.${String(p)}`,
    '',
  );

/** Validates a workload; a bad one is an EINVAL error naming the field. */
export function parseWorkload(input: unknown, source = 'workload'): WorkloadSpec | KernelError {
  const r = WorkloadSchema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue === undefined ? '' : pathOf(issue.path);
  return new KernelError(
    'EINVAL',
    `${source}: ${where === '' ? '(root)' : where}: ${issue?.message ?? 'invalid'}`,
  );
}

/**
 * Reads a workload file's text (JSON, or YAML, which JSON is a subset of) and validates it.
 * Syntax errors and schema errors both name the source.
 */
export function parseWorkloadText(text: string, source = 'workload'): WorkloadSpec | KernelError {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (e) {
    return new KernelError(
      'EINVAL',
      `${source}: ${(e as Error).message.split('\n')[0] ?? 'syntax error'}`,
    );
  }
  return parseWorkload(data, source);
}

/** A workload compiled against a kernel image: nodes hold function indices and split values. */
export interface CompiledWorkload {
  readonly spec: WorkloadSpec;
  readonly tasks: readonly { readonly spec: TaskSpec; readonly calls: readonly CallNode[] }[];
  readonly irqs: readonly IrqSource[];
}

function splitValue(v: string | number, where: string): [number, number] | KernelError {
  let b: bigint;
  try {
    b = BigInt(v);
  } catch {
    return new KernelError('EINVAL', `${where}: '${v}' is not an integer`);
  }
  if (b < -(1n << 63n) || b >= 1n << 64n)
    return new KernelError('ERANGE', `${where}: ${v} does not fit 64 bits`);
  const u = BigInt.asUintN(64, b);
  return [Number(u & 0xffffffffn), Number(u >> 32n)];
}

function compileCall(image: KernelImage, c: CallSpec, where: string): CallNode | KernelError {
  const fn = image.indexOf(c.fn);
  if (fn < 0)
    return new KernelError(
      'ENOENT',
      `${where}.fn: no function '${c.fn}' in the ${image.arch} kernel image`,
    );
  const args = c.args ?? [];
  const argLo = new Uint32Array(12);
  const argHi = new Uint32Array(12);
  const gen: (ArgGenerator | null)[] = [];
  let anyGen = false;
  for (const [i, a] of args.entries()) {
    if (typeof a === 'object') {
      anyGen = true;
      if ('seq' in a) {
        const { start, step = 1 } = a.seq;
        gen.push((n) => start + n * step);
      } else {
        const { min, max } = a.random;
        if (max < min)
          return new KernelError('EINVAL', `${where}.args[${i}].random: max ${max} < min ${min}`);
        const span = max - min + 1;
        gen.push((_n, rand) => min + (rand() % span));
      }
      continue;
    }
    const v = splitValue(a, `${where}.args[${i}]`);
    if (v instanceof KernelError) return v;
    argLo[i] = v[0];
    argHi[i] = v[1];
    gen.push(null);
  }
  const ret = c.ret === undefined ? [0, 0] : splitValue(c.ret, `${where}.ret`);
  if (ret instanceof KernelError) return ret;
  const children: CallNode[] = [];
  for (const [i, k] of (c.calls ?? []).entries()) {
    const child = compileCall(image, k, `${where}.calls[${i}]`);
    if (child instanceof KernelError) return child;
    children.push(child);
  }
  return {
    fn,
    argLo,
    argHi,
    gen: anyGen ? gen : null,
    cost: c.cost ?? 50,
    retLo: ret[0],
    retHi: ret[1],
    repeat: c.repeat ?? 1,
    children,
  };
}

/** Resolves every function name of a validated workload against an image. */
export function compileWorkload(
  image: KernelImage,
  spec: WorkloadSpec,
): CompiledWorkload | KernelError {
  const tasks: { spec: TaskSpec; calls: CallNode[] }[] = [];
  for (const [ti, t] of spec.tasks.entries()) {
    const calls: CallNode[] = [];
    for (const [ci, c] of t.calls.entries()) {
      const node = compileCall(image, c, `tasks[${ti}].calls[${ci}]`);
      if (node instanceof KernelError) return node;
      calls.push(node);
    }
    tasks.push({ spec: t, calls });
  }
  const irqs: IrqSource[] = [];
  for (const [ii, q] of (spec.irqs ?? []).entries()) {
    const calls: CallNode[] = [];
    for (const [ci, c] of q.calls.entries()) {
      const node = compileCall(image, c, `irqs[${ii}].calls[${ci}]`);
      if (node instanceof KernelError) return node;
      calls.push(node);
    }
    irqs.push({ name: q.name, context: q.context, periodNs: q.periodNs, calls });
  }
  return { spec, tasks, irqs };
}

// ---- built-in workloads ----

/** The syscall entry chain of an arch, around the syscall's own calls. */
function syscall(
  arch: ArchName,
  name: string,
  args: CallSpec['args'],
  calls: CallSpec[],
  ret: number,
): CallSpec {
  const sys: CallSpec = {
    fn:
      { x86_64: '__x64_sys_', i386: '__ia32_sys_', arm64: '__arm64_sys_', riscv64: '__riscv_sys_' }[
        arch
      ] + name,
    args: [0],
    cost: 40,
    ret,
    calls,
  };
  switch (arch) {
    case 'x86_64':
      return {
        fn: 'entry_SYSCALL_64',
        cost: 60,
        calls: [
          {
            fn: 'do_syscall_64',
            cost: 30,
            args: [0, 0],
            calls: [{ fn: 'x64_sys_call', cost: 10, args: [0, 0], calls: [{ ...sys, args }] }],
          },
        ],
      };
    case 'i386':
      return {
        fn: 'entry_INT80_32',
        cost: 80,
        calls: [
          {
            fn: 'do_int80_syscall_32',
            cost: 40,
            calls: [{ fn: 'ia32_sys_call', cost: 10, args: [0, 0], calls: [{ ...sys, args }] }],
          },
        ],
      };
    case 'arm64':
      return {
        fn: 'el0t_64_sync',
        cost: 60,
        calls: [
          {
            fn: 'el0_svc',
            cost: 20,
            calls: [
              {
                fn: 'do_el0_svc',
                cost: 15,
                calls: [{ fn: 'invoke_syscall', cost: 10, calls: [{ ...sys, args }] }],
              },
            ],
          },
        ],
      };
    case 'riscv64':
      return {
        fn: 'handle_exception',
        cost: 60,
        calls: [{ fn: 'do_trap_ecall_u', cost: 30, calls: [{ ...sys, args }] }],
      };
  }
}

/** Pointer arguments to the boot-time struct file of an fd, and to its f_pos (file_ppos()). */
const file = (arch: ArchName, fd: number): string => `0x${fileAddress(arch, fd).toString(16)}`;
const ppos = (arch: ArchName, fd: number): string =>
  `0x${(fileAddress(arch, fd) + 8n).toString(16)}`;

const readPath = (arch: ArchName, fd: number, count: number): CallSpec => ({
  fn: 'ksys_read',
  args: [fd, '0x7ffd0000', count],
  cost: 30,
  ret: count,
  calls: [
    { fn: '__fdget_pos', args: [fd], cost: 20, ret: file(arch, fd) },
    {
      fn: 'vfs_read',
      args: [file(arch, fd), '0x7ffd0000', count, ppos(arch, fd)],
      cost: 40,
      ret: count,
      calls: [
        {
          fn: 'rw_verify_area',
          args: [0, file(arch, fd), ppos(arch, fd), count],
          cost: 15,
          calls: [{ fn: 'security_file_permission', args: [file(arch, fd), 4], cost: 25 }],
        },
        {
          fn: 'new_sync_read',
          args: [file(arch, fd), '0x7ffd0000', count, ppos(arch, fd)],
          cost: 30,
          ret: count,
          calls: [
            {
              fn: 'ext4_file_read_iter',
              cost: 60,
              ret: count,
              calls: [
                {
                  fn: 'filemap_read',
                  cost: 300,
                  ret: count,
                  calls: [
                    { fn: 'copy_page_to_iter', cost: 120, ret: count, repeat: 2 },
                    { fn: 'touch_atime', cost: 40 },
                  ],
                },
              ],
            },
          ],
        },
        { fn: 'fsnotify_access', cost: 10, calls: [{ fn: '__fsnotify_parent', cost: 20 }] },
      ],
    },
  ],
});

const writePath = (arch: ArchName, fd: number, count: number): CallSpec => ({
  fn: 'ksys_write',
  args: [fd, '0x7ffd1000', count],
  cost: 30,
  ret: count,
  calls: [
    { fn: '__fdget_pos', args: [fd], cost: 20, ret: file(arch, fd) },
    {
      fn: 'vfs_write',
      args: [file(arch, fd), '0x7ffd1000', count, ppos(arch, fd)],
      cost: 40,
      ret: count,
      calls: [
        { fn: 'rw_verify_area', cost: 15, calls: [{ fn: 'security_file_permission', cost: 25 }] },
        {
          fn: 'tty_write',
          cost: 400,
          ret: count,
          calls: [
            { fn: 'mutex_lock', cost: 20 },
            { fn: 'mutex_unlock', cost: 15 },
          ],
        },
      ],
    },
  ],
});

const openPath: CallSpec = {
  fn: 'do_sys_openat2',
  args: [-100, '0x7ffd2000', '0xffffc90000004e00'],
  cost: 40,
  ret: 3,
  calls: [
    {
      fn: 'getname',
      args: ['0x7ffd2000'],
      cost: 60,
      calls: [{ fn: 'kmem_cache_alloc', cost: 40 }],
    },
    { fn: 'get_unused_fd_flags', args: [0], cost: 30, ret: 3 },
    {
      fn: 'do_filp_open',
      cost: 50,
      calls: [
        {
          fn: 'path_openat',
          cost: 60,
          calls: [
            { fn: 'alloc_empty_file', cost: 80, calls: [{ fn: 'kmem_cache_alloc', cost: 40 }] },
            {
              fn: 'link_path_walk',
              cost: 100,
              calls: [
                {
                  fn: 'walk_component',
                  cost: 50,
                  repeat: 3,
                  calls: [{ fn: 'lookup_fast', cost: 40 }],
                },
              ],
            },
            {
              fn: 'do_open',
              cost: 40,
              calls: [{ fn: 'vfs_open', cost: 30, calls: [{ fn: 'ext4_file_open', cost: 50 }] }],
            },
          ],
        },
      ],
    },
    { fn: 'fd_install', args: [3], cost: 20 },
    { fn: 'putname', cost: 20, calls: [{ fn: 'kmem_cache_free', cost: 30 }] },
  ],
};

const closePath: CallSpec = {
  fn: 'close_fd',
  args: [3],
  cost: 30,
  calls: [{ fn: 'filp_close', cost: 30, calls: [{ fn: 'fput', cost: 20 }] }],
};

function timerIrq(arch: ArchName): CallSpec {
  const tick: CallSpec = {
    fn: 'hrtimer_interrupt',
    cost: 200,
    calls: [
      { fn: '_raw_spin_lock_irqsave', cost: 10 },
      { fn: 'ktime_get_update_offsets_now', cost: 40 },
      {
        fn: '__hrtimer_run_queues',
        cost: 60,
        calls: [
          { fn: '_raw_spin_unlock_irqrestore', cost: 10 },
          {
            fn: 'tick_nohz_handler',
            cost: 30,
            calls: [
              {
                fn: 'tick_do_update_jiffies64',
                cost: 40,
                calls: [
                  {
                    fn: 'update_wall_time',
                    cost: 30,
                    calls: [{ fn: 'timekeeping_advance', cost: 120 }],
                  },
                ],
              },
              {
                fn: 'tick_sched_handle',
                cost: 20,
                calls: [
                  {
                    fn: 'update_process_times',
                    cost: 30,
                    calls: [
                      { fn: 'account_process_tick', cost: 30 },
                      { fn: 'run_local_timers', cost: 20 },
                      { fn: 'rcu_sched_clock_irq', cost: 40 },
                      {
                        fn: 'scheduler_tick',
                        cost: 60,
                        calls: [
                          { fn: 'update_curr', cost: 30 },
                          {
                            fn: 'task_tick_fair',
                            cost: 50,
                            calls: [{ fn: 'update_curr', cost: 30 }],
                          },
                        ],
                      },
                    ],
                  },
                ],
              },
            ],
          },
          { fn: '_raw_spin_lock_irqsave', cost: 10 },
        ],
      },
      { fn: 'clockevents_program_event', cost: 80 },
    ],
  };
  const enterExit = (inner: CallSpec): CallSpec[] => [
    { fn: 'irq_enter_rcu', cost: 20 },
    inner,
    { fn: 'irq_exit_rcu', cost: 20, calls: [{ fn: '__irq_exit_rcu', cost: 10 }] },
  ];
  switch (arch) {
    case 'x86_64':
    case 'i386':
      return {
        fn: 'asm_sysvec_apic_timer_interrupt',
        cost: 80,
        calls: [{ fn: 'sysvec_apic_timer_interrupt', cost: 30, calls: enterExit(tick) }],
      };
    case 'arm64':
      return {
        fn: 'el1h_64_irq',
        cost: 60,
        calls: [
          {
            fn: 'el1_interrupt',
            cost: 30,
            calls: [
              { fn: 'irq_enter_rcu', cost: 20 },
              {
                fn: 'gic_handle_irq',
                cost: 40,
                calls: [
                  {
                    fn: 'generic_handle_domain_irq',
                    cost: 30,
                    calls: [
                      {
                        fn: 'handle_fasteoi_irq',
                        cost: 30,
                        calls: [{ fn: 'arch_timer_handler_phys', cost: 20, calls: [tick] }],
                      },
                    ],
                  },
                ],
              },
              { fn: 'irq_exit_rcu', cost: 20 },
            ],
          },
        ],
      };
    case 'riscv64':
      return {
        fn: 'handle_exception',
        cost: 60,
        calls: [
          {
            fn: 'do_irq',
            cost: 20,
            calls: [
              { fn: 'irq_enter_rcu', cost: 20 },
              {
                fn: 'handle_riscv_irq',
                cost: 30,
                calls: [
                  {
                    fn: 'riscv_intc_irq',
                    cost: 20,
                    calls: [{ fn: 'riscv_timer_interrupt', cost: 20, calls: [tick] }],
                  },
                ],
              },
              { fn: 'irq_exit_rcu', cost: 20 },
            ],
          },
        ],
      };
  }
}

/** Nests calls: each one calls the next. */
function chain(calls: readonly CallSpec[]): CallSpec {
  let inner = calls[calls.length - 1] as CallSpec;
  for (let i = calls.length - 2; i >= 0; i--)
    inner = { ...calls[i], fn: (calls[i] as CallSpec).fn, calls: [inner] };
  return inner;
}

const netRxSoftirq: CallSpec = {
  fn: 'net_rx_action',
  cost: 80,
  calls: [
    {
      fn: '__napi_poll',
      cost: 40,
      calls: [
        {
          fn: 'virtnet_poll',
          args: [0, 64],
          cost: 120,
          calls: [
            { fn: '__napi_alloc_skb', cost: 90, calls: [{ fn: 'kmem_cache_alloc', cost: 40 }] },
            { fn: 'eth_type_trans', cost: 20, ret: 8 },
            {
              fn: 'napi_gro_receive',
              cost: 60,
              calls: [
                chain([
                  { fn: 'netif_receive_skb', cost: 30 },
                  { fn: '__netif_receive_skb_core', cost: 80 },
                  { fn: 'ip_rcv', cost: 60 },
                  { fn: 'ip_rcv_finish', cost: 40 },
                  { fn: 'ip_local_deliver', cost: 30 },
                  { fn: 'ip_protocol_deliver_rcu', args: [0, 0, 6], cost: 30 },
                  { fn: 'tcp_v4_rcv', cost: 150 },
                  { fn: 'tcp_v4_do_rcv', cost: 40 },
                  { fn: 'tcp_rcv_established', cost: 200 },
                  { fn: 'sock_def_readable', cost: 30 },
                  { fn: '__wake_up', cost: 40 },
                  {
                    fn: 'try_to_wake_up',
                    cost: 150,
                    calls: [{ fn: 'enqueue_task_fair', cost: 80 }],
                  },
                ]),
              ],
            },
            { fn: 'napi_complete_done', cost: 30 },
          ],
        },
      ],
    },
  ],
};

function recursionCall(depth: number): CallSpec {
  // link_path_walk follows nested symlinks recursively; the kernel stops at MAXSYMLINKS (40).
  let inner: CallSpec = { fn: 'lookup_fast', cost: 40 };
  for (let d = 0; d < depth; d++) {
    inner = {
      fn: 'link_path_walk',
      cost: 30,
      calls: [
        { fn: 'walk_component', cost: 20, calls: [{ fn: 'pick_link', cost: 30, calls: [inner] }] },
      ],
    };
  }
  return inner;
}

export const BUILTIN_WORKLOADS = ['syscalls', 'timer', 'net-rx', 'recursion'] as const;
export type BuiltinWorkloadName = (typeof BUILTIN_WORKLOADS)[number];

/** A built-in workload for an arch, as a WorkloadSpec (the same shape a JSON file has). */
export function builtinWorkload(name: string, arch: ArchName): WorkloadSpec | KernelError {
  switch (name) {
    case 'syscalls':
      return {
        name,
        description: 'read/write/openat/close from several tasks',
        tasks: [
          {
            comm: 'bash',
            pid: 1977,
            loops: 20,
            calls: [
              syscall(arch, 'read', [0, '0x7ffd0000', 128], [readPath(arch, 0, 128)], 128),
              syscall(arch, 'write', [1, '0x7ffd1000', 64], [writePath(arch, 1, 64)], 64),
            ],
          },
          {
            comm: 'cat',
            pid: 2001,
            loops: 20,
            calls: [
              syscall(arch, 'openat', [-100, '0x7ffd2000', 0], [openPath], 3),
              syscall(arch, 'read', [3, '0x7ffd0000', 4096], [readPath(arch, 3, 4096)], 4096),
              syscall(arch, 'close', [3], [closePath], 0),
            ],
          },
          {
            comm: 'sshd',
            pid: 1234,
            loops: 20,
            calls: [syscall(arch, 'write', [4, '0x7ffd1000', 512], [writePath(arch, 4, 512)], 512)],
          },
          {
            comm: 'logger',
            pid: 3003,
            loops: 10,
            calls: [
              syscall(arch, 'openat', [-100, '0x7ffd2000', 0], [openPath], 3),
              syscall(arch, 'write', [3, '0x7ffd1000', 80], [writePath(arch, 3, 80)], 80),
              syscall(arch, 'close', [3], [closePath], 0),
            ],
          },
        ],
      };
    case 'timer':
      return {
        name,
        description: 'a busy task interrupted by the scheduler tick every 4 us of simulated time',
        tasks: [
          {
            comm: 'stress',
            pid: 500,
            loops: 200,
            calls: [syscall(arch, 'read', [0, '0x7ffd0000', 64], [readPath(arch, 0, 64)], 64)],
          },
        ],
        irqs: [{ name: 'timer', context: 'hardirq', periodNs: 4000, calls: [timerIrq(arch)] }],
      };
    case 'net-rx':
      return {
        name,
        description: 'NET_RX softirq delivering TCP segments while a server reads',
        tasks: [
          {
            comm: 'nginx',
            pid: 800,
            loops: 100,
            calls: [
              syscall(
                arch,
                'read',
                [5, '0x7ffd0000', 1448],
                [
                  {
                    fn: 'ksys_read',
                    args: [5, '0x7ffd0000', 1448],
                    cost: 30,
                    ret: 1448,
                    calls: [
                      {
                        fn: 'vfs_read',
                        cost: 40,
                        ret: 1448,
                        calls: [
                          {
                            fn: 'sock_read_iter',
                            cost: 30,
                            ret: 1448,
                            calls: [
                              {
                                fn: 'sock_recvmsg',
                                cost: 30,
                                ret: 1448,
                                calls: [
                                  {
                                    fn: 'tcp_recvmsg',
                                    cost: 200,
                                    ret: 1448,
                                    calls: [
                                      {
                                        fn: 'skb_copy_datagram_iter',
                                        args: [0, 0, 0, 1448],
                                        cost: 300,
                                      },
                                      {
                                        fn: 'consume_skb',
                                        cost: 40,
                                        calls: [{ fn: 'kfree', cost: 30 }],
                                      },
                                    ],
                                  },
                                ],
                              },
                            ],
                          },
                        ],
                      },
                    ],
                  },
                ],
                1448,
              ),
            ],
          },
        ],
        irqs: [{ name: 'net-rx', context: 'softirq', periodNs: 3000, calls: [netRxSoftirq] }],
      };
    case 'recursion':
      return {
        name,
        description: 'path walk through 40 nested symlinks (MAXSYMLINKS)',
        tasks: [
          {
            comm: 'find',
            pid: 4242,
            loops: 5,
            calls: [
              syscall(
                arch,
                'openat',
                [-100, '0x7ffd2000', 0],
                [
                  {
                    fn: 'do_sys_openat2',
                    cost: 40,
                    ret: 3,
                    calls: [
                      {
                        fn: 'do_filp_open',
                        cost: 50,
                        calls: [{ fn: 'path_openat', cost: 60, calls: [recursionCall(40)] }],
                      },
                    ],
                  },
                ],
                3,
              ),
            ],
          },
        ],
      };
    default:
      return new KernelError(
        'ENOENT',
        `no built-in workload '${name}' (have ${BUILTIN_WORKLOADS.join(', ')})`,
      );
  }
}

// ---- replay of a function_graph trace ----

const GRAPH_LINE = /^\s*(\d+)\)\s+(?:([+!#*@$])\s*)?(?:([\d.]+)\s+us\s+)?\|\s*(.*)$/;

/**
 * Turns a function_graph text trace into a workload: each CPU's calls replay as one task with
 * the same call tree; a function's cost is its duration minus its children's.
 */
export function replayWorkload(text: string, name = 'replay'): WorkloadSpec | KernelError {
  interface Open {
    spec: CallSpec;
    childNs: number;
  }
  const perCpu = new Map<number, { roots: CallSpec[]; stack: Open[] }>();
  const lines = text.split('\n');
  for (const [ln, line] of lines.entries()) {
    if (
      line.trim() === '' ||
      line.startsWith('#') ||
      /^\s*-+\s*$/.test(line) ||
      line.includes('=>')
    )
      continue;
    const m = GRAPH_LINE.exec(line);
    if (m === null)
      return new KernelError(
        'EINVAL',
        `replay line ${ln + 1}: not a function_graph row: '${line.trim()}'`,
      );
    const cpu = Number(m[1]);
    const dur = m[3] === undefined ? 0 : Math.round(Number(m[3]) * 1000);
    const body = (m[4] as string).trim();
    let st = perCpu.get(cpu);
    if (st === undefined) perCpu.set(cpu, (st = { roots: [], stack: [] }));
    const add = (spec: CallSpec): void => {
      const top = st.stack[st.stack.length - 1];
      if (top === undefined) st.roots.push(spec);
      else (top.spec.calls ??= []).push(spec);
    };
    let fm: RegExpExecArray | null;
    if ((fm = /^([A-Za-z_][\w.]*)\(\)\s*\{$/.exec(body)) !== null) {
      const spec: CallSpec = { fn: fm[1] as string, cost: 0 };
      add(spec);
      st.stack.push({ spec, childNs: 0 });
    } else if ((fm = /^([A-Za-z_][\w.]*)\(\);$/.exec(body)) !== null) {
      add({ fn: fm[1] as string, cost: dur });
      const top = st.stack[st.stack.length - 1];
      if (top !== undefined) top.childNs += dur;
    } else if (/^\}/.test(body)) {
      const open = st.stack.pop();
      if (open === undefined)
        return new KernelError('EINVAL', `replay line ${ln + 1}: '}' closes no call`);
      open.spec.cost = Math.max(0, dur - open.childNs);
      const top = st.stack[st.stack.length - 1];
      if (top !== undefined) top.childNs += dur;
    } else {
      return new KernelError('EINVAL', `replay line ${ln + 1}: cannot read '${body}'`);
    }
  }
  if (perCpu.size === 0)
    return new KernelError('EINVAL', 'replay: the trace has no function_graph rows');
  const cpus = [...perCpu.keys()].sort((a, b) => a - b);
  return {
    name,
    cpus: Math.max(...cpus) + 1,
    tasks: cpus.map((cpu, i) => ({
      comm: `replay-${cpu}`,
      pid: 100 + i,
      cpu,
      calls: (perCpu.get(cpu) as { roots: CallSpec[] }).roots,
    })),
  };
}
