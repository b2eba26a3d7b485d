// Single-function kprobes as tracing tools write them: kprobe/FUNC and kretprobe/FUNC (ftrace-based
// on function entry in the kernel), a raw tracepoint, and a kprobe at an offset into a function.
#define __TARGET_ARCH_x86
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u64 entries, exits, sized;

SEC("kprobe/vfs_read")
int BPF_KPROBE(read_entry, void *file, char *buf, __u64 count)
{
	entries++;
	if (count > 0)
		sized++;
	return 0;
}

SEC("kretprobe/vfs_read")
int BPF_KRETPROBE(read_exit, long ret)
{
	exits++;
	return 0;
}

SEC("raw_tp/sched_switch")
int on_switch(void *ctx)
{
	return 0;
}

SEC("kprobe/vfs_read+0x10")
int read_inside(struct pt_regs *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
