import { z } from 'zod';
import { ErrorEnvelopeSchema } from './errors.js';

/**
 * The bpf()-like surface of an agent's kernel on the wire: kernel functions, program load and
 * verify, maps and links. Kernel addresses and u64s are strings (JSON numbers stop at 2^53).
 */

/** A kernel symbol glob as set_ftrace_filter and kallsyms lookups take it: `*`, `?`, `[...]`. */
export const SymbolGlobSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.*?[\]!-]+$/, 'a symbol glob is letters, digits, _ . - and * ? [ ] !');

/** A kernel symbol name (a function, an object name). */
export const SymbolSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z_][A-Za-z0-9_.]*$/, 'a symbol is a C identifier (. allowed for suffixes)');

const u64 = z.string().regex(/^(0|[1-9][0-9]{0,19})$/, 'a u64 in decimal');
/** An fd of the agent's bpf() table: the kernel hands them out from 3. */
export const BpfFdSchema = z.number().int().min(0).max(0x7fffffff);

export const FunctionsRequestSchema = z
  .object({
    pattern: SymbolGlobSchema.default('*'),
    offset: z.number().int().nonnegative().max(0x7fffffff).default(0),
    limit: z.number().int().min(1).max(100_000).default(1000),
  })
  .strict();
export type FunctionsRequest = z.infer<typeof FunctionsRequestSchema>;

/** One function of the kernel image, as kallsyms and available_filter_functions show it. */
export const KernelFunctionSchema = z
  .object({
    name: z.string(),
    /** Hexadecimal, as kallsyms prints it. */
    addr: z.string().regex(/^0x[0-9a-f]+$/),
    size: z.number().int().nonnegative(),
    module: z.string().nullable(),
    /** False for notrace functions: no patchable entry. */
    traceable: z.boolean(),
  })
  .strict();
export type KernelFunction = z.infer<typeof KernelFunctionSchema>;

export const FunctionsReplySchema = z
  .object({
    /** Functions matching the pattern, before offset and limit. */
    total: z.number().int().nonnegative(),
    functions: z.array(KernelFunctionSchema),
  })
  .strict();
export type FunctionsReply = z.infer<typeof FunctionsReplySchema>;

export const ProgTypeSchema = z.enum([
  'socket_filter',
  'kprobe',
  'tracepoint',
  'raw_tracepoint',
  'perf_event',
  'tracing',
  'syscall',
]);
export type ProgType = z.infer<typeof ProgTypeSchema>;

/** expected_attach_type of a tracing program. */
export const TracingAttachTypeSchema = z.enum(['fentry', 'fexit', 'fmod_ret']);

const LogLevelSchema = z.union([z.literal(0), z.literal(1), z.literal(2)]);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/**
 * BPF_PROG_LOAD: eBPF assembly (the vm's syntax; `rN = map_fd[FD, 0] ll` loads a map by fd), or
 * a clang-built BPF ELF object in base64 whose maps are created and programs all loaded.
 */
export const ProgLoadRequestSchema = z.discriminatedUnion('format', [
  z
    .object({
      format: z.literal('asm'),
      text: z
        .string()
        .min(1)
        .max(1 << 20),
      progType: ProgTypeSchema,
      attachType: TracingAttachTypeSchema.optional(),
      /** attach_btf_id by name: the function a tracing program is verified against. */
      attachTarget: SymbolSchema.optional(),
      name: z
        .string()
        .regex(/^[A-Za-z0-9_.]{1,15}$/, 'a program name is 1-15 letters, digits, _ or .')
        .optional(),
      logLevel: LogLevelSchema.default(1),
    })
    .strict(),
  z
    .object({
      format: z.literal('object'),
      object: z
        .string()
        .min(1)
        .max(16 << 20)
        .regex(BASE64, 'an object is base64'),
      /** Load only these programs of the object (bpf_program__set_autoload). */
      programs: z.array(SymbolSchema).max(256).optional(),
      logLevel: LogLevelSchema.default(1),
    })
    .strict(),
]);
export type ProgLoadRequest = z.infer<typeof ProgLoadRequestSchema>;

export const LoadedProgSchema = z
  .object({
    fd: BpfFdSchema,
    name: z.string(),
    progType: ProgTypeSchema,
    attachType: z.enum(['fentry', 'fexit', 'fmod_ret', 'raw_tp']).nullable(),
    attachTarget: z.string(),
    /** The object section it came from, '' for assembly. */
    section: z.string(),
  })
  .strict();
