import { type Btf, parseBtf } from '@tracelab/btf';
import {
  AddressSpace,
  BPF_CALL,
  BPF_EXIT,
  BPF_JMP,
  BPF_PSEUDO_CALL,
  BPF_PSEUDO_FUNC,
  BPF_PSEUDO_MAP_IDX,
  BPF_PSEUDO_MAP_IDX_VALUE,
  type BpfMap,
  type HelperFn,
  type Insn,
  type KernelEnv,
  MapTable,
  PROT_READ,
  Program,
  ProgArray,
  Vm,
  VmError,
  installHelpers,
  mapResolver,
} from '@tracelab/vm';
import type { LineInfo } from './btf-ext.js';
import { LoaderError, wrapErrors } from './errors.js';
import { type LinkOptions, type LinkResult, type LinkedProgram, linkObject } from './link.js';
import {
  BPF_F_RDONLY_PROG,
  type DataVar,
  type MapDef,
  type ParsedObject,
  type ProgramDef,
  mapTypeName,
  parseObject,
} from './object.js';

/** bpf_loop's helper id and its iteration limit (BPF_MAX_LOOPS). */
export const BPF_FUNC_loop = 181;
export const BPF_MAX_LOOPS = 1 << 23;
/** Where callback handles (lddw of a function address) point: a fake kernel text range. */
const CALLBACK_BASE = 0xffffffffa0000000n;
/** The nested vm that runs bpf_loop callbacks has its stack here. */
const CALLBACK_STACK_BASE = 0xffffc90000100000n;

/** A program of an opened object, as bpf_program__* accessors describe it. */
export interface BpfProgramInfo {
  name: string;
  section: string;
  progType: string;
  attachType: string | undefined;
  attachTarget: string;
  sleepable: boolean;
  retprobe: boolean;
  insnCount: number;
}

/**
 * A map of an opened object. Its size and initial data may be changed until the object is
 * loaded (bpf_map__set_max_entries, bpf_map__set_initial_value, skeleton rodata writes).
 */
export class BpfObjectMap {
  constructor(
    private readonly def: MapDef,
    private readonly owner: BpfObject,
    readonly index: number,
  ) {}

  get name(): string {
    return this.def.name;
  }
  get type(): number {
    return this.def.type;
  }
  get typeName(): string {
    return mapTypeName(this.def.type);
  }
  get keySize(): number {
    return this.def.keySize;
  }
  get valueSize(): number {
    return this.def.valueSize;
  }
  get maxEntries(): number {
    return this.def.maxEntries;
  }
  get mapFlags(): number {
    return this.def.mapFlags;
  }
  get source(): string {
    return this.def.source;
  }
  get section(): string {
    return this.def.section;
  }
  get vars(): readonly DataVar[] {
    return this.def.vars;
  }
  /** A copy of the initial value of a global-data map (undefined for other maps). */
  get initialValue(): Uint8Array | undefined {
    return this.def.data?.slice();
  }

  setMaxEntries(n: number): void {
    this.owner.checkOpen('set max_entries');
    if (!Number.isInteger(n) || n <= 0)
      throw new LoaderError('EINVAL', `map '${this.name}': max_entries ${n} must be > 0`, {
        section: this.def.section,
      });
    if (this.def.source === 'data' || this.def.source === 'kconfig')
      throw new LoaderError('EINVAL', `map '${this.name}' holds global data: it has one entry`, {
        section: this.def.section,
      });
    this.def.maxEntries = n;
  }

  /** Replaces the whole initial value of a global-data map (bpf_map__set_initial_value). */
  setInitialValue(bytes: Uint8Array): void {
    this.owner.checkOpen('set the initial value');
    if (this.def.data === undefined || this.def.source === 'kconfig')
      throw new LoaderError('EINVAL', `map '${this.name}' has no initial value`, {
        section: this.def.section,
      });
    if (bytes.length !== this.def.valueSize)
      throw new LoaderError(
        'EINVAL',
        `map '${this.name}': initial value has ${bytes.length} bytes, value_size is ${this.def.valueSize}`,
        { section: this.def.section },
      );
    this.def.data = bytes.slice();
  }

