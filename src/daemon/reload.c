/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Reloading the configuration on SIGHUP: see reload.h. */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include <dmio.h>
#include <glib.h>

#include "daemon/reload.h"

/* One refused change: logged, the running value kept. */
static void refuse(const char *name, const char *key, const char *was, const char *now,
		   const char *how)
{
	g_warning("mirror %s: reload: %s changed from '%s' to '%s': %s; keeping '%s'", name, key,
		  was, now, how, was);
}

static const char *text_or_none(const char *s)
{
	return s != NULL ? s : "";
}

/* What only a restart changes. */
static void refuse_static(const char *name, const struct mirror_config *was,
			  const struct mirror_config *now)
{
	const char *restart = "it takes a restart";

	if (g_strcmp0(was->name, now->name) != 0)
		refuse(name, "name", was->name, now->name, restart);
	if (g_strcmp0(was->mountpoint, now->mountpoint) != 0)
		refuse(name, "mountpoint", text_or_none(was->mountpoint),
		       text_or_none(now->mountpoint), restart);
	if (was->engine != now->engine)
		refuse(name, "engine", config_engine_name(was->engine),
		       config_engine_name(now->engine), restart);
	if (was->cache != now->cache)
		refuse(name, "cache", config_cache_name(was->cache), config_cache_name(now->cache),
		       restart);
	if (was->splice != now->splice)
		refuse(name, "splice", config_splice_name(was->splice),
		       config_splice_name(now->splice), restart);
	if (was->metadata != now->metadata)
		refuse(name, "metadata", config_metadata_name(was->metadata),
		       config_metadata_name(now->metadata), restart);
	if (was->threads != now->threads) {
		g_autofree char *a = g_strdup_printf("%u", was->threads);
		g_autofree char *b = g_strdup_printf("%u", now->threads);

		refuse(name, "threads", a, b, restart);
	}
	if (was->allow_other != now->allow_other)
		refuse(name, "allow-other", was->allow_other ? "true" : "false",
		       now->allow_other ? "true" : "false", restart);
	if (was->stop_timeout != now->stop_timeout) {
		g_autofree char *a = g_strdup_printf("%u", was->stop_timeout);
		g_autofree char *b = g_strdup_printf("%u", now->stop_timeout);

		refuse(name, "stop-timeout", a, b, restart);
	}
}

/* The [leg] group named like leg index's name, or NULL. */
static const struct leg_config *group_of(const struct mirror_config *c, const char *leg)
{
	for (unsigned int i = 0; i < c->num_legs; i++)
		if (g_strcmp0(c->legs[i].name, leg) == 0)
			return &c->legs[i];
	return NULL;
}

/* Leg i's reconnect-delay and reconnect-max: its [leg] group's, else the [mirror] group's. */
static int reload_reconnect(struct mirror *m, const struct mirror_config *now,
			    const struct leg_config *lc, unsigned int i, const char *leg)
{
	unsigned int delay = lc->reconnect_delay_ms > 0 ? (unsigned int)lc->reconnect_delay_ms
							: now->reconnect_delay_ms;
	unsigned int max =
	    lc->reconnect_max >= 0 ? (unsigned int)lc->reconnect_max : now->reconnect_max;
	unsigned int was_delay, was_max;
	int changed = 0;

	mirror_get_reconnect(m, (int)i, &was_delay, &was_max);
	if (delay != was_delay && mirror_set_reconnect(m, (int)i, (int)delay, -1) == 0) {
		g_message("mirror %s: reload: leg %u (%s): reconnect-delay = %u ms", mirror_name(m),
			  i, leg, delay);
		changed++;
	}
	if (max != was_max && mirror_set_reconnect(m, (int)i, -1, (int)max) == 0) {
		g_message("mirror %s: reload: leg %u (%s): reconnect-max = %u", mirror_name(m), i,
			  leg, max);
		changed++;
	}
	return changed;
}

/* Per leg: write-mostly, write-behind and io-timeout applied; a changed path or a leg gone
 * refused. */
