/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dmio-demo: mirror data across image files with libdmio and show the error bitset.
 *
 *   dmio-demo [DIR]
 *
 * Creates DIR/leg0.img and DIR/leg1.img (64 MiB, sparse), writes 16 MiB to both at once with
 * dmio_sync_vm(), reads each leg back and compares, writes asynchronously with dmio_async_vm(),
 * times 10,000 4 KiB synchronous writes to one region and to three, and - when run as root -
 * adds a third leg on a 1 MiB tmpfs that fills up, to show its bit in the error bitset while
 * the other legs keep the data.
 */
#include <dmio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LEG_SIZE (64ull << 20)
#define CHUNK	 (1u << 20)

static int make_leg(const char *dir, const char *name, uint64_t size, struct dmio_dev **dev)
{
	char path[4096];
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		fprintf(stderr, "dmio-demo: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	close(fd);
	r = dmio_dev_open(path, 0, dev);
	if (r < 0)
		fprintf(stderr, "dmio-demo: dmio_dev_open %s: %s\n", path, strerror(-r));
	return r;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(unsigned char *buf, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 31 + seed * 7) ^ (i >> 12));
}

struct wait {
	volatile int done;
	unsigned long error;
};

static void notify(unsigned long error, void *context)
{
	struct wait *w = context;

	w->error = error;
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
}

/* 10,000 4 KiB synchronous writes to the first n legs; returns seconds. */
static double time_writes(struct dmio_dev **legs, unsigned int n, unsigned char *buf)
{
	struct dmio_region where[3];
	unsigned long bits;
	double start = now();
	unsigned int i, k;

	for (i = 0; i < 10000; i++) {
		for (k = 0; k < n; k++)
			where[k] = (struct dmio_region){legs[k], (uint64_t)(i % 4096) * 8, 8};
		if (dmio_sync_vm(n, where, DMIO_WRITE, buf, &bits) < 0) {
			fprintf(stderr, "dmio-demo: timed write failed, error bits 0x%lx\n", bits);
			return -1;
		}
	}
	return now() - start;
}

