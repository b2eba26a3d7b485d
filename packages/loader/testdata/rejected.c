// Programs clang builds without complaint and the kernel's verifier rejects: each one makes a
// mistake BPF authors make. They parse and link like any object; the verifier tests name the
// message and the source line of each rejection.
#include "common.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

// An empty packet spins for ever: the loop never changes the state it repeats.
SEC("socket")
int spin_on_empty(struct __sk_buff *skb)
{
	if (skb->len == 0)
		for (;;) {
		}
	return 0;
}

// The index is masked to 0..7 but the array has four slots: slots 4..7 lie above the frame.
SEC("socket")
int peek_past_array(struct __sk_buff *skb)
{
	__u64 slots[4];

	slots[0] = skb->len;
	slots[1] = skb->mark;
	slots[2] = skb->pkt_type;
	slots[3] = skb->len + skb->mark;
	return slots[skb->mark & 7];
}

// bpf_map_lookup_elem returns NULL for a missing key; the increment dereferences it unchecked.
SEC("socket")
int count_unchecked(struct __sk_buff *skb)
{
	__u32 key = skb->mark;
	__u64 *count = bpf_map_lookup_elem(&seen, &key);

	*count += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
