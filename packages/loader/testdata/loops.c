// Control flow a loader must stitch together: a bounded loop, BPF-to-BPF calls into .text
// (a static and a global subprogram), and bpf_loop with a callback (lddw of a function address).
// run_sum returns a value computed from .rodata, .data and a loop: it runs in the vm.
#include "common.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 limit = 10;
__u64 base_value = 100;

struct loop_ctx {
	__u64 sum;
};

static __noinline __u64 square(__u64 x)
{
	return x * x;
}

__noinline int add_global(int a, int b)
{
	return a + b;
}

static long loop_cb(__u32 index, void *data)
{
	struct loop_ctx *c = data;

	c->sum += index;
	return 0;
}

SEC("syscall")
int run_sum(void *ctx)
{
	__u64 sum = base_value;
	__u32 i;

	for (i = 0; i < 16 && i < limit; i++)
		sum += square(i);
	return add_global((int)sum, 1);
}

SEC("syscall")
int run_loop(void *ctx)
{
	struct loop_ctx c = { .sum = 0 };

	bpf_loop(limit, loop_cb, &c, 0);
	return (int)c.sum;
}

char LICENSE[] SEC("license") = "GPL";
