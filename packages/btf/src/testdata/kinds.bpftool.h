#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

typedef int pid_t;

struct list_head {
	struct list_head *next;
	struct list_head *prev;
};

struct opaque;

union both;

struct flags {
	unsigned int a: 3;
	unsigned int b: 5;
	int c: 9;
	unsigned char d;
};

typedef unsigned long long u64;

enum state {
	S_IDLE = 0,
	S_RUN = 5,
	S_NEG = 4294967293,
};

enum big {
	B_LO = 1,
	B_HI = 4294967295,
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
	int *uptr;
};

struct pair {
	long a;
	long b;
};

typedef void * (*copy_fn_t)(void * restrict, const void * restrict, unsigned long);

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
