/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mirror as a whole: opening its legs and assembling it, closing it, its status and its
 * events.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mirror/mirror-internal.h"

#define RESERVED_PAGES 256u /* bounce pages kept for O_DIRECT legs */

/* ---- Opening ------------------------------------------------------------------------------- */

GQuark mirror_error_quark(void)
{
	return g_quark_from_static_string("mirror-error-quark");
}

static char *format_size(uint64_t bytes)
{
	return g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);
}

/*
 * Whether dmio_dev_open(path) failing with r means the leg is not there (yet): no such file or
 * device, or for an NBD export no server answering (down, unreachable, no socket yet).
 */
static bool leg_absent(const char *path, int r)
{
	if (r == -ENOENT)
		return true;
	return dmio_path_is_uri(path) && (r == -ECONNREFUSED || r == -EHOSTUNREACH ||
					  r == -ENETUNREACH || r == -ETIMEDOUT || r == -ECONNRESET);
}

/*
 * Open leg i of the config into slot i, for now: with metadata = internal assembly then moves it
 * to the slot its superblock names.  0, or -errno with *error; a missing leg (internal) has no
 * device.
 */
static int open_leg(struct mirror *m, const struct mirror_config *config, unsigned int i,
		    gint64 deadline, GError **error)
{
	const struct leg_config *lc = &config->legs[i];
	struct leg *leg = &m->legs[i];
	struct dmio_dev *dev = NULL;
	/* Messages name the leg by this: an NBD URI may carry a password. */
	g_autofree char *shown = dmio_path_display(lc->path);
	g_autofree char *why = NULL;
	unsigned int j;
	uint64_t bytes;
	int r;

	/* The claim: another mirror or program holding the leg gets -EBUSY (claim.c). */
	r = leg_open_dev(lc->path, DMIO_DEV_EXCLUSIVE, lc->direct, &dev, &why);
	if (leg_absent(lc->path, r) && m->metadata == METADATA_INTERNAL &&
	    g_get_monotonic_time() < deadline) {
		/*
		 * A device may still be coming up (udev, iSCSI login), a server still starting:
		 * give it assemble-timeout.
		 */
		g_message("leg %u (%s): waiting up to %d s for %s to appear", i, lc->name,
			  (int)((deadline - g_get_monotonic_time() + G_USEC_PER_SEC - 1) /
				G_USEC_PER_SEC),
			  shown);
		unsigned int timeout_s = config->assemble_timeout;
		gint64 start = deadline - (gint64)timeout_s * G_USEC_PER_SEC, told = 0;

		do {
			gint64 now = g_get_monotonic_time();

			/* About once a second: the daemon tells systemd (STATUS=, EXTEND_TIMEOUT_USEC=). */
			if (config->wait_fn != NULL && now - told >= G_USEC_PER_SEC) {
				told = now;
				config->wait_fn(config->wait_opaque, lc->name, shown,
						(unsigned int)((now - start) / G_USEC_PER_SEC),
						timeout_s);
			}
			g_usleep(100 * 1000);
			g_clear_pointer(&why, g_free);
			r = leg_open_dev(lc->path, DMIO_DEV_EXCLUSIVE, lc->direct, &dev, &why);
		} while (leg_absent(lc->path, r) && g_get_monotonic_time() < deadline);
	}
	leg_attach(m, leg, lc->name, lc->path, r == 0 ? dev : NULL, NULL, lc->write_mostly);
	if (leg_absent(lc->path, r) && m->metadata == METADATA_INTERNAL) {
		/*
		 * The superblocks of the others tell what it missed when it comes back; assembly
		 * finds its slot (metadata_assemble), which fails it.
		 */
		if (r == -ENOENT)
			g_warning("leg '%s': %s is missing: the mirror starts without it", lc->name,
				  shown);
		else
			g_warning("leg '%s': %s does not answer (%s): the mirror starts without it",
				  lc->name, shown, g_strerror(-r));
		return 0;
	}
	if (r == -EBUSY)
		return claim_refused(m, i, lc->name, lc->path, error);
	if (r < 0 && why != NULL) {
		/* direct = true that cannot be had: refused, nothing written. */
		g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
			    "leg '%s' (%s): direct = true, but %s", lc->name, shown, why);
		return r;
	}
	if (r < 0) {
		g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG, "leg '%s' (%s): cannot open: %s",
			    lc->name, shown,
			    r == -EINVAL ? "not a regular file or block device" : g_strerror(-r));
		return r;
	}
	if (why != NULL)
		g_message("leg '%s' (%s): no O_DIRECT, through the page cache: %s", lc->name, shown,
			  why);
	/* Two legs on one file would mirror nothing. */
	for (j = 0; j < i; j++) {
		if (m->legs[j].dev != NULL && mirror_same_file(lc->path, config->legs[j].path)) {
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "legs '%s' (%s) and '%s' (%s) are the same file",
				    config->legs[j].name, m->legs[j].shown, lc->name, shown);
			return -EINVAL;
		}
	}
	bytes = dmio_dev_sectors(dev) << DMIO_SECTOR_SHIFT;
	bytes -= bytes % MIRROR_ALIGN;
	if (bytes == 0) {
		char *have = format_size(dmio_dev_sectors(dev) << DMIO_SECTOR_SHIFT);

		g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
			    "leg '%s' (%s) is %s: a leg needs at least 4 KiB", lc->name, shown,
			    have);
		g_free(have);
		return -ENOSPC;
	}
	if (m->metadata == METADATA_NONE) {
		m->size = MIN(m->size, bytes);
		/* Without superblocks every leg is taken as in sync (and resynced by the user). */
		return leg_set_state(m, leg, LEG_REMOVED, LEG_IN_SYNC);
	}
	return 0;
}

