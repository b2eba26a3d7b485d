import { basename, extname } from 'node:path';
import {
  MapTypeSchema,
  TracelabError,
  type LinkCreateRequest,
  type MapCreateRequest,
} from '@tracelab/contracts';
import { BpfObject, type BpfProgramInfo } from '@tracelab/loader';
import { assemble, VmError } from '@tracelab/vm';
import { type Command, InvalidArgumentError } from 'commander';
import { readInput } from '../input.js';
import type { LoadResult, Target, TargetProg } from '../target/target.js';
import { workloadSpec } from '../workload.js';
import {
  machineOptions,
  runWorkload,
  targetSteps,
  withTarget,
  type MachineOpts,
} from './engine.js';
import { aboutFile, inContext } from './errors.js';
import { formatMap, type MapRef } from './map-dump.js';
import { Progress } from './progress.js';
import { isElf } from './verify.js';

/** A link the command line asks for: its kind and the function, or glob, it goes on. */
export interface LinkRequest {
  readonly kind: 'fentry' | 'fexit' | 'fmod_ret' | 'kprobe_multi';
  readonly target: string;
}

/** Which programs of an object each kind of link can take (libbpf's section definitions). */
const FITS: Readonly<Record<LinkRequest['kind'], (p: BpfProgramInfo) => boolean>> = {
  fentry: (p) => p.attachType === 'BPF_TRACE_FENTRY',
  fexit: (p) => p.attachType === 'BPF_TRACE_FEXIT',
  fmod_ret: (p) => p.attachType === 'BPF_MODIFY_RETURN',
  kprobe_multi: (p) => p.progType === 'KPROBE',
};

/** Programs loaded into a kernel, and the maps they use (with the object's BTF, if any). */
export interface Loaded {
  readonly programs: readonly TargetProg[];
  readonly maps: readonly MapRef[];
}

/** How a program is named in output: `SECTION (NAME)`, as `tracelab verify` names it. */
const label = (p: TargetProg): string => `${p.section === '' ? p.progType : p.section} (${p.name})`;

/** libbpf's bpf_object__open; a malformed object is named with what the loader found wrong. */
function openObject(file: string, bytes: Uint8Array): BpfObject {
  try {
    return BpfObject.open(bytes);
  } catch (err) {
    if (err instanceof TracelabError) throw aboutFile(file, err);
    throw err;
  }
}

/**
 * Loads the programs of a clang object that the section (if given) and the link (if given)
 * select: a link takes exactly one program of a kind it can attach; without one every selected
 * program loads, to be attached by its section.
 */
export async function loadObjectFile(
  target: Target,
  file: string,
  bytes: Uint8Array,
  section: string | undefined,
  link: LinkRequest | null,
): Promise<Loaded | Rejected> {
  const obj = openObject(file, bytes);
  let chosen = obj.programs().filter((p) => section === undefined || p.section === section);
  if (chosen.length === 0) {
    throw new TracelabError(
      'ENOENT',
      `${file}: no program${section === undefined ? 's' : ` in section '${section}'`} (have ${
        obj
          .programs()
          .map((p) => p.section)
          .join(', ') || 'none'
      })`,
    );
  }
  if (link !== null) {
    const fit = chosen.filter(FITS[link.kind]);
    if (fit.length !== 1) {
      throw new TracelabError(
        fit.length === 0 ? 'ENOENT' : 'EINVAL',
        fit.length === 0
          ? `${file}: no program a ${link.kind} link can take (have ${chosen.map((p) => `${p.section} (${p.progType.toLowerCase()})`).join(', ')})`
          : `${file}: ${fit.length} programs fit a ${link.kind} link (${fit.map((p) => p.section).join(', ')}); choose one with --section`,
      );
    }
    chosen = fit;
  }
  const r = await target.loadObject(
    bytes,
    chosen.map((p) => p.name),
  );
  if (r.verdict === 'rejected') return r;
  const btf = obj.btf;
  const maps = obj.parsed.maps.map((m) => ({
    name: m.name,
    fd: r.maps[m.name] as number,
    btf,
    keyTypeId: m.keyTypeId,
    valueTypeId: m.valueTypeId,
  }));
  return { programs: r.programs, maps };
}

/** A load the kernel refused: the errno, the message and the verifier's log. */
export type Rejected = Extract<LoadResult, { verdict: 'rejected' }>;

