export {
  MAX_CTX_SLOTS,
  SRC_STACK,
  SRC_ZERO,
  formatPlan,
  marshalPlan,
  planFits,
  planFromPlacement,
  type MarshalPlan,
  type PlanArg,
} from './plan.js';
export {
  formatGrouping,
  groupPlans,
  groupTargets,
  type AttachTarget,
  type Grouping,
  type PlanBucket,
  type PlanGroup,
} from './groups.js';
export { btfGrouping, btfPlanText, btfTargets, type BtfTargetOptions } from './vmlinux.js';
export {
  BPF_FUNC_get_func_arg,
  BPF_FUNC_get_func_arg_cnt,
  BPF_FUNC_get_func_ip,
  BPF_FUNC_get_func_ret,
  TracingState,
  installTracingHelpers,
} from './helpers.js';
export {
  BPF_MAX_TRAMP_LINKS,
  BPF_TRAMP_FENTRY,
  BPF_TRAMP_FEXIT,
  BPF_TRAMP_MODIFY_RETURN,
  BpfTracingLink,
  Trampolines,
  type BpfTrampProgType,
  type Targets,
  type TrampolineOptions,
  type TrampolineStats,
} from './trampoline.js';