static int leg_index_by_name(const struct mirror_config *config, const char *name)
{
	unsigned int i;

	for (i = 0; i < config->num_legs; i++)
		if (strcmp(config->legs[i].name, name) == 0)
			return (int)i;
	return -1;
}

static struct mirror *mirror_new(const struct mirror_config *config)
{
	struct mirror *m = g_new0(struct mirror, 1);
	unsigned int i;

	m->name = g_strdup(config->name);
	event_init(m);
	atomic_init(&m->policy, (int)config->read_policy);
	m->metadata = config->metadata;
	m->legs = g_new0(struct leg, SB_MAX_LEGS);
	/* Every slot starts empty: a state reaches it through leg.c's table. */
	for (i = 0; i < SB_MAX_LEGS; i++) {
		m->legs[i].m = m;
		m->legs[i].index = i;
		atomic_init(&m->legs[i].state, LEG_REMOVED);
	}
	atomic_init(&m->num_legs, config->num_legs);
	m->ranges = rangelock_new();
	m->retired = g_ptr_array_new_with_free_func(g_free);
	m->size = UINT64_MAX;
	g_mutex_init(&m->state_lock);
	g_mutex_init(&m->freeze_lock);
	g_cond_init(&m->freeze_cond);
	reconfig_init(m);
	scrub_init(m);
	failfast_init(m);
	atomic_init(&m->io_timeout_default_ms, config->io_timeout_ms);
	atomic_init(&m->reconnect_delay_default_ms,
		    config->reconnect_delay_ms > 0 ? config->reconnect_delay_ms
						   : CONFIG_DEFAULT_RECONNECT_DELAY_MS);
	atomic_init(&m->reconnect_max_default, config->reconnect_max);
	reconnect_init(m);
	replace_init(m);
	readfix_init(m, config->max_read_errors);
	io_behind_init(m);
	g_mutex_init(&m->sb_lock);
	g_cond_init(&m->sb_cond);
	g_mutex_init(&m->cleaner_lock);
	g_cond_init(&m->cleaner_cond);
	atomic_init(&m->resync_source, -1);
	atomic_init(&m->resync_rate_min, config->resync_rate_min);
	atomic_init(&m->resync_rate_max, config->resync_rate_max);
	return m;
}

