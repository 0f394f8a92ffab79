/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fault-injecting device kind ("fault:PATH", see dev-fault.h): a file or block device opened
 * the ordinary way (dev-file.c), each operation passing a gate first that applies the rules.
 *
 * The device has no descriptor of its own (fd -1), so both engines run its jobs through
 * dmio_job_execute() in their worker threads (io_uring: its fallback pool), and a held operation
 * holds one of those threads, as a hung disk does.
 *
 * The control file PATH.fault is looked at (one stat) by every operation and, every 50 ms, by each
 * held one; it is read again when its inode, size, mtime or ctime changed.  Its rules replace the
 * ones it had before (their counters start again), and a "release" line in it releases the
 * operations held at the time it is read.
 *
 * Locks: fault_lock protects every rule, every target and every hold; fault_cond tells held
 * operations that one of them was released.  Nothing else is held with it, and no operation of
 * the device below runs under it (a small control file is read under it).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dev-fault.h"
#include "dmio-internal.h"

#define FAULT_POLL_US (50 * 1000)

/* A path after "fault:", with its control file's state. */
struct fault_target {
	char *path;
	char *control;	     /* path.fault */
	bool control_loaded; /* control_stat is the file whose rules are in force */
	struct stat control_stat;
};

struct fault_rule_entry {
	int id;
	struct fault_target *target;
	bool from_file;
	struct dmio_fault_rule rule;
	uint64_t fired;
	uint64_t matches; /* for the rate's random sequence */
};

struct fault_hold {
	struct fault_target *target;
	bool released;
	int error; /* positive errno, or 0 */
};

static GMutex fault_lock;
static GCond fault_cond;
static GHashTable *fault_targets; /* path -> struct fault_target *; never freed (tests only) */
static GQueue fault_rules = G_QUEUE_INIT; /* struct fault_rule_entry *, in order of addition */
static GQueue fault_holds = G_QUEUE_INIT; /* struct fault_hold *, each owned by its held thread */
static int fault_next_id = 1;

/* A dmio_dev of this kind: dev first, so that dmio_dev_close()'s g_free(dev) frees it all. */
struct fault_dev {
	struct dmio_dev dev;
	struct dmio_dev *inner;
	struct fault_target *target;
};
G_STATIC_ASSERT(offsetof(struct fault_dev, dev) == 0);

static struct fault_dev *fault_of(struct dmio_dev *dev)
{
	return (struct fault_dev *)dev;
}

/* ---- Targets and rules ---------------------------------------------------------------------- */

/* The target for path, made on first use.  Under fault_lock. */
static struct fault_target *target_get(const char *path)
{
	struct fault_target *t;

	if (fault_targets == NULL)
		fault_targets = g_hash_table_new(g_str_hash, g_str_equal);
	t = g_hash_table_lookup(fault_targets, path);
	if (t == NULL) {
		t = g_new0(struct fault_target, 1);
		t->path = g_strdup(path);
		t->control = g_strconcat(path, ".fault", NULL);
		g_hash_table_insert(fault_targets, t->path, t);
	}
	return t;
}

static bool rule_valid(const struct dmio_fault_rule *rule)
{
	if (rule->ops == 0 || (rule->ops & ~DMIO_FAULT_ALL) || rule->rate_ppm > 1000000)
		return false;
	if (rule->length != 0 && rule->offset + rule->length < rule->offset)
		return false;
	switch (rule->action) {
	case DMIO_FAULT_FAIL:
		return rule->error > 0;
	case DMIO_FAULT_DELAY:
	case DMIO_FAULT_HANG:
		return true;
	default:
		return false;
	}
}

/* Append a rule.  Under fault_lock. */
static int rule_append(struct fault_target *t, const struct dmio_fault_rule *rule, bool from_file)
{
	struct fault_rule_entry *e = g_new0(struct fault_rule_entry, 1);

	e->id = fault_next_id++;
	e->target = t;
	e->from_file = from_file;
	e->rule = *rule;
	g_queue_push_tail(&fault_rules, e);
	return e->id;
}