  /** Writes one variable of a global-data map (.rodata knobs before load), in object byte order. */
  setVar(name: string, value: number | bigint | boolean | Uint8Array): void {
    this.owner.checkOpen('set a variable');
    const v = this.def.vars.find((x) => x.name === name);
    if (v === undefined || this.def.data === undefined)
      throw new LoaderError('ENOENT', `map '${this.name}' has no variable '${name}'`, {
        section: this.def.section,
      });
    const where = { section: this.def.section, offset: v.offset };
    const data = this.def.data;
    if (value instanceof Uint8Array) {
      if (value.length !== v.size)
        throw new LoaderError(
          'EINVAL',
          `'${name}' has ${v.size} bytes, got ${value.length}`,
          where,
        );
      data.set(value, v.offset);
      return;
    }
    const n = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const le = this.owner.littleEndian;
    switch (v.size) {
      case 1:
        dv.setUint8(v.offset, Number(BigInt.asUintN(8, n)));
        break;
      case 2:
        dv.setUint16(v.offset, Number(BigInt.asUintN(16, n)), le);
        break;
      case 4:
        dv.setUint32(v.offset, Number(BigInt.asUintN(32, n)), le);
        break;
      case 8:
        dv.setBigUint64(v.offset, BigInt.asUintN(64, n), le);
        break;
      default:
        throw new LoaderError('EINVAL', `'${name}' of ${v.size} bytes is not an integer`, where);
    }
  }
}

export interface LoadOptions {
  /** The address space maps live in (a fresh one by default). */
  memory?: AddressSpace;
  /** Kernel state helpers read (time, current task...); a deterministic fake by default. */
  env?: KernelEnv;
  /** Extra or replacement helpers by id. */
  helpers?: Record<number, HelperFn>;
  /** kfunc bodies by name, bound to the FUNC ids of the target BTF. */
  kfuncs?: Record<string, HelperFn>;
  /** Instruction budget per run. */
  budget?: number;
}

/** The result of one program run. */
export interface RunResult {
  /** 0, or the negative errno the run failed with. */
  ret: number;
  r0: bigint;
  error: VmError | null;
  /** The source line (from line_info) of the instruction a failed run stopped at. */
  line: LineInfo | undefined;
}

/** A deterministic kernel environment for programs run outside a simulated kernel. */
export function fakeKernelEnv(): KernelEnv & { printk: string[] } {
  let now = 1_000_000n;
  let seed = 0x2545f491;
  const printk: string[] = [];
  return {
    printk,
    ktimeGetNs: () => (now += 1000n),
    smpProcessorId: () => 0,
    currentPidTgid: () => (1000n << 32n) | 1000n,
    currentComm: () => new TextEncoder().encode('tracelab'),
    currentTask: () => 0n,
    stack: () => [],
    tracePrintk: (line) => printk.push(line),
    prandomU32: () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed;
    },
  };
}

/** An object whose programs and maps now live in a vm address space. */
export class LoadedObject {
  readonly programs = new Map<string, Program>();
  readonly maps = new Map<string, BpfMap>();
  private readonly callbacks: (Program | undefined)[] = [];
  private nestedVm: Vm | undefined;

  constructor(
    readonly object: BpfObject,
    readonly linked: LinkResult,
    readonly memory: AddressSpace,
    readonly table: MapTable,
    readonly vm: Vm,
    readonly env: KernelEnv,
  ) {}

  program(name: string): Program {
    const p = this.programs.get(name);
    if (p === undefined) throw new LoaderError('ENOENT', `no program '${name}'`);
    return p;
  }

  map(name: string): BpfMap {
    const m = this.maps.get(name);
    if (m === undefined) throw new LoaderError('ENOENT', `no map '${name}'`);
    return m;
  }

  /** Runs a program with r1 = ctx. */
  run(name: string, ctx = 0n): RunResult {
    const ret = this.vm.run(this.program(name), ctx);
    const line = ret === 0 ? undefined : this.lineAt(name, this.vm.errorPc);
    return { ret, r0: this.vm.r0, error: this.vm.error, line };
  }