/** An assembly file is one program whose type and attach point the link gives (bpftool prog load). */
async function loadAsmFile(
  target: Target,
  file: string,
  bytes: Uint8Array,
  link: LinkRequest | null,
  mapSpecs: readonly MapCreateRequest[],
): Promise<Loaded | Rejected> {
  if (link === null) {
    throw new TracelabError(
      'EINVAL',
      `${file}: an assembly program has no section to attach by: give --fentry, --fexit, --fmod-ret or --kprobe-multi`,
    );
  }
  const text = new TextDecoder().decode(bytes);
  // checked here, so the error names the file whichever kernel loads it
  const insns = assemble(text);
  if (insns instanceof VmError) throw aboutFile(file, insns, 'not a BPF object, nor assembly: ');
  // created first, so they get fds 3, 4, ... in the order given, as `map_fd[3, 0] ll` expects
  const maps: MapRef[] = [];
  for (const spec of mapSpecs) {
    const fd = await target.mapCreate(spec);
    const expected = 3 + maps.length;
    if (fd !== expected) {
      // an agent's kernel has other maps open: the program's map_fd[N] would name one of them
      throw new TracelabError(
        'EBUSY',
        `--map ${spec.name}: the kernel gave fd ${fd}, not ${expected}, as others are open there; map_fd[${expected}, 0] in ${file} would name another map`,
      );
    }
    maps.push({ name: spec.name as string, fd });
  }
  const name = basename(file, extname(file));
  const r = await target.loadAsm(
    link.kind === 'kprobe_multi'
      ? { format: 'asm', text, progType: 'kprobe', name, logLevel: 1 }
      : {
          format: 'asm',
          text,
          progType: 'tracing',
          attachType: link.kind,
          attachTarget: link.target,
          name,
          logLevel: 1,
        },
  );
  return r.verdict === 'rejected' ? r : { programs: r.programs, maps };
}

/**
 * Loads a clang object or an assembly file. A program the verifier rejects prints the verifier's
 * log and verdict and sets exit status 1; the result is then null.
 */
export async function loadFile(
  target: Target,
  file: string,
  bytes: Uint8Array,
  opts: { section?: string; map?: readonly MapCreateRequest[] },
  link: LinkRequest | null,
): Promise<Loaded | null> {
  const r = isElf(bytes)
    ? await loadObjectFile(target, file, bytes, opts.section, link)
    : await loadAsmFile(target, file, bytes, link, opts.map ?? []);
  if (!('verdict' in r)) return r;
  if (r.log !== '') process.stdout.write(r.log.endsWith('\n') ? r.log : `${r.log}\n`);
  console.log(`${file}: rejected ${r.code}: ${r.message}`);
  process.exitCode = 1;
  return null;
}

/** Attaches each program as the link says, or as its section says; returns what went where. */
export async function attachPrograms(
  target: Target,
  programs: readonly TargetProg[],
  link: LinkRequest | null,
): Promise<string[]> {
  const lines: string[] = [];
  for (const p of programs) {
    const req: LinkCreateRequest =
      link === null
        ? { attachType: 'section', progFd: p.fd }
        : link.kind === 'kprobe_multi'
          ? { attachType: 'kprobe_multi', progFd: p.fd, pattern: link.target, retprobe: false }
          : { attachType: link.kind, progFd: p.fd, targets: link.target };
    try {
      await target.attach(req);
    } catch (err) {
      throw err instanceof TracelabError ? inContext(`attaching ${label(p)}: `, err) : err;
    }
    lines.push(`${label(p)}: attached to ${link?.target ?? p.attachTarget}`);
  }
  return lines;
}

/** --map NAME:TYPE:KEY:VALUE:MAX for assembly programs, e.g. counts:array:4:8:1. */
function mapSpec(value: string, previous: MapCreateRequest[]): MapCreateRequest[] {
  const [name, type, ...sizes] = value.split(':');
  const mapType = MapTypeSchema.safeParse(type);
  const nums = sizes.map(Number);
  if (
    name === undefined ||
    name === '' ||
    !mapType.success ||
    nums.length !== 3 ||
    !nums.every((n) => Number.isInteger(n) && n > 0)
  ) {
    throw new InvalidArgumentError(
      `'${value}': expected NAME:TYPE:KEY:VALUE:MAX, TYPE one of ${MapTypeSchema.options.join(', ')}, sizes positive integers`,
    );
  }
  const [keySize, valueSize, maxEntries] = nums as [number, number, number];
  return [...previous, { name, type: mapType.data, keySize, valueSize, maxEntries }];
}