/* Each leg's size against the mirror's (metadata = none): say how much of a larger one is used. */
static void report_sizes(struct mirror *m)
{
	unsigned int i;

	for (i = 0; i < atomic_load(&m->num_legs); i++) {
		uint64_t bytes = dmio_dev_sectors(m->legs[i].dev) << DMIO_SECTOR_SHIFT;

		if (bytes - bytes % MIRROR_ALIGN > m->size) {
			char *a = format_size(bytes), *b = format_size(m->size);

			g_message("leg %u (%s) is %s; the mirror uses the first %s of it", i,
				  m->legs[i].name, a, b);
			g_free(a);
			g_free(b);
		}
	}
}

/*
 * Each member's io-timeout and reconnect settings: its [leg] group's, else the mirror's
 * (leg_attach gave it those); its write-behind, when it is write-mostly and the mirror has a
 * bitmap.
 */
static void apply_leg_settings(struct mirror *m, const struct mirror_config *config)
{
	unsigned int i, slots = atomic_load(&m->num_legs);

	for (i = 0; i < slots; i++) {
		struct leg *leg = &m->legs[i];
		const struct leg_config *lc;

		if (leg->name == NULL)
			continue;
		lc = config_find_leg(config->legs, config->num_legs, leg->name);
		if (lc != NULL && lc->io_timeout_ms >= 0)
			atomic_store(&leg->io_timeout_ms, (unsigned int)lc->io_timeout_ms);
		if (lc != NULL && leg->write_mostly && m->bitmap != NULL)
			atomic_store(&leg->write_behind, lc->write_behind);
		if (lc != NULL && lc->reconnect_delay_ms > 0)
			atomic_store(&leg->reconnect_delay_ms, (unsigned int)lc->reconnect_delay_ms);
		if (lc != NULL && lc->reconnect_max >= 0)
			atomic_store(&leg->reconnect_max, (unsigned int)lc->reconnect_max);
	}
}

int mirror_open(const struct mirror_config *config, mirror_event_fn event_fn, void *event_opaque,
		struct mirror **out, GError **error)
{
	struct dmio_client_opts opts = {
	    .engine = config->engine,
	    .threads = config->threads,
	    .reserved_pages = RESERVED_PAGES,
	};
	int force_source = -1;
	gint64 deadline;
	struct mirror *m;
	unsigned int i;
	int r;

	*out = NULL;
	if (config->num_legs == 0 || config->num_legs > DMIO_MAX_REGIONS) {
		g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
			    "a mirror has 1 to %u legs, not %u", DMIO_MAX_REGIONS,
			    config->num_legs);
		return -EINVAL;
	}
	if (config->force_source != NULL) {
		force_source = leg_index_by_name(config, config->force_source);
		if (force_source < 0) {
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "--force-source: the mirror has no leg named '%s'",
				    config->force_source);
			return -EINVAL;
		}
	}
	m = mirror_new(config);
	m->event_fn = event_fn;
	m->event_opaque = event_opaque;
	r = dmio_client_create(&opts, &m->client);
	if (r < 0) {
		g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_ENGINE,
			    "cannot start the %s I/O engine: %s",
			    config_engine_name(config->engine), g_strerror(-r));
		goto fail;
	}
	/* One assemble-timeout for all the legs, from now. */
	deadline = g_get_monotonic_time() + (gint64)config->assemble_timeout * G_USEC_PER_SEC;
	for (i = 0; i < config->num_legs; i++) {
		r = open_leg(m, config, i, deadline, error);
		if (r < 0)
			goto fail;
	}

	if (m->metadata == METADATA_INTERNAL) {
		r = metadata_assemble(m, force_source, error);
		if (r < 0)
			goto fail;
		atomic_store(&m->serving, true);
		apply_leg_settings(m, config);
		failfast_start(m);
		metadata_start(m);
		/* Running: dirty until a clean stop says otherwise. */
		metadata_set_clean(m, false);
		r = metadata_sync(m);
		if (r < 0) {
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "cannot write the superblocks: %s", g_strerror(-r));
			goto fail;
		}
		cleaner_start(m);
		resync_start(m);
	} else {
		report_sizes(m);
		atomic_store(&m->serving, true);
		apply_leg_settings(m, config);
		failfast_start(m);
	}
	reconnect_start(m);
	*out = m;
	return 0;
