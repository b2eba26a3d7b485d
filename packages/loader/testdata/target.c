// Not a program: its BTF is the target kernel for core.c. Layouts differ from core.c's local
// view on purpose (fields moved, sizes changed, enum values renumbered). core.c's sample___old
// flavor matches this sample by essential name, and its 'gone' field is missing here.
struct sample {
	long long c;
	int pad[3];
	int a;
	char name[16];
	short b;
	unsigned int flag : 3;
	int level : 7;
};

enum sample_state {
	SAMPLE_IDLE = 0,
	SAMPLE_GONE = 5,
	SAMPLE_BUSY = 9,
};

struct task_struct {
	long state;
	void *stack;
	int tgid_pad[4];
	int pid;
	int tgid;
	struct task_struct *real_parent;
	char comm[16];
};

/* kfuncs kfunc.c calls: their FUNCs in this BTF are what the calls resolve to. */
struct task_struct *bpf_task_acquire(struct task_struct *p)
{
	return p;
}

void bpf_task_release(struct task_struct *p)
{
}

struct sample s_anchor;
enum sample_state e_anchor;
struct task_struct t_anchor;

/* Kernel variables ksym.c reads as typed __ksym externs: a VAR each in this BTF. */
struct task_struct init_task;
int max_threads;
