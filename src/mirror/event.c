/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Events: one structured log line (journald fields under systemd) and the handler given to
 * mirror_open().  Every file of the layer may raise one; this one calls nothing of the layer.
 */
#include "config.h"

#include <stdarg.h>

#include "mirror/mirror-internal.h"

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
	if (m->event_fn != NULL)
		m->event_fn(m->event_opaque, m, event, level, leg, message);
	g_free(message);
}