static int fault_demo(const char *dir, struct dmio_dev **legs, unsigned char *buf)
{
	char small[4096];
	struct dmio_dev *bad = NULL;
	struct dmio_region where[3];
	struct dmio_request req = {.op = DMIO_WRITE, .mem.type = DMIO_MEM_VM};
	int errors[3];
	unsigned long bits = 0;
	unsigned int i;
	int r, ret = 1;

	snprintf(small, sizeof(small), "%s/small", dir);
	mkdir(small, 0755);
	if (mount("tmpfs", small, "tmpfs", 0, "size=1m") < 0) {
		printf("fault demo skipped: cannot mount a small tmpfs (%s); run as root to see a "
		       "failing leg\n",
		       strerror(errno));
		return 0;
	}
	if (make_leg(small, "leg2.img", LEG_SIZE, &bad) < 0)
		goto out;
	printf("leg 2: %s, on a 1 MiB tmpfs: it fills up after 1 MiB\n", dmio_dev_path(bad));
	req.mem.ptr.vma = buf;
	req.region_errors = errors;
	for (i = 0; i < 4; i++) {
		where[0] = (struct dmio_region){legs[0], (uint64_t)i * (CHUNK >> 9), CHUNK >> 9};
		where[1] = (struct dmio_region){legs[1], (uint64_t)i * (CHUNK >> 9), CHUNK >> 9};
		where[2] = (struct dmio_region){bad, (uint64_t)i * (CHUNK >> 9), CHUNK >> 9};
		r = dmio(&req, 3, where, &bits);
		printf("write MiB %u to legs 0,1,2: %s, error bits 0x%lx", i,
		       r == 0 ? "ok" : strerror(-r), bits);
		if (bits & 4)
			printf(" (leg 2: %s)", strerror(errors[2]));
		printf("\n");
	}
	ret = bits == 4 ? 0 : 1;
	if (ret == 0)
		printf("legs 0 and 1 hold every write; only leg 2's bit is set\n");
out:
	dmio_dev_close(bad);
	umount2(small, MNT_DETACH);
	rmdir(small);
	return ret;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	struct dmio_dev *legs[3] = {NULL, NULL, NULL};
	struct dmio_region where[3];
	unsigned char *buf, *back;
	unsigned long bits = 0;
	struct wait w = {0, 0};
	double t1, t3, start;
	unsigned int i, k;
	int r, status = 1;

	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: dmio-demo [DIR]\n");
		return 2;
	}
	if (dmio_get(CHUNK / DMIO_PAGE_SIZE) < 0) {
		fprintf(stderr, "dmio-demo: dmio_get failed\n");
		return 1;
	}
	buf = aligned_alloc(DMIO_PAGE_SIZE, CHUNK);
	back = aligned_alloc(DMIO_PAGE_SIZE, CHUNK);
	if (buf == NULL || back == NULL)
		goto out;
	for (k = 0; k < 3; k++) {
		char name[16];

		snprintf(name, sizeof(name), "leg%u.img", k);
		if (make_leg(dir, name, LEG_SIZE, &legs[k]) < 0)
			goto out;
	}
	printf("legs: %s, %s (and %s for timing), %llu MiB each\n", dmio_dev_path(legs[0]),
	       dmio_dev_path(legs[1]), dmio_dev_path(legs[2]), LEG_SIZE >> 20);

	start = now();
	for (i = 0; i < 16; i++) {
		fill(buf, CHUNK, i);
		for (k = 0; k < 2; k++)
			where[k] =
			    (struct dmio_region){legs[k], (uint64_t)i * (CHUNK >> 9), CHUNK >> 9};
		r = dmio_sync_vm(2, where, DMIO_WRITE, buf, &bits);
		if (r < 0) {
			fprintf(stderr, "dmio-demo: write failed: error bits 0x%lx\n", bits);
			goto out;
		}
	}
	printf("wrote 16 MiB to both legs in %.1f ms, error bits 0x%lx\n", (now() - start) * 1e3,
	       bits);

	for (k = 0; k < 2; k++) {
		for (i = 0; i < 16; i++) {
			where[0] =
			    (struct dmio_region){legs[k], (uint64_t)i * (CHUNK >> 9), CHUNK >> 9};
			fill(buf, CHUNK, i);
			if (dmio_sync_vm(1, where, DMIO_READ, back, &bits) < 0 ||
			    memcmp(buf, back, CHUNK) != 0) {
				fprintf(stderr, "dmio-demo: leg %u differs at MiB %u\n", k, i);
				goto out;
			}
		}
		printf("leg %u reads back identical\n", k);
	}

	fill(buf, CHUNK, 99);
	for (k = 0; k < 2; k++)
		where[k] = (struct dmio_region){legs[k], 16 * (CHUNK >> 9), CHUNK >> 9};
	if (dmio_async_vm(2, where, DMIO_WRITE, buf, notify, &w) < 0)
		goto out;
	while (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE))
		usleep(100);
	printf("async write to both legs: notify called, error bits 0x%lx\n", w.error);

	memset(buf, 0x5a, 4096);
	t1 = time_writes(legs, 1, buf);
	t3 = time_writes(legs, 3, buf);
	if (t1 < 0 || t3 < 0)
		goto out;
	printf("10,000 4 KiB sync writes: 1 region %.0f ms, 3 regions %.0f ms (x%.2f)\n", t1 * 1e3,
	       t3 * 1e3, t3 / t1);

	status = fault_demo(dir, legs, buf);
out:
	for (k = 0; k < 3; k++)
		dmio_dev_close(legs[k]);
	free(buf);
	free(back);
	dmio_put(CHUNK / DMIO_PAGE_SIZE);
	return status;
}
