/* A "module" whose BTF is split on top of kinds.pahole.btf (types it shares come from the base). */
struct list_head {
	struct list_head *next, *prev;
};

struct mod_state {
	struct list_head node;
	unsigned int refs;
	int (*probe)(struct mod_state *st, unsigned long flags);
};

int mod_probe(struct mod_state *st, unsigned long flags)
{
	return st->refs + (int)flags;
}
