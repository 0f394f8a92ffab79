/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Restarting in place: the hand-over's text and the re-exec (takeover.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "daemon/takeover.h"

/* /dev/fuse is the misc device 10:229. */
#define FUSE_DEV_MAJOR 10
#define FUSE_DEV_MINOR 229

static bool field_error(GError **error, const char *field, const char *value)
{
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--takeover: bad %s '%s'",
		    field, value);
	return false;
}

static bool parse_hex(const char *hex, struct frontend_handover *h)
{
	size_t len = strlen(hex);

	if (len % 2 != 0 || len / 2 > sizeof(h->init))
		return false;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = g_ascii_xdigit_value(hex[2 * i]),
		    lo = g_ascii_xdigit_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		h->init[i] = (unsigned char)(hi << 4 | lo);
	}
	h->init_len = len / 2;
	return true;
}

bool takeover_parse(const char *text, struct frontend_handover *h, GError **error)
{
	g_auto(GStrv) fields = g_strsplit(text, ";", -1);
	unsigned int seen = 0;
	struct stat st;

	memset(h, 0, sizeof(*h));
	h->fd = -1;
	h->kept_fd = -1;
	for (guint i = 0; fields[i] != NULL; i++) {
		char *eq = strchr(fields[i], '=');
		const char *value;
		guint64 v;

		if (eq == NULL)
			return field_error(error, "field", fields[i]);
		*eq = '\0';
		value = eq + 1;
		if (strcmp(fields[i], "fd") == 0) {
			if (!g_ascii_string_to_unsigned(value, 10, 3, INT_MAX, &v, NULL))
				return field_error(error, "fd", value);
			h->fd = (int)v;
			seen |= 1;
		} else if (strcmp(fields[i], "restarts") == 0) {
			if (!g_ascii_string_to_unsigned(value, 10, 0, G_MAXUINT, &v, NULL))
				return field_error(error, "restarts", value);
			h->restarts = (unsigned int)v;
		} else if (strcmp(fields[i], "mode") == 0) {
			if (!g_ascii_string_to_unsigned(value, 8, 0, 07777, &v, NULL))
				return field_error(error, "mode", value);
			h->mode = (mode_t)v;
		} else if (strcmp(fields[i], "uid") == 0) {
			if (!g_ascii_string_to_unsigned(value, 10, 0, G_MAXUINT32, &v, NULL))
				return field_error(error, "uid", value);
			h->uid = (uid_t)v;
		} else if (strcmp(fields[i], "gid") == 0) {
			if (!g_ascii_string_to_unsigned(value, 10, 0, G_MAXUINT32, &v, NULL))
				return field_error(error, "gid", value);
			h->gid = (gid_t)v;
		} else if (strcmp(fields[i], "init") == 0) {
			if (!parse_hex(value, h))
				return field_error(error, "init", value);
			seen |= 2;
		} else if (strcmp(fields[i], "resend") == 0) {
			h->resend = strcmp(value, "1") == 0;
		} else if (strcmp(fields[i], "kept") == 0) {
			char *colon = strchr(value, ':');
			guint64 n;

			if (colon == NULL)
				return field_error(error, "kept", value);
			*colon = '\0';
			if (!g_ascii_string_to_unsigned(value, 10, 3, INT_MAX, &v, NULL) ||
			    !g_ascii_string_to_unsigned(colon + 1, 10, 0, G_MAXUINT, &n, NULL))
				return field_error(error, "kept", value);
			h->kept_fd = (int)v;
			h->kept = (unsigned int)n;
			fcntl(h->kept_fd, F_SETFD, FD_CLOEXEC);
		} else if (strcmp(fields[i], "opens") == 0) {
			g_free(h->opens);
			h->opens = g_strdup(value);
		} else {
			return field_error(error, "field", fields[i]);
		}
	}
	if (seen != 3) {
		g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "--takeover needs fd= and init=");
		return false;
	}
	if (fstat(h->fd, &st) < 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != FUSE_DEV_MAJOR ||
	    minor(st.st_rdev) != FUSE_DEV_MINOR) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--takeover: descriptor %d is not /dev/fuse", h->fd);
		return false;
	}
	/* Ours now: not to be passed to the programs we run. */
	fcntl(h->fd, F_SETFD, FD_CLOEXEC);
	return true;
}