fail:
	atomic_store(&m->serving, false);
	mirror_close(m);
	return r;
}

/* ---- Closing ------------------------------------------------------------------------------- */

static void flush_at_close(struct mirror *m)
{
	int r;

	if (!atomic_load(&m->serving) || mirror_count_in_sync(m) == 0)
		return;
	r = metadata_flush_legs(m);
	if (r < 0)
		g_warning("mirror %s: the final flush failed: %s", m->name, g_strerror(-r));
}

void mirror_close(struct mirror *m)
{
	unsigned int i;

	if (m == NULL)
		return;
	/* First: a reconnect re-adds a leg; then the replace's end removes one and restarts the
	 * resync. */
	reconnect_stop(m);
	replace_stop(m);
	scrub_stop(m);
	resync_stop(m);
	/* In-flight requests complete on engine threads; wait for the last reply. */
	mirror_drain(m);
	/* The reads drained queued their corrections: they run (and may fail a leg) now. */
	readfix_clear(m);
	cleaner_stop(m);
	if (m->client != NULL) {
		flush_at_close(m);
		/* With every leg in sync and flushed, every bit can go before the clean mark. */
		if (atomic_load(&m->serving) && cleaner_clean(m, true) > 0)
			metadata_bits_cleared(m, true);
		metadata_stop(m);
		/* Last: a leg that hangs in any of the above is failed and given up on. */
		failfast_stop(m);
		dmio_client_destroy(m->client);
	}
	failfast_stop(m);
	for (i = 0; i < SB_MAX_LEGS; i++) {
		dmio_dev_close(m->legs[i].dev);
		g_free(m->legs[i].name);
		g_free(m->legs[i].path);
		g_free(m->legs[i].shown);
	}
	g_ptr_array_unref(m->retired);
	io_behind_clear(m);
	bitmap_free(m->bitmap);
	rangelock_free(m->ranges);
	g_cond_clear(&m->cleaner_cond);
	g_mutex_clear(&m->cleaner_lock);
	g_cond_clear(&m->sb_cond);
	g_mutex_clear(&m->sb_lock);
	replace_clear(m);
	/* After everything that may fail a leg (and kick it). */
	reconnect_clear(m);
	reconfig_clear(m);
	scrub_clear(m);
	failfast_clear(m);
	g_cond_clear(&m->freeze_cond);
	g_mutex_clear(&m->freeze_lock);
	g_mutex_clear(&m->state_lock);
	event_clear(m);
	g_free(m->legs);
	g_free(m->name);
	g_free(m);
}

/* ---- Status -------------------------------------------------------------------------------- */

uint64_t mirror_size(const struct mirror *m)
{
	return m->size;
}

const char *mirror_name(const struct mirror *m)
{
	return m->name;
}

void mirror_resync_status(const struct mirror *m, struct resync_status *out)
{
	struct mirror *mm = (struct mirror *)m;

	if (scrub_active(m)) {
		struct check_status cs;

		mirror_check_status(m, &cs);
		out->active = true;
		out->done = cs.done;
		out->total = cs.total;
		out->rate = cs.rate;
		out->source = -1;
		return;
	}
	out->active = atomic_load(&mm->resync_active);
	out->done = atomic_load(&mm->resync_done);
	out->total = atomic_load(&mm->resync_total);
	out->rate = atomic_load(&mm->resync_rate);
	out->source = out->active ? atomic_load(&mm->resync_source) : -1;
}

void mirror_set_resync_rate(struct mirror *m, uint64_t min, uint64_t max)
{
	atomic_store(&m->resync_rate_min, min);
	atomic_store(&m->resync_rate_max, max);
}

void mirror_get_resync_rate(const struct mirror *m, uint64_t *min, uint64_t *max)
{
	struct mirror *mm = (struct mirror *)m;

	*min = atomic_load(&mm->resync_rate_min);
	*max = atomic_load(&mm->resync_rate_max);
}

