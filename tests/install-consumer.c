/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A program outside the tree, built by test-install.sh against the installed <dmio.h> and
 * `pkg-config --cflags --libs dmio`: it uses dmio_get, the six seed calls and dmio() with a
 * client, on two files it creates in the directory given as argv[1], and checks that every byte
 * round-trips.  Exit 0 on success, 1 with a message otherwise.
 */
#include <dmio.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILE_SIZE (1024 * 1024)
#define SECTORS	  16 /* 8 KiB per request */
#define LEN	  (SECTORS * DMIO_SECTOR_SIZE)

static int failures;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "install-consumer: line %d: ", __LINE__);                  \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

struct completion {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls;
	unsigned long error;
};

static void notify(unsigned long error, void *context)
{
	struct completion *c = context;

	pthread_mutex_lock(&c->lock);
	c->calls++;
	c->error = error;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Wait for the one notify call; return its error bitset. */
static unsigned long wait_completion(struct completion *c)
{
	unsigned long error;

	pthread_mutex_lock(&c->lock);
	while (c->calls == 0)
		pthread_cond_wait(&c->cond, &c->lock);
	error = c->error;
	pthread_mutex_unlock(&c->lock);
	return error;
}

static void completion_init(struct completion *c)
{
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->calls = 0;
	c->error = ~0ul;
}

static void fill(unsigned char *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)((i * 131u + seed * 7919u + (i >> 9)) & 0xff);
}

/* pread the range back from the file itself and compare with expected. */
static void check_file(const char *path, unsigned long long sector, const unsigned char *expected,
		       const char *what)
{
	unsigned char buf[LEN];
	int fd = open(path, O_RDONLY);

	CHECK(fd >= 0, "%s: open %s: %s", what, path, strerror(errno));
	if (fd < 0)
		return;
	CHECK(pread(fd, buf, LEN, (off_t)(sector * DMIO_SECTOR_SIZE)) == LEN, "%s: pread", what);
	CHECK(memcmp(buf, expected, LEN) == 0, "%s: %s does not hold the written data", what, path);
	close(fd);
}

/* A page list of three pages holding LEN bytes starting offset bytes into the first. */
struct pages {
	struct dmio_page_list pl[3];
	void *mem[3];
};

static void pages_init(struct pages *p)
{
	for (int i = 0; i < 3; i++) {
		p->mem[i] = aligned_alloc(DMIO_PAGE_SIZE, DMIO_PAGE_SIZE);
		memset(p->mem[i], 0xaa, DMIO_PAGE_SIZE);
		p->pl[i].page = p->mem[i];
		p->pl[i].next = i < 2 ? &p->pl[i + 1] : NULL;
	}
}

static void pages_copy(struct pages *p, unsigned int offset, unsigned char *buf, int to_pages)
{
	size_t done = 0;

	for (int i = 0; done < LEN; i++) {
		size_t start = i == 0 ? offset : 0;
		size_t n = DMIO_PAGE_SIZE - start;

		if (n > LEN - done)
			n = LEN - done;
		if (to_pages)
			memcpy((char *)p->mem[i] + start, buf + done, n);
		else
			memcpy(buf + done, (char *)p->mem[i] + start, n);
		done += n;
	}
}

static void pages_free(struct pages *p)
{
	for (int i = 0; i < 3; i++)
		free(p->mem[i]);
}

