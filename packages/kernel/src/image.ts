import {
  archInfo,
  encodeEntryNop,
  entrySiteInfo,
  type ArchName,
  type FuncModelLike,
} from '@tracelab/arch-isa';
import {
  BTF_FUNC_GLOBAL,
  MAX_BPF_FUNC_REG_ARGS,
  BtfBuilder,
  funcModel,
  parseBtf,
  type Btf,
} from '@tracelab/btf';
import {
  BUILTIN_IMAGE,
  BUILTIN_TRACEPOINTS,
  type ImageGroup,
  type TracepointDecl,
} from './builtin-image.js';
import { KernelError } from './errors.js';
import { globToRegExp } from './glob.js';

/** Bytes reserved after the image for code made at run time (ftrace and BPF trampolines). */
export const TRAMPOLINE_AREA_SIZE = 0x100000;

/** The kernel's model for a function without a prototype: five 8-byte arguments. */
const NO_PROTO_MODEL: FuncModelLike = {
  retSize: 8,
  retFlags: 0,
  nrArgs: MAX_BPF_FUNC_REG_ARGS,
  argSize: new Array<number>(MAX_BPF_FUNC_REG_ARGS).fill(8),
  argFlags: new Array<number>(MAX_BPF_FUNC_REG_ARGS).fill(0),
};

/** One function of the image, as kallsyms and available_filter_functions describe it. */
export interface FunctionInfo {
  readonly index: number;
  readonly name: string;
  readonly addr: bigint;
  readonly size: number;
  readonly module: string | null;
  /** False for notrace functions: no patchable entry, never listed as traceable. */
  readonly traceable: boolean;
  /** The BTF FUNC id, 0 without BTF. */
  readonly btfId: number;
}

interface ParsedProto {
  notrace: boolean;
  ret: string;
  name: string;
  params: { type: string; name: string }[];
  variadic: boolean;
}

