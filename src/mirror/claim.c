/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The exclusive claim on legs: a mirror opens every leg with DMIO_DEV_EXCLUSIVE (O_EXCL on a
 * block device, an OFD lock on a file) and holds it while the leg is open.  When that open is
 * refused, these say why in one line, naming the holder from the runtime records
 * (config/runtime.h), or tell a leg of this very mirror from a stranger.
 *
 * An NBD export (an nbd:// URI) cannot be claimed: libdmio accepts DMIO_DEV_EXCLUSIVE on it and
 * enforces nothing, so none of this applies to it but the same-leg check, on its normalised URI
 * (mirror_same_file).  Paths are shown redacted (dmio_path_display).
 */
#include "config.h"

#include <errno.h>

#include "config/runtime.h"
#include "mirror/mirror-internal.h"

int claim_refused(struct mirror *m, unsigned int i, const char *name, const char *path,
		  GError **error)
{
	g_autofree char *shown = dmio_path_display(path);
	char *why;

	/* Two legs on one file: the first holds it, so the second's claim fails. */
	for (unsigned int j = 0; j < i; j++) {
		if (m->legs[j].dev != NULL && mirror_same_file(path, m->legs[j].path)) {
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "legs '%s' (%s) and '%s' (%s) are the same file",
				    m->legs[j].name, m->legs[j].shown, name, shown);
			return -EINVAL;
		}
	}
	why = runtime_describe_holder(path);
	g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG, "leg '%s' (%s) %s", name, shown, why);
	g_free(why);
	return -EBUSY;
}

int claim_busy_for_add(struct mirror *m, const char *path, enum leg_direct direct,
		       struct dmio_dev **dev, int *own, GError **error)
{
	unsigned int i, n = atomic_load(&m->num_legs);
	g_autofree char *shown = dmio_path_display(path);
	char *why;
	int r;

	*own = -1;
	for (i = 0; i < n; i++) {
		struct leg *leg = &m->legs[i];

		if (leg->dev == NULL || !mirror_same_file(path, leg->path))
			continue;
		if (leg_state(leg) != LEG_FAILED) {
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "%s is already leg %u (%s) of mirror %s", shown, i, leg->name,
				    m->name);
			return -EEXIST;
		}
		/* Our failed leg still holds it: look at it through a plain descriptor. */
		*own = (int)i;
		r = leg_open_dev(path, 0, direct, dev, &why);
		if (r < 0 && why != NULL)
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "%s: direct = true, but %s", shown, why);
		else if (r < 0)
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG, "cannot open %s: %s",
				    shown, g_strerror(-r));
		g_free(why);
		return r;
	}
	why = runtime_describe_holder(path);
	g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG, "%s %s", shown, why);
	g_free(why);
	return -EBUSY;
}

int claim_take_over(const char *path, struct dmio_dev **dev)
{
	struct dmio_dev *claimed = NULL;
	/* The direct = rule was applied to *dev: its O_DIRECT carries over. */
	unsigned int direct = *dev != NULL ? dmio_dev_flags(*dev) & DMIO_DEV_DIRECT : 0;
	int r = dmio_dev_open(path, DMIO_DEV_EXCLUSIVE | direct, &claimed);

	dmio_dev_close(*dev);
	*dev = claimed;
	return r;
}
