import { type Btf, parseBtf } from '@tracelab/btf';
import {
  AddressSpace,
  BPF_PSEUDO_BTF_ID,
  BPF_PSEUDO_MAP_IDX,
  BPF_PSEUDO_MAP_IDX_VALUE,
  type BpfMap,
  type HelperFn,
  type Insn,
  type KernelEnv,
  MapOfMaps,
  MapTable,
  PROT_READ,
  Program,
  ProgArray,
  Vm,
  VmError,
  installHelpers,
  mapResolver,
} from '@tracelab/vm';
import type { ArchName } from '@tracelab/arch-isa';
import type { LineInfo } from './btf-ext.js';
import { dataToLittleEndian } from './byteorder.js';
import { LoaderError, wrapErrors } from './errors.js';
import { type LinkOptions, type LinkResult, linkObject } from './link.js';
import {
  BPF_F_RDONLY_PROG,
  type DataVar,
  type MapDef,
  type ParsedObject,
  type ProgramDef,
  mapTypeName,
  parseObject,
} from './object.js';
import { type ProgramVerdict, rejection, verifyLinked } from './verify.js';

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
  /** Offset of the definition inside its section. */
  get sectionOffset(): number {
    return this.def.sectionOffset;
  }
  get vars(): readonly DataVar[] {
    return this.def.vars;
  }
  /** Map-in-map: the inner map template the outer map is created with. */
  get inner(): Readonly<MapDef> | undefined {
    return this.def.inner;
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
  /**
   * The map table maps are created in, as a kernel's BPF_MAP_CREATE does (its address space
   * then replaces memory); a fresh table by default.
   */
  maps?: MapTable;
  /** Kernel state helpers read (time, current task...); a deterministic fake by default. */
  env?: KernelEnv;
  /** Extra or replacement helpers by id. */
  helpers?: Record<number, HelperFn>;
  /** kfunc bodies by name, bound to the FUNC ids of the target BTF. */
  kfuncs?: Record<string, HelperFn>;
  /** Instruction budget per run. */
  budget?: number;
  /**
   * The kernel's own BTF, which types tracing programs' contexts for the verifier (the kernel
   * uses its vmlinux BTF there, whatever BTF CO-RE resolved against); the target BTF by default.
   * Typed ksyms carry the target BTF's ids, so an object with any needs the same BTF here.
   */
  kernelBtf?: Btf;
  arch?: ArchName;
  /** Verifier log level kept for each program (1 by default, as libbpf retries with). */
  logLevel?: 0 | 1 | 2;
  /**
   * false loads without the verifier, for programs using what it does not model yet. The kernel
   * has no such switch.
   */
  verify?: boolean;
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
  let now = 1_000_000;
  let seed = 0x2545f491;
  const printk: string[] = [];
  return {
    printk,
    ktimeGetNs: (out) => {
      now += 1000;
      out[0] = now | 0;
      out[1] = Math.floor(now / 0x100000000) | 0;
    },
    smpProcessorId: () => 0,
    currentPidTgid: (out) => {
      out[0] = 1000;
      out[1] = 1000;
    },
    currentComm: () => new TextEncoder().encode('tracelab'),
    currentTask: (out) => {
      out[0] = 0;
      out[1] = 0;
    },
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

  constructor(
    readonly object: BpfObject,
    readonly linked: LinkResult,
    /** The verifier's verdict on each program (empty when loaded with verify: false). */
    readonly verdicts: readonly ProgramVerdict[],
    readonly memory: AddressSpace,
    readonly table: MapTable,
    private readonly makeVm: () => Vm,
    readonly env: KernelEnv,
  ) {}

  private runner: Vm | undefined;

  /** The vm run() uses, with the helpers and kfuncs of load(); made on first use. */
  get vm(): Vm {
    this.runner ??= this.makeVm();
    return this.runner;
  }

  program(name: string): Program {
    const p = this.programs.get(name);
    if (p === undefined) throw new LoaderError('ENOENT', `no program '${name}'`);
    return p;
  }

  /** The verifier log of a program, as BPF_PROG_LOAD's log_buf holds it. */
  log(name: string): string {
    this.program(name);
    return this.verdicts.find((v) => v.name === name)?.result.log ?? '';
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
  private readonly noAutoload = new Set<string>();

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

  /** bpf_program__set_autoload: load() skips a program set to false (no verdict, no program). */
  setAutoload(name: string, autoload: boolean): void {
    this.checkOpen('set autoload');
    this.program(name);
    if (autoload) this.noAutoload.delete(name);
    else this.noAutoload.add(name);
  }

  /** Applies CO-RE, map, data, extern and call relocations; appends subprograms. */
  link(): LinkResult {
    const opts: LinkOptions = { ...this.externs };
    if (this.targetBtf !== undefined) opts.targetBtf = this.targetBtf;
    return linkObject(this.parsed, opts);
  }

  /**
   * check_pseudo_btf_id's address: a typed ksym's VAR (or FUNC) of the target BTF, found by name
   * through the ksym resolver (kallsyms).
   */
  private ksymAddress(id: number, index: number): bigint | VmError {
    const btf = this.targetBtf;
    const t = btf !== undefined && id < btf.typeCount ? btf.type(id) : undefined;
    if (t?.kind !== 'var' && t?.kind !== 'func')
      return new VmError('EINVAL', `insn ${index}: ldimm64 insn specifies invalid btf_id ${id}.`);
    const addr = this.externs.ksym?.(t.name);
    if (addr === undefined)
      return new VmError(
        'ENOENT',
        `insn ${index}: ldimm64 failed to find the address for kernel symbol '${t.name}'.`,
      );
    return addr;
  }

  /**
   * bpf_object__load: links, runs the verifier on every program (a rejection is a LoaderError
   * with the verifier's errno, log and source line), creates the maps in a vm MapTable, fills
   * global data (converted to little-endian for a bpfeb object), and loads every program.
   */
  load(options: LoadOptions = {}): LoadedObject {
    this.checkOpen('load the object again');
    const linked = this.link();
    const kernelBtf = options.kernelBtf ?? this.targetBtf;
    // BPF_PROG_LOAD: every program passes the verifier before anything is created.
    // bpf_program__set_autoload(false): such programs are neither verified nor loaded.
    const chosen: LinkResult = {
      ...linked,
      programs: linked.programs.filter((p) => !this.noAutoload.has(p.def.name)),
    };
    const verdicts =
      options.verify === false
        ? []
        : verifyLinked(this.mapList, chosen, {
            logLevel: options.logLevel ?? 1,
            ...(kernelBtf !== undefined ? { btf: kernelBtf } : {}),
            ...(options.arch !== undefined ? { arch: options.arch } : {}),
          });
    const rejected = verdicts.find((v) => !v.result.ok);
    if (rejected !== undefined) throw rejection(rejected);
    const table = options.maps ?? new MapTable(options.memory ?? new AddressSpace());
    const memory = table.memory;
    const ids: number[] = [];
    const env = options.env ?? fakeKernelEnv();
    const kfuncs = Object.entries(options.kfuncs ?? {}).map(([name, fn]): [number, HelperFn] => {
      const id = this.targetBtf?.find(name, 'func');
      if (id === undefined)
        throw new LoaderError('ENOENT', `kfunc '${name}' has no FUNC in the target BTF`);
      return [id, fn];
    });
    // The vm is made on the first run: its stack is mapped in memory, which may be a kernel's.
    const makeVm = (): Vm => {
      const vm = Vm.create({
        memory,
        ...(options.budget !== undefined ? { budget: options.budget } : {}),
      });
      if (vm instanceof VmError) throw new LoaderError(vm.code as 'EINVAL', vm.message);
      installHelpers(vm, table, env);
      for (const [id, fn] of Object.entries(options.helpers ?? {})) vm.setHelper(Number(id), fn);
      for (const [id, fn] of kfuncs) vm.kfuncs.set(id, fn);
      return vm;
    };
    const loaded = new LoadedObject(this, linked, verdicts, memory, table, makeVm, env);
    this.parsed.maps.forEach((def) => {
      const where = { section: def.section, offset: def.sectionOffset };
      const create = (d: MapDef, innerMapId?: number): BpfMap => {
        const m = table.create({
          type: d.type,
          keySize: d.keySize,
          valueSize: d.valueSize,
          maxEntries: d.maxEntries,
          mapFlags: d.mapFlags,
          name: d.name,
          ...(innerMapId === undefined ? {} : { innerMapId }),
        });
        if (m instanceof VmError)
          throw new LoaderError(
            m.code === 'E2BIG' ? 'E2BIG' : 'EINVAL',
            `map '${d.name}': ${m.message}`,
            where,
          );
        return m;
      };
      // libbpf creates the inner map from its template first and hands its fd to the outer.
      const m = create(def, def.inner === undefined ? undefined : create(def.inner).id);
      const data = def.source === 'kconfig' ? linked.kconfigData : def.data;
      // The vm's memory is little-endian: a big-endian object's data is converted by its BTF.
      const init =
        data === undefined || this.littleEndian
          ? data
          : dataToLittleEndian(this.parsed.btf, def, data);
      if (init !== undefined) {
        const err = m.update(new Uint8Array(4), init, 0);
        if (err !== null)
          throw new LoaderError('EINVAL', `map '${def.name}': ${err.message}`, where);
      }
      ids.push(m.id);
      loaded.maps.set(def.name, m);
    });
    const resolveMaps = mapResolver(table);
    for (const lp of chosen.programs) {
      // Function addresses (bpf_loop callbacks) the vm resolves itself; maps go by index here.
      const resolve = (i: Insn, index: number): bigint | VmError => {
        if (i.src === BPF_PSEUDO_BTF_ID) return this.ksymAddress(i.imm >>> 0, index);
        if (i.src === BPF_PSEUDO_MAP_IDX || i.src === BPF_PSEUDO_MAP_IDX_VALUE) {
          const id = ids[i.imm];
          if (id === undefined) return new VmError('EINVAL', `insn ${index}: no map #${i.imm}`);
          return resolveMaps({ ...i, imm: id }, index);
        }
        return resolveMaps(i, index);
      };
      const prog = Program.load(lp.insns, { name: lp.def.name, resolveLddw: resolve });
      if (prog instanceof VmError)
        throw new LoaderError(
          prog.code === 'ENOENT' ? 'ENOENT' : 'EINVAL',
          `program '${lp.def.name}': ${prog.message}`,
          {
            section: lp.def.section,
            offset: lp.def.insnOff * 8,
          },
        );
      loaded.programs.set(lp.def.name, prog);
    }
    // Slots the object initialises: prog arrays name programs, map-in-map outers name maps.
    for (const def of this.parsed.maps) {
      const m = loaded.maps.get(def.name);
      for (const { slot, symbol } of def.initSlots) {
        const where = { section: '.maps', offset: def.sectionOffset };
        const inner = loaded.maps.get(symbol);
        const prog = loaded.programs.get(symbol);
        // libbpf passes &slot (an int) as the key; the map reads key_size bytes of it.
        const keyBytes = new Uint8Array(Math.max(4, def.keySize));
        new DataView(keyBytes.buffer).setUint32(0, slot, true);
        const key = keyBytes.subarray(0, def.keySize);
        const err =
          m instanceof ProgArray && prog !== undefined
            ? m.set(slot, prog)
            : m instanceof MapOfMaps && inner !== undefined
              ? m.update(key, new Uint8Array(new Uint32Array([inner.id]).buffer), 0)
              : new VmError(
                  'EINVAL',
                  `slot ${slot}: '${symbol}' is neither a program of a prog array nor a map of a map-in-map`,
                );
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
