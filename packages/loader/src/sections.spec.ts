import { describe, expect, it } from 'vitest';
import { LoaderError, matchSection, sectionInfo } from './index.js';

describe("section names follow libbpf's SEC() conventions", () => {
  it.each([
    ['socket', 'SOCKET_FILTER', undefined, '', false, false],
    ['kprobe/do_sys_openat2', 'KPROBE', undefined, 'do_sys_openat2', false, false],
    ['kprobe', 'KPROBE', undefined, '', false, false],
    ['kretprobe/vfs_read', 'KPROBE', undefined, 'vfs_read', true, false],
    ['kprobe.multi/vfs_*', 'KPROBE', 'BPF_TRACE_KPROBE_MULTI', 'vfs_*', false, false],
    ['kretprobe.multi/tcp_*', 'KPROBE', 'BPF_TRACE_KPROBE_MULTI', 'tcp_*', true, false],
    ['kprobe.session/vfs_write', 'KPROBE', 'BPF_TRACE_KPROBE_SESSION', 'vfs_write', false, false],
    ['fentry/vfs_read', 'TRACING', 'BPF_TRACE_FENTRY', 'vfs_read', false, false],
    ['fexit/vfs_read', 'TRACING', 'BPF_TRACE_FEXIT', 'vfs_read', false, false],
    [
      'fmod_ret/security_file_open',
      'TRACING',
      'BPF_MODIFY_RETURN',
      'security_file_open',
      false,
      false,
    ],
    ['fentry.s/do_exit', 'TRACING', 'BPF_TRACE_FENTRY', 'do_exit', false, true],
    ['tp_btf/sched_switch', 'TRACING', 'BPF_TRACE_RAW_TP', 'sched_switch', false, false],
    ['raw_tp/sys_enter', 'RAW_TRACEPOINT', undefined, 'sys_enter', false, false],
    ['raw_tracepoint/sys_exit', 'RAW_TRACEPOINT', undefined, 'sys_exit', false, false],
    ['tracepoint/sched/sched_switch', 'TRACEPOINT', undefined, 'sched/sched_switch', false, false],
    [
      'tp/syscalls/sys_enter_read',
      'TRACEPOINT',
      undefined,
      'syscalls/sys_enter_read',
      false,
      false,
    ],
    ['perf_event', 'PERF_EVENT', undefined, '', false, false],
    ['syscall', 'SYSCALL', undefined, '', false, true],
  ] as const)('%s', (name, progType, attachType, target, retprobe, sleepable) => {
    const info = sectionInfo(name);
    expect(info.def.progType).toBe(progType);
    expect(info.def.attachType).toBe(attachType);
    expect(info.attachTarget).toBe(target);
    expect(info.def.retprobe).toBe(retprobe);
    expect(info.def.sleepable).toBe(sleepable);
  });

  it.each([
    'xdp',
    'classifier',
    'kprobes/foo',
    'socketx',
    'socket/1',
    'fentryx/foo',
    'perf_event/x',
    '',
  ])('%s is an unsupported program type', (name) => {
    expect(matchSection(name)).toBeUndefined();
    expect(() => sectionInfo(name)).toThrow(LoaderError);
    expect(() => sectionInfo(name)).toThrow(/EOPNOTSUPP: unsupported program type/);
  });

  it('tracepoints must name category/event', () => {
    expect(() => sectionInfo('tracepoint/sched_switch')).toThrow(/category\/name/);
    expect(() => sectionInfo('tp/a/b/c')).toThrow(/EINVAL/);
  });
});
