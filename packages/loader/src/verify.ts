import type { ArchName } from '@tracelab/arch-isa';
import type { Btf } from '@tracelab/btf';
import {
  verify,
  type AttachType,
  type MapType,
  type ProgType,
  type VerifyResult,
  type MapDef as VerifierMapDef,
} from '@tracelab/verifier';
import type { BpfObject } from './bpf-object.js';
import { LoaderError } from './errors.js';
import type { AttachTypeName, ProgTypeName } from './sections.js';

const PROG_TYPE: Record<ProgTypeName, ProgType> = {
  SOCKET_FILTER: 'socket_filter',
  KPROBE: 'kprobe',
  TRACEPOINT: 'tracepoint',
  PERF_EVENT: 'perf_event',
  RAW_TRACEPOINT: 'raw_tracepoint',
  TRACING: 'tracing',
  SYSCALL: 'syscall',
};

const ATTACH_TYPE: Partial<Record<AttachTypeName, AttachType>> = {
  BPF_TRACE_FENTRY: 'fentry',
  BPF_TRACE_FEXIT: 'fexit',
  BPF_MODIFY_RETURN: 'fmod_ret',
  BPF_TRACE_RAW_TP: 'raw_tp',
};

const MAP_TYPES: readonly MapType[] = [
  'hash',
  'array',
  'percpu_hash',
  'percpu_array',
  'lru_hash',
  'prog_array',
  'perf_event_array',
  'ringbuf',
  'stack_trace',
];

export interface VerifyObjectOptions {
  /** Kernel BTF that types tracing programs' arguments (vmlinux or the simulated kernel's). */
  btf?: Btf;
  arch?: ArchName;
  logLevel?: 0 | 1 | 2;
}

/** The verifier's verdict on one program of an object. */
export interface ProgramVerdict {
  name: string;
  section: string;
  result: VerifyResult;
}

/**
 * Links the object and hands each program to the verifier as BPF_PROG_LOAD would, with the
 * object's maps as the map table (lddw src 5/6 carry the map's index).
 */
export function verifyObject(obj: BpfObject, options: VerifyObjectOptions = {}): ProgramVerdict[] {
  const maps = new Map<number, VerifierMapDef>();
  for (const m of obj.maps()) {
    const type = MAP_TYPES.find((t) => t === m.typeName);
    if (type === undefined) {
      throw new LoaderError(
        'EOPNOTSUPP',
        `map '${m.name}' of type ${m.typeName} is not supported by the verifier`,
        {
          section: m.section,
        },
      );
    }
    maps.set(m.index, {
      type,
      keySize: m.keySize,
      valueSize: m.valueSize,
      maxEntries: m.maxEntries,
      name: m.name,
    });
  }
  return obj.link().programs.map((p) => {
    const { def, attachTarget } = p.def.info;
    const attachType = def.attachType === undefined ? undefined : ATTACH_TYPE[def.attachType];
    const result = verify(p.insns, {
      progType: PROG_TYPE[def.progType],
      maps,
      ...(attachType !== undefined ? { attachType, attachTarget } : {}),
      ...(options.btf !== undefined ? { btf: options.btf } : {}),
      ...(options.arch !== undefined ? { arch: options.arch } : {}),
      ...(options.logLevel !== undefined ? { logLevel: options.logLevel } : {}),
      lineInfo: p.lineInfo,
    });
    return { name: p.def.name, section: p.def.section, result };
  });
}
