import type { ArchName } from '@tracelab/arch-isa';
import type { Btf } from '@tracelab/btf';
import {
  sourceLineStr,
  verify,
  type AttachType,
  type MapType,
  type ProgType,
  type VerifyResult,
  type MapDef as VerifierMapDef,
} from '@tracelab/verifier';
import type { BpfObject, BpfObjectMap } from './bpf-object.js';
import { LoaderError } from './errors.js';
import type { LinkResult } from './link.js';
import { type MapDef, mapTypeName } from './object.js';
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
  'array_of_maps',
  'hash_of_maps',
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
  /** First instruction of the program inside its section. */
  insnOff: number;
  result: VerifyResult;
}

/**
 * Links the object and hands each program to the verifier as BPF_PROG_LOAD would, with the
 * object's maps as the map table (lddw src 5/6 carry the map's index). The same check
 * BpfObject.load() runs before it places anything in the vm.
 */
export function verifyObject(obj: BpfObject, options: VerifyObjectOptions = {}): ProgramVerdict[] {
  return verifyLinked(obj.maps(), obj.link(), options);
}

/** Verifies linked programs; one verdict per program, in the object's order. */
export function verifyLinked(
  objectMaps: readonly BpfObjectMap[],
  linked: LinkResult,
  options: VerifyObjectOptions,
): ProgramVerdict[] {
  const maps = new Map<number, VerifierMapDef>();
  for (const m of objectMaps) {
    const where = { section: m.section, offset: m.sectionOffset };
    const def = verifierMap(m, where);
    // The kernel's inner map template (inner_map_meta) has no name.
    const inner = m.inner === undefined ? undefined : verifierMap(m.inner, where);
    if (inner !== undefined) delete inner.name;
    maps.set(m.index, { ...def, ...(inner === undefined ? {} : { inner }) });
  }
  return linked.programs.map((p) => {
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
    return { name: p.def.name, section: p.def.section, insnOff: p.def.insnOff, result };
  });
}

/** A map as the verifier models it; EOPNOTSUPP for a type it does not know. */
function verifierMap(
  m: Pick<MapDef, 'name' | 'type' | 'keySize' | 'valueSize' | 'maxEntries'>,
  where: { section: string; offset: number },
): VerifierMapDef {
  const typeName = mapTypeName(m.type);
  const type = MAP_TYPES.find((t) => t === typeName);
  if (type === undefined) {
    throw new LoaderError(
      'EOPNOTSUPP',
      `map '${m.name}' of type ${typeName} is not supported by the verifier`,
      where,
    );
  }
  return {
    type,
    keySize: m.keySize,
    valueSize: m.valueSize,
    maxEntries: m.maxEntries,
    name: m.name,
  };
}

/**
 * BPF_PROG_LOAD's answer to a rejected program: the verifier's errno and message, the source
 * line line_info names, and the whole log on the error.
 */
export function rejection(v: ProgramVerdict): LoaderError {
  const err = v.result.error;
  const source = err?.source == null ? undefined : sourceLineStr(err.source);
  const at = err === null ? '' : ` at insn ${err.insn}`;
  return new LoaderError(
    v.result.errnoName ?? 'EINVAL',
    `program '${v.name}' rejected by the verifier: ${err?.message ?? 'rejected'}${at}${source === undefined ? '' : ` (${source})`}`,
    { section: v.section, offset: v.insnOff * 8 },
    {
      log: v.result.log,
      program: v.name,
      reason: err?.message ?? 'rejected',
      ...(source === undefined ? {} : { source }),
    },
  );
}
