import { VmError } from './errors.js';
import { AddressSpace, PROT_READ, PROT_WRITE, type Region } from './memory.js';
import { PerfEventArray, RingBuf, StackTraceMap } from './buffers.js';
import {
  ArrayMap,
  BPF_MAP_TYPE_ARRAY,
  BPF_MAP_TYPE_ARRAY_OF_MAPS,
  BPF_MAP_TYPE_HASH,
  BPF_MAP_TYPE_HASH_OF_MAPS,
  BPF_MAP_TYPE_LRU_HASH,
  BPF_MAP_TYPE_PERCPU_ARRAY,
  BPF_MAP_TYPE_PERCPU_HASH,
  BPF_MAP_TYPE_PERF_EVENT_ARRAY,
  BPF_MAP_TYPE_PROG_ARRAY,
  BPF_MAP_TYPE_RINGBUF,
  BPF_MAP_TYPE_STACK_TRACE,
  type BpfMap,
  HashMap,
  MAX_ENTRIES_LIMIT,
  type MapAttr,
  MapOfMaps,
  PAGE,
  ProgArray,
  roundUp,
} from './maps.js';

/** Allocates map memory and handles in one address space; finds maps by handle address. */
export class MapTable {
  declare private next: bigint;
  private readonly byAddress = new Map<bigint, BpfMap>();
  /** The same maps by the low half of their address (handles differ in it). */
  private readonly byLow = new Map<number, BpfMap>();
  private readonly byId: BpfMap[] = [];
  /**
   * byHandleHalves' last answer: a program looks the same map up on every run, and a Map probe
   * per helper call cost more than the rest of the lookup. Maps are never removed, so it cannot
   * go stale. Declared and set in the constructor so V8 keeps the halves as int32s.
   */
  declare private lastHi: number;
  declare private lastLo: number;
  private lastMap: BpfMap | undefined = undefined;

  constructor(
    readonly memory: AddressSpace,
    /** Where map handles and values are placed (a kernel-heap-like range the caller owns). */
    base = 0xffff888100000000n,
    readonly ncpus = 1,
  ) {
    this.next = base;
    this.lastHi = 0;
    this.lastLo = 0;
  }

  private alloc(name: string, size: number): Region | VmError {
    const region = this.memory.map({
      name,
      base: this.next,
      size: roundUp(Math.max(size, 1), PAGE),
      prot: PROT_READ | PROT_WRITE,
    });
    if (region instanceof VmError) return region;
    this.next += BigInt(region.size) + BigInt(PAGE); // a guard page between maps
    return region;
  }