export type LoadedProg = z.infer<typeof LoadedProgSchema>;

export const ProgLoadReplySchema = z
  .object({
    verdict: z.literal('accepted'),
    programs: z.array(LoadedProgSchema.extend({ log: z.string() })),
    /** The object's maps by name, with their fds (none for assembly). */
    maps: z.record(z.string(), BpfFdSchema),
  })
  .strict();
export type ProgLoadReply = z.infer<typeof ProgLoadReplySchema>;

/** A program the verifier (or the loader) refused: the errno envelope plus the verifier log. */
export const ProgRejectedSchema = ErrorEnvelopeSchema.extend({
  verdict: z.literal('rejected'),
  log: z.string(),
}).strict();
export type ProgRejected = z.infer<typeof ProgRejectedSchema>;

/** What the agent answers to a load or verify: accepted, or rejected with the log. */
export const ProgLoadResultSchema = z.union([ProgLoadReplySchema, ProgRejectedSchema]);
export type ProgLoadResult = z.infer<typeof ProgLoadResultSchema>;

export const ProgListReplySchema = z.object({ programs: z.array(LoadedProgSchema) }).strict();
export type ProgListReply = z.infer<typeof ProgListReplySchema>;

/** The map types the vm implements, by the kernel's names (BPF_MAP_TYPE_*, lower case). */
export const MapTypeSchema = z.enum([
  'hash',
  'array',
  'prog_array',
  'perf_event_array',
  'percpu_hash',
  'percpu_array',
  'stack_trace',
  'lru_hash',
  'ringbuf',
]);
export type MapType = z.infer<typeof MapTypeSchema>;

export const MAX_MAP_BYTES = 64 << 20;

export const MapCreateRequestSchema = z
  .object({
    type: MapTypeSchema,
    keySize: z.number().int().nonnegative().max(512),
    valueSize: z.number().int().nonnegative().max(65_536),
    maxEntries: z
      .number()
      .int()
      .min(1)
      .max(1 << 24),
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.]{1,15}$/, 'a map name is 1-15 letters, digits, _ or .')
      .optional(),
  })
  .strict()
  // a wire bound, so one request cannot make the agent reserve gigabytes of map memory
  .refine((m) => (m.keySize + m.valueSize) * m.maxEntries <= MAX_MAP_BYTES, {
    message: `(keySize + valueSize) * maxEntries is at most ${MAX_MAP_BYTES} bytes`,
    path: ['maxEntries'],
  });
export type MapCreateRequest = z.infer<typeof MapCreateRequestSchema>;

export const MapInfoSchema = z
  .object({
    fd: BpfFdSchema,
    name: z.string(),
    /** The kernel's name of the type, or type_N for one the wire does not name. */
    type: z.string(),
    keySize: z.number().int().nonnegative(),
    valueSize: z.number().int().nonnegative(),
    maxEntries: z.number().int().nonnegative(),
  })
  .strict();
export type MapInfo = z.infer<typeof MapInfoSchema>;

export const MapListReplySchema = z.object({ maps: z.array(MapInfoSchema) }).strict();
export type MapListReply = z.infer<typeof MapListReplySchema>;

/** How key and value bytes are written on the wire. */
export const BytesEncodingSchema = z.enum(['hex', 'base64']);
export type BytesEncoding = z.infer<typeof BytesEncodingSchema>;

const bytes = z.string().max(1 << 18);

/** Adds an issue naming `field` when its text is not in the request's encoding. */
function encoded<T extends { encoding: BytesEncoding }>(
  fields: readonly (keyof T & string)[],
): (value: T, ctx: z.RefinementCtx) => void {
  return (value, ctx) => {
    const re = value.encoding === 'hex' ? HEX : BASE64;
    for (const field of fields) {
      if (!re.test(value[field] as string))
        ctx.addIssue({ code: 'custom', path: [field], message: `not ${value.encoding}` });
    }
  };
}

export const MapKeyRequestSchema = z
  .object({ fd: BpfFdSchema, key: bytes, encoding: BytesEncodingSchema.default('hex') })
  .strict()
  .superRefine(encoded(['key']));
export type MapKeyRequest = z.infer<typeof MapKeyRequestSchema>;

export const MapValueReplySchema = z.object({ value: z.string() }).strict();
export type MapValueReply = z.infer<typeof MapValueReplySchema>;

