import { VmError } from './errors.js';
import { AddressSpace, PROT_READ, PROT_WRITE } from './memory.js';
import { Program } from './program.js';
import { Vm } from './vm.js';

/** Where the plugin maps the test's input memory (r1). */
export const CONFORMANCE_MEM_BASE = 0x7f0000000000n;

/**
 * Installs the bpf_conformance suite's helpers: 0 gather_bytes, 1 memfrob, 2 no_op, 3 sqrti,
 * 4 strcmp_ext, 5 unwind (returns its argument and ends the program when that is 0).
 */
export function installConformanceHelpers(vm: Vm): void {
  vm.setHelper(0, (v) => {
    let r = 0n;
    for (let n = 1; n <= 5; n++) r = (r << 8n) | (v.arg(n) & 0xffn);
    return r;
  });
  vm.setHelper(1, (v) => {
    const addr = v.arg(1);
    const len = v.argNum(2);
    const bytes = v.memory.read(addr, len);
    if (!(bytes instanceof Uint8Array)) {
      v.abort(new VmError('EFAULT', `memfrob: ${bytes.message}`));
      return 0;
    }
    for (let k = 0; k < bytes.length; k++) bytes[k] = (bytes[k] as number) ^ 42;
    v.memory.write(addr, bytes);
    return 0;
  });
  vm.setHelper(2, () => 0);
  vm.setHelper(3, (v) => Math.floor(Math.sqrt(Number(v.arg(1)))));
  vm.setHelper(4, (v) => {
    const a = v.memory.readCString(v.arg(1), 1 << 20);
    const b = v.memory.readCString(v.arg(2), 1 << 20);
    if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array)) {
      const f = a instanceof Uint8Array ? b : a;
      v.abort(new VmError('EFAULT', `strcmp_ext: ${String(f)}`));
      return 0;
    }
    for (let k = 0; ; k++) {
      const x = k < a.length ? (a[k] as number) : 0;
      const y = k < b.length ? (b[k] as number) : 0;
      if (x !== y || x === 0) return x - y;
    }
  });
  vm.setHelper(5, (v) => {
    const x = v.arg(1);
    if (x === 0n) v.stop(0n);
    return x;
  });
}

/**
 * Runs one conformance program the way the suite's plugins do: input memory at r1, its length in
 * r2, a 512-byte stack per frame, helpers 0-5. Returns r0 or the error that stopped the program.
 */
export function runConformance(
  bytecode: Uint8Array,
  memory: Uint8Array,
  budget = 10_000_000,
  options: { jit?: boolean } = {},
): bigint | VmError {
  const prog = Program.fromBytes(bytecode);
  if (prog instanceof VmError) return prog;
  const space = new AddressSpace();
  const vm = Vm.create({ memory: space, budget });
  if (vm instanceof VmError) return vm;
  installConformanceHelpers(vm);
  let base = 0n;
  if (memory.length > 0) {
    const r = space.map({
      name: 'input',
      base: CONFORMANCE_MEM_BASE,
      prot: PROT_READ | PROT_WRITE,
      data: memory,
    });
    if (r instanceof VmError) return r;
    base = CONFORMANCE_MEM_BASE;
  }
  const rc =
    options.jit === true
      ? vm.runJit(prog, base, BigInt(memory.length))
      : vm.run(prog, base, BigInt(memory.length));
  if (rc !== 0) return vm.error as VmError;
  return vm.r0;
}