  /** Creates a map (BPF_MAP_CREATE); the result's id is what fds refer to here. */
  create(attr: MapAttr): BpfMap | VmError {
    const { type, keySize, valueSize, maxEntries } = attr;
    const id = this.byId.length + 1;
    const name = attr.name ?? `map${id}`;
    if (!Number.isInteger(maxEntries) || maxEntries <= 0)
      return new VmError('EINVAL', `${name}: max_entries ${maxEntries} must be > 0`);
    const handle = this.next;
    this.next += BigInt(PAGE);
    let map: BpfMap | VmError;
    switch (type) {
      case BPF_MAP_TYPE_ARRAY:
      case BPF_MAP_TYPE_PERCPU_ARRAY: {
        if (keySize !== 4)
          return new VmError('EINVAL', `${name}: array key_size must be 4, got ${keySize}`);
        if (valueSize <= 0) return new VmError('EINVAL', `${name}: value_size must be > 0`);
        const percpu = type === BPF_MAP_TYPE_PERCPU_ARRAY;
        const stride = roundUp(valueSize, 8);
        const values = this.alloc(
          `${name}:values`,
          stride * maxEntries * (percpu ? this.ncpus : 1),
        );
        if (values instanceof VmError) return values;
        map = new ArrayMap(id, attr, handle, this.ncpus, values, percpu);
        break;
      }
      case BPF_MAP_TYPE_HASH:
      case BPF_MAP_TYPE_PERCPU_HASH:
      case BPF_MAP_TYPE_LRU_HASH: {
        if (keySize <= 0 || valueSize <= 0)
          return new VmError('EINVAL', `${name}: key_size and value_size must be > 0`);
        if (maxEntries > MAX_ENTRIES_LIMIT)
          return new VmError('E2BIG', `${name}: max_entries ${maxEntries} too large`);
        const percpu = type === BPF_MAP_TYPE_PERCPU_HASH;
        const stride = roundUp(valueSize, 8);
        const values = this.alloc(
          `${name}:values`,
          stride * maxEntries * (percpu ? this.ncpus : 1),
        );
        if (values instanceof VmError) return values;
        map = new HashMap(
          id,
          attr,
          handle,
          this.ncpus,
          values,
          percpu,
          type === BPF_MAP_TYPE_LRU_HASH,
        );
        break;
      }
      case BPF_MAP_TYPE_PROG_ARRAY:
        if (keySize !== 4 || valueSize !== 4)
          return new VmError('EINVAL', `${name}: prog_array key_size and value_size must be 4`);
        map = new ProgArray(id, attr, handle, this.ncpus);
        break;
      case BPF_MAP_TYPE_ARRAY_OF_MAPS:
      case BPF_MAP_TYPE_HASH_OF_MAPS: {
        const array = type === BPF_MAP_TYPE_ARRAY_OF_MAPS;
        if (valueSize !== 4 || keySize <= 0 || (array && keySize !== 4))
          return new VmError(
            'EINVAL',
            `${name}: map-in-map value_size must be 4 (an inner map id)${array ? ' and key_size 4' : ''}`,
          );
        const inner = attr.innerMapId === undefined ? undefined : this.get(attr.innerMapId);
        if (inner === undefined)
          return new VmError('EBADF', `${name}: inner_map_fd does not name a map`);
        if (inner instanceof MapOfMaps)
          return new VmError('EINVAL', `${name}: an inner map cannot itself hold maps`);
        if (!array && maxEntries > MAX_ENTRIES_LIMIT)
          return new VmError('E2BIG', `${name}: max_entries ${maxEntries} too large`);
        const ids = this.alloc(`${name}:ids`, 8 * maxEntries);
        if (ids instanceof VmError) return ids;
        const slotAttr = { ...attr, valueSize: 4 };
        const slots = array
          ? new ArrayMap(id, slotAttr, handle, this.ncpus, ids, false)
          : new HashMap(id, slotAttr, handle, this.ncpus, ids, false, false);
        map = new MapOfMaps(id, attr, handle, this.ncpus, slots, { ...inner.attr }, (k) =>
          this.get(k),
        );
        break;
      }
      case BPF_MAP_TYPE_RINGBUF:
        map = RingBuf.create(id, handle, attr, (n, s) => this.alloc(n, s));
        break;
      case BPF_MAP_TYPE_PERF_EVENT_ARRAY:
        if (keySize !== 4 || valueSize !== 4)
          return new VmError(
            'EINVAL',
            `${name}: perf_event_array key_size and value_size must be 4`,
          );
        map = new PerfEventArray(id, handle, attr, this.ncpus);
        break;
      case BPF_MAP_TYPE_STACK_TRACE:
        map = StackTraceMap.create(id, handle, attr, (n, s) => this.alloc(n, s));
        break;
      default:
        return new VmError('EINVAL', `${name}: unsupported map type ${type}`);
    }
    if (map instanceof VmError) return map;
    this.byAddress.set(handle, map);
    this.byLow.set(Number(handle & 0xffffffffn) | 0, map);
    this.byId.push(map);
    this.onCreate?.(map);
    return map;
  }

  /** Called for every map created from now on (helpers use it to index ring buffers). */
  onCreate: ((map: BpfMap) => void) | undefined = undefined;

  all(): readonly BpfMap[] {
    return this.byId;
  }

  byHandle(address: bigint): BpfMap | undefined {
    return this.byAddress.get(address);
  }

  /**
   * byHandle for a handle in int32 halves, as a helper finds it in a register: no bigint is made
   * (helpers run on every traced call).
   */
  byHandleHalves(hi: number, lo: number): BpfMap | undefined {
    if ((lo | 0) === this.lastLo && (hi | 0) === this.lastHi && this.lastMap !== undefined) {
      return this.lastMap;
    }
    // Keyed by the int32 low half: a uint32 key past 2^31 is a double, boxed for every get.
    const map = this.byLow.get(lo | 0);
    if (map === undefined || map.addressHi !== hi >>> 0) return undefined;
    this.lastHi = hi | 0;
    this.lastLo = lo | 0;
    this.lastMap = map;
    return map;
  }

  /** The map a (1-based) id names. */
  get(id: number): BpfMap | undefined {
    return this.byId[id - 1];
  }
}
