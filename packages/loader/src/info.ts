import type { Btf } from '@tracelab/btf';
import { type Insn, formatInsn, isLddw } from '@tracelab/vm';
import { CORE_RELO_KIND_NAMES, type LineInfo } from './btf-ext.js';
import { calcCoreRelo } from './core.js';
import { RELOC_NAMES } from './elf.js';
import { LoaderError, wrapErrors } from './errors.js';
import { type ParsedObject, type ProgSection, mapTypeName, parseObject } from './object.js';

/** What `tracelab obj info` shows: programs, maps, relocations, externs, BTF summary. */
export interface ObjectInfo {
  byteOrder: 'little' | 'big';
  license: string;
  kernVersion: number;
  programs: {
    name: string;
    section: string;
    progType: string;
    attachType: string | undefined;
    attachTarget: string;
    insns: number;
  }[];
  maps: {
    name: string;
    type: string;
    keySize: number;
    valueSize: number;
    maxEntries: number;
    flags: number;
    source: string;
  }[];
  relocations: { section: string; insn: number; type: string; symbol: string; kind: string }[];
  externs: { name: string; kind: string; weak: boolean }[];
  /** CO-RE relocations resolved against a target BTF (only when one is given). */
  core: {
    section: string;
    insn: number;
    kind: string;
    type: string;
    access: string;
    result: string;
  }[];
  btf:
    | {
        types: number;
        kinds: Record<string, number>;
        funcInfo: number;
        lineInfo: number;
        coreRelos: number;
      }
    | undefined;
}

const count = <T>(m: Map<string, T[]> | undefined): number =>
  m === undefined ? 0 : [...m.values()].reduce((n, l) => n + l.length, 0);

function coreOf(obj: ParsedObject, target: Btf | undefined): ObjectInfo['core'] {
  const local = obj.btf;
  const out: ObjectInfo['core'] = [];
  if (target === undefined || local === undefined || obj.btfExt === undefined) return out;
  for (const [section, relos] of obj.btfExt.coreRelos) {
    for (const r of relos) {
      let result: string;
      try {
        const res = calcCoreRelo(local, target, r);
        result = res.poison ? 'poisoned' : `${res.origVal} -> ${res.newVal}`;
      } catch (e) {
        result = `error: ${e instanceof Error ? e.message : String(e)}`;
      }
      out.push({
        section,
        insn: r.insnOff,
        kind: CORE_RELO_KIND_NAMES[r.kind] as string,
        type: r.typeId < local.typeCount ? local.name(r.typeId) : `[${r.typeId}]`,
        access: r.accessStr,
        result,
      });
    }
  }
  return out;
}

function infoOf(obj: ParsedObject, target: Btf | undefined): ObjectInfo {
  const relocations: ObjectInfo['relocations'] = [];
  for (const ps of obj.code.values()) {
    for (const r of ps.relocs) {
      relocations.push({
        section: ps.name,
        insn: r.insnIdx,
        type: RELOC_NAMES[r.type] ?? `type ${r.type}`,
        symbol: r.symbol,
        kind: r.kind,
      });
    }
  }
  const ext = obj.btfExt;
  return {
    byteOrder: obj.elf.littleEndian ? 'little' : 'big',
    license: obj.license,
    kernVersion: obj.kernVersion,
    programs: obj.programs.map((p) => ({
      name: p.name,
      section: p.section,
      progType: p.info.def.progType,
      attachType: p.info.def.attachType,
      attachTarget: p.info.attachTarget,
      insns: p.insnCnt,
    })),
    maps: obj.maps.map((m) => ({
      name: m.name,
      type: mapTypeName(m.type),
      keySize: m.keySize,
      valueSize: m.valueSize,
      maxEntries: m.maxEntries,
      flags: m.mapFlags,
      source: m.source,
    })),
    relocations,
    externs: obj.externs.map((e) => ({ name: e.name, kind: e.kind, weak: e.weak })),
    core: coreOf(obj, target),
    btf:
      obj.btf === undefined
        ? undefined
        : {
            types: obj.btf.typeCount - 1,
            kinds: obj.btf.kindCounts(),
            funcInfo: count(ext?.funcInfo),
            lineInfo: count(ext?.lineInfo),
            coreRelos: count(ext?.coreRelos),
          },
  };
}

/**
 * Summarises an object file; with a target BTF it also resolves the CO-RE relocations. Bad bytes
 * give a LoaderError naming the section and offset.
 */
export function objectInfo(bytes: Uint8Array, options: { targetBtf?: Btf } = {}): ObjectInfo {
  const obj = parseObject(bytes);
  return wrapErrors({ section: '.BTF' }, 'object info', () => infoOf(obj, options.targetBtf));
}

