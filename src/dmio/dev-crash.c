/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The crash-test device kind ("crash:NAME", see dev-crash.h): an in-memory disk whose volatile
 * write cache a test can "power cut".
 *
 * The disk keeps two images and a log.  The base is what it held when its recording started,
 * durable by definition.  The cache is what it holds now, what reads see; it is made, a copy of
 * the base, by the first write (until then the base is what it holds).  The log has one entry per
 * operation applied (write, FUA write, write-zeroes or discard, flush), in the order of the
 * process-wide sequence numbers they took under the disk's lock, each write with its own copy of
 * the data: memory per entry is its data, nothing more.
 *
 * A cut before operation number `cut` replays the log backwards from the last entry before cut
 * down to the first, over a bitmap of the sectors already decided: the newest included write of
 * a sector is the one that counts, so each sector is copied once at most, and the older entries
 * of a sector only cost a look at the bitmap.  Going backwards, entries after the last flush are
 * included when they are FUA or the seed's coin says so; once the walk passes a flush, every
 * write is durable and included.  Sectors no included write touched come from the base.  A cut
 * thus costs one pass over the log's sector counts in 64-sector words plus one copy of the
 * disk, however big the recording is.  A test cuts hundreds of times, so the images of destroyed
 * disks are kept for the next ones: fresh memory would cost a page fault per 4 KiB, more than the
 * copy itself (and AddressSanitizer never hands freed memory back soon).
 *
 * Locks: crash_registry_lock protects the registry and every disk's opens; a disk's lock protects
 * its cache, log and failing flag; crash_spare_lock protects the spare images.  None of them is
 * held with another.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>

#include "dev-crash.h"
#include "dmio-internal.h"

enum crash_op {
	CRASH_WRITE,
	CRASH_WRITE_FUA,
	CRASH_ZERO, /* write-zeroes and discard */
	CRASH_FLUSH,
};

struct crash_entry {
	uint64_t seq;
	enum crash_op op;
	uint64_t sector;
	uint64_t count; /* sectors */
	uint8_t *data;	/* CRASH_WRITE and CRASH_WRITE_FUA: count sectors; else NULL */
};

struct dmio_crash_disk {
	/* Set at creation, never changed. */
	char *name;
	uint64_t size;
	uint64_t sectors;
	uint8_t *base; /* the recording's base image */

	unsigned int opens; /* dmio_devs open on the disk; under crash_registry_lock */

	GMutex lock;	/* protects cache, log and failing */
	uint8_t *cache; /* NULL until the first write: the disk holds its base */
	GArray *log;	/* struct crash_entry, in sequence order */
	bool failing;
};

/* A dmio_dev of this kind: dev first, so that dmio_dev_close()'s g_free(dev) frees it all. */
struct crash_dev {
	struct dmio_dev dev;
	struct dmio_crash_disk *disk;
};
G_STATIC_ASSERT(offsetof(struct crash_dev, dev) == 0);

static GMutex crash_registry_lock;
static GHashTable *crash_registry; /* name -> struct dmio_crash_disk *; under the lock */

/* The number the next operation on any crash disk takes; taken under that disk's lock. */
static atomic_ullong crash_next_seq;

/* Images of destroyed disks, for the next disks of the same size: at most CRASH_SPARE_MAX bytes. */
#define CRASH_SPARE_MAX (64ull << 20)
static GMutex crash_spare_lock;
static GSList *crash_spares; /* struct crash_spare *; under the lock */
static uint64_t crash_spare_bytes;

struct crash_spare {
	uint64_t size;
	void *image;
};

static struct dmio_crash_disk *disk_of(struct dmio_dev *dev)
{
	return ((struct crash_dev *)dev)->disk;
}

/* ---- The seed's coin ---------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/*
 * Whether a cut with this seed keeps the unflushed entry with this sequence number.  The numbers
 * are unique in the process, so they name the entry (and its disk); the choice does not depend on
 * the cut point, so cuts with one seed at two points agree on the entries they share.
 */
static bool seed_keeps(uint64_t seed, uint64_t seq)
{
	return splitmix64(splitmix64(seed) ^ seq) >> 63;
}

/* ---- The sector bitmap of a cut ------------------------------------------------------------ */

