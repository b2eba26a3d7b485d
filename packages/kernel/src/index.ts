export { KernelError, isKernelError, type KernelErrno } from './errors.js';
export { globToRegExp } from './glob.js';
export {
  BUILTIN_IMAGE,
  BUILTIN_TRACEPOINTS,
  type ImageGroup,
  type TracepointDecl,
} from './builtin-image.js';
export { KernelImage, parseProto, TRAMPOLINE_AREA_SIZE, type FunctionInfo } from './image.js';
export {
  Task,
  contextOf,
  PREEMPT_OFFSET,
  SOFTIRQ_OFFSET,
  HARDIRQ_OFFSET,
  NMI_OFFSET,
  SOFTIRQ_MASK,
  HARDIRQ_MASK,
  NMI_MASK,
  type ContextName,
} from './task.js';
export {
  Kernel,
  Cpu,
  KernelFault,
  TEXT_POKE_LOG_SIZE,
  ENTRY_CONTINUE,
  ENTRY_SKIP,
  fileAddress,
  NR_OPEN_FILES,
  mulberry32,
  type ArgGenerator,
  type CallNode,
  type CallObserver,
  type IrqSource,
  type KernelOptions,
  type TextHandler,
  type TextPokeRecord,
} from './machine.js';
export {
  WorkloadSchema,
  TaskSchema,
  IrqSchema,
  CallSchema,
  parseWorkload,
  parseWorkloadText,
  compileWorkload,
  builtinWorkload,
  replayWorkload,
  BUILTIN_WORKLOADS,
  type BuiltinWorkloadName,
  type CallSpec,
  type CompiledWorkload,
  type TaskSpec,
  type WorkloadSpec,
} from './workload.js';
export {
  runWorkload,
  runCompiled,
  loadImage,
  kernelInfo,
  formatSymbols,
  kernelEnv,
  type RunOptions,
  type RunSummary,
} from './run.js';
