// Every CO-RE relocation kind clang emits, against local struct flavors (___old / ___new) that
// a target BTF may or may not match, plus kconfig and ksym externs.
#include "common.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct sample {
	int a;
	short b;
	unsigned int flag : 1;
	int level : 5;
	long long c;
	char name[8];
} __attribute__((preserve_access_index));

struct sample___old {
	int a;
	int gone;
} __attribute__((preserve_access_index));

enum sample_state {
	SAMPLE_IDLE = 0,
	SAMPLE_BUSY = 1,
	SAMPLE_GONE = 2,
};

typedef int sample_id_t;

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_HZ __kconfig __weak;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern const void jiffies_64 __ksym;

__u64 out[24];

SEC("kprobe/sample_fn")
int core_all(struct pt_regs *ctx)
{
	struct sample *s = (struct sample *)ctx->di;
	struct sample___old *o = (struct sample___old *)ctx->si;

	out[0] = bpf_core_field_exists(s->b);
	out[1] = bpf_core_field_size(s->c);
	out[2] = bpf_core_field_offset(s->name);
	out[3] = __builtin_preserve_field_info(s->level, BPF_FIELD_SIGNED);
	out[4] = BPF_CORE_READ_BITFIELD_PROBED(s, level);
	out[5] = bpf_core_field_exists(o->gone);
	out[6] = bpf_core_type_id_local(struct sample);
	out[7] = bpf_core_type_id_kernel(struct sample);
	out[8] = bpf_core_type_exists(struct sample);
	out[9] = bpf_core_type_size(struct sample);
	out[10] = bpf_core_enum_value_exists(enum sample_state, SAMPLE_GONE);
	out[11] = bpf_core_enum_value(enum sample_state, SAMPLE_BUSY);
	out[12] = bpf_core_type_exists(sample_id_t);
	out[13] = BPF_CORE_READ(s, a);
	out[14] = LINUX_KERNEL_VERSION;
	out[15] = CONFIG_HZ;
	out[16] = CONFIG_BPF_SYSCALL;
	out[17] = (__u64)&jiffies_64;
	if (bpf_core_field_exists(o->gone))
		out[18] = BPF_CORE_READ(o, gone);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
