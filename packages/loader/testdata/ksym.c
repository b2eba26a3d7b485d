// Typed __ksym variables as libbpf links them: each extern's type is checked against the
// kernel's VAR of that name (bpf_core_types_are_compat) and its lddw becomes BPF_PSEUDO_BTF_ID
// with the kernel's type id; the kernel fills in the address from kallsyms. The program reads a
// struct variable through its BTF fields (CO-RE places them) and an int variable (read-only
// memory); a __weak one the kernel lacks has address 0.
#include "common.h"
#include <bpf/bpf_helpers.h>

struct task_struct {
	int pid;
	char comm[16];
} __attribute__((preserve_access_index));

extern const struct task_struct init_task __ksym;
extern const int max_threads __ksym;
extern const struct task_struct no_such_task __ksym __weak;

char comm[16];
int weak_missing;

SEC("syscall")
long read_ksyms(void *ctx)
{
	__builtin_memcpy(comm, init_task.comm, sizeof(comm));
	weak_missing = &no_such_task == NULL;
	return (long)max_threads * 1000 + init_task.pid;
}

char LICENSE[] SEC("license") = "GPL";
