/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Synchronous I/O on chosen legs, at leg offsets: the superblocks, the bitmap and the resync's
 * copy.  The data path does not use it (io.c issues asynchronous fan-outs).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>

#include "mirror/mirror-internal.h"

#define IO_ERROR_LOG_BURST     10 /* I/O error messages per leg per window */
#define IO_ERROR_LOG_WINDOW_US (10 * G_USEC_PER_SEC)

/* ---- I/O error logs ------------------------------------------------------------------------ */

void leg_note_io_error(struct leg *leg, int err)
{
	atomic_store(&leg->io_errno, err);
}

void leg_log_io_error(struct mirror *m, struct leg *leg, const char *what, uint64_t data_offset,
		      uint64_t leg_offset, uint64_t len, int err, unsigned long error_bits)
{
	gint64 now = g_get_monotonic_time();
	unsigned long suppressed = 0;
	char errno_text[16], offset_text[24], where[80];
	bool log;

	leg_note_io_error(leg, err);
	g_mutex_lock(&m->state_lock);
	if (now - leg->log_window_start > IO_ERROR_LOG_WINDOW_US) {
		suppressed = leg->log_suppressed;
		leg->log_window_start = now;
		leg->log_count = 0;
		leg->log_suppressed = 0;
	}
	log = leg->log_count < IO_ERROR_LOG_BURST;
	if (log)
		leg->log_count++;
	else
		leg->log_suppressed++;
	g_mutex_unlock(&m->state_lock);

	if (suppressed > 0)
		g_log_structured(G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "FUSEMIRROR_EVENT", "IOError",
				 "FUSEMIRROR_MIRROR", m->name, "FUSEMIRROR_LEG", leg->name,
				 "FUSEMIRROR_LEG_PATH", leg->shown, "MESSAGE",
				 "IOError: leg %u (%s): %lu more I/O errors were not logged",
				 leg->index, leg->name, suppressed);
	if (!log)
		return;
	g_snprintf(errno_text, sizeof(errno_text), "%d", err);
	g_snprintf(offset_text, sizeof(offset_text), "%" PRIu64, leg_offset);
	/* Metadata lies before the data area: only its leg offset means anything. */
	if (data_offset == LEG_IO_METADATA)
		g_snprintf(where, sizeof(where), "at leg offset %" PRIu64, leg_offset);
	else
		g_snprintf(where, sizeof(where),
			   "at data offset %" PRIu64 " (leg offset %" PRIu64 ")", data_offset,
			   leg_offset);
	g_log_structured(
	    G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "FUSEMIRROR_EVENT", "IOError", "FUSEMIRROR_MIRROR",
	    m->name, "FUSEMIRROR_LEG", leg->name, "FUSEMIRROR_LEG_PATH", leg->shown,
	    "FUSEMIRROR_ERRNO", errno_text, "FUSEMIRROR_LEG_OFFSET", offset_text, "MESSAGE",
	    "IOError: %s error on leg %u (%s, %s) %s length %" PRIu64
	    ": %s (errno %d, error bits 0x%lx)",
	    what, leg->index, leg->name, leg->shown, where, len, g_strerror(err), err, error_bits);
}

/* ---- Synchronous I/O ----------------------------------------------------------------------- */

int mirror_sync_io(struct mirror *m, enum dmio_op op, unsigned int flags, struct leg **legs,
		   unsigned int n, void *buf, uint64_t leg_offset, uint64_t len, int *errors)
{
	struct dmio_region where[DMIO_MAX_REGIONS];
	int region_errors[DMIO_MAX_REGIONS];
	/* Abandonable: a hung leg must not hang a superblock commit, the bitmap or the resync. */
	struct dmio_request req = {
	    .op = op,
	    .flags = flags | DMIO_REQ_ABANDONABLE,
	    .client = m->client,
	    .region_errors = region_errors,
	};
	unsigned long bits = 0;
	unsigned int i;
	int r;

	if (n == 0)
		return -ENODEV;
	req.mem.type = DMIO_MEM_VM;
	req.mem.ptr.vma = buf;
	for (i = 0; i < n; i++) {
		where[i].dev = legs[i]->dev;
		where[i].sector = leg_offset >> DMIO_SECTOR_SHIFT;
		where[i].count = len >> DMIO_SECTOR_SHIFT;
	}
	r = dmio(&req, n, where, &bits);
	if (errors != NULL)
		for (i = 0; i < n; i++)
			errors[i] = (bits & (1ul << i)) ? -region_errors[i] : 0;
	if (r == -EIO)
		for (i = 0; i < n; i++)
			if (bits & (1ul << i))
				return -region_errors[i];
	return r;
}

unsigned int mirror_written_legs(struct mirror *m, struct leg **legs)
{
	unsigned int i, n = 0, slots = atomic_load(&m->num_legs);

	for (i = 0; i < slots; i++)
		if (leg_is_written(&m->legs[i]))
			legs[n++] = &m->legs[i];
	return n;
}