/** Parses the restricted C prototypes of builtin-image.ts. */
export function parseProto(text: string): ParsedProto | KernelError {
  const m = /^(notrace\s+)?(.+?)\s*\b([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)$/.exec(text.trim());
  if (m === null)
    return new KernelError('EINVAL', `prototype '${text}' is not 'type name(params)'`);
  const [, notrace, ret, name, list] = m as unknown as [
    string,
    string | undefined,
    string,
    string,
    string,
  ];
  const params: { type: string; name: string }[] = [];
  let variadic = false;
  const parts = list.trim() === 'void' || list.trim() === '' ? [] : list.split(',');
  for (const [i, raw] of parts.entries()) {
    const p = raw.trim();
    if (p === '...') {
      variadic = true;
      continue;
    }
    const pm = /^(.*?[\s*])([A-Za-z_][A-Za-z0-9_]*)$/.exec(p);
    if (pm === null) {
      return new KernelError(
        'EINVAL',
        `prototype of ${name}: parameter ${i + 1} '${p}' has no name`,
      );
    }
    params.push({ type: (pm[1] as string).trim(), name: pm[2] as string });
  }
  return { notrace: notrace !== undefined, ret: ret.trim(), name, params, variadic };
}

/** Encodes prototypes to BTF the way pahole would for these declarations. */
class ProtoEncoder {
  declare readonly b: BtfBuilder;
  private readonly ids = new Map<string, number>();
  declare private readonly ws: number;

  constructor(arch: ArchName) {
    this.ws = archInfo(arch).wordSize;
    this.b = new BtfBuilder({ ptrSize: this.ws });
    const b = this.b;
    const int = (name: string, size: number, signed: boolean): number => {
      const id = b.int(name, size, { signed });
      this.ids.set(name, id);
      return id;
    };
    this.ids.set('char', b.int('char', 1, { char: true }));
    this.ids.set('bool', b.int('_Bool', 1, { bool: true }));
    const uchar = int('unsigned char', 1, false);
    const ushort = int('short unsigned int', 2, false);
    const sint = int('int', 4, true);
    const uint = int('unsigned int', 4, false);
    const slong = int('long', this.ws, true);
    const ulong = int('unsigned long', this.ws, false);
    const sll = int('long long', 8, true);
    const ull = int('unsigned long long', 8, false);
    this.ids.set('unsigned short', ushort);
    this.ids.set('long int', slong);
    const td = (name: string, to: number): void => void this.ids.set(name, b.typedef(name, to));
    td('u8', uchar);
    td('u16', ushort);
    td('u32', uint);
    td('u64', ull);
    td('s32', sint);
    td('s64', sll);
    td('size_t', ulong);
    td('ssize_t', slong);
    td('loff_t', sll);
    td('gfp_t', uint);
    td('fmode_t', uint);
    td('umode_t', ushort);
    td('pid_t', sint);
    td('ktime_t', this.ids.get('s64') as number);
    td('pteval_t', this.ids.get('u64') as number);
    const pte = b.struct('', [{ name: 'pte', type: this.ids.get('pteval_t') as number }]);
    td('pte_t', pte);
    td('raw_spinlock_t', b.struct('raw_spinlock', [{ name: 'val', type: uint }]));
    td('nodemask_t', b.struct('', [{ name: 'bits', type: b.array(ulong, 1) }]));
    this.taskStruct(sint, uint, ull);
    this.file(uint);
    this.ptRegs(arch, ulong);
  }

  /** task_struct with the members tracers read; the kernel lays its objects out by BTF. */
  private taskStruct(sint: number, uint: number, ull: number): void {
    const b = this.b;
    const task = b.reserve();
    this.ids.set('struct task_struct', task);
    const voidp = b.ptr(0);
    const comm = b.array(this.ids.get('char') as number, 16);
    const layout = b.layout('struct', 'task_struct', [
      { name: '__state', type: uint },
      { name: 'stack', type: voidp },
      { name: 'flags', type: uint },
      { name: 'on_cpu', type: sint },
      { name: 'prio', type: sint },
      { name: 'pid', type: this.ids.get('pid_t') as number },
      { name: 'tgid', type: this.ids.get('pid_t') as number },
      { name: 'real_parent', type: b.ptr(task) },
      { name: 'start_time', type: ull },
      { name: 'comm', type: comm },
    ]);
    b.set(task, layout);
  }

  /** struct file with the members tracers read; f_pos is what file_ppos() hands vfs_read. */
  private file(uint: number): void {
    const b = this.b;
    const file = b.struct('file', [
      { name: 'f_mode', type: this.ids.get('fmode_t') as number },
      { name: 'f_flags', type: uint },
      { name: 'f_pos', type: this.ids.get('loff_t') as number },
      { name: 'f_inode', type: b.ptr(this.base('struct inode')) },
      { name: 'private_data', type: b.ptr(0) },
    ]);
    this.ids.set('struct file', file);
  }

  private ptRegs(arch: ArchName, ulong: number): void {
    const fields = archInfo(arch).ptRegs.fields;
    const u32 = this.ids.get('u32') as number;
    const id = this.b.struct(
      'pt_regs',
      fields.map((f) => ({
        name: f.name.replace('.', '_'),
        type: f.size === 8 ? ulong : u32,
        bitsOffset: f.offset * 8,
      })),
    );
    this.ids.set('struct pt_regs', id);
  }

  /**
   * DECLARE_TRACE's `typedef void (*btf_trace_<name>)(void *__data, <args>)`: a typedef of a
   * pointer to a FUNC_PROTO whose unnamed parameters are the probe's data, then TP_PROTO's.
   */
  tracepoint(tp: TracepointDecl): KernelError | null {
    const p = parseProto(`void ${tp.name}(${tp.args})`);
    if (p instanceof KernelError) return p;
    if (p.variadic) return new KernelError('EINVAL', `tracepoint ${tp.name} has variable args`);
    const name = `btf_trace_${tp.name}`;
    if (this.ids.has(name)) {
      return new KernelError('EEXIST', `built-in image defines tracepoint ${tp.name} twice`);
    }
    try {
      const params = [this.b.ptr(0), ...p.params.map((q) => this.type(q.type))];
      this.ids.set(name, this.b.typedef(name, this.b.ptr(this.b.funcProto(0, params))));
    } catch (e) {
      return e instanceof KernelError ? e : new KernelError('EINVAL', `${name}: ${String(e)}`);
    }
    return null;
  }

  type(text: string): number {
    let t = text
      .replace(/\bconst\b/g, '')
      .replace(/\s+/g, ' ')
      .trim();
    let stars = 0;
    while (t.endsWith('*')) {
      stars++;
      t = t.slice(0, -1).trim();
    }
    let id = this.base(t);
    for (let i = 0; i < stars; i++) id = this.b.ptr(id);
    return id;
  }

  private base(t: string): number {
    if (t === 'void') return 0;
    const known = this.ids.get(t);
    if (known !== undefined) return known;
    const m = /^(struct|union|enum) ([A-Za-z_][A-Za-z0-9_]*)$/.exec(t);
    let id: number;
    if (m === null) throw new KernelError('EINVAL', `unknown C type '${t}' in the built-in image`);
    else if (m[1] === 'enum')
      id = this.b.enum(m[2] as string, [[`${(m[2] as string).toUpperCase()}_0`, 0]]);
    else id = this.b.fwd(m[2] as string, m[1] === 'union');
    this.ids.set(t, id);
    return id;
  }
}

/** A deterministic function size from its name (FNV-1a), 16-byte aligned, in [min, max). */
function sizeFromName(name: string, min: number, max: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return min + ((h % (max - min)) & ~15);
}

/** Bytes a notrace function starts with: the frame prologue instead of a patchable entry. */
function prologue(arch: ArchName): Uint8Array {
  switch (arch) {
    case 'x86_64':
      return Uint8Array.of(0x55, 0x48, 0x89, 0xe5); // push %rbp; mov %rsp,%rbp
    case 'i386':
      return Uint8Array.of(0x55, 0x89, 0xe5); // push %ebp; mov %esp,%ebp
    case 'arm64':
      return Uint8Array.of(0xfd, 0x7b, 0xbf, 0xa9); // stp x29, x30, [sp, #-16]!
    case 'riscv64':
      return Uint8Array.of(0x13, 0x01, 0x01, 0xff); // addi sp, sp, -16
  }
}

/** The ftrace entry and exit code: notrace assembly symbols of every image. */
const FTRACE_ASM = new Set([
  'ftrace_caller',
  'ftrace_regs_caller',
  'ftrace_stub',
  'return_to_handler',
]);

interface FuncSpec {
  name: string;
  module: string | null;
  traceable: boolean;
  btfId: number;
}

/**
 * The kernel image: functions with name, address, size, module and BTF prototype, the text bytes
 * holding each traceable function's patchable entry, and a kallsyms-style table.
 */
export class KernelImage {
  declare readonly arch: ArchName;
  declare readonly btf: Btf | null;
  /** The raw BTF the image was built from (the built-in image's is written by the btf writer). */
  declare readonly btfBytes: Uint8Array | null;
  declare readonly functions: readonly FunctionInfo[];
  /** Function addresses split into 32-bit halves for the hot path. */
  declare readonly addrHi: Uint32Array;
  declare readonly addrLo: Uint32Array;
  /** addrLo as int32s, the traced call's view (see PtRegs.i32). */
  declare readonly addrLoI32: Int32Array;
  declare readonly sizes: Uint32Array;
  declare readonly traceable: Uint8Array;
  /** Per function: where execution continues after its patchable entry or prologue. */
  declare readonly bodyOffsets: Uint16Array;
  /** Kernel text: every function, then the module area, then the trampoline area. */
  declare readonly text: Uint8Array;
  declare readonly textBase: bigint;
  /** Offset in `text` where the trampoline area starts. */
  declare readonly trampolineOffset: number;
  private readonly byName = new Map<string, number>();
  private readonly models: (FuncModelLike | null | undefined)[];

  private constructor(
    arch: ArchName,
    specs: readonly FuncSpec[],
    btf: Btf | null,
    btfBytes: Uint8Array | null,
    sizeRange: [number, number],
  ) {
    this.arch = arch;
    this.btf = btf;
    this.btfBytes = btfBytes;
    const info = archInfo(arch);
    this.textBase = info.textBase;
    const n = specs.length;
    this.addrHi = new Uint32Array(n);
    this.addrLo = new Uint32Array(n);
    this.addrLoI32 = new Int32Array(this.addrLo.buffer);
    this.sizes = new Uint32Array(n);
    this.traceable = new Uint8Array(n);
    this.bodyOffsets = new Uint16Array(n);
    this.models = new Array<FuncModelLike | null | undefined>(n);
    const offsets = new Uint32Array(n);
    let off = 0x1000;
    // Built-in functions first, then modules, as the kernel loads them above core text.
    const order: number[] = [];
    for (let i = 0; i < n; i++) if (specs[i]?.module === null) order.push(i);
    for (let i = 0; i < n; i++) if (specs[i]?.module !== null) order.push(i);
    let inModules = false;
    for (const i of order) {
      const s = specs[i] as FuncSpec;
      if (s.module !== null && !inModules) {
        inModules = true;
        off = Math.ceil((off + 0x200000) / 0x200000) * 0x200000;
      }
      const size = sizeFromName(s.name, sizeRange[0], sizeRange[1]);
      offsets[i] = off;
      this.sizes[i] = size;
      off += size;
    }
    this.trampolineOffset = Math.ceil(off / 0x1000) * 0x1000;
    const textSize = this.trampolineOffset + TRAMPOLINE_AREA_SIZE;
    const baseLo = Number(info.textBase & 0xffffffffn);
    if (baseLo + textSize > 2 ** 32) {
      throw new KernelError(
        'E2BIG',
        `${arch} kernel text of ${textSize} bytes crosses a 4 GiB boundary`,
      );
    }
    this.text = new Uint8Array(textSize);
    const baseHi = Number(info.textBase >> 32n);
    const nop = encodeEntryNop(arch);
    const pro = prologue(arch);
    const fns: FunctionInfo[] = [];
    specs.forEach((s, i) => {
      const o = offsets[i] as number;
      this.addrHi[i] = baseHi;
      this.addrLo[i] = baseLo + o;
      this.traceable[i] = s.traceable ? 1 : 0;
      this.bodyOffsets[i] = s.traceable ? entrySiteInfo(arch).bodyOffset : pro.length;
      this.text.set(s.traceable ? nop : pro, o);
      fns.push({
        index: i,
        name: s.name,
        addr: info.textBase + BigInt(o),
        size: this.sizes[i] as number,
        module: s.module,
        traceable: s.traceable,
        btfId: s.btfId,
      });
      if (!this.byName.has(s.name)) this.byName.set(s.name, i);
    });
    this.functions = fns;
    // Offsets were handed out in `order`, so it is already address order.
    this.sortedByAddr = order;
    this.offsets = offsets;
  }

  declare private readonly sortedByAddr: number[];
  declare private readonly offsets: Uint32Array;

  /**
   * The built-in image for an arch, its prototypes encoded to BTF by the btf writer, followed by
   * the `btf_trace_<name>` typedef of each tracepoint.
   */
  static builtin(
    arch: ArchName,
    groups: readonly ImageGroup[] = BUILTIN_IMAGE,
    tracepoints: readonly TracepointDecl[] = BUILTIN_TRACEPOINTS,
  ): KernelImage | KernelError {
    const enc = new ProtoEncoder(arch);
    const specs: FuncSpec[] = [];
    const seen = new Set<string>();
    for (const g of groups) {
      if (g.arches !== undefined && !g.arches.includes(arch)) continue;
      for (const text of g.protos) {
        const p = parseProto(text);
        if (p instanceof KernelError) return p;
        if (seen.has(p.name))
          return new KernelError('EEXIST', `built-in image defines ${p.name} twice`);
        seen.add(p.name);
        let btfId: number;
        try {
          const params = p.params.map((q) => ({ name: q.name, type: enc.type(q.type) }));
          btfId = enc.b.function(p.name, enc.type(p.ret), params, {
            variadic: p.variadic,
            linkage: BTF_FUNC_GLOBAL,
          });
        } catch (e) {
          return e instanceof KernelError
            ? e
            : new KernelError('EINVAL', `${p.name}: ${(e as Error).message}`);
        }
        specs.push({ name: p.name, module: g.module ?? null, traceable: !p.notrace, btfId });
      }
    }
    for (const tp of tracepoints) {
      const err = enc.tracepoint(tp);
      if (err !== null) return err;
    }
    const bytes = enc.b.write();
    const btf = parseBtf(bytes, { ptrSize: archInfo(arch).wordSize });
    return new KernelImage(arch, specs, btf, bytes, [64, 1024]);
  }

  /** An image of every FUNC in a BTF blob (such as /sys/kernel/btf/vmlinux). */
  static fromBtf(arch: ArchName, bytes: Uint8Array): KernelImage | KernelError {
    let btf: Btf;
    try {
      btf = parseBtf(bytes, { ptrSize: archInfo(arch).wordSize });
    } catch (e) {
      return new KernelError('EINVAL', `BTF: ${(e as Error).message}`);
    }
    const specs: FuncSpec[] = btf.funcs().map((f) => ({
      name: f.name,
      module: null,
      traceable: !FTRACE_ASM.has(f.name),
      btfId: f.id,
    }));
    if (specs.length === 0) return new KernelError('ENOENT', 'BTF has no FUNC types');
    // The ftrace trampolines are assembly, so BTF usually lacks them; fgraph and the callers need
    // their addresses, as in a real vmlinux.
    const named = new Set(specs.map((s) => s.name));
    for (const name of FTRACE_ASM) {
      if (name === 'ftrace_regs_caller' && !archInfo(arch).capabilities.withRegs) continue;
      if (!named.has(name)) specs.push({ name, module: null, traceable: false, btfId: 0 });
    }
    // Smaller bodies than the built-in image keep ~56k functions in a few MiB of text.
    return new KernelImage(arch, specs, btf, bytes, [32, 256]);
  }

  get count(): number {
    return this.functions.length;
  }

  /** Function index by name, or -1. */
  indexOf(name: string): number {
    return this.byName.get(name) ?? -1;
  }

  /** Offset of function i's first byte in `text`. */
  textOffset(i: number): number {
    return this.offsets[i] as number;
  }

  /** Function indices whose names match a glob, in address order (kallsyms order). */
  glob(pattern: string): number[] {
    const re = globToRegExp(pattern);
    return this.sortedByAddr.filter((i) => re.test((this.functions[i] as FunctionInfo).name));
  }

  /** The function holding a text offset, or -1 (kallsyms_lookup by offset). */
  indexAtOffset(off: number): number {
    const list = this.sortedByAddr;
    let lo = 0;
    let hi = list.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.offsets[list[mid] as number] as number) <= off) {
        best = list[mid] as number;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (best < 0) return -1;
    return off < (this.offsets[best] as number) + (this.sizes[best] as number) ? best : -1;
  }

  /** kallsyms_lookup: the function and offset an address falls in. */
  lookup(addr: bigint): { fn: FunctionInfo; offset: number } | null {
    const off = addr - this.textBase;
    if (off < 0n || off >= BigInt(this.trampolineOffset)) return null;
    const i = this.indexAtOffset(Number(off));
    if (i < 0) return null;
    return {
      fn: this.functions[i] as FunctionInfo,
      offset: Number(off) - (this.offsets[i] as number),
    };
  }

  /** `sym+0xoff/0xsize [mod]`, as %pS prints an address. */
  symbolize(addr: bigint): string {
    const hit = this.lookup(addr);
    if (hit === null) return `0x${addr.toString(16)}`;
    const mod = hit.fn.module === null ? '' : ` [${hit.fn.module}]`;
    return `${hit.fn.name}+0x${hit.offset.toString(16)}/0x${hit.fn.size.toString(16)}${mod}`;
  }

  /**
   * The function's btf_func_model; null when the prototype cannot be modelled (varargs, struct
   * return, more than 12 args), which callers treat like no prototype.
   */
  model(i: number): FuncModelLike | null {
    const cached = this.models[i];
    if (cached !== undefined) return cached;
    const id = (this.functions[i] as FunctionInfo).btfId;
    if (this.btf === null || id === 0) return (this.models[i] = NO_PROTO_MODEL);
    const res = funcModel(this.btf, id);
    const m = res.ok ? res.model : null;
    this.models[i] = m;
    return m;
  }
}