  /** The line_info record covering instruction insn of a linked program (for logs). */
  lineAt(name: string, insn: number): LineInfo | undefined {
    const lp = this.linked.programs.find((p) => p.def.name === name);
    let best: LineInfo | undefined;
    for (const li of lp?.lineInfo ?? []) {
      if (li.insnOff <= insn && (best === undefined || li.insnOff >= best.insnOff)) best = li;
    }
    return best;
  }

  /** Reserves a callback entry (for bpf_loop) and returns the handle its lddw loads. */
  reserveCallback(): { handle: bigint; set: (prog: Program) => void } {
    const k = this.callbacks.length;
    this.callbacks.push(undefined);
    return {
      handle: CALLBACK_BASE + BigInt(k * 16),
      set: (prog) => {
        this.callbacks[k] = prog;
      },
    };
  }

  /** bpf_loop(nr_loops, callback_fn, callback_ctx, flags) on a nested vm sharing memory. */
  loopHelper(v: Vm): number {
    const nr = v.argNum(1);
    const handle = v.arg(2);
    const ctx = v.arg(3);
    if (v.arg(4) !== 0n) return -22;
    if (nr > BPF_MAX_LOOPS) return -7;
    const k = Number((handle - CALLBACK_BASE) / 16n);
    const cb = handle >= CALLBACK_BASE ? this.callbacks[k] : undefined;
    if (cb === undefined) return -22;
    if (this.nestedVm === undefined) {
      const nested = Vm.create({ memory: this.memory, stackBase: CALLBACK_STACK_BASE });
      if (nested instanceof VmError) {
        v.abort(nested);
        return 0;
      }
      for (let id = 0; id < v.helpers.length; id++) {
        const h = v.helpers[id];
        if (h !== undefined) nested.setHelper(id, h);
      }
      this.nestedVm = nested;
    }
    const nested = this.nestedVm;
    for (let i = 0; i < nr; i++) {
      const ret = nested.run(cb, BigInt(i), ctx);
      if (ret !== 0) {
        v.abort(nested.error ?? new VmError('EINVAL', 'bpf_loop callback failed'));
        return 0;
      }
      if (nested.r0 !== 0n) return i + 1;
    }
    return nr;
  }
}

/**
 * A BPF ELF object in libbpf's spirit: open() parses and checks it, the accessors inspect it,
 * setters change map sizes, global data, target BTF and externs, link() applies every
 * relocation, and load() places maps and programs in a vm address space.
 */
export class BpfObject {
  private loaded = false;
  private targetBtf: Btf | undefined;
  private externs: Pick<LinkOptions, 'kconfig' | 'ksym'> = {};
  private readonly mapList: BpfObjectMap[];

  private constructor(
    readonly name: string,
    readonly parsed: ParsedObject,
  ) {
    this.mapList = parsed.maps.map((m, k) => new BpfObjectMap(m, this, k));
  }

  /** Parses an object (bpf_object__open_mem); hostile bytes give a LoaderError, never a crash. */
  static open(bytes: Uint8Array, options: { name?: string } = {}): BpfObject {
    const parsed = wrapErrors({}, 'open', () => parseObject(bytes));
    return new BpfObject(options.name ?? 'obj', parsed);
  }

  get littleEndian(): boolean {
    return this.parsed.elf.littleEndian;
  }
  get license(): string {
    return this.parsed.license;
  }
  get kernVersion(): number {
    return this.parsed.kernVersion;
  }
  get btf(): Btf | undefined {
    return this.parsed.btf;
  }

  /** @internal Throws once the object is loaded (libbpf returns -EBUSY there). */
  checkOpen(what: string): void {
    if (this.loaded) throw new LoaderError('EINVAL', `cannot ${what} after load`);
  }

  programs(): BpfProgramInfo[] {
    return this.parsed.programs.map(programInfo);
  }

