// A latency histogram: fentry stamps the start, fexit adds log2(delta) to a .bss histogram.
// .rodata carries the pid filter the loader may rewrite, .data a counter with an initial value.
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define MAX_SLOTS 26

const volatile pid_t target_tgid = 0;
const volatile bool in_usecs = false;

__u32 hist[MAX_SLOTS] = {};
__u64 samples = 7;
static __u64 dropped;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

static __always_inline __u32 log2l(__u64 v)
{
	__u32 r = 0;

	while (v > 1 && r < 63) {
		v >>= 1;
		r++;
	}
	return r;
}

SEC("fentry/vfs_read")
int BPF_PROG(read_entry)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u64 ts;

	if (target_tgid && (id >> 32) != target_tgid)
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &tid, &ts, BPF_ANY);
	return 0;
}

SEC("fexit/vfs_read")
int BPF_PROG(read_exit)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *tsp, delta;
	__u32 slot;

	tsp = bpf_map_lookup_elem(&start, &tid);
	if (!tsp) {
		dropped++;
		return 0;
	}
	delta = bpf_ktime_get_ns() - *tsp;
	if (in_usecs)
		delta /= 1000;
	slot = log2l(delta);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	__sync_fetch_and_add(&hist[slot], 1);
	samples++;
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
