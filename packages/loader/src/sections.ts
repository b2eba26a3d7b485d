import { LoaderError } from './errors.js';

/** enum bpf_prog_type values of the program types the loader recognises. */
export const BPF_PROG_TYPE = {
  SOCKET_FILTER: 1,
  KPROBE: 2,
  TRACEPOINT: 5,
  PERF_EVENT: 7,
  RAW_TRACEPOINT: 17,
  TRACING: 26,
  SYSCALL: 31,
} as const;

export type ProgTypeName = keyof typeof BPF_PROG_TYPE;

/** Expected attach types (enum bpf_attach_type names) where a program type needs one. */
export type AttachTypeName =
  | 'BPF_TRACE_RAW_TP'
  | 'BPF_TRACE_FENTRY'
  | 'BPF_TRACE_FEXIT'
  | 'BPF_MODIFY_RETURN'
  | 'BPF_TRACE_KPROBE_MULTI'
  | 'BPF_TRACE_KPROBE_SESSION';

/** One of libbpf's SEC() conventions. */
export interface SectionDef {
  /** The section prefix as libbpf spells it ("kprobe+": "kprobe" alone or "kprobe/..."). */
  sec: string;
  progType: ProgTypeName;
  attachType: AttachTypeName | undefined;
  /** Return probe (kretprobe, kretprobe.multi). */
  retprobe: boolean;
  sleepable: boolean;
}

/** What a section name says about its programs. */
export interface SectionInfo {
  def: SectionDef;
  /** Text after the prefix and '/': the function, glob or tracepoint to attach to ('' if none). */
  attachTarget: string;
}

const def = (
  sec: string,
  progType: ProgTypeName,
  attachType?: AttachTypeName,
  extra: { retprobe?: boolean; sleepable?: boolean } = {},
): SectionDef => ({
  sec,
  progType,
  attachType,
  retprobe: extra.retprobe ?? false,
  sleepable: extra.sleepable ?? false,
});

/** libbpf's section_defs for tracing-related types, in its matching order. */
export const SECTION_DEFS: readonly SectionDef[] = [
  def('socket', 'SOCKET_FILTER'),
  def('kprobe+', 'KPROBE'),
  def('kretprobe+', 'KPROBE', undefined, { retprobe: true }),
  def('kprobe.multi+', 'KPROBE', 'BPF_TRACE_KPROBE_MULTI'),
  def('kretprobe.multi+', 'KPROBE', 'BPF_TRACE_KPROBE_MULTI', { retprobe: true }),
  def('kprobe.session+', 'KPROBE', 'BPF_TRACE_KPROBE_SESSION'),
  def('tracepoint+', 'TRACEPOINT'),
  def('tp+', 'TRACEPOINT'),
  def('raw_tracepoint+', 'RAW_TRACEPOINT'),
  def('raw_tp+', 'RAW_TRACEPOINT'),
  def('tp_btf+', 'TRACING', 'BPF_TRACE_RAW_TP'),
  def('fentry+', 'TRACING', 'BPF_TRACE_FENTRY'),
  def('fmod_ret+', 'TRACING', 'BPF_MODIFY_RETURN'),
  def('fexit+', 'TRACING', 'BPF_TRACE_FEXIT'),
  def('fentry.s+', 'TRACING', 'BPF_TRACE_FENTRY', { sleepable: true }),
  def('fmod_ret.s+', 'TRACING', 'BPF_MODIFY_RETURN', { sleepable: true }),
  def('fexit.s+', 'TRACING', 'BPF_TRACE_FEXIT', { sleepable: true }),
  def('perf_event', 'PERF_EVENT'),
  def('syscall', 'SYSCALL', undefined, { sleepable: true }),
];

/**
 * Matches a section name the way libbpf's sec_def_matches does: a definition ending in '+'
 * matches the bare prefix or the prefix followed by '/'; any other matches exactly.
 */
export function matchSection(name: string): SectionInfo | undefined {
  for (const d of SECTION_DEFS) {
    if (d.sec.endsWith('+')) {
      const p = d.sec.slice(0, -1);
      if (name === p) return { def: d, attachTarget: '' };
      if (name.startsWith(`${p}/`)) return { def: d, attachTarget: name.slice(p.length + 1) };
    } else if (name === d.sec) {
      return { def: d, attachTarget: '' };
    }
  }
  return undefined;
}

/** Like matchSection, but an unknown name is an EOPNOTSUPP error naming the section. */
export function sectionInfo(name: string): SectionInfo {
  const info = matchSection(name);
  if (info === undefined) {
    throw new LoaderError('EOPNOTSUPP', `unsupported program type for section '${name}'`, {
      section: name,
    });
  }
  if (info.def.progType === 'TRACEPOINT' && info.attachTarget !== '') {
    if (!/^[^/]+\/[^/]+$/.test(info.attachTarget)) {
      throw new LoaderError(
        'EINVAL',
        `tracepoint '${info.attachTarget}' is not of the form category/name`,
        { section: name },
      );
    }
  }
  return info;
}
