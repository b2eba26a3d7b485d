// Map-in-map as libbpf declares it: BTF-defined outer maps whose `values` are inner map
// definitions (__array(values, struct inner)), initialised with inner maps of the object
// (.values = { [i] = &inner }, relocated through .rel.maps). Programs look up the outer map,
// then the inner map it returns.
#include "common.h"
#include <bpf/bpf_helpers.h>

#define BPF_MAP_TYPE_ARRAY_OF_MAPS 12
#define BPF_MAP_TYPE_HASH_OF_MAPS 13

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner cpu_stats SEC(".maps"), io_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 3);
	__type(key, __u32);
	__array(values, struct inner);
} by_index SEC(".maps") = {
	.values = {
		[0] = &cpu_stats,
		[2] = &io_stats,
	},
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_ARRAY);
		__uint(max_entries, 4);
		__type(key, __u32);
		__type(value, __u64);
	});
} by_id SEC(".maps") = {
	.values = {
		[5] = (void *)&io_stats,
	},
};

const volatile __u32 outer_key = 0;
const volatile __u32 slot = 1;

static long bump(void *outer, __u32 key)
{
	void *inner = bpf_map_lookup_elem(outer, &key);
	__u32 s = slot;
	__u64 *v;

	if (!inner)
		return -1;
	v = bpf_map_lookup_elem(inner, &s);
	if (!v)
		return -2;
	__sync_fetch_and_add(v, 1);
	return *v;
}

SEC("syscall")
long bump_by_index(void *ctx)
{
	return bump(&by_index, outer_key);
}

SEC("syscall")
long bump_by_id(void *ctx)
{
	return bump(&by_id, outer_key);
}

char LICENSE[] SEC("license") = "GPL";