/** trace_print_time(): ns as seconds.microseconds. */
function timestamp(ns: number): string {
  const us = Math.floor(ns / 1000);
  return `${String(Math.floor(us / 1e6)).padStart(5)}.${String(us % 1e6).padStart(6, '0')}`;
}

/** bpf_trace_printk lines as trace_pipe shows them. */
async function printkLines(target: Target): Promise<string[]> {
  const lines: string[] = [];
  for (const batch of await target.printk()) {
    if (batch.lost > 0) lines.push(`# ${batch.lost} lines lost`);
    for (const e of batch.events) {
      if (e.type !== 'text') continue;
      lines.push(
        `${e.comm.padStart(16)}-${String(e.pid).padEnd(7)} [${String(e.cpu).padStart(3, '0')}] ..... ${timestamp(e.ts)}: bpf_trace_printk: ${e.text}`,
      );
    }
  }
  return lines;
}

interface AttachOpts extends MachineOpts {
  fentry?: string;
  fexit?: string;
  fmodRet?: string;
  kprobeMulti?: string;
  section?: string;
  map: MapCreateRequest[];
}

/** The one link flag given, if any. */
function linkRequest(opts: AttachOpts): LinkRequest | null {
  const given: LinkRequest[] = [];
  if (opts.fentry !== undefined) given.push({ kind: 'fentry', target: opts.fentry });
  if (opts.fexit !== undefined) given.push({ kind: 'fexit', target: opts.fexit });
  if (opts.fmodRet !== undefined) given.push({ kind: 'fmod_ret', target: opts.fmodRet });
  if (opts.kprobeMulti !== undefined)
    given.push({ kind: 'kprobe_multi', target: opts.kprobeMulti });
  if (given.length > 1) {
    throw new TracelabError(
      'EINVAL',
      `give one of --fentry, --fexit, --fmod-ret, --kprobe-multi (got ${given.map((g) => g.kind).join(', ')})`,
    );
  }
  return given[0] ?? null;
}

/** A glob attaches to many functions: long work on a vmlinux image, worth a progress bar. */
const isGlob = (s: string): boolean => /[*?[]/.test(s);

/** `tracelab attach`: load, verify, attach, run a workload, then the maps and printk output. */
export function registerAttach(program: Command, env: NodeJS.ProcessEnv): void {
  machineOptions(
    program
      .command('attach')
      .description(
        "load a BPF program, print the verifier's verdict (the log and exit 1 on reject), attach it, run a workload, then print its maps and bpf_trace_printk lines",
      )
      .argument('<file>', 'BPF ELF object (.o) built by clang -target bpf, or an assembly file')
      .option('--fentry <func>', 'attach a tracing program at the entry of FUNC (or a glob)')
      .option('--fexit <func>', 'attach a tracing program at the exit of FUNC (or a glob)')
      .option('--fmod-ret <func>', 'attach a tracing program that may replace FUNC (or a glob)')
      .option('--kprobe-multi <glob>', 'attach a kprobe program to every function matching GLOB')
      .option('--section <name>', 'only the programs of this section (objects)')
      .option(
        '--map <spec>',
        'assembly programs: create a map NAME:TYPE:KEY:VALUE:MAX first (repeatable; fds from 3)',
        mapSpec,
        [] as MapCreateRequest[],
      ),
    env,
  ).action(async (file: string, opts: AttachOpts, cmd: Command) => {
    const link = linkRequest(opts);
    const bytes = readInput(file);
    const workload = workloadSpec(opts.workload, false);
    const progress = new Progress(
      targetSteps(opts) + 3,
      opts.btf !== undefined || (link !== null && isGlob(link.target)),
    );
    await withTarget(opts, cmd, progress, async (target) => {
      const loaded = await progress.step(`loading ${file}`, () =>
        loadFile(target, file, bytes, opts, link),
      );
      if (loaded === null) return;
      for (const p of loaded.programs) {
        const stats = p.log.split('\n').find((l) => l.startsWith('processed '));
        console.log(`${label(p)}: accepted${stats === undefined ? '' : `, ${stats}`}`);
      }
      const attached = await progress.step('attaching', () =>
        attachPrograms(target, loaded.programs, link),
      );
      for (const line of attached) console.log(line);
      const result = await runWorkload(target, workload, opts, progress);
      console.log(`${result.workload}: ${result.calls} calls, seed ${result.seed}`);
      for (const m of loaded.maps) process.stdout.write(await formatMap(target, m));
      for (const line of await printkLines(target)) console.log(line);
    });
  });
}
