// A prog array whose slots the object fills itself (BTF map `values` initialised with program
// addresses, relocated through .rel.maps), tail calls between programs, and named global-data
// sections (.data.stats, .rodata.cfg) that become maps of their own.
#include "common.h"
#include <bpf/bpf_helpers.h>

__u64 hits[4] SEC(".data.stats") = {};
const volatile __u32 first_slot SEC(".rodata.cfg") = 0;

SEC("socket")
int stage_two(struct __sk_buff *skb)
{
	hits[2]++;
	return 2;
}

SEC("socket")
int stage_one(struct __sk_buff *skb);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int(void *));
} jump_table SEC(".maps") = {
	.values = {
		[0] = (void *)&stage_one,
		[1] = (void *)&stage_two,
	},
};

SEC("socket")
int stage_one(struct __sk_buff *skb)
{
	hits[1]++;
	bpf_tail_call(skb, &jump_table, 1);
	return 1;
}

SEC("socket")
int entry(struct __sk_buff *skb)
{
	hits[0]++;
	bpf_tail_call(skb, &jump_table, first_slot);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