/** BPF_ANY, BPF_NOEXIST, BPF_EXIST. */
export const MapUpdateFlagSchema = z.enum(['any', 'noexist', 'exist']);

export const MapUpdateRequestSchema = z
  .object({
    fd: BpfFdSchema,
    key: bytes,
    value: bytes,
    encoding: BytesEncodingSchema.default('hex'),
    flags: MapUpdateFlagSchema.default('any'),
  })
  .strict()
  .superRefine(encoded(['key', 'value']));
export type MapUpdateRequest = z.infer<typeof MapUpdateRequestSchema>;

export const MapDumpRequestSchema = z
  .object({
    fd: BpfFdSchema,
    encoding: BytesEncodingSchema.default('hex'),
    limit: z.number().int().min(1).max(100_000).default(1000),
  })
  .strict();
export type MapDumpRequest = z.infer<typeof MapDumpRequestSchema>;

export const MapDumpReplySchema = z
  .object({
    map: MapInfoSchema,
    /** Entries in get_next_key order, as bpftool map dump walks them. */
    entries: z.array(z.object({ key: z.string(), value: z.string() }).strict()),
    /** True when the map holds more entries than the limit. */
    truncated: z.boolean(),
  })
  .strict();
export type MapDumpReply = z.infer<typeof MapDumpReplySchema>;

export const FdRequestSchema = z.object({ fd: BpfFdSchema }).strict();
export type FdRequest = z.infer<typeof FdRequestSchema>;

export const FdReplySchema = z.object({ fd: BpfFdSchema }).strict();
export type FdReply = z.infer<typeof FdReplySchema>;

/**
 * BPF_LINK_CREATE. Without attachType the program attaches as its object section says
 * (bpf_program__attach: fentry/vfs_read, kprobe.multi/vfs_*); fentry/fexit/fmod_ret take the
 * target functions (default: the program's attach target); kprobe_multi takes a pattern or syms.
 */
export const LinkCreateRequestSchema = z.discriminatedUnion('attachType', [
  z.object({ attachType: z.literal('section'), progFd: BpfFdSchema }).strict(),
  z
    .object({
      attachType: TracingAttachTypeSchema,
      progFd: BpfFdSchema,
      targets: z.union([SymbolGlobSchema, z.array(SymbolSchema).min(1).max(4096)]).optional(),
    })
    .strict(),
  z
    .object({
      attachType: z.literal('kprobe_multi'),
      progFd: BpfFdSchema,
      pattern: SymbolGlobSchema.optional(),
      syms: z.array(SymbolSchema).min(1).max(4096).optional(),
      /** bpf_get_attach_cookie() per symbol, u64 decimal, in the order of syms. */
      cookies: z.array(u64).max(4096).optional(),
      /** kretprobe.multi: run at function return. */
      retprobe: z.boolean().default(false),
    })
    .strict()
    .refine((v) => (v.pattern === undefined) !== (v.syms === undefined), {
      message: 'give exactly one of pattern and syms',
      path: ['pattern'],
    })
    .refine((v) => v.cookies === undefined || v.cookies.length === v.syms?.length, {
      message: 'cookies need syms, one cookie per symbol',
      path: ['cookies'],
    }),
]);
export type LinkCreateRequest = z.infer<typeof LinkCreateRequestSchema>;

export const LinkInfoSchema = z
  .object({
    fd: BpfFdSchema,
    progFd: BpfFdSchema,
    attachType: z.enum(['fentry', 'fexit', 'fmod_ret', 'kprobe_multi']),
    /** What it attached to: the targets, the glob or the symbols, as asked. */
    target: z.string(),
  })
  .strict();
export type LinkInfo = z.infer<typeof LinkInfoSchema>;

export const LinkListReplySchema = z.object({ links: z.array(LinkInfoSchema) }).strict();
export type LinkListReply = z.infer<typeof LinkListReplySchema>;

/** The bpf() operations an agent answers, one bus subject each. */
export const BPF_OPS = [
  'prog.load',
  'prog.verify',
  'prog.list',
  'prog.close',
  'map.create',
  'map.list',
  'map.dump',
  'map.lookup',
  'map.update',
  'map.delete',
  'map.close',
  'link.create',
  'link.list',
  'link.detach',
] as const;
export type BpfOp = (typeof BPF_OPS)[number];
