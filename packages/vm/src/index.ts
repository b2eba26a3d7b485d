export { VmError, isVmError } from './errors.js';
export type { Errno } from './errors.js';
export {
  AddressSpace,
  MAX_REGION_SIZE,
  MemFault,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  Region,
  isMemFault,
  protString,
} from './memory.js';
export type { AccessKind, AddressSpaceOptions, FaultKind, MapSpec } from './memory.js';
export * from './insn.js';
export { Program } from './program.js';
export {
  BPF_FUNC_tail_call,
  DEFAULT_STACK_BASE,
  MAX_BPF_STACK,
  MAX_CALL_FRAMES,
  MAX_TAIL_CALL_CNT,
  Vm,
} from './vm.js';
export type { HelperFn, VmOptions } from './vm.js';
export { AsmError, assemble } from './asm.js';
export { disassemble, formatInsn, formatInsnConformance } from './disasm.js';
export { CONFORMANCE_MEM_BASE, installConformanceHelpers, runConformance } from './conformance.js';
export * from './maps.js';
export { MapTable } from './table.js';
export * from './buffers.js';
export { HELPER_PROTOS, installHelpers, mapResolver } from './helpers.js';
export type { ArgKind, HelperProto, KernelEnv, RetKind } from './helpers.js';
export { VM_CLI_USAGE, vmCli } from './cli.js';
export type { CliIo } from './cli.js';
export { compile } from './jit.js';
export type { CompiledFn } from './jit.js';