/* The binary's path now: an upgrade replaced it, and /proc/self/exe is the old one. */
static char *binary_path(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	static const char deleted[] = " (deleted)";

	if (n <= 0)
		return g_strdup("/proc/self/exe");
	buf[n] = '\0';
	if ((size_t)n > strlen(deleted) && strcmp(buf + n - strlen(deleted), deleted) == 0)
		buf[n - strlen(deleted)] = '\0';
	if (access(buf, X_OK) != 0)
		return g_strdup("/proc/self/exe");
	return g_strdup(buf);
}

bool takeover_binary_replaced(void)
{
	g_autofree char *path = binary_path();
	struct stat now, running;

	if (strcmp(path, "/proc/self/exe") == 0)
		return false;
	/* stat() of /proc/self/exe follows it to the running inode, deleted or not. */
	if (stat("/proc/self/exe", &running) < 0 || stat(path, &now) < 0)
		return false;
	return now.st_dev != running.st_dev || now.st_ino != running.st_ino;
}

void takeover_exec(const struct takeover_args *a, const struct frontend_handover *h, GError **error)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GString) text = g_string_new(NULL);
	g_autofree char *path = binary_path();
	int err;

	g_string_append_printf(text, "fd=%d;restarts=%u;mode=%o;uid=%u;gid=%u;init=", h->fd,
			       h->restarts, (unsigned int)h->mode, (unsigned int)h->uid,
			       (unsigned int)h->gid);
	for (size_t i = 0; i < h->init_len; i++)
		g_string_append_printf(text, "%02x", h->init[i]);
	if (h->kept_fd >= 0)
		g_string_append_printf(text, ";kept=%d:%u", h->kept_fd, h->kept);
	if (h->opens != NULL)
		g_string_append_printf(text, ";opens=%s", h->opens);

	g_ptr_array_add(argv, g_strdup("fusemirrord"));
	if (a->foreground)
		g_ptr_array_add(argv, g_strdup("--foreground"));
	if (a->debug)
		g_ptr_array_add(argv, g_strdup("--debug"));
	g_ptr_array_add(argv, g_strdup_printf("--config=%s", a->config));
	for (guint i = 0; a->fuse_opts != NULL && a->fuse_opts[i] != NULL; i++)
		g_ptr_array_add(argv, g_strdup_printf("--options=%s", a->fuse_opts[i]));
	g_ptr_array_add(argv, g_strdup_printf("--takeover=%s", text->str));
	g_ptr_array_add(argv, g_strdup("--"));
	g_ptr_array_add(argv, g_strdup(a->mountpoint));
	g_ptr_array_add(argv, NULL);

	g_message("restarting: executing %s", path);
	fflush(NULL);
	execv(path, (char **)argv->pdata);
	err = errno;
	if (strcmp(path, "/proc/self/exe") != 0) {
		execv("/proc/self/exe", (char **)argv->pdata);
		err = errno;
	}
	g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "cannot execute %s: %s",
		    path, g_strerror(err));
}

/* ---- systemd's file descriptor store ------------------------------------------------------- */

bool takeover_store_enabled(void)
{
	const char *path = getenv("NOTIFY_SOCKET");

	return path != NULL && (path[0] == '/' || path[0] == '@');
}

/* sd_notify with one descriptor (SCM_RIGHTS), or none for fd < 0. */
static bool notify_with_fd(const char *state, int fd)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct iovec iov = {.iov_base = (void *)state, .iov_len = strlen(state)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct msghdr msg = {0};
	size_t path_len;
	bool ok;
	int sock;

	if (path == NULL || (path_len = strlen(path)) >= sizeof(addr.sun_path))
		return false;
	memcpy(addr.sun_path, path, path_len);
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	msg.msg_name = &addr;
	msg.msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd >= 0) {
		struct cmsghdr *cmsg;

		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return false;
	ok = sendmsg(sock, &msg, MSG_NOSIGNAL) >= 0;
	close(sock);
	return ok;
}