static int reload_legs(struct mirror *m, const struct mirror_config *now)
{
	const char *name = mirror_name(m);
	unsigned int i, n = mirror_num_legs(m);
	int changed = 0;

	for (i = 0; i < n; i++) {
		const struct leg_config *lc;
		struct leg_status st;
		unsigned int ms;

		mirror_leg_status(m, i, &st);
		if (st.state == LEG_REMOVED)
			continue;
		lc = group_of(now, st.name);
		if (lc == NULL) {
			g_warning("mirror %s: reload: leg %u (%s) has no [leg %s] group any more: "
				  "'fusemirrorctl remove' takes a leg away; keeping it",
				  name, i, st.name, st.name);
			continue;
		}
		if (g_strcmp0(lc->path, st.path) != 0 && *st.path != '\0') {
			/* Logged: NBD URIs redacted. */
			g_autofree char *asked = dmio_path_display(lc->path);

			refuse(name, "the path of leg", st.shown, asked,
			       "'fusemirrorctl replace' changes it");
		}
		if (lc->write_mostly != st.write_mostly &&
		    mirror_set_write_mostly(m, i, lc->write_mostly) == 0) {
			g_message("mirror %s: reload: leg %u (%s): write-mostly = %s", name, i,
				  st.name, lc->write_mostly ? "true" : "false");
			changed++;
		}
		/* After write-mostly: a leg that is no longer write-mostly writes nothing behind. */
		if (lc->write_behind != st.write_behind &&
		    mirror_set_write_behind(m, (int)i, lc->write_behind) == 0) {
			g_message("mirror %s: reload: leg %u (%s): write-behind = %u", name, i,
				  st.name, lc->write_behind);
			changed++;
		}
		ms = lc->io_timeout_ms >= 0 ? (unsigned int)lc->io_timeout_ms : now->io_timeout_ms;
		if (ms != st.io_timeout_ms && mirror_set_io_timeout(m, (int)i, ms) == 0) {
			g_message("mirror %s: reload: leg %u (%s): io-timeout = %u ms", name, i,
				  st.name, ms);
			changed++;
		}
		changed += reload_reconnect(m, now, lc, i, st.name);
	}
	for (i = 0; i < now->num_legs; i++) {
		bool found = false;

		for (unsigned int j = 0; j < n && !found; j++) {
			struct leg_status st;

			mirror_leg_status(m, j, &st);
			found = st.state != LEG_REMOVED && g_strcmp0(st.name, now->legs[i].name) == 0;
		}
		if (!found) {
			g_autofree char *shown = dmio_path_display(now->legs[i].path);

			g_warning("mirror %s: reload: [leg %s] (%s) is not a leg of the mirror: "
				  "'fusemirrorctl add' adds one; ignoring it",
				  name, now->legs[i].name, shown);
		}
	}
	return changed;
}

int reload_config(struct mirror *m, struct mirror_config *running, GMutex *lock,
		  const char *path)
{
	const char *name = mirror_name(m);
	g_autoptr(GError) error = NULL;
	struct mirror_config *now = config_load(path, &error);
	unsigned int delay, tries;
	uint64_t min, max;
	int changed = 0;

	if (now == NULL) {
		g_warning("mirror %s: reload: %s; nothing changed", name, error->message);
		return -1;
	}
	if (now->on_event != NULL && !config_check_on_event(now, &error)) {
		g_warning("mirror %s: reload: %s; nothing changed", name, error->message);
		config_free(now);
		return -1;
	}
	refuse_static(name, running, now);
	mirror_get_resync_rate(m, &min, &max);
	if (min != now->resync_rate_min || max != now->resync_rate_max) {
		mirror_set_resync_rate(m, now->resync_rate_min, now->resync_rate_max);
		g_message("mirror %s: reload: resync-rate-min = %" PRIu64 ", resync-rate-max = "
			  "%" PRIu64 " bytes/s",
			  name, now->resync_rate_min, now->resync_rate_max);
		changed++;
	}
	if (mirror_get_read_policy(m) != now->read_policy) {
		mirror_set_read_policy(m, now->read_policy);
		g_message("mirror %s: reload: read-policy = %s", name,
			  config_read_policy_name(now->read_policy));
		changed++;
	}
	if (mirror_get_max_read_errors(m) != now->max_read_errors) {
		mirror_set_max_read_errors(m, now->max_read_errors);
		g_message("mirror %s: reload: max-read-errors = %u", name, now->max_read_errors);
		changed++;
	}
	if (running->io_timeout_ms != now->io_timeout_ms) {
		/* Every leg's and that of legs added later; the legs' own are set below. */
		mirror_set_io_timeout(m, -1, now->io_timeout_ms);
		running->io_timeout_ms = now->io_timeout_ms;
		g_message("mirror %s: reload: io-timeout = %u ms", name, now->io_timeout_ms);
		changed++;
	}
	mirror_get_reconnect(m, -1, &delay, &tries);
	if (delay != now->reconnect_delay_ms || tries != now->reconnect_max) {
		/* Every leg's and that of legs added later; the legs' own are set below. */
		mirror_set_reconnect(m, -1, (int)now->reconnect_delay_ms, (int)now->reconnect_max);
		g_message("mirror %s: reload: reconnect-delay = %u ms, reconnect-max = %u", name,
			  now->reconnect_delay_ms, now->reconnect_max);
		changed++;
	}
	changed += reload_legs(m, now);
	g_mutex_lock(lock);
	if (g_strcmp0(running->on_event, now->on_event) != 0) {
		g_free(running->on_event);
		running->on_event = g_strdup(now->on_event);
		g_message("mirror %s: reload: on-event = %s", name,
			  now->on_event != NULL ? now->on_event : "(none)");
		changed++;
	}
	g_mutex_unlock(lock);
	config_free(now);
	g_message("mirror %s: reload: done, %d change%s", name, changed, changed == 1 ? "" : "s");
	return changed;
}
