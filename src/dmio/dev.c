/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Devices: the public dmio_dev_* calls, dispatching to one kind behind a vtable: file/block
 * device (dev-file.c) for every path but a few prefixes; remote kinds add themselves to
 * dmio_dev_open().
 *
 * An NBD URI (nbd://, nbds://, nbd+unix://, nbds+unix://, nbd+vsock://, nbds+vsock://) opens an
 * export through libnbd (dev-nbd.c); a file whose name starts so is "./nbd:...".
 *
 * "crash:NAME" opens the crash-test disk NAME (dev-crash.c, dev-crash.h), an in-memory disk with
 * a volatile write cache that tests create and "power cut".  It is for tests only, so neither
 * libdmio(3) nor dmio.h mention it; -ENOENT when no such disk exists.  A file whose path starts
 * with "crash:" can still be opened as "./crash:...".
 *
 * "fault:PATH" opens PATH through the fault-injecting kind (dev-fault.c, dev-fault.h), whose
 * rules fail, delay or hang its operations.  It is documented in libdmio(3) for tests, and opens
 * only with FUSEMIRROR_TEST_DEVICES=1 in the environment (else -EPERM).
 *
 * The dmio_path_* calls tell the layers above (config, daemon, CLI) what a path is without
 * opening it: whether it is an NBD URI, whether that URI is well formed (GUri, checked the way
 * libnbd reads it: a host for TCP and vsock, ?socket= for unix), how to show it (secrets
 * redacted, by dev-nbd.c's rule) and how to compare two of them.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dmio-internal.h"

int dmio_dev_open(const char *path, unsigned int flags, struct dmio_dev **out)
{
	if (path == NULL || *path == '\0' || out == NULL)
		return -EINVAL;
	if (flags & ~(DMIO_DEV_RDONLY | DMIO_DEV_DIRECT | DMIO_DEV_EXCLUSIVE))
		return -EINVAL;
	*out = NULL;
	int r;

	if (g_str_has_prefix(path, DMIO_DEV_CRASH_PREFIX))
		r = dmio_dev_crash_open(path, flags, out);
	else if (g_str_has_prefix(path, DMIO_DEV_FAULT_PREFIX))
		r = dmio_dev_fault_open(path, flags, out);
	else if (dmio_dev_is_nbd_uri(path))
		r = dmio_dev_nbd_open(path, flags, out);
	else
		r = dmio_dev_file_open(path, flags, out);
	if (r == 0)
		g_mutex_init(&(*out)->jobs_lock);
	return r;
}

void dmio_dev_free(struct dmio_dev *dev)
{
	g_mutex_clear(&dev->jobs_lock);
	dev->ops->close(dev);
	g_free(dev->path);
	g_free(dev);
}

void dmio_dev_close(struct dmio_dev *dev)
{
	bool later;

	if (dev == NULL)
		return;
	/* A job abandoned while running still uses the descriptor: its answer closes it. */
	g_mutex_lock(&dev->jobs_lock);
	later = dev->abandoned_running > 0;
	dev->close_pending = later;
	g_mutex_unlock(&dev->jobs_lock);
	if (!later)
		dmio_dev_free(dev);
}

uint64_t dmio_dev_sectors(const struct dmio_dev *dev)
{
	return dev->size >> DMIO_SECTOR_SHIFT;
}

unsigned int dmio_dev_logical_block_size(const struct dmio_dev *dev)
{
	return dev->lbs;
}

const char *dmio_dev_path(const struct dmio_dev *dev)
{
	return dev->path;
}

bool dmio_dev_is_block(const struct dmio_dev *dev)
{
	return dev->is_block;
}

unsigned int dmio_dev_flags(const struct dmio_dev *dev)
{
	return dev->flags;
}

void dmio_dev_direct_align(const struct dmio_dev *dev, unsigned int *mem_align,
			   unsigned int *offset_align)
{
	bool direct = (dev->flags & DMIO_DEV_DIRECT) != 0;

	if (mem_align != NULL)
		*mem_align = direct ? dev->mem_align : 1;
	if (offset_align != NULL)
		*offset_align = direct ? dev->offset_align : 1;
}

bool dmio_dev_can_discard(const struct dmio_dev *dev)
{
	return atomic_load(&((struct dmio_dev *)dev)->can_discard);
}

bool dmio_dev_can_zero(const struct dmio_dev *dev)
{
	return atomic_load(&((struct dmio_dev *)dev)->can_zero);
}

bool dmio_dev_can_fua(const struct dmio_dev *dev)
{
	return atomic_load(&((struct dmio_dev *)dev)->can_fua);
}

void dmio_dev_cap_off(atomic_bool *cap, const struct dmio_dev *dev, const char *what)
{
	/* Only the first thread to learn it says so. */
	if (atomic_exchange(cap, false))
		g_debug("%s: %s is not supported, switched off", dev->path, what);
}

/* ---- Paths ------------------------------------------------------------------------------- */

/* The default port of the TCP schemes (the NBD protocol's IANA port). */
#define NBD_DEFAULT_PORT 10809

bool dmio_path_is_uri(const char *path)
{
	return path != NULL && dmio_dev_is_nbd_uri(path);
}

static bool scheme_is(const char *scheme, const char *transport)
{
	const char *plus = strchr(scheme, '+');

	return plus != NULL && g_ascii_strcasecmp(plus + 1, transport) == 0;
}

/* The URI parsed with its components left percent-encoded, or NULL when it is not one. */
static GUri *parse_uri(const char *path)
{
	return g_uri_parse(path, G_URI_FLAGS_ENCODED | G_URI_FLAGS_NON_DNS, NULL);
}

const char *dmio_path_uri_problem(const char *path)
{
	g_autoptr(GUri) uri = NULL;
	g_autoptr(GHashTable) params = NULL;
	const char *host;
	const char *query;
	const char *socket;
	bool is_unix;

	if (!dmio_path_is_uri(path))
		return NULL;
	for (const char *c = path; *c != '\0'; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return "contains a blank or a control character";
	uri = parse_uri(path);
	if (uri == NULL)
		return "is not a well-formed URI";
	host = g_uri_get_host(uri);
	query = g_uri_get_query(uri);
	is_unix = scheme_is(g_uri_get_scheme(uri), "unix");
	if (query != NULL)
		params = g_uri_parse_params(query, -1, "&", G_URI_PARAMS_NONE, NULL);
	if (query != NULL && params == NULL)
		return "has a malformed query";
	socket = params != NULL ? g_hash_table_lookup(params, "socket") : NULL;
	if (is_unix) {
		if (host != NULL && *host != '\0')
			return "names a host: a unix URI is nbd+unix:///EXPORT?socket=PATH";
		if (socket == NULL || *socket == '\0')
			return "names no socket: a unix URI is nbd+unix:///EXPORT?socket=PATH";
	} else if (socket != NULL) {
		return "has a socket= parameter, which only a unix URI (nbd+unix://) takes";
	} else if (host == NULL || *host == '\0') {
		return "names no host";
	} else if (scheme_is(g_uri_get_scheme(uri), "vsock") &&
		   strspn(host, "0123456789") != strlen(host)) {
		return "names a vsock host that is not a number (a CID)";
	}
	return NULL;
}

char *dmio_path_display(const char *path)
{
	if (path == NULL)
		return NULL;
	return dmio_path_is_uri(path) ? dmio_nbd_redact_uri(path) : g_strdup(path);
}

char *dmio_path_normalize(const char *path)
{
	g_autoptr(GUri) uri = NULL;
	g_autoptr(GUri) normal = NULL;
	g_autofree char *scheme = NULL;
	g_autofree char *host = NULL;
	const char *p;
	int port;

	if (path == NULL)
		return NULL;
	if (!dmio_path_is_uri(path) || dmio_path_uri_problem(path) != NULL)
		return g_strdup(path);
	uri = parse_uri(path);
	scheme = g_ascii_strdown(g_uri_get_scheme(uri), -1);
	host = g_uri_get_host(uri) != NULL ? g_ascii_strdown(g_uri_get_host(uri), -1) : NULL;
	port = g_uri_get_port(uri);
	if (port == NBD_DEFAULT_PORT && strchr(scheme, '+') == NULL)
		port = -1;
	p = g_uri_get_path(uri);
	normal = g_uri_build(G_URI_FLAGS_ENCODED | G_URI_FLAGS_NON_DNS, scheme,
			     g_uri_get_userinfo(uri), host, port, *p == '\0' ? "/" : p,
			     g_uri_get_query(uri), g_uri_get_fragment(uri));
	return g_uri_to_string(normal);
}