/* The first sector in [from, end) whose bit is value, or end. */
static uint64_t bitmap_find(const uint64_t *bits, uint64_t from, uint64_t end, bool value)
{
	while (from < end) {
		uint64_t word = bits[from / 64];

		if (!value)
			word = ~word;
		word &= ~0ull << (from % 64);
		if (word != 0)
			return MIN(end, (from & ~63ull) + (uint64_t)__builtin_ctzll(word));
		from = (from & ~63ull) + 64;
	}
	return end;
}

static void bitmap_set(uint64_t *bits, uint64_t from, uint64_t end)
{
	for (; from < end && from % 64 != 0; from++)
		bits[from / 64] |= 1ull << (from % 64);
	for (; from + 64 <= end; from += 64)
		bits[from / 64] = ~0ull;
	for (; from < end; from++)
		bits[from / 64] |= 1ull << (from % 64);
}

/*
 * Put the sectors [sector, sector + count) of data (NULL: zeroes) that no newer write decided
 * into image, and mark them decided.  Returns how many it decided.
 */
static uint64_t image_fill_undecided(uint8_t *image, uint64_t *decided, uint64_t sector,
				     uint64_t count, const uint8_t *data)
{
	uint64_t end = sector + count, filled = 0, s = sector;

	while ((s = bitmap_find(decided, s, end, false)) < end) {
		uint64_t run_end = bitmap_find(decided, s, end, true);
		size_t bytes = (size_t)(run_end - s) << DMIO_SECTOR_SHIFT;
		uint8_t *to = image + (s << DMIO_SECTOR_SHIFT);

		if (data != NULL)
			memcpy(to, data + ((s - sector) << DMIO_SECTOR_SHIFT), bytes);
		else
			memset(to, 0, bytes);
		bitmap_set(decided, s, run_end);
		filled += run_end - s;
		s = run_end;
	}
	return filled;
}

