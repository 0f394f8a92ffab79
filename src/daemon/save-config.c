/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Keeping fusemirrord's config file true: after add and remove the [leg NAME] groups are
 * rewritten from the mirror's slots (config_save_legs() does the text and the atomic replace),
 * so that a restart assembles the mirror that ran.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dmio.h>

#include "config/config.h"
#include "daemon/save-config.h"

void daemon_config_file_init(struct daemon_config_file *file, const char *path)
{
	file->path = g_strdup(path);
	g_mutex_init(&file->lock);
	file->noticed = false;
}

void daemon_config_file_clear(struct daemon_config_file *file)
{
	g_clear_pointer(&file->path, g_free);
	g_mutex_clear(&file->lock);
}

/* Why the daemon may not write path, or NULL when it may (free it). */
static char *may_not_write(const char *path)
{
	g_autofree char *dir = NULL;
	struct stat st;

	if (stat(path, &st) < 0)
		return g_strdup_printf("cannot stat it: %s", g_strerror(errno));
	if (!S_ISREG(st.st_mode))
		return g_strdup("it is not a regular file");
	/* Root may write anything: a file without any write bit says the operator wants it so. */
	if ((st.st_mode & 0222) == 0)
		return g_strdup("it has no write permission (mode without w)");
	if (access(path, W_OK) < 0)
		return g_strdup_printf("it is not writable: %s", g_strerror(errno));
	dir = g_path_get_dirname(path);
	if (access(dir, W_OK) < 0)
		return g_strdup_printf("its directory %s is not writable: %s", dir,
				       g_strerror(errno));
	return NULL;
}

/* "[leg c] added (/dev/sdc), [leg b] removed": what the rewrite changes. */
static char *describe_changes(const struct mirror_config *before, const struct leg_config *legs,
			      unsigned int num_legs)
{
	GString *text = g_string_new(NULL);

	for (unsigned int i = 0; i < num_legs; i++) {
		const struct leg_config *old =
		    config_find_leg(before->legs, before->num_legs, legs[i].name);
		/* Logged: an NBD URI's secrets stay in the config file. */
		g_autofree char *shown = dmio_path_display(legs[i].path);

		if (old == NULL)
			g_string_append_printf(text, "%s[leg %s] added (%s)", text->len ? ", " : "",
					       legs[i].name, shown);
		else if (strcmp(old->path, legs[i].path) != 0 ||
			 old->write_mostly != legs[i].write_mostly)
			g_string_append_printf(text, "%s[leg %s] now %s%s", text->len ? ", " : "",
					       legs[i].name, shown,
					       legs[i].write_mostly ? ", write-mostly" : "");
	}
	for (unsigned int i = 0; i < before->num_legs; i++)
		if (config_find_leg(legs, num_legs, before->legs[i].name) == NULL)
			g_string_append_printf(text, "%s[leg %s] removed", text->len ? ", " : "",
					       before->legs[i].name);
	return g_string_free(text, FALSE);
}

/*
 * The legs to write: m's slots in order, but removed slots, slots without a path, and failed
 * legs the file leaves out.  A name used twice (a hot-added leg named after its file) gets its
 * slot number appended, as a config needs unique names.  The strings are copies (free them).
 */
static unsigned int collect_legs(struct mirror *m, const struct mirror_config *before,
				 struct leg_config *legs)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < mirror_num_legs(m); i++) {
		struct leg_status st;

		mirror_leg_status(m, i, &st);
		if (st.state == LEG_REMOVED || st.path[0] == '\0' || st.name[0] == '\0')
			continue;
		if (st.state == LEG_FAILED &&
		    config_find_leg(before->legs, before->num_legs, st.name) == NULL)
			continue;
		legs[n].name = config_find_leg(legs, n, st.name) == NULL
				   ? g_strdup(st.name)
				   : g_strdup_printf("%s-%u", st.name, i);
		legs[n].path = g_strdup(st.path);
		legs[n].write_mostly = st.write_mostly;
		n++;
	}
	return n;
}

bool daemon_save_config(struct daemon_config_file *file, struct mirror *m)
{
	struct leg_config legs[CONFIG_MAX_LEGS];
	struct mirror_config *before;
	g_autoptr(GError) error = NULL;
	g_autofree char *why = NULL;
	g_autofree char *changes = NULL;
	gboolean changed = FALSE;
	unsigned int n = 0;
	bool ok = false;

	g_mutex_lock(&file->lock);
	why = may_not_write(file->path);
	if (why != NULL) {
		if (!file->noticed)
			g_message("mirror %s: the config %s is not rewritten after add and remove: "
				  "%s; update its [leg] groups by hand (fusemirrorctl scan prints "
				  "them)",
				  mirror_name(m), file->path, why);
		file->noticed = true;
		goto out;
	}
	before = config_load(file->path, &error);
	if (before == NULL) {
		g_warning("mirror %s: the config is not rewritten: %s", mirror_name(m),
			  error->message);
		goto out;
	}
	n = collect_legs(m, before, legs);
	changes = describe_changes(before, legs, n);
	config_free(before);
	if (!config_save_legs(file->path, legs, n, &changed, &error)) {
		g_warning("mirror %s: the config is not rewritten: %s", mirror_name(m),
			  error->message);
		goto out;
	}
	if (changed)
		g_message("mirror %s: rewrote the config %s: %s", mirror_name(m), file->path,
			  changes);
	else
		g_debug("mirror %s: the config %s names its legs already", mirror_name(m),
			file->path);
	ok = true;
out:
	g_mutex_unlock(&file->lock);
	for (unsigned int i = 0; i < n; i++) {
		g_free(legs[i].name);
		g_free(legs[i].path);
	}
	return ok;
}
