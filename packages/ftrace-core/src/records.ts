/** dyn_ftrace flag bits (include/linux/ftrace.h), 31 down to 19. */
export const FTRACE_FL_ENABLED = 0x80000000;
export const FTRACE_FL_REGS = 1 << 30;
export const FTRACE_FL_REGS_EN = 1 << 29;
export const FTRACE_FL_TRAMP = 1 << 28;
export const FTRACE_FL_TRAMP_EN = 1 << 27;
export const FTRACE_FL_IPMODIFY = 1 << 26;
export const FTRACE_FL_DISABLED = 1 << 25;
export const FTRACE_FL_DIRECT = 1 << 24;
export const FTRACE_FL_DIRECT_EN = 1 << 23;
export const FTRACE_FL_CALL_OPS = 1 << 22;
export const FTRACE_FL_CALL_OPS_EN = 1 << 21;
export const FTRACE_FL_TOUCHED = 1 << 20;
export const FTRACE_FL_MODIFIED = 1 << 19;
/** The low 19 bits count the ops tracing the function. */
export const FTRACE_REF_MAX_SHIFT = 19;
export const FTRACE_REF_MAX = (1 << FTRACE_REF_MAX_SHIFT) - 1;

/** ftrace_rec_count(). */
export function ftraceRecCount(flags: number): number {
  return flags & FTRACE_REF_MAX;
}

const NAMES: readonly [number, string][] = [
  [FTRACE_FL_ENABLED, 'ENABLED'],
  [FTRACE_FL_REGS, 'REGS'],
  [FTRACE_FL_REGS_EN, 'REGS_EN'],
  [FTRACE_FL_TRAMP, 'TRAMP'],
  [FTRACE_FL_TRAMP_EN, 'TRAMP_EN'],
  [FTRACE_FL_IPMODIFY, 'IPMODIFY'],
  [FTRACE_FL_DISABLED, 'DISABLED'],
  [FTRACE_FL_DIRECT, 'DIRECT'],
  [FTRACE_FL_DIRECT_EN, 'DIRECT_EN'],
  [FTRACE_FL_CALL_OPS, 'CALL_OPS'],
  [FTRACE_FL_CALL_OPS_EN, 'CALL_OPS_EN'],
  [FTRACE_FL_TOUCHED, 'TOUCHED'],
  [FTRACE_FL_MODIFIED, 'MODIFIED'],
];

/** The FTRACE_FL_* names set in a record's flags, high bit first. */
export function recFlagNames(flags: number): string[] {
  return NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, n]) => n);
}
