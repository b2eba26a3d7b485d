#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

typedef long long unsigned int u64;

typedef int pid_t;

enum state {
	S_IDLE = 0,
	S_RUN = 5,
	S_NEG = -3,
};

enum big {
	B_LO = 1ULL,
	B_HI = 8589934591ULL,
};

struct list_head {
	struct list_head *next;
	struct list_head *prev;
};

struct flags {
	unsigned int a: 3;
	unsigned int b: 5;
	int c: 9;
	unsigned char d;
};

struct opaque;

union both;

struct task_struct {
	volatile long int state;
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
	int matrix[6];
	int *uptr;
};

struct pair {
	long int a;
	long int b;
};

typedef void * (*copy_fn_t)(void * restrict, const void * restrict, long unsigned int);

struct mod_state {
	struct list_head node;
	unsigned int refs;
	int (*probe)(struct mod_state *, long unsigned int);
};

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