/* Remove the rules of t (NULL: all) that come from the file (from_file) or the API.  Under lock. */
static void rules_remove(struct fault_target *t, bool from_file)
{
	GList *l = fault_rules.head;

	while (l != NULL) {
		GList *next = l->next;
		struct fault_rule_entry *e = l->data;

		if ((t == NULL || e->target == t) && e->from_file == from_file) {
			g_queue_delete_link(&fault_rules, l);
			g_free(e);
		}
		l = next;
	}
}

/* Release t's held operations with error.  Under fault_lock. */
static unsigned int holds_release(struct fault_target *t, int error)
{
	unsigned int count = 0;
	GList *l;

	for (l = fault_holds.head; l != NULL; l = l->next) {
		struct fault_hold *h = l->data;

		if (h->target == t && !h->released) {
			h->released = true;
			h->error = error;
			count++;
		}
	}
	if (count > 0)
		g_cond_broadcast(&fault_cond);
	return count;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Whether e fires for an operation op of [offset, offset + len), counting it if so.  Under lock. */
static bool rule_fires(struct fault_rule_entry *e, unsigned int op, uint64_t offset, uint64_t len)
{
	const struct dmio_fault_rule *r = &e->rule;

	if (!(r->ops & op))
		return false;
	if (op != DMIO_FAULT_FLUSH) {
		uint64_t end = offset + MAX(len, 1);

		if (end <= r->offset || (r->length != 0 && r->offset + r->length <= offset))
			return false;
	}
	if (r->times != 0 && e->fired >= r->times)
		return false;
	if (r->rate_ppm != 0 && r->rate_ppm < 1000000 &&
	    splitmix64(splitmix64(r->seed) ^ e->matches++) % 1000000 >= r->rate_ppm)
		return false;
	e->fired++;
	return true;
}

/* ---- The control file ----------------------------------------------------------------------- */

static const struct {
	const char *name;
	int value;
} fault_errnos[] = {
    {"EIO", EIO},
    {"ENOSPC", ENOSPC},
    {"EROFS", EROFS},
    {"ENXIO", ENXIO},
    {"ENODEV", ENODEV},
    {"ETIMEDOUT", ETIMEDOUT},
    {"EPERM", EPERM},
    {"EACCES", EACCES},
    {"ENOMEM", ENOMEM},
    {"EAGAIN", EAGAIN},
    {"EINVAL", EINVAL},
    {"EOPNOTSUPP", EOPNOTSUPP},
    {"ECONNRESET", ECONNRESET},
    {"ESHUTDOWN", ESHUTDOWN},
};

/* An errno by name (EIO) or number; 0 when it is neither. */
static int parse_errno(const char *s)
{
	char *end;
	unsigned long v;
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(fault_errnos); i++)
		if (strcmp(s, fault_errnos[i].name) == 0)
			return fault_errnos[i].value;
	v = strtoul(s, &end, 10);
	return *s != '\0' && *end == '\0' && v > 0 && v < 4096 ? (int)v : 0;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = g_ascii_strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static bool parse_ops(const char *s, unsigned int *ops)
{
	g_auto(GStrv) words = g_strsplit(s, ",", -1);
	guint i;

	*ops = 0;
	for (i = 0; words[i] != NULL; i++) {
		if (strcmp(words[i], "read") == 0)
			*ops |= DMIO_FAULT_READ;
		else if (strcmp(words[i], "write") == 0)
			*ops |= DMIO_FAULT_WRITE;
		else if (strcmp(words[i], "flush") == 0)
			*ops |= DMIO_FAULT_FLUSH;
		else if (strcmp(words[i], "all") == 0)
			*ops |= DMIO_FAULT_ALL;
		else
			return false;
	}
	return *ops != 0;
}

/* OFFSET+LENGTH in bytes, or "*" for the whole device. */
static bool parse_range(const char *s, uint64_t *offset, uint64_t *length)
{
	g_auto(GStrv) parts = NULL;

	*offset = 0;
	*length = 0;
	if (strcmp(s, "*") == 0)
		return true;
	parts = g_strsplit(s, "+", 2);
	return parts[0] != NULL && parts[1] != NULL && parse_u64(parts[0], offset) &&
	       parse_u64(parts[1], length) && *length > 0 && *offset + *length > *offset;
}

/*
 * One line: "ACTION OPS RANGE [KEY=VALUE...]" or "release [error=ERRNO]".  Adds the rule, or does
 * the release.  Returns NULL, or what is wrong with the line.  Under fault_lock.
 */
static const char *control_line(struct fault_target *t, char **words)
{
	struct dmio_fault_rule rule = {0};
	bool release = false;
	guint n = g_strv_length(words), i, first_key = 3;
	int release_error = 0;

	if (strcmp(words[0], "release") == 0) {
		release = true;
		first_key = 1;
	} else if (strcmp(words[0], "fail") == 0) {
		rule.action = DMIO_FAULT_FAIL;
		rule.error = EIO;
	} else if (strcmp(words[0], "delay") == 0) {
		rule.action = DMIO_FAULT_DELAY;
	} else if (strcmp(words[0], "hang") == 0) {
		rule.action = DMIO_FAULT_HANG;
	} else {
		return "unknown action (fail, delay, hang or release)";
	}
	if (!release) {
		if (n < 3)
			return "expected ACTION OPS RANGE";
		if (!parse_ops(words[1], &rule.ops))
			return "bad operations (read, write, flush, all, comma-separated)";
		if (!parse_range(words[2], &rule.offset, &rule.length))
			return "bad range (OFFSET+LENGTH in bytes, or *)";
	}
	for (i = first_key; i < n; i++) {
		const char *eq = strchr(words[i], '=');
		g_autofree char *key = eq != NULL ? g_strndup(words[i], eq - words[i]) : NULL;
		const char *value = eq != NULL ? eq + 1 : NULL;
		uint64_t u;

		if (key == NULL)
			return "expected KEY=VALUE";
		if (strcmp(key, "error") == 0) {
			int e = parse_errno(value);

			if (e == 0 && !(release && strcmp(value, "0") == 0))
				return "bad error (a name such as EIO, or a number)";
			rule.error = e;
			release_error = e;
		} else if (release) {
			return "release takes only error=";
		} else if (strcmp(key, "times") == 0 && parse_u64(value, &u)) {
			rule.times = u;
		} else if (strcmp(key, "seed") == 0 && parse_u64(value, &u)) {
			rule.seed = u;
		} else if (strcmp(key, "ms") == 0 && parse_u64(value, &u) &&
			   u <= UINT64_MAX / 1000) {
			rule.delay_us = u * 1000;
		} else if (strcmp(key, "rate") == 0) {
			char *end;
			double p = g_ascii_strtod(value, &end);

			if (*value == '\0' || *end != '\0' || !(p > 0 && p <= 1))
				return "bad rate (a probability in (0, 1])";
			rule.rate_ppm = (uint32_t)(p * 1000000 + 0.5);
			if (rule.rate_ppm == 0)
				rule.rate_ppm = 1;
		} else {
			return "unknown or bad key (error, times, rate, seed, ms)";
		}
	}
	if (release)
		holds_release(t, release_error);
	else
		rule_append(t, &rule, true);
	return NULL;
}

/* The blank-separated words of a line (g_strsplit_set gives empty ones for runs of blanks). */
static char **split_words(char *line)
{
	char **words = g_strsplit_set(g_strstrip(line), " \t", -1);
	guint from, to = 0;

	for (from = 0; words[from] != NULL; from++) {
		if (*words[from] == '\0')
			g_free(words[from]);
		else
			words[to++] = words[from];
	}
	words[to] = NULL;
	return words;
}

static bool same_file_state(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Put the control file's rules in force if it changed.  Under fault_lock. */
static void control_reload(struct fault_target *t)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;
	struct stat st;
	guint i;

	if (stat(t->control, &st) < 0) {
		if (t->control_loaded)
			rules_remove(t, true);
		t->control_loaded = false;
		return;
	}
	if (t->control_loaded && same_file_state(&st, &t->control_stat))
		return;
	rules_remove(t, true);
	t->control_loaded = true;
	t->control_stat = st;
	if (!g_file_get_contents(t->control, &text, NULL, NULL))
		return;
	lines = g_strsplit(text, "\n", -1);
	for (i = 0; lines[i] != NULL; i++) {
		g_auto(GStrv) words = NULL;
		char *hash = strchr(lines[i], '#');
		const char *problem;

		if (hash != NULL)
			*hash = '\0';
		words = split_words(lines[i]);
		if (words[0] == NULL)
			continue;
		problem = control_line(t, words);
		if (problem != NULL)
			g_warning("%s:%u: %s; line ignored", t->control, i + 1, problem);
	}
}

/* ---- The gate ------------------------------------------------------------------------------- */

/*
 * What the rules say of an operation op of [offset, offset + len) on dev: 0 to let it through
 * (after its delay, or once released with success), or -errno to fail it.
 */
static int fault_gate(struct dmio_dev *dev, unsigned int op, uint64_t offset, uint64_t len)
{
	struct fault_target *t = fault_of(dev)->target;
	struct fault_rule_entry *rule = NULL;
	struct fault_hold hold = {.target = t};
	GList *l;
	int r;

	g_mutex_lock(&fault_lock);
	control_reload(t);
	for (l = fault_rules.head; l != NULL; l = l->next) {
		struct fault_rule_entry *e = l->data;

		if (e->target == t && rule_fires(e, op, offset, len)) {
			rule = e;
			break;
		}
	}
	if (rule == NULL) {
		g_mutex_unlock(&fault_lock);
		return 0;
	}
	switch (rule->rule.action) {
	case DMIO_FAULT_FAIL:
		r = -rule->rule.error;
		g_mutex_unlock(&fault_lock);
		return r;
	case DMIO_FAULT_DELAY: {
		uint64_t delay = rule->rule.delay_us;

		g_mutex_unlock(&fault_lock);
		g_usleep(delay);
		return 0;
	}
	default:
		break;
	}
	/* A hang: wait, looking at the control file now and then for a "release". */
	g_queue_push_tail(&fault_holds, &hold);
	while (!hold.released) {
		gint64 until = g_get_monotonic_time() + FAULT_POLL_US;

		if (!g_cond_wait_until(&fault_cond, &fault_lock, until))
			control_reload(t);
	}
	g_queue_remove(&fault_holds, &hold);
	g_mutex_unlock(&fault_lock);
	return -hold.error;
}

int dmio_fault_add(const char *target, const struct dmio_fault_rule *rule)
{
	int id;

	if (target == NULL || *target == '\0' || rule == NULL || !rule_valid(rule))
		return -EINVAL;
	g_mutex_lock(&fault_lock);
	id = rule_append(target_get(target), rule, false);
	g_mutex_unlock(&fault_lock);
	return id;
}

uint64_t dmio_fault_fired(int id)
{
	uint64_t fired = 0;
	GList *l;

	g_mutex_lock(&fault_lock);
	for (l = fault_rules.head; l != NULL; l = l->next) {
		struct fault_rule_entry *e = l->data;

		if (e->id == id) {
			fired = e->fired;
			break;
		}
	}
	g_mutex_unlock(&fault_lock);
	return fired;
}

void dmio_fault_clear(const char *target)
{
	g_mutex_lock(&fault_lock);
	if (target == NULL)
		rules_remove(NULL, false);
	else if (fault_targets != NULL && g_hash_table_contains(fault_targets, target))
		rules_remove(target_get(target), false);
	g_mutex_unlock(&fault_lock);
}

unsigned int dmio_fault_held(const char *target)
{
	unsigned int count = 0;
	GList *l;

	if (target == NULL)
		return 0;
	g_mutex_lock(&fault_lock);
	for (l = fault_holds.head; l != NULL; l = l->next) {
		struct fault_hold *h = l->data;

		if (!h->released && strcmp(h->target->path, target) == 0)
			count++;
	}
	g_mutex_unlock(&fault_lock);
	return count;
}

unsigned int dmio_fault_release(const char *target, int error)
{
	unsigned int count = 0;

	if (target == NULL || error < 0)
		return 0;
	g_mutex_lock(&fault_lock);
	if (fault_targets != NULL && g_hash_table_contains(fault_targets, target))
		count = holds_release(target_get(target), error);
	g_mutex_unlock(&fault_lock);
	return count;
}

/* ---- The device vtable ---------------------------------------------------------------------- */

static uint64_t iov_length(const struct iovec *iov, int iovcnt)
{
	uint64_t len = 0;
	int i;

	for (i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	return len;
}

static ssize_t fault_preadv(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			    uint64_t offset)
{
	struct dmio_dev *inner = fault_of(dev)->inner;
	int r = fault_gate(dev, DMIO_FAULT_READ, offset, iov_length(iov, iovcnt));

	return r < 0 ? r : inner->ops->preadv(inner, iov, iovcnt, offset);
}

static ssize_t fault_pwritev(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			     uint64_t offset, int rwf_flags)
{
	struct dmio_dev *inner = fault_of(dev)->inner;
	int r = fault_gate(dev, DMIO_FAULT_WRITE, offset, iov_length(iov, iovcnt));

	return r < 0 ? r : inner->ops->pwritev(inner, iov, iovcnt, offset, rwf_flags);
}

static int fault_flush(struct dmio_dev *dev)
{
	struct dmio_dev *inner = fault_of(dev)->inner;
	int r = fault_gate(dev, DMIO_FAULT_FLUSH, 0, 0);

	return r < 0 ? r : inner->ops->flush(inner);
}

static int fault_discard(struct dmio_dev *dev, uint64_t offset, uint64_t len)
{
	struct dmio_dev *inner = fault_of(dev)->inner;
	int r = fault_gate(dev, DMIO_FAULT_WRITE, offset, len);

	return r < 0 ? r : inner->ops->discard(inner, offset, len);
}

static int fault_zero(struct dmio_dev *dev, uint64_t offset, uint64_t len)
{
	struct dmio_dev *inner = fault_of(dev)->inner;
	int r = fault_gate(dev, DMIO_FAULT_WRITE, offset, len);

	return r < 0 ? r : inner->ops->zero(inner, offset, len);
}

static void fault_close(struct dmio_dev *dev)
{
	dmio_dev_close(fault_of(dev)->inner);
}

static const struct dmio_dev_ops fault_ops = {
    .kind = "fault",
    .preadv = fault_preadv,
    .pwritev = fault_pwritev,
    .flush = fault_flush,
    .discard = fault_discard,
    .zero = fault_zero,
    .close = fault_close,
};

int dmio_dev_fault_open(const char *path, unsigned int flags, struct dmio_dev **out)
{
	const char *target = path + strlen(DMIO_DEV_FAULT_PREFIX);
	const char *allowed = g_getenv("FUSEMIRROR_TEST_DEVICES");
	struct dmio_dev *inner, *dev;
	struct fault_dev *fd;
	int r;

	if (allowed == NULL || strcmp(allowed, "1") != 0)
		return -EPERM;
	if (*target == '\0')
		return -EINVAL;
	r = dmio_dev_file_open(target, flags, &inner);
	if (r < 0)
		return r;

	fd = g_new0(struct fault_dev, 1);
	fd->inner = inner;
	g_mutex_lock(&fault_lock);
	fd->target = target_get(target);
	g_mutex_unlock(&fault_lock);
	dev = &fd->dev;
	dev->ops = &fault_ops;
	dev->path = g_strdup(path);
	dev->fd = -1; /* so io_uring hands its jobs to dmio_job_execute(), through the gate */
	dev->flags = flags;
	dev->is_block = inner->is_block;
	dev->size = inner->size;
	dev->lbs = inner->lbs;
	dev->mem_align = inner->mem_align;
	dev->offset_align = inner->offset_align;
	atomic_init(&dev->can_discard, atomic_load(&inner->can_discard));
	atomic_init(&dev->can_zero, atomic_load(&inner->can_zero));
	atomic_init(&dev->can_fua, atomic_load(&inner->can_fua));
	atomic_init(&dev->avg_ns, 0);
	atomic_init(&dev->timed_ns, 0);
	atomic_init(&dev->probe_ns, 0);
	*out = dev;
	return 0;
}