unsigned int mirror_num_legs(const struct mirror *m)
{
	return atomic_load(&((struct mirror *)m)->num_legs);
}

void mirror_leg_status(const struct mirror *m, unsigned int index, struct leg_status *out)
{
	struct mirror *mm = (struct mirror *)m;
	struct leg *leg = &m->legs[index];

	/* Not a request: a hot add may replace the strings meanwhile (the old ones stay valid). */
	g_mutex_lock(&mm->state_lock);
	out->name = leg->name != NULL ? leg->name : "";
	out->path = leg->path != NULL ? leg->path : "";
	out->shown = leg->shown != NULL ? leg->shown : "";
	out->write_mostly = leg->write_mostly;
	out->direct = leg->dev != NULL && (dmio_dev_flags(leg->dev) & DMIO_DEV_DIRECT) != 0;
	out->io_timeout_ms = atomic_load(&((struct leg *)leg)->io_timeout_ms);
	out->busy_ms = atomic_load(&((struct leg *)leg)->busy_ns) / 1000000u;
	out->slow = atomic_load(&((struct leg *)leg)->slow);
	out->write_behind = atomic_load(&((struct leg *)leg)->write_behind);
	out->behind_writes = atomic_load(&((struct leg *)leg)->behind_writes);
	out->behind_bytes = atomic_load(&((struct leg *)leg)->behind_bytes);
	out->behind_answered = atomic_load(&((struct leg *)leg)->behind_answered);
	/* An empty slot, a missing leg or metadata = none: no identity to show. */
	if (mm->metadata == METADATA_INTERNAL && memcmp(leg->uuid, (uint8_t[16]){0}, 16) != 0)
		uuid_format(leg->uuid, out->uuid);
	else
		out->uuid[0] = '\0';
	/* It looks at the slot's device. */
	out->resync = resync_leg_role(mm, leg);
	g_mutex_unlock(&mm->state_lock);
	out->state = leg_state(leg);
	out->read_errors = atomic_load(&leg->read_errors);
	out->write_errors = atomic_load(&leg->write_errors);
	out->corrected_errors = atomic_load(&leg->corrected_errors);
	out->pending = atomic_load(&leg->pending);
}

unsigned long mirror_error_bits(const struct mirror *m)
{
	return atomic_load(&((struct mirror *)m)->error_bits);
}

uint64_t mirror_events(const struct mirror *m)
{
	struct superblock sb;

	/* With superblocks, the events counter is theirs. */
	if (m->metadata != METADATA_INTERNAL)
		return atomic_load(&((struct mirror *)m)->events);
	metadata_snapshot((struct mirror *)m, &sb);
	return sb.events;
}

int mirror_set_io_timeout(struct mirror *m, int index, unsigned int ms)
{
	unsigned int i, slots = atomic_load(&m->num_legs);

	if (index >= (int)slots)
		return -EINVAL;
	if (index >= 0) {
		atomic_store(&m->legs[index].io_timeout_ms, ms);
	} else {
		atomic_store(&m->io_timeout_default_ms, ms);
		for (i = 0; i < slots; i++)
			atomic_store(&m->legs[i].io_timeout_ms, ms);
	}
	/* A shorter timeout takes effect at once, not after the old tick. */
	failfast_kick(m);
	return 0;
}

int mirror_set_write_behind(struct mirror *m, int index, unsigned int n)
{
	unsigned int i, slots = atomic_load(&m->num_legs), set = 0;

	if (index >= (int)slots)
		return -EINVAL;
	if (m->bitmap == NULL)
		return -ENOTSUP;
	if (index >= 0) {
		/* 0 is fine anywhere: a reload that takes write-mostly away clears it so. */
		if (n > 0 && !m->legs[index].write_mostly)
			return -EPERM;
		atomic_store(&m->legs[index].write_behind, n);
		return 0;
	}
	for (i = 0; i < slots; i++) {
		if (m->legs[i].write_mostly) {
			atomic_store(&m->legs[i].write_behind, n);
			set++;
		}
	}
	/* Lowering it does not wait: the writes behind already finish as they were issued. */
	return set > 0 ? 0 : -EPERM;
}
