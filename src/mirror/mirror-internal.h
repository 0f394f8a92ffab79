/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The mirror layer's internals, shared by its files and its unit tests. */
#ifndef FUSEMIRROR_MIRROR_INTERNAL_H
#define FUSEMIRROR_MIRROR_INTERNAL_H

#include <stdatomic.h>

#include "dmio.h"
#include "mirror/mirror.h"

#define RMW_STRIPE_BITS 6

#define MIRROR_ERROR (mirror_error_quark())
GQuark mirror_error_quark(void);

enum mirror_error {
	MIRROR_ERROR_LEG,    /* a leg cannot be used: missing, too small, duplicated */
	MIRROR_ERROR_ENGINE, /* the I/O engine cannot start */
};

struct leg {
	struct mirror *m;
	unsigned int index;
	char *name;
	char *path;
	bool write_mostly;
	struct dmio_dev *dev;
	atomic_int state; /* enum leg_state */
	atomic_uint pending;
	atomic_ullong read_errors;
	atomic_ullong write_errors;
	/* I/O error log rate limit, under m->lock. */
	gint64 log_window_start;
	unsigned int log_count;
	unsigned long log_suppressed;
};

struct mirror {
	char *name;
	enum read_policy policy;
	struct dmio_client *client;
	uint64_t size; /* bytes */
	bool assembled;
	unsigned int num_legs;
	struct leg *legs;
	GMutex lock; /* changes of leg state */
	GMutex rmw_locks[1u << RMW_STRIPE_BITS];
	atomic_ulong error_bits;
	atomic_ullong events;
	atomic_uint round_robin;
	atomic_uint inflight;
	mirror_event_fn event_fn;
	void *event_opaque;
};

/* Log an event (g_log_structured with FUSEMIRROR_* fields) and pass it to the event handler. */
void mirror_event(struct mirror *m, const char *event, GLogLevelFlags level, int leg,
		  const char *format, ...) G_GNUC_PRINTF(5, 6);

/* The leg the read policy would choose now (for tests); -1 when none can serve. */
int mirror_pick_read_leg(struct mirror *m);

#endif /* FUSEMIRROR_MIRROR_INTERNAL_H */