/** Text form of objectInfo, one block per kind of thing, as the CLI prints it. */
export function formatObjectInfo(info: ObjectInfo): string {
  const out: string[] = [];
  out.push(`byte order: ${info.byteOrder}-endian`);
  out.push(`license: ${info.license || '(none)'}`);
  if (info.kernVersion !== 0) out.push(`version: 0x${info.kernVersion.toString(16)}`);
  out.push(`programs: ${info.programs.length}`);
  for (const p of info.programs) {
    const attach = p.attachType ? ` ${p.attachType}` : '';
    const target = p.attachTarget ? ` -> ${p.attachTarget}` : '';
    out.push(`  ${p.name}  ${p.section}  ${p.progType}${attach}${target}  ${p.insns} insns`);
  }
  out.push(`maps: ${info.maps.length}`);
  for (const m of info.maps) {
    out.push(
      `  ${m.name}  ${m.type}  key ${m.keySize}B  value ${m.valueSize}B  max_entries ${m.maxEntries}  flags 0x${m.flags.toString(16)}  (${m.source})`,
    );
  }
  out.push(`relocations: ${info.relocations.length}`);
  for (const r of info.relocations) {
    out.push(`  ${r.section}+${r.insn}  ${r.type}  ${r.symbol || '(section)'}  ${r.kind}`);
  }
  if (info.externs.length > 0) {
    out.push(`externs: ${info.externs.length}`);
    for (const e of info.externs) out.push(`  ${e.name}  ${e.kind}${e.weak ? ' weak' : ''}`);
  }
  if (info.core.length > 0) {
    out.push(`CO-RE against the target BTF: ${info.core.length}`);
    for (const c of info.core) {
      out.push(
        `  ${c.section}+${c.insn}  <${c.kind}>  ${c.type || '(anon)'} ${c.access}  ${c.result}`,
      );
    }
  }
  if (info.btf === undefined) {
    out.push('BTF: none');
  } else {
    const kinds = Object.entries(info.btf.kinds)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    out.push(`BTF: ${info.btf.types} types (${kinds})`);
    out.push(
      `BTF.ext: ${info.btf.funcInfo} func_info, ${info.btf.lineInfo} line_info, ${info.btf.coreRelos} CO-RE relocations`,
    );
  }
  return out.join('\n') + '\n';
}

/**
 * Disassembles the code sections (or one of them) as the object holds them, before relocation:
 * function labels, source lines from line_info, relocations and CO-RE relocations beside the
 * instructions they patch.
 */
export function dumpObject(bytes: Uint8Array, section?: string): string {
  const obj = parseObject(bytes);
  const sections = [...obj.code.values()].filter(
    (s) => section === undefined || s.name === section,
  );
  if (section !== undefined && sections.length === 0) {
    throw new LoaderError('ENOENT', `no code section '${section}'`, { section });
  }
  const out: string[] = [];
  for (const ps of sections) {
    wrapErrors({ section: ps.name }, 'dump', () => dumpSection(obj, ps, out));
  }
  return out.join('\n');
}

function dumpSection(obj: ParsedObject, ps: ProgSection, out: string[]): void {
  out.push(`Disassembly of section ${ps.name}:`);
  const lines = new Map<number, LineInfo>();
  for (const li of obj.btfExt?.lineInfo.get(ps.name) ?? []) lines.set(li.insnOff, li);
  const relocs = new Map(ps.relocs.map((r) => [r.insnIdx, r]));
  const core = new Map((obj.btfExt?.coreRelos.get(ps.name) ?? []).map((r) => [r.insnOff, r]));
  const funcs = new Map(ps.funcs.map((f) => [f.insnOff, f.name]));
  for (let k = 0; k < ps.insns.length; k++) {
    const fname = funcs.get(k);
    if (fname !== undefined) out.push('', `${fname}:`);
    const li = lines.get(k);
    if (li !== undefined) {
      const file = li.fileName.split('/').pop() ?? li.fileName;
      out.push(`; ${li.line.trim()}  [${file}:${li.lineNum}:${li.lineCol}]`);
    }
    const i = ps.insns[k] as Insn;
    out.push(`${String(k).padStart(6)}:  ${formatInsn(i)}`);
    const r = relocs.get(k);
    if (r !== undefined)
      out.push(`\t\t${RELOC_NAMES[r.type] ?? r.type}  ${r.symbol || '(section)'}  (${r.kind})`);
    const c = core.get(k);
    if (c !== undefined) {
      const b = obj.btf;
      const t =
        (b !== undefined && c.typeId < b.typeCount ? b.name(c.typeId) : '') || `[${c.typeId}]`;
      out.push(`\t\tCO-RE <${CORE_RELO_KIND_NAMES[c.kind]}> ${t} ${c.accessStr}`);
    }
    if (isLddw(i)) k++;
  }
  out.push('');
}