int main(int argc, char **argv)
{
	char path[2][4096];
	struct dmio_dev *dev[2] = {NULL, NULL};
	static unsigned char data[LEN], back[LEN];
	unsigned long bits = ~0ul;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: install-consumer DIR\n");
		return 2;
	}
	for (int i = 0; i < 2; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/leg%d.img", argv[1], i);
		int fd = open(path[i], O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || ftruncate(fd, FILE_SIZE) != 0) {
			perror(path[i]);
			return 1;
		}
		close(fd);
		r = dmio_dev_open(path[i], 0, &dev[i]);
		if (r != 0) {
			fprintf(stderr, "dmio_dev_open %s: %s\n", path[i], strerror(-r));
			return 1;
		}
	}
	CHECK(dmio_dev_sectors(dev[0]) == FILE_SIZE / DMIO_SECTOR_SIZE, "dmio_dev_sectors");

	r = dmio_get(8);
	CHECK(r == 0, "dmio_get: %d", r);

	/* Two regions at different sectors of the two files. */
	struct dmio_region where[2] = {{dev[0], 8, SECTORS}, {dev[1], 100, SECTORS}};

	/* dmio_sync / dmio_async: a page list, 1000 bytes into its first page. */
	{
		struct pages p, q;
		struct completion c;

		pages_init(&p);
		pages_init(&q);
		fill(data, LEN, 1);
		pages_copy(&p, 1000, data, 1);
		bits = ~0ul;
		r = dmio_sync(2, where, DMIO_WRITE, p.pl, 1000, &bits);
		CHECK(r == 0 && bits == 0, "dmio_sync write: %d, bits %lx", r, bits);
		check_file(path[0], 8, data, "dmio_sync");
		check_file(path[1], 100, data, "dmio_sync");
		bits = ~0ul;
		r = dmio_sync(1, &where[1], DMIO_READ, q.pl, 1000, &bits);
		pages_copy(&q, 1000, back, 0);
		CHECK(r == 0 && bits == 0 && memcmp(back, data, LEN) == 0, "dmio_sync read");

		fill(data, LEN, 2);
		pages_copy(&p, 1000, data, 1);
		completion_init(&c);
		r = dmio_async(2, where, DMIO_WRITE, p.pl, 1000, notify, &c);
		CHECK(r == 0 && wait_completion(&c) == 0, "dmio_async write: %d", r);
		check_file(path[0], 8, data, "dmio_async");
		check_file(path[1], 100, data, "dmio_async");
		completion_init(&c);
		r = dmio_async(1, &where[0], DMIO_READ, q.pl, 1000, notify, &c);
		CHECK(r == 0 && wait_completion(&c) == 0, "dmio_async read: %d", r);
		pages_copy(&q, 1000, back, 0);
		CHECK(memcmp(back, data, LEN) == 0, "dmio_async read data");
		pages_free(&p);
		pages_free(&q);
	}

	/* dmio_sync_bvec / dmio_async_bvec: two pieces in one page, then two whole pages. */
	{
		unsigned char *page[3], *rpage[3];
		struct dmio_bvec bv[4], rbv[4];
		struct completion c;

		for (int i = 0; i < 3; i++) {
			page[i] = aligned_alloc(DMIO_PAGE_SIZE, DMIO_PAGE_SIZE);
			rpage[i] = aligned_alloc(DMIO_PAGE_SIZE, DMIO_PAGE_SIZE);
		}
		/* 1024 + 1024 + 4096 + 2048 = LEN */
		unsigned int offs[4] = {512, 2560, 0, 0}, lens[4] = {1024, 1024, 4096, 2048};
		int pg[4] = {0, 0, 1, 2};
		for (int i = 0; i < 4; i++) {
			bv[i] = (struct dmio_bvec){page[pg[i]], lens[i], offs[i]};
			rbv[i] = (struct dmio_bvec){rpage[pg[i]], lens[i], offs[i]};
		}
		fill(data, LEN, 3);
		for (int i = 0, at = 0; i < 4; at += lens[i], i++)
			memcpy(page[pg[i]] + offs[i], data + at, lens[i]);
		r = dmio_sync_bvec(2, where, DMIO_WRITE, bv, &bits);
		CHECK(r == 0 && bits == 0, "dmio_sync_bvec write: %d", r);
		check_file(path[0], 8, data, "dmio_sync_bvec");
		check_file(path[1], 100, data, "dmio_sync_bvec");

		completion_init(&c);
		r = dmio_async_bvec(1, &where[1], DMIO_READ, rbv, notify, &c);
		CHECK(r == 0 && wait_completion(&c) == 0, "dmio_async_bvec read: %d", r);
		for (int i = 0, at = 0; i < 4; at += lens[i], i++)
			memcpy(back + at, rpage[pg[i]] + offs[i], lens[i]);
		CHECK(memcmp(back, data, LEN) == 0, "dmio_async_bvec read data");

		fill(data, LEN, 4);
		for (int i = 0, at = 0; i < 4; at += lens[i], i++)
			memcpy(page[pg[i]] + offs[i], data + at, lens[i]);
		completion_init(&c);
		r = dmio_async_bvec(2, where, DMIO_WRITE, bv, notify, &c);
		CHECK(r == 0 && wait_completion(&c) == 0, "dmio_async_bvec write: %d", r);
		check_file(path[0], 8, data, "dmio_async_bvec");
		check_file(path[1], 100, data, "dmio_async_bvec");
		r = dmio_sync_bvec(1, &where[0], DMIO_READ, rbv, &bits);
		for (int i = 0, at = 0; i < 4; at += lens[i], i++)
			memcpy(back + at, rpage[pg[i]] + offs[i], lens[i]);
		CHECK(r == 0 && memcmp(back, data, LEN) == 0, "dmio_sync_bvec read");
		for (int i = 0; i < 3; i++) {
			free(page[i]);
			free(rpage[i]);
		}
	}

	/* dmio_sync_vm / dmio_async_vm. */
	{
		struct completion c;

		fill(data, LEN, 5);
		r = dmio_sync_vm(2, where, DMIO_WRITE, data, &bits);
		CHECK(r == 0 && bits == 0, "dmio_sync_vm write: %d", r);
		check_file(path[0], 8, data, "dmio_sync_vm");
		check_file(path[1], 100, data, "dmio_sync_vm");
		memset(back, 0xaa, LEN);
		completion_init(&c);
		r = dmio_async_vm(1, &where[0], DMIO_READ, back, notify, &c);
		CHECK(r == 0 && wait_completion(&c) == 0, "dmio_async_vm read: %d", r);
		CHECK(memcmp(back, data, LEN) == 0, "dmio_async_vm read data");

		fill(data, LEN, 6);
		completion_init(&c);
		r = dmio_async_vm(2, where, DMIO_WRITE, data, notify, &c);
		CHECK(r == 0 && wait_completion(&c) == 0, "dmio_async_vm write: %d", r);
		check_file(path[0], 8, data, "dmio_async_vm");
		check_file(path[1], 100, data, "dmio_async_vm");
		memset(back, 0xaa, LEN);
		r = dmio_sync_vm(1, &where[1], DMIO_READ, back, &bits);
		CHECK(r == 0 && memcmp(back, data, LEN) == 0, "dmio_sync_vm read");
	}

	/* dmio() on a client of its own: an iovec write with region errors, then a vm read. */
	{
		struct dmio_client_opts opts = {DMIO_ENGINE_THREADS, 2, 4, 0};
		struct dmio_client *client = NULL;
		struct iovec iov[2];
		int region_errors[2] = {-1, -1};
		struct dmio_request req;

		r = dmio_client_create(&opts, &client);
		CHECK(r == 0, "dmio_client_create: %d", r);
		if (r == 0) {
			CHECK(strcmp(dmio_client_engine_name(client), "threads") == 0,
			      "engine name");
			CHECK(dmio_client_resize(client, 8) == 0, "dmio_client_resize");
			fill(data, LEN, 7);
			iov[0] = (struct iovec){data, 3000};
			iov[1] = (struct iovec){data + 3000, LEN - 3000};
			memset(&req, 0, sizeof(req));
			req.op = DMIO_WRITE;
			req.mem.type = DMIO_MEM_IOVEC;
			req.mem.ptr.iov.vec = iov;
			req.mem.ptr.iov.count = 2;
			req.client = client;
			req.region_errors = region_errors;
			r = dmio(&req, 2, where, &bits);
			CHECK(r == 0 && bits == 0 && region_errors[0] == 0 && region_errors[1] == 0,
			      "dmio write: %d, bits %lx", r, bits);
			check_file(path[0], 8, data, "dmio");
			check_file(path[1], 100, data, "dmio");

			memset(back, 0xaa, LEN);
			memset(&req, 0, sizeof(req));
			req.op = DMIO_READ;
			req.mem.type = DMIO_MEM_VM;
			req.mem.ptr.vma = back;
			req.client = client;
			r = dmio(&req, 1, &where[1], &bits);
			CHECK(r == 0 && memcmp(back, data, LEN) == 0, "dmio read: %d", r);

			memset(&req, 0, sizeof(req));
			req.op = DMIO_FLUSH;
			req.client = client;
			struct dmio_region flush[2] = {{dev[0], 0, 0}, {dev[1], 0, 0}};
			r = dmio(&req, 2, flush, &bits);
			CHECK(r == 0 && bits == 0, "dmio flush: %d", r);
			dmio_client_destroy(client);
		}
	}

	dmio_put(8);
	dmio_dev_close(dev[0]);
	dmio_dev_close(dev[1]);
	unlink(path[0]);
	unlink(path[1]);
	if (failures) {
		fprintf(stderr, "install-consumer: %d check(s) failed\n", failures);
		return 1;
	}
	printf("install-consumer: the six seed calls and dmio() round-trip\n");
	return 0;
}
