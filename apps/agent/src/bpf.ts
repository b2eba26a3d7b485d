import {
  TracelabError,
  type BytesEncoding,
  type FunctionsReply,
  type FunctionsRequest,
  type LinkCreateRequest,
  type LinkInfo,
  type LoadedProg,
  type MapCreateRequest,
  type MapDumpReply,
  type MapDumpRequest,
  type MapInfo,
  type MapKeyRequest,
  type MapType,
  type MapUpdateRequest,
  type ProgLoadRequest,
  type ProgLoadResult,
} from '@tracelab/contracts';
import { BpfLoadError, type Engine, type LoadedProg as EngineProg } from '@tracelab/engine';
import {
  BPF_ANY,
  BPF_EXIST,
  BPF_MAP_TYPE_ARRAY,
  BPF_MAP_TYPE_HASH,
  BPF_MAP_TYPE_LRU_HASH,
  BPF_MAP_TYPE_PERCPU_ARRAY,
  BPF_MAP_TYPE_PERCPU_HASH,
  BPF_MAP_TYPE_PERF_EVENT_ARRAY,
  BPF_MAP_TYPE_PROG_ARRAY,
  BPF_MAP_TYPE_RINGBUF,
  BPF_MAP_TYPE_STACK_TRACE,
  BPF_NOEXIST,
} from '@tracelab/vm';

const MAP_TYPE: Readonly<Record<MapType, number>> = {
  hash: BPF_MAP_TYPE_HASH,
  array: BPF_MAP_TYPE_ARRAY,
  prog_array: BPF_MAP_TYPE_PROG_ARRAY,
  perf_event_array: BPF_MAP_TYPE_PERF_EVENT_ARRAY,
  percpu_hash: BPF_MAP_TYPE_PERCPU_HASH,
  percpu_array: BPF_MAP_TYPE_PERCPU_ARRAY,
  stack_trace: BPF_MAP_TYPE_STACK_TRACE,
  lru_hash: BPF_MAP_TYPE_LRU_HASH,
  ringbuf: BPF_MAP_TYPE_RINGBUF,
};

const UPDATE_FLAGS = { any: BPF_ANY, noexist: BPF_NOEXIST, exist: BPF_EXIST } as const;

function ok<T>(value: T): Exclude<T, TracelabError> {
  if (value instanceof TracelabError) throw value;
  return value as Exclude<T, TracelabError>;
}

function decode(text: string, encoding: BytesEncoding): Uint8Array {
  return new Uint8Array(Buffer.from(text, encoding));
}

function encode(bytes: Uint8Array, encoding: BytesEncoding): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(encoding);
}

function wireProg(p: EngineProg): LoadedProg {
  return {
    fd: p.fd,
    name: p.name,
    progType: p.progType,
    attachType: p.attachType ?? null,
    attachTarget: p.attachTarget,
    section: p.section,
  };
}

function rejected(err: TracelabError, log: string): ProgLoadResult {
  return { verdict: 'rejected', ...err.toEnvelope(), log };
}

/**
 * The agent's side of the bpf() surface: every operation over engine.bpf, and the table of what
 * it has open (the engine hands out fds but has no call that lists them).
 */
export class AgentBpf {
  private readonly progs = new Map<number, LoadedProg>();
  private readonly maps = new Set<number>();
  private readonly links = new Map<number, LinkInfo>();

  constructor(private readonly engine: Engine) {}

  functions(req: FunctionsRequest): FunctionsReply {
    const image = this.engine.kernel.image;
    let hits: number[];
    try {
      hits = image.glob(req.pattern);
    } catch {
      // a bracket expression the RegExp engine refuses, such as [z-a]
      throw new TracelabError('EINVAL', `pattern ${JSON.stringify(req.pattern)} is not a glob`, {
        path: ['pattern'],
      });
    }
    return {
      total: hits.length,
      functions: hits.slice(req.offset, req.offset + req.limit).map((i) => {
        const fn = image.functions[i] as (typeof image.functions)[number];
        return {
          name: fn.name,
          addr: `0x${fn.addr.toString(16)}`,
          size: fn.size,
          module: fn.module,
          traceable: fn.traceable,
        };
      }),
    };
  }

  /** BPF_PROG_LOAD; a program the verifier refuses is a `rejected` reply carrying the log. */
  load(req: ProgLoadRequest): ProgLoadResult {
    const bpf = this.engine.bpf;
    if (req.format === 'asm') {
      const prog = bpf.progLoadText(req.text, {
        progType: req.progType,
        logLevel: req.logLevel,
        ...(req.attachType !== undefined ? { attachType: req.attachType } : {}),
        ...(req.attachTarget !== undefined ? { attachTarget: req.attachTarget } : {}),
        ...(req.name !== undefined ? { name: req.name } : {}),
      });
      if (prog instanceof BpfLoadError) return rejected(prog, prog.log);
      this.progs.set(prog.fd, wireProg(prog));
      return {
        verdict: 'accepted',
        programs: [{ ...wireProg(prog), log: prog.log }],
        maps: {},
      };
    }
    const loaded = bpf.loadObject(new Uint8Array(Buffer.from(req.object, 'base64')), {
      logLevel: req.logLevel,
      ...(req.programs !== undefined ? { programs: req.programs } : {}),
    });
    if (loaded instanceof BpfLoadError) return rejected(loaded, loaded.log);
    for (const p of loaded.programs) this.progs.set(p.fd, wireProg(p));
    for (const fd of loaded.maps.values()) this.maps.add(fd);
    return {
      verdict: 'accepted',
      programs: loaded.programs.map((p) => ({ ...wireProg(p), log: p.log })),
      maps: Object.fromEntries(loaded.maps),
    };
  }