  program(name: string): BpfProgramInfo {
    const p = this.parsed.programs.find((x) => x.name === name);
    if (p === undefined) throw new LoaderError('ENOENT', `no program '${name}'`);
    return programInfo(p);
  }

  maps(): readonly BpfObjectMap[] {
    return this.mapList;
  }

  map(name: string): BpfObjectMap {
    const m = this.mapList.find((x) => x.name === name);
    if (m === undefined) throw new LoaderError('ENOENT', `no map '${name}'`);
    return m;
  }

  /** The BTF CO-RE relocations resolve against: a parsed Btf or raw BTF bytes. */
  setTargetBtf(btf: Btf | Uint8Array): void {
    this.checkOpen('set the target BTF');
    this.targetBtf =
      btf instanceof Uint8Array
        ? wrapErrors({ section: 'target BTF' }, 'invalid target BTF', () => parseBtf(btf).index())
        : btf;
  }

  setKconfig(values: NonNullable<LinkOptions['kconfig']>): void {
    this.checkOpen('set kconfig values');
    this.externs = { ...this.externs, kconfig: values };
  }

  setKsymResolver(resolve: NonNullable<LinkOptions['ksym']>): void {
    this.checkOpen('set the ksym resolver');
    this.externs = { ...this.externs, ksym: resolve };
  }

  /** Applies CO-RE, map, data, extern and call relocations; appends subprograms. */
  link(): LinkResult {
    const opts: LinkOptions = { ...this.externs };
    if (this.targetBtf !== undefined) opts.targetBtf = this.targetBtf;
    return linkObject(this.parsed, opts);
  }

