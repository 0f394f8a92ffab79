/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Events: one structured log line (journald fields under systemd), the handler given to
 * mirror_open(), and a ring of the last ones for user.fusemirror.event_log (what fusemirrorctl
 * monitor follows).  Every file of the layer may raise one; this one calls nothing of the layer.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "mirror/mirror-internal.h"

static void record(struct mirror *m, const char *event, GLogLevelFlags level, const char *leg,
		   const char *message);

void mirror_event(struct mirror *m, const char *event, GLogLevelFlags level, int leg,
		  const char *format, ...)
{
	const struct leg *l = leg >= 0 ? &m->legs[leg] : NULL;
	char *message;
	va_list ap;

	va_start(ap, format);
	message = g_strdup_vprintf(format, ap);
	va_end(ap);
	/* Plain key/value fields first: everything after MESSAGE is its format's arguments. */
	g_log_structured(G_LOG_DOMAIN, level, "FUSEMIRROR_EVENT", event, "FUSEMIRROR_MIRROR",
			 m->name, "FUSEMIRROR_LEG", l != NULL ? l->name : "", "FUSEMIRROR_LEG_PATH",
			 l != NULL ? l->shown : "", "MESSAGE", "%s: %s", event, message);
	record(m, event, level, l != NULL ? l->name : NULL, message);
	if (m->event_fn != NULL)
		m->event_fn(m->event_opaque, m, event, level, leg, message);
	g_free(message);
}

void event_init(struct mirror *m)
{
	g_mutex_init(&m->event_lock);
	m->event_ring = g_new0(struct event_record, EVENT_RING);
}

static void record_clear(struct event_record *r)
{
	g_free(r->event);
	g_free(r->leg);
	g_free(r->message);
	memset(r, 0, sizeof(*r));
}

void event_clear(struct mirror *m)
{
	for (unsigned int i = 0; m->event_ring != NULL && i < EVENT_RING; i++)
		record_clear(&m->event_ring[i]);
	g_free(m->event_ring);
	m->event_ring = NULL;
	g_mutex_clear(&m->event_lock);
}

/* One line of text in a field: tabs and newlines become spaces. */
static char *one_field(const char *text)
{
	char *s = g_strdup(text != NULL && *text != '\0' ? text : "-");

	for (char *c = s; *c != '\0'; c++)
		if (*c == '\t' || *c == '\n' || *c == '\r')
			*c = ' ';
	return s;
}

static void record(struct mirror *m, const char *event, GLogLevelFlags level, const char *leg,
		   const char *message)
{
	struct event_record *r;

	g_mutex_lock(&m->event_lock);
	m->event_seq++;
	r = &m->event_ring[(m->event_seq - 1) % EVENT_RING];
	record_clear(r);
	r->seq = m->event_seq;
	r->time_us = g_get_real_time();
	r->level = level;
	r->event = one_field(event);
	r->leg = one_field(leg);
	r->message = one_field(message);
	g_mutex_unlock(&m->event_lock);
}

static const char *level_name(GLogLevelFlags level)
{
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		return "critical";
	if (level & G_LOG_LEVEL_WARNING)
		return "warning";
	if (level & G_LOG_LEVEL_MESSAGE)
		return "notice";
	if (level & G_LOG_LEVEL_INFO)
		return "info";
	return "debug";
}

char *event_log_text(struct mirror *m)
{
	GString *s = g_string_new(NULL);
	uint64_t first;

	g_mutex_lock(&m->event_lock);
	first = m->event_seq > EVENT_RING ? m->event_seq - EVENT_RING + 1 : 1;
	for (uint64_t seq = first; seq <= m->event_seq; seq++) {
		const struct event_record *r = &m->event_ring[(seq - 1) % EVENT_RING];

		g_string_append_printf(s, "%" PRIu64 "\t%" G_GINT64_FORMAT "\t%s\t%s\t%s\t%s\n",
				       r->seq, r->time_us, level_name(r->level), r->event, r->leg,
				       r->message);
	}
	g_mutex_unlock(&m->event_lock);
	return g_string_free(s, FALSE);
}

char *mirror_event_log(struct mirror *m)
{
	return event_log_text(m);
}