/* How many entries of the log come before operation number cut.  Under disk->lock. */
static size_t log_entries_before(const struct dmio_crash_disk *disk, uint64_t cut)
{
	size_t lo = 0, hi = disk->log->len;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (g_array_index(disk->log, struct crash_entry, mid).seq < cut)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The disk's image after a power cut before operation number cut.  Under disk->lock. */
static int image_at_cut(const struct dmio_crash_disk *disk, uint64_t cut, uint64_t seed,
			uint8_t *image)
{
	uint64_t *decided = g_try_new0(uint64_t, (disk->sectors + 63) / 64);
	uint64_t undecided = disk->sectors;
	bool durable = false; /* the walk has passed a flush: every older write is durable */
	size_t i;

	if (decided == NULL)
		return -ENOMEM;
	for (i = log_entries_before(disk, cut); i-- > 0 && undecided > 0;) {
		const struct crash_entry *e = &g_array_index(disk->log, struct crash_entry, i);

		if (e->op == CRASH_FLUSH) {
			durable = true;
			continue;
		}
		if (!durable && e->op != CRASH_WRITE_FUA && !seed_keeps(seed, e->seq))
			continue;
		undecided -= image_fill_undecided(image, decided, e->sector, e->count, e->data);
	}
	if (undecided > 0)
		image_fill_undecided(image, decided, 0, disk->sectors, disk->base);
	g_free(decided);
	return 0;
}

/* ---- Images --------------------------------------------------------------------------------- */

/* An image of size bytes, its contents undefined: a spare one, else fresh.  NULL: no memory. */
static uint8_t *image_alloc(uint64_t size)
{
	uint8_t *image = NULL;
	GSList *l;

	g_mutex_lock(&crash_spare_lock);
	for (l = crash_spares; l != NULL; l = l->next) {
		struct crash_spare *spare = l->data;

		if (spare->size == size) {
			image = spare->image;
			crash_spare_bytes -= size;
			crash_spares = g_slist_delete_link(crash_spares, l);
			g_free(spare);
			break;
		}
	}
	g_mutex_unlock(&crash_spare_lock);
	return image != NULL ? image : g_try_malloc(size);
}

/* Keep an image for the next disk of its size, or free it.  NULL is ignored. */
static void image_free(uint8_t *image, uint64_t size)
{
	struct crash_spare *spare;

	if (image == NULL)
		return;
	g_mutex_lock(&crash_spare_lock);
	if (crash_spare_bytes + size > CRASH_SPARE_MAX) {
		g_mutex_unlock(&crash_spare_lock);
		g_free(image);
		return;
	}
	spare = g_new(struct crash_spare, 1);
	spare->size = size;
	spare->image = image;
	crash_spares = g_slist_prepend(crash_spares, spare);
	crash_spare_bytes += size;
	g_mutex_unlock(&crash_spare_lock);
}

/* What the disk holds now.  Under disk->lock. */
static const uint8_t *disk_contents(const struct dmio_crash_disk *disk)
{
	return disk->cache != NULL ? disk->cache : disk->base;
}

/* The cache, made from the base by the first write; NULL: no memory for it.  Under disk->lock. */
static uint8_t *disk_cache(struct dmio_crash_disk *disk)
{
	if (disk->cache == NULL) {
		disk->cache = image_alloc(disk->size);
		if (disk->cache != NULL)
			memcpy(disk->cache, disk->base, disk->size);
	}
	return disk->cache;
}

/* ---- Disks and the registry ---------------------------------------------------------------- */

static bool valid_name(const char *name)
{
	return name != NULL && *name != '\0';
}

/* A disk not yet registered; its base zeroed when zeroed, else left for the caller to fill. */
static struct dmio_crash_disk *disk_new(const char *name, uint64_t size, bool zeroed)
{
	struct dmio_crash_disk *disk = g_new0(struct dmio_crash_disk, 1);

	disk->size = size;
	disk->sectors = size >> DMIO_SECTOR_SHIFT;
	disk->base = image_alloc(size);
	if (disk->base == NULL) {
		g_free(disk);
		return NULL;
	}
	if (zeroed)
		memset(disk->base, 0, size);
	disk->name = g_strdup(name);
	g_mutex_init(&disk->lock);
	disk->log = g_array_new(FALSE, FALSE, sizeof(struct crash_entry));
	return disk;
}

static void disk_free(struct dmio_crash_disk *disk)
{
	guint i;

	for (i = 0; i < disk->log->len; i++)
		g_free(g_array_index(disk->log, struct crash_entry, i).data);
	g_array_free(disk->log, TRUE);
	g_mutex_clear(&disk->lock);
	image_free(disk->cache, disk->size);
	image_free(disk->base, disk->size);
	g_free(disk->name);
	g_free(disk);
}

/* Make the disk reachable by its name: 0, or -EEXIST (the disk is then the caller's to free). */
static int disk_register(struct dmio_crash_disk *disk)
{
	int r = 0;

	g_mutex_lock(&crash_registry_lock);
	if (crash_registry == NULL)
		crash_registry = g_hash_table_new(g_str_hash, g_str_equal);
	if (g_hash_table_contains(crash_registry, disk->name))
		r = -EEXIST;
	else
		g_hash_table_insert(crash_registry, disk->name, disk);
	g_mutex_unlock(&crash_registry_lock);
	return r;
}

int dmio_crash_disk_create(const char *name, uint64_t size, struct dmio_crash_disk **out)
{
	struct dmio_crash_disk *disk;
	int r;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (!valid_name(name) || size == 0 || size % DMIO_SECTOR_SIZE != 0 || size > SIZE_MAX)
		return -EINVAL;
	disk = disk_new(name, size, true);
	if (disk == NULL)
		return -ENOMEM;
	r = disk_register(disk);
	if (r < 0) {
		disk_free(disk);
		return r;
	}
	*out = disk;
	return 0;
}

void dmio_crash_disk_destroy(struct dmio_crash_disk *disk)
{
	if (disk == NULL)
		return;
	g_mutex_lock(&crash_registry_lock);
	if (disk->opens > 0) {
		g_mutex_unlock(&crash_registry_lock);
		g_critical("dmio: crash disk '%s' destroyed while %u device(s) are open on it; "
			   "not freed",
			   disk->name, disk->opens);
		return;
	}
	g_hash_table_remove(crash_registry, disk->name);
	g_mutex_unlock(&crash_registry_lock);
	disk_free(disk);
}

uint64_t dmio_crash_disk_size(const struct dmio_crash_disk *disk)
{
	return disk->size;
}

uint64_t dmio_crash_seq(void)
{
	return atomic_load(&crash_next_seq);
}

int dmio_crash_disk_cut(struct dmio_crash_disk *from, uint64_t cut, uint64_t seed, const char *name,
			struct dmio_crash_disk **out)
{
	struct dmio_crash_disk *disk;
	int r;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (from == NULL || !valid_name(name))
		return -EINVAL;
	disk = disk_new(name, from->size, false);
	if (disk == NULL)
		return -ENOMEM;
	g_mutex_lock(&from->lock);
	r = image_at_cut(from, cut, seed, disk->base);
	g_mutex_unlock(&from->lock);
	if (r == 0)
		r = disk_register(disk);
	if (r < 0) {
		disk_free(disk);
		return r;
	}
	*out = disk;
	return 0;
}

uint64_t dmio_crash_disk_unflushed(struct dmio_crash_disk *disk, uint64_t cut)
{
	uint64_t count = 0;
	size_t i;

	g_mutex_lock(&disk->lock);
	for (i = log_entries_before(disk, cut); i-- > 0;) {
		enum crash_op op = g_array_index(disk->log, struct crash_entry, i).op;

		if (op == CRASH_FLUSH)
			break;
		if (op != CRASH_WRITE_FUA)
			count++;
	}
	g_mutex_unlock(&disk->lock);
	return count;
}

void dmio_crash_disk_set_failing(struct dmio_crash_disk *disk, bool failing)
{
	g_mutex_lock(&disk->lock);
	disk->failing = failing;
	g_mutex_unlock(&disk->lock);
}

int dmio_crash_disk_read(struct dmio_crash_disk *disk, uint64_t offset, void *buf, size_t len)
{
	if (offset > disk->size || len > disk->size - offset || (buf == NULL && len > 0))
		return -EINVAL;
	g_mutex_lock(&disk->lock);
	memcpy(buf, disk_contents(disk) + offset, len);
	g_mutex_unlock(&disk->lock);
	return 0;
}

/* ---- The device vtable --------------------------------------------------------------------- */

/* Apply and log one operation (data already in the cache for writes).  Under disk->lock. */
static void log_append(struct dmio_crash_disk *disk, enum crash_op op, uint64_t offset,
		       uint64_t len, uint8_t *data)
{
	struct crash_entry e = {
	    .seq = atomic_fetch_add(&crash_next_seq, 1),
	    .op = op,
	    .sector = offset >> DMIO_SECTOR_SHIFT,
	    .count = len >> DMIO_SECTOR_SHIFT,
	    .data = data,
	};

	g_array_append_val(disk->log, e);
}

/* Whether a write or zeroing of len bytes at offset fits the disk's sectors: 0 or -errno. */
static int check_write_range(const struct dmio_crash_disk *disk, uint64_t offset, uint64_t len)
{
	if (offset % DMIO_SECTOR_SIZE != 0 || len % DMIO_SECTOR_SIZE != 0)
		return -EINVAL;
	if (offset > disk->size || len > disk->size - offset)
		return -ENOSPC;
	return 0;
}

static uint64_t iov_length(const struct iovec *iov, int iovcnt)
{
	uint64_t len = 0;
	int i;

	for (i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	return len;
}

static ssize_t crash_preadv(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			    uint64_t offset)
{
	struct dmio_crash_disk *disk = disk_of(dev);
	uint64_t len = iov_length(iov, iovcnt), pos = offset;
	int i;

	if (offset % DMIO_SECTOR_SIZE != 0 || len % DMIO_SECTOR_SIZE != 0)
		return -EINVAL;
	/* Like a block device: short at the end, nothing past it. */
	if (offset >= disk->size)
		return 0;
	len = MIN(len, disk->size - offset);
	g_mutex_lock(&disk->lock);
	if (disk->failing) {
		g_mutex_unlock(&disk->lock);
		return -EIO;
	}
	for (i = 0; i < iovcnt && pos < offset + len; i++) {
		size_t chunk = MIN(iov[i].iov_len, offset + len - pos);

		memcpy(iov[i].iov_base, disk_contents(disk) + pos, chunk);
		pos += chunk;
	}
	g_mutex_unlock(&disk->lock);
	return (ssize_t)len;
}

static ssize_t crash_pwritev(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			     uint64_t offset, int rwf_flags)
{
	struct dmio_crash_disk *disk = disk_of(dev);
	uint64_t len = iov_length(iov, iovcnt), pos = 0;
	uint8_t *data;
	int i, r;

	/* RWF_DSYNC is how dmio asks for FUA; nothing else is expected. */
	if (rwf_flags & ~(RWF_DSYNC | RWF_SYNC))
		return -EOPNOTSUPP;
	r = check_write_range(disk, offset, len);
	if (r < 0)
		return r;
	if (len == 0)
		return 0;
	if (len > SSIZE_MAX)
		return -EINVAL;
	/* The log entry's own copy, made before taking the lock. */
	data = g_try_malloc(len);
	if (data == NULL)
		return -ENOMEM;
	for (i = 0; i < iovcnt; i++) {
		memcpy(data + pos, iov[i].iov_base, iov[i].iov_len);
		pos += iov[i].iov_len;
	}
	g_mutex_lock(&disk->lock);
	if (disk->failing) {
		g_mutex_unlock(&disk->lock);
		g_free(data);
		return -EIO;
	}
	if (disk_cache(disk) == NULL) {
		g_mutex_unlock(&disk->lock);
		g_free(data);
		return -ENOMEM;
	}
	memcpy(disk->cache + offset, data, len);
	log_append(disk, rwf_flags != 0 ? CRASH_WRITE_FUA : CRASH_WRITE, offset, len, data);
	g_mutex_unlock(&disk->lock);
	return (ssize_t)len;
}

static int crash_flush(struct dmio_dev *dev)
{
	struct dmio_crash_disk *disk = disk_of(dev);
	int r = 0;

	g_mutex_lock(&disk->lock);
	if (disk->failing)
		r = -EIO;
	else
		log_append(disk, CRASH_FLUSH, 0, 0, NULL);
	g_mutex_unlock(&disk->lock);
	return r;
}

/* Write-zeroes and discard alike: the range reads back as zeroes. */
static int crash_zero(struct dmio_dev *dev, uint64_t offset, uint64_t len)
{
	struct dmio_crash_disk *disk = disk_of(dev);
	int r = check_write_range(disk, offset, len);

	if (r < 0 || len == 0)
		return r;
	g_mutex_lock(&disk->lock);
	if (disk->failing) {
		r = -EIO;
	} else if (disk_cache(disk) == NULL) {
		r = -ENOMEM;
	} else {
		memset(disk->cache + offset, 0, len);
		log_append(disk, CRASH_ZERO, offset, len, NULL);
	}
	g_mutex_unlock(&disk->lock);
	return r;
}

static void crash_close(struct dmio_dev *dev)
{
	struct dmio_crash_disk *disk = disk_of(dev);

	g_mutex_lock(&crash_registry_lock);
	disk->opens--;
	g_mutex_unlock(&crash_registry_lock);
}

static const struct dmio_dev_ops crash_ops = {
    .kind = "crash",
    .preadv = crash_preadv,
    .pwritev = crash_pwritev,
    .flush = crash_flush,
    .discard = crash_zero,
    .zero = crash_zero,
    .close = crash_close,
};

int dmio_dev_crash_open(const char *path, unsigned int flags, struct dmio_dev **out)
{
	const char *name = path + strlen(DMIO_DEV_CRASH_PREFIX);
	struct dmio_crash_disk *disk = NULL;
	struct crash_dev *cd;
	struct dmio_dev *dev;

	g_mutex_lock(&crash_registry_lock);
	if (crash_registry != NULL)
		disk = g_hash_table_lookup(crash_registry, name);
	if (disk != NULL)
		disk->opens++;
	g_mutex_unlock(&crash_registry_lock);
	if (disk == NULL)
		return -ENOENT;

	cd = g_new0(struct crash_dev, 1);
	cd->disk = disk;
	dev = &cd->dev;
	dev->ops = &crash_ops;
	dev->path = g_strdup(path);
	dev->fd = -1;
	dev->flags = flags;
	dev->is_block = false;
	dev->size = disk->size;
	dev->lbs = DMIO_SECTOR_SIZE;
	/* DMIO_DEV_DIRECT: the alignment of a disk with 512-byte sectors, so dmio bounces. */
	dev->mem_align = (flags & DMIO_DEV_DIRECT) ? DMIO_SECTOR_SIZE : 1;
	dev->offset_align = (flags & DMIO_DEV_DIRECT) ? DMIO_SECTOR_SIZE : 1;
	atomic_init(&dev->can_discard, true);
	atomic_init(&dev->can_zero, true);
	atomic_init(&dev->can_fua, true);
	atomic_init(&dev->avg_ns, 0);
	atomic_init(&dev->timed_ns, 0);
	atomic_init(&dev->probe_ns, 0);
	*out = dev;
	return 0;
}
