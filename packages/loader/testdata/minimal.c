// The smallest object: one socket filter, a license, no maps, no BTF-defined anything else.
#include "common.h"
#include <bpf/bpf_helpers.h>

SEC("socket")
int accept_all(struct __sk_buff *skb)
{
	return skb->len > 64 ? 64 : skb->len;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
