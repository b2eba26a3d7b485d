// Calls counted per function in a hash map, from a kprobe, a kprobe.multi and an fentry program.
#define __TARGET_ARCH_x86
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} calls SEC(".maps");

static __always_inline void count(__u64 ip)
{
	__u64 one = 1, *n;

	n = bpf_map_lookup_elem(&calls, &ip);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	bpf_map_update_elem(&calls, &ip, &one, BPF_NOEXIST);
}

SEC("kprobe/do_sys_openat2")
int BPF_KPROBE(count_kprobe, int dfd, const char *filename)
{
	count(PT_REGS_IP(ctx) - 1);
	return 0;
}

SEC("kprobe.multi/vfs_*")
int count_multi(struct pt_regs *ctx)
{
	count(bpf_get_func_ip(ctx));
	return 0;
}

SEC("fentry/vfs_read")
int BPF_PROG(count_fentry)
{
	count(bpf_get_func_ip(ctx));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
