import { type LinkCreateRequest, type MapCreateRequest, type MapInfo } from '@tracelab/contracts';
import { BpfLoadError, type Engine, type LoadedProg } from '@tracelab/engine';
import type { WorkloadSpec } from '@tracelab/kernel';
import { BPF_MAP_TYPE, mapTypeName } from '@tracelab/loader';
import { unwrap } from '../workload.js';
import type {
  AsmLoadRequest,
  LoadResult,
  MapEntries,
  PrintkBatch,
  Target,
  TargetProg,
} from './target.js';

const rejected = (err: BpfLoadError, log: string): LoadResult => ({
  verdict: 'rejected',
  code: err.code,
  message: err.message,
  log,
});

const prog = (p: LoadedProg): TargetProg => ({
  fd: p.fd,
  name: p.name,
  progType: p.progType,
  section: p.section,
  attachTarget: p.attachTarget,
  log: p.log,
});

/** A fresh engine in this process: what it opens goes with it, so close only ends its streams. */
export class EmbeddedTarget implements Target {
  constructor(private readonly engine: Engine) {}

  async read(path: string): Promise<string> {
    return unwrap(this.engine.tracefs.read(path));
  }

  async write(path: string, data: string, append = false): Promise<void> {
    unwrap(this.engine.tracefs.write(path, data, { append }));
  }

  async run(workload: string | WorkloadSpec, seed: number) {
    return unwrap(this.engine.run(workload, { seed }));
  }

  async loadObject(bytes: Uint8Array, programs: readonly string[]): Promise<LoadResult> {
    const r = this.engine.bpf.loadObject(bytes, { programs });
    if (r instanceof BpfLoadError) return rejected(r, r.log);
    return {
      verdict: 'accepted',
      programs: r.programs.map(prog),
      maps: Object.fromEntries(r.maps),
    };
  }

  async loadAsm(req: AsmLoadRequest): Promise<LoadResult> {
    const r = this.engine.bpf.progLoadText(req.text, {
      progType: req.progType,
      logLevel: req.logLevel,
      ...(req.attachType !== undefined ? { attachType: req.attachType } : {}),
      ...(req.attachTarget !== undefined ? { attachTarget: req.attachTarget } : {}),
      ...(req.name !== undefined ? { name: req.name } : {}),
    });
    if (r instanceof BpfLoadError) return rejected(r, r.log);
    return { verdict: 'accepted', programs: [prog(r)], maps: {} };
  }

  async mapCreate(req: MapCreateRequest): Promise<number> {
    return unwrap(
      this.engine.bpf.mapCreate({
        type: BPF_MAP_TYPE[req.type.toUpperCase()] as number,
        keySize: req.keySize,
        valueSize: req.valueSize,
        maxEntries: req.maxEntries,
        ...(req.name !== undefined ? { name: req.name } : {}),
      }),
    );
  }

  async attach(req: LinkCreateRequest): Promise<number> {
    const bpf = this.engine.bpf;
    if (req.attachType === 'section') return unwrap(bpf.attachBySection(req.progFd));
    if (req.attachType === 'kprobe_multi') {
      return unwrap(
        bpf.linkCreate(req.progFd, {
          attachType: 'kprobe_multi',
          retprobe: req.retprobe,
          ...(req.pattern !== undefined ? { pattern: req.pattern } : {}),
          ...(req.syms !== undefined ? { syms: req.syms } : {}),
          ...(req.cookies !== undefined ? { cookies: req.cookies.map(BigInt) } : {}),
        }),
      );
    }
    return unwrap(
      bpf.linkCreate(req.progFd, {
        attachType: req.attachType,
        ...(req.targets !== undefined ? { targets: req.targets } : {}),
      }),
    );
  }

  async mapInfo(fd: number): Promise<MapInfo> {
    const m = unwrap(this.engine.bpf.map(fd));
    return {
      fd,
      name: m.name,
      type: mapTypeName(m.attr.type),
      keySize: m.attr.keySize,
      valueSize: m.attr.valueSize,
      maxEntries: m.attr.maxEntries,
    };
  }

  async mapEntries(fd: number): Promise<MapEntries> {
    return unwrap(this.engine.bpf.mapEntries(fd));
  }

  async printk(): Promise<PrintkBatch[]> {
    return unwrap(this.engine.streams.drain('printk'));
  }

  async close(): Promise<void> {
    this.engine.close();
  }
}
