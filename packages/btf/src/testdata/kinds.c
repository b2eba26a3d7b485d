/* Small C program covering every BTF kind clang emits, for the btf package's fixtures. */
typedef unsigned long long u64;
typedef int pid_t;
typedef _Bool bool;

enum state { S_IDLE, S_RUN = 5, S_NEG = -3 };
enum big { B_LO = 1, B_HI = 0x1ffffffffULL };

struct list_head {
	struct list_head *next, *prev;
};

struct opaque;
union both;

struct flags {
	unsigned int a : 3;
	unsigned int b : 5;
	int c : 9;
	unsigned char d;
};

struct task_struct {
	volatile long state;
	pid_t pid;
	pid_t tgid;
	char comm[16];
	struct list_head tasks;
	struct task_struct *parent;
	const struct opaque *op;
	union both *ub;
	struct flags fl;
	union {
		u64 raw;
		struct {
			unsigned int lo;
			unsigned int hi;
		};
	};
	float load;
	double avg;
	int (*callback)(struct task_struct *, int);
	enum state st;
	enum big bg;
	int matrix[2][3];
	int * __attribute__((btf_type_tag("user"))) uptr;
} __attribute__((btf_decl_tag("kernel_struct")));

struct pair {
	long a;
	long b;
};

/* RESTRICT and an old-style qualifier chain, kept by a global of pointer-to-function type. */
typedef void *(*copy_fn_t)(void *restrict dst, const void *restrict src, unsigned long n);
copy_fn_t copy_fn;
const volatile int * const volatile cv_ptr;

int counter = 1;
const char message[] = "hi";
struct task_struct init_task;

__attribute__((noinline)) int wake_up_process(struct task_struct *p)
{
	return p->pid + counter;
}

/* BPF cannot call with a struct by value; a pointer type still records the prototype. */
long (*sum_pair_fn)(struct pair pr, int k);

__attribute__((noinline)) static long sum_pair(struct pair *pr, int __attribute__((btf_decl_tag("arg"))) k)
{
	return pr->a + pr->b + k;
}

int prog(void *ctx)
{
	struct pair pr = { 1, 2 };
	init_task.fl.c = -1;
	return wake_up_process(&init_task) + (int)sum_pair(&pr, 3) + message[0] + init_task.pid;
}

#ifdef __clang__
/* CO-RE relocations (clang only): a field offset through a pointer, and a field's existence. */
int core_read(struct task_struct *t)
{
	return __builtin_preserve_access_index(t->fl.d) +
	       __builtin_preserve_field_info(t->tgid, 2 /* FIELD_EXISTS */);
}
#endif
