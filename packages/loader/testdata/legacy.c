// Old-style objects: maps in a "maps" section as struct bpf_map_def, a version section, and
// tracepoint programs under both spellings (tracepoint/ and tp/).
#include "common.h"
#include <bpf/bpf_helpers.h>

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") counters = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
};

struct bpf_map_def SEC("maps") seen = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 128,
	.map_flags = 1,
};

static __always_inline void bump(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int on_openat(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32, one = 1;

	bump(0);
	bpf_map_update_elem(&seen, &pid, &one, BPF_ANY);
	return 0;
}

SEC("tp/syscalls/sys_enter_close")
int on_close(void *ctx)
{
	bump(1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0x060b00;