  /**
   * The verifier's verdict without keeping anything: the kernel has no verify-only call either,
   * so this loads and closes what the load opened.
   */
  verify(req: ProgLoadRequest): ProgLoadResult {
    const result = this.load(req);
    if (result.verdict === 'accepted') {
      for (const p of result.programs) this.close(p.fd, 'prog');
      for (const fd of Object.values(result.maps)) this.close(fd, 'map');
    }
    return result;
  }

  programs(): LoadedProg[] {
    return [...this.progs.values()];
  }

  mapCreate(req: MapCreateRequest): number {
    const fd = ok(
      this.engine.bpf.mapCreate({
        type: MAP_TYPE[req.type],
        keySize: req.keySize,
        valueSize: req.valueSize,
        maxEntries: req.maxEntries,
        ...(req.name !== undefined ? { name: req.name } : {}),
      }),
    );
    this.maps.add(fd);
    return fd;
  }

  mapInfo(fd: number): MapInfo {
    const m = ok(this.engine.bpf.map(fd));
    const type = Object.entries(MAP_TYPE).find(([, n]) => n === m.attr.type)?.[0];
    return {
      fd,
      name: m.name,
      type: type ?? `type_${m.attr.type}`,
      keySize: m.attr.keySize,
      valueSize: m.attr.valueSize,
      maxEntries: m.attr.maxEntries,
    };
  }

  mapList(): MapInfo[] {
    return [...this.maps].map((fd) => this.mapInfo(fd));
  }

  mapDump(req: MapDumpRequest): MapDumpReply {
    const map = this.mapInfo(req.fd);
    const entries = ok(this.engine.bpf.mapEntries(req.fd));
    return {
      map,
      entries: entries.slice(0, req.limit).map(([k, v]) => ({
        key: encode(k, req.encoding),
        value: encode(v, req.encoding),
      })),
      truncated: entries.length > req.limit,
    };
  }

  mapLookup(req: MapKeyRequest): string {
    return encode(
      ok(this.engine.bpf.mapLookup(req.fd, decode(req.key, req.encoding))),
      req.encoding,
    );
  }

  mapUpdate(req: MapUpdateRequest): void {
    const err = this.engine.bpf.mapUpdate(
      req.fd,
      decode(req.key, req.encoding),
      decode(req.value, req.encoding),
      UPDATE_FLAGS[req.flags],
    );
    if (err !== null) throw err;
  }

  mapDelete(req: MapKeyRequest): void {
    const err = this.engine.bpf.mapDelete(req.fd, decode(req.key, req.encoding));
    if (err !== null) throw err;
  }

  /** BPF_LINK_CREATE, or bpf_program__attach when the request names no attach type. */
  linkCreate(req: LinkCreateRequest): LinkInfo {
    const bpf = this.engine.bpf;
    const prog = this.progs.get(req.progFd);
    if (prog === undefined)
      throw new TracelabError('EBADF', `fd ${req.progFd} is not a program`, { path: ['progFd'] });
    let info: Omit<LinkInfo, 'fd'>;
    let fd: number;
    if (req.attachType === 'section') {
      fd = ok(bpf.attachBySection(req.progFd));
      const kprobe = /^k(ret)?probe\.multi\//.test(prog.section);
      info = {
        progFd: req.progFd,
        attachType: kprobe ? 'kprobe_multi' : (prog.attachType as LinkInfo['attachType']),
        target: prog.attachTarget,
      };
    } else if (req.attachType === 'kprobe_multi') {
      fd = ok(
        bpf.linkCreate(req.progFd, {
          attachType: 'kprobe_multi',
          retprobe: req.retprobe,
          ...(req.pattern !== undefined ? { pattern: req.pattern } : {}),
          ...(req.syms !== undefined ? { syms: req.syms } : {}),
          ...(req.cookies !== undefined ? { cookies: req.cookies.map((c) => BigInt(c)) } : {}),
        }),
      );
      info = {
        progFd: req.progFd,
        attachType: 'kprobe_multi',
        target: req.pattern ?? (req.syms ?? []).join(','),
      };
    } else {
      fd = ok(
        bpf.linkCreate(req.progFd, {
          attachType: req.attachType,
          ...(req.targets !== undefined ? { targets: req.targets } : {}),
        }),
      );
      const targets = req.targets ?? prog.attachTarget;
      info = {
        progFd: req.progFd,
        attachType: req.attachType,
        target: typeof targets === 'string' ? targets : targets.join(','),
      };
    }
    const link = { fd, ...info };
    this.links.set(fd, link);
    return link;
  }

  linkList(): LinkInfo[] {
    return [...this.links.values()];
  }

  /** close(fd) of a program, map or link this agent opened; a link's close detaches it. */
  close(fd: number, kind: 'prog' | 'map' | 'link'): void {
    const table = kind === 'prog' ? this.progs : kind === 'map' ? this.maps : this.links;
    if (!table.has(fd)) throw new TracelabError('EBADF', `fd ${fd} is not an open ${kind}`);
    const err = this.engine.bpf.close(fd);
    if (err !== null) throw err;
    table.delete(fd);
  }
}