  /** Creates the maps in a vm MapTable, fills global data, and loads every program. */
  load(options: LoadOptions = {}): LoadedObject {
    this.checkOpen('load the object again');
    if (!this.littleEndian) {
      // The vm's memory is little-endian: big-endian global data would read back swapped.
      throw new LoaderError('EOPNOTSUPP', 'big-endian objects link but do not load into the vm', {
        section: 'ELF header',
        offset: 5,
      });
    }
    const linked = this.link();
    const memory = options.memory ?? new AddressSpace();
    const table = new MapTable(memory);
    const ids: number[] = [];
    const vmOpts: { memory: AddressSpace; budget?: number } = { memory };
    if (options.budget !== undefined) vmOpts.budget = options.budget;
    const vm = Vm.create(vmOpts);
    if (vm instanceof VmError) throw new LoaderError(vm.errno as 'EINVAL', vm.message);
    const env = options.env ?? fakeKernelEnv();
    const loaded = new LoadedObject(this, linked, memory, table, vm, env);
    this.parsed.maps.forEach((def) => {
      const where = { section: def.section, offset: def.sectionOffset };
      const m = table.create({
        type: def.type,
        keySize: def.keySize,
        valueSize: def.valueSize,
        maxEntries: def.maxEntries,
        name: def.name,
      });
      if (m instanceof VmError)
        throw new LoaderError(
          m.errno === 'E2BIG' ? 'E2BIG' : 'EINVAL',
          `map '${def.name}': ${m.message}`,
          where,
        );
      const init = def.source === 'kconfig' ? linked.kconfigData : def.data;
      if (init !== undefined) {
        const err = m.update(new Uint8Array(4), init, 0);
        if (err !== null)
          throw new LoaderError('EINVAL', `map '${def.name}': ${err.message}`, where);
      }
      ids.push(m.id);
      loaded.maps.set(def.name, m);
    });
    installHelpers(vm, table, env);
    // A vm without its own bpf_loop gets the loader's, which runs callbacks on a nested vm.
    if (vm.helpers[BPF_FUNC_loop] === undefined)
      vm.setHelper(BPF_FUNC_loop, (v) => loaded.loopHelper(v));
    for (const [id, fn] of Object.entries(options.helpers ?? {})) vm.setHelper(Number(id), fn);
    for (const [name, fn] of Object.entries(options.kfuncs ?? {})) {
      const id = this.targetBtf?.find(name, 'func');
      if (id === undefined)
        throw new LoaderError('ENOENT', `kfunc '${name}' has no FUNC in the target BTF`);
      vm.kfuncs.set(id, fn);
    }
    const resolveMaps = mapResolver(table);
    for (const lp of linked.programs) {
      // One callback entry per target; the handle exists before its program is built because
      // the callback's own copy of the code holds the same lddw.
      const cbHandles = new Map<number, bigint>();
      const resolve = (i: Insn, index: number): bigint | VmError => {
        if (i.src === BPF_PSEUDO_FUNC) {
          const target = index + 1 + i.imm;
          const have = cbHandles.get(target);
          if (have !== undefined) return have;
          const slot = loaded.reserveCallback();
          cbHandles.set(target, slot.handle);
          slot.set(callbackProgram(lp, target, resolve));
          return slot.handle;
        }
        if (i.src === BPF_PSEUDO_MAP_IDX || i.src === BPF_PSEUDO_MAP_IDX_VALUE) {
          const id = ids[i.imm];
          if (id === undefined) return new VmError('EINVAL', `insn ${index}: no map #${i.imm}`);
          return resolveMaps({ ...i, imm: id }, index);
        }
        return resolveMaps(i, index);
      };
      const prog = Program.load(lp.insns, { name: lp.def.name, resolveLddw: resolve });
      if (prog instanceof VmError)
        throw new LoaderError('EINVAL', `program '${lp.def.name}': ${prog.message}`, {
          section: lp.def.section,
          offset: lp.def.insnOff * 8,
        });
      loaded.programs.set(lp.def.name, prog);
    }
    // Prog array slots the object initialises name programs of the object.
    for (const def of this.parsed.maps) {
      const m = loaded.maps.get(def.name);
      for (const { slot, symbol } of def.initSlots) {
        const prog = loaded.programs.get(symbol);
        const where = { section: '.maps', offset: def.sectionOffset };
        if (!(m instanceof ProgArray) || prog === undefined)
          throw new LoaderError(
            'EINVAL',
            `map '${def.name}' slot ${slot}: '${symbol}' is not a program of a prog array`,
            where,
          );
        const err = m.set(slot, prog);
        if (err !== null)
          throw new LoaderError('EINVAL', `map '${def.name}': ${err.message}`, where);
      }
    }
    // Read-only data (.rodata, .kconfig) is frozen: a program store into it faults.
    this.parsed.maps.forEach((def, k) => {
      const m = loaded.maps.get(def.name);
      if ((def.mapFlags & BPF_F_RDONLY_PROG) !== 0 && m?.values != null && ids[k] !== undefined)
        memory.protect(m.values.base, PROT_READ);
    });
    this.loaded = true;
    return loaded;
  }
}

/**
 * A program entered at insn `target` of a linked program: a two-slot stub (call target; exit)
 * before the linked code, so callbacks run with the program's own subprogram layout.
 */
function callbackProgram(
  lp: LinkedProgram,
  target: number,
  resolve: (i: Insn, index: number) => bigint | VmError,
): Program {
  const stub: Insn[] = [
    { code: BPF_JMP | BPF_CALL, dst: 0, src: BPF_PSEUDO_CALL, off: 0, imm: target + 1, imm2: 0 },
    { code: BPF_JMP | BPF_EXIT, dst: 0, src: 0, off: 0, imm: 0, imm2: 0 },
  ];
  const p = Program.load([...stub, ...lp.insns], {
    name: `${lp.def.name}:cb${target}`,
    resolveLddw: (i, index) => resolve(i, index - 2),
  });
  if (p instanceof VmError)
    throw new LoaderError('EINVAL', `callback at insn ${target}: ${p.message}`, {
      section: lp.def.section,
    });
  return p;
}

function programInfo(p: ProgramDef): BpfProgramInfo {
  return {
    name: p.name,
    section: p.section,
    progType: p.info.def.progType,
    attachType: p.info.def.attachType,
    attachTarget: p.info.attachTarget,
    sleepable: p.info.def.sleepable,
    retprobe: p.info.def.retprobe,
    insnCount: p.insnCnt,
  };
}
