// kfuncs (extern __ksym functions, one weak and missing) and bpf_printk, whose format string
// lands in .rodata.str1.1: a tp_btf program as tracing tools write them.
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct task_struct {
	int pid;
} __attribute__((preserve_access_index));

extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern int bpf_missing_kfunc(void) __ksym __weak;

SEC("tp_btf/task_newtask")
int BPF_PROG(on_newtask, struct task_struct *task, u64 clone_flags)
{
	struct task_struct *t = bpf_task_acquire(task);

	if (!t)
		return 0;
	if (bpf_missing_kfunc)
		bpf_missing_kfunc();
	bpf_printk("new task %d flags %llx", t->pid, clone_flags);
	bpf_task_release(t);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