void takeover_store(int fuse_fd, const struct frontend_handover *h)
{
	g_autoptr(GString) text = g_string_new(NULL);
	int memfd;

	if (!takeover_store_enabled())
		return;
	g_string_append_printf(text, "restarts=%u;mode=%o;uid=%u;gid=%u;init=", h->restarts,
			       (unsigned int)h->mode, (unsigned int)h->uid, (unsigned int)h->gid);
	for (size_t i = 0; i < h->init_len; i++)
		g_string_append_printf(text, "%02x", h->init[i]);
	memfd = memfd_create("fusemirror-init", MFD_CLOEXEC);
	if (memfd < 0 || write(memfd, text->str, text->len) != (ssize_t)text->len) {
		g_warning("cannot keep the FUSE connection in systemd's store: memfd: %s",
			  g_strerror(errno));
		if (memfd >= 0)
			close(memfd);
		return;
	}
	/* One of each in the store: a takeover's process stores them again. */
	notify_with_fd("FDSTOREREMOVE=1\nFDNAME=" TAKEOVER_FD_NAME, -1);
	notify_with_fd("FDSTOREREMOVE=1\nFDNAME=" TAKEOVER_INIT_NAME, -1);
	if (!notify_with_fd("FDSTORE=1\nFDNAME=" TAKEOVER_FD_NAME, fuse_fd) ||
	    !notify_with_fd("FDSTORE=1\nFDNAME=" TAKEOVER_INIT_NAME, memfd))
		g_warning("cannot keep the FUSE connection in systemd's store: %s",
			  g_strerror(errno));
	else
		g_debug("the FUSE connection is in systemd's file descriptor store");
	close(memfd);
}

void takeover_unstore(void)
{
	if (!takeover_store_enabled())
		return;
	notify_with_fd("FDSTOREREMOVE=1\nFDNAME=" TAKEOVER_FD_NAME, -1);
	notify_with_fd("FDSTOREREMOVE=1\nFDNAME=" TAKEOVER_INIT_NAME, -1);
}

char *takeover_from_listen_fds(GError **error)
{
	const char *pid = getenv("LISTEN_PID"), *count = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	g_auto(GStrv) name = NULL;
	guint64 p, n;
	int fuse_fd = -1, init_fd = -1;
	char buf[4096];
	ssize_t len;
	char *text = NULL;

	if (pid == NULL || count == NULL ||
	    !g_ascii_string_to_unsigned(pid, 10, 1, G_MAXINT32, &p, NULL) || (pid_t)p != getpid() ||
	    !g_ascii_string_to_unsigned(count, 10, 0, 64, &n, NULL))
		return NULL;
	name = g_strsplit(names != NULL ? names : "", ":", -1);
	for (guint i = 0; i < n; i++) {
		int fd = 3 + (int)i;
		const char *this = i < g_strv_length(name) ? name[i] : "";

		if (strcmp(this, TAKEOVER_FD_NAME) == 0 && fuse_fd < 0)
			fuse_fd = fd;
		else if (strcmp(this, TAKEOVER_INIT_NAME) == 0 && init_fd < 0)
			init_fd = fd;
		else
			close(fd); /* a stale duplicate, or not ours */
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (fuse_fd < 0 || init_fd < 0) {
		if (fuse_fd >= 0 || init_fd >= 0)
			g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "systemd passed %s without %s: cannot take the mount over",
				    fuse_fd >= 0 ? TAKEOVER_FD_NAME : TAKEOVER_INIT_NAME,
				    fuse_fd >= 0 ? TAKEOVER_INIT_NAME : TAKEOVER_FD_NAME);
		if (fuse_fd >= 0)
			close(fuse_fd);
		if (init_fd >= 0)
			close(init_fd);
		return NULL;
	}
	len = pread(init_fd, buf, sizeof(buf) - 1, 0);
	close(init_fd);
	if (len <= 0) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "the stored %s is empty", TAKEOVER_INIT_NAME);
		close(fuse_fd);
		return NULL;
	}
	buf[len] = '\0';
	text = g_strdup_printf("fd=%d;resend=1;%s", fuse_fd, buf);
	return text;
}
