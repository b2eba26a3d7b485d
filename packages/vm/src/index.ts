export { ERRNO, VmError, isVmError } from './errors.js';
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
