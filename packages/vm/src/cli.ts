import { assemble } from './asm.js';
import { CONFORMANCE_MEM_BASE, installConformanceHelpers, runConformance } from './conformance.js';
import { disassemble, formatInsn } from './disasm.js';
import { VmError } from './errors.js';
import { type Insn, decode, encode, parseHex, toHex } from './insn.js';
import { AddressSpace, PROT_READ, PROT_WRITE } from './memory.js';
import { Program } from './program.js';
import { Vm } from './vm.js';

export interface CliIo {
  readFile(path: string): Uint8Array | VmError;
  /** All of standard input (the plugin reads its program there). */
  readStdin?(): string;
  stdout(text: string): void;
  stderr(text: string): void;
}

export const VM_CLI_USAGE = `usage: vm asm FILE | vm disasm FILE [--conformance] | vm run FILE [--mem HEX | --mem-file F] [--trace] [--jit] | vm plugin [MEMHEX] [--jit]
  asm     assemble FILE (either syntax) and print the bytecode as hex
  disasm  disassemble FILE (hex text or raw bytecode) as llvm-objdump -d prints it
          (--conformance: in the bpf_conformance suite's syntax)
  run     run FILE (assembly or hex bytecode) with the input memory at r1 and its length in r2
  plugin  the bpf_conformance plugin: program hex on stdin, memory hex as argument, r0 hex out`;

/** The bpf_conformance plugin protocol (see bin/conformance-plugin.ts). */
function plugin(args: readonly string[], io: CliIo): number {
  if (args.includes('--elf')) {
    io.stderr('ELF input is not supported by this plugin; run without --elf\n');
    return 1;
  }
  if (io.readStdin === undefined) {
    io.stderr('plugin: no standard input available\n');
    return 1;
  }
  const prog = parseHex(io.readStdin());
  if (prog instanceof VmError) {
    io.stderr(`program: ${prog.message}\n`);
    return 1;
  }
  const memArg = args.find((a) => !a.startsWith('--'));
  const mem = memArg === undefined ? new Uint8Array(0) : parseHex(memArg);
  if (mem instanceof VmError) {
    io.stderr(`memory: ${mem.message}\n`);
    return 1;
  }
  const r0 = runConformance(prog, mem, 10_000_000, { jit: args.includes('--jit') });
  if (r0 instanceof VmError) {
    io.stderr(`${r0.message}\n`);
    return 1;
  }
  io.stdout(`${r0.toString(16)}\n`);
  return 0;
}

/** Bytecode from a file: hex text, assembly text, or raw bytes. */
function loadInsns(bytes: Uint8Array, allowAsm: boolean): Insn[] | VmError {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (/^[\s0-9a-fA-F]*$/.test(text) && /[0-9a-fA-F]/.test(text)) {
    const raw = parseHex(text);
    return raw instanceof VmError ? raw : decode(raw);
  }
  // Raw bytecode has bytes that text never does (NUL in nearly every instruction).
  if (bytes.includes(0)) return decode(bytes);
  return allowAsm ? assemble(text) : new VmError('EINVAL', 'expected hex text or raw bytecode');
}

function regs(vm: Vm): string {
  const out: string[] = [];
  for (let r = 0; r <= 10; r++) {
    const v = (BigInt((vm.hi[r] as number) >>> 0) << 32n) | BigInt((vm.lo[r] as number) >>> 0);
    if (v !== 0n) out.push(`r${r}=0x${v.toString(16)}`);
  }
  return out.join(' ');
}

/** `tracelab vm asm|disasm|run`: returns the exit code (0 ok, 1 error, 2 usage). */
export function vmCli(argv: readonly string[], io: CliIo): number {
  const [cmd, file, ...rest] = argv;
  if (cmd === 'plugin') return plugin(argv.slice(1), io);
  if (cmd === undefined || file === undefined || !['asm', 'disasm', 'run'].includes(cmd)) {
    io.stderr(`${VM_CLI_USAGE}\n`);
    return 2;
  }
  const src = io.readFile(file);
  if (src instanceof VmError) {
    io.stderr(`${file}: ${src.message}\n`);
    return 1;
  }
  if (cmd === 'asm') {
    const insns = assemble(new TextDecoder().decode(src));
    if (insns instanceof VmError) {
      io.stderr(`${file}: ${insns.message}\n`);
      return 1;
    }
    const hex = toHex(encode(insns)).split(' ');
    for (let k = 0; k < hex.length; k += 8) io.stdout(`${hex.slice(k, k + 8).join(' ')}\n`);
    return 0;
  }
  const insns = loadInsns(src, cmd === 'run');
  if (insns instanceof VmError) {
    io.stderr(`${file}: ${insns.message}\n`);
    return 1;
  }
  if (cmd === 'disasm') {
    const conf = rest.includes('--conformance');
    io.stdout(disassemble(insns, { syntax: conf ? 'conformance' : 'llvm' }));
    return 0;
  }
  let mem: Uint8Array = new Uint8Array(0);
  let trace = false;
  let jit = false;
  for (let k = 0; k < rest.length; k++) {
    const opt = rest[k];
    if (opt === '--trace') trace = true;
    else if (opt === '--jit') jit = true;
    else if ((opt === '--mem' || opt === '--mem-file') && rest[k + 1] !== undefined) {
      const arg = rest[++k] as string;
      const m = opt === '--mem' ? parseHex(arg) : io.readFile(arg);
      if (m instanceof VmError) {
        io.stderr(`${opt} ${arg}: ${m.message}\n`);
        return 1;
      }
      mem = m;
    } else {
      io.stderr(`unknown option ${opt}\n${VM_CLI_USAGE}\n`);
      return 2;
    }
  }
  const prog = Program.load(insns, { name: file });
  if (prog instanceof VmError) {
    io.stderr(`${file}: ${prog.message}\n`);
    return 1;
  }
  const space = new AddressSpace();
  const vm = Vm.create({ memory: space, budget: 100_000_000 });
  if (vm instanceof VmError) {
    io.stderr(`${vm.message}\n`);
    return 1;
  }
  installConformanceHelpers(vm);
  let base = 0n;
  if (mem.length > 0) {
    space.map({
      name: 'input',
      base: CONFORMANCE_MEM_BASE,
      prot: PROT_READ | PROT_WRITE,
      data: mem,
    });
    base = CONFORMANCE_MEM_BASE;
  }
  const len = BigInt(mem.length);
  const rc = trace
    ? vm.runTraced(
        prog,
        (pc) =>
          io.stdout(
            `${String(pc).padStart(5)}: ${formatInsn(insns[pc] as Insn).padEnd(36)} ${regs(vm)}\n`,
          ),
        base,
        len,
      )
    : jit
      ? vm.runJit(prog, base, len)
      : vm.run(prog, base, len);
  if (rc !== 0) {
    io.stderr(`${(vm.error as VmError).message}\n`);
    return 1;
  }
  io.stdout(`0x${vm.r0.toString(16)}\n`);
  return 0;
}
