/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The superblock codec (superblock.h).  The byte layout is fixed and little-endian, written and
 * read one field at a time so that it does not depend on the compiler's struct layout or the
 * host's byte order; doc/format.md is its description for humans and must change with it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "mirror/superblock-names.h"
#include "mirror/superblock.h"

/* Byte offsets inside the SB_SIZE bytes. */
#define OFF_MAGIC	   0
#define OFF_VERSION	   8
#define OFF_HEADER_SIZE	   12
#define OFF_ARRAY_UUID	   16
#define OFF_LEG_UUID	   32
#define OFF_LEG_INDEX	   48
#define OFF_NUM_LEGS	   52
#define OFF_DATA_OFFSET	   56
#define OFF_DATA_SIZE	   64
#define OFF_REGION_SIZE	   72
#define OFF_EVENTS	   80
#define OFF_EVENTS_CLEARED 88
#define OFF_FLAGS	   96
/* 100..103 reserved (keeps the 64-bit fields aligned) */
#define OFF_RECOVERY_OFFSET 104
#define OFF_BITMAP_OFFSET   112
#define OFF_BITMAP_BYTES    120
#define OFF_CTIME	    128
#define OFF_UTIME	    136
#define OFF_NAME	    144
/* 208..255 reserved */
#define OFF_ROLES	256
#define ROLE_ENTRY_SIZE 20   /* uuid (16) + role (u32) */
#define OFF_NAMES	1536 /* OFF_ROLES + 64 * 20: the leg table, to the crc */
#define OFF_CRC		(SB_SIZE - 4)
#define NAMES_SIZE	(OFF_CRC - OFF_NAMES)

#define SB_MIN_REGION_SIZE 4096u
#define SB_ALIGN	   4096u
#define SB_SECTORS	   (SB_SIZE >> DMIO_SECTOR_SHIFT)
#define SB_FLAGS_KNOWN	   SB_FLAG_CLEAN
#define DEFAULT_REGION_MIN (512ull << 10)
#define DEFAULT_REGION_MAX (64ull << 20)

G_STATIC_ASSERT(OFF_NAME + SB_NAME_MAX <= OFF_ROLES);
G_STATIC_ASSERT(OFF_ROLES + SB_MAX_LEGS * ROLE_ENTRY_SIZE == OFF_NAMES);
G_STATIC_ASSERT(2 * SB_MAX_LEGS <= NAMES_SIZE); /* every slot's two NULs fit */

/* ---- Little-endian fields ------------------------------------------------------------------ */

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* ---- crc32c -------------------------------------------------------------------------------- */

static uint32_t crc32c_table[256];

static void crc32c_table_init(void)
{
	static gsize done;
	uint32_t i, j, c;

	if (!g_once_init_enter(&done))
		return;
	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = (c >> 1) ^ (c & 1 ? 0x82F63B78u : 0);
		crc32c_table[i] = c;
	}
	g_once_init_leave(&done, 1);
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	crc32c_table_init();
	crc = ~crc;
	while (len-- > 0)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- Sizes --------------------------------------------------------------------------------- */

static uint64_t div_round_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* Bytes of bitmap in use (unrounded): one bit per region. */
static uint64_t bitmap_bytes_for(uint64_t data_size, uint64_t region_size)
{
	return div_round_up(div_round_up(data_size, region_size), 8);
}

uint64_t superblock_bitmap_space(uint64_t data_size, uint64_t region_size)
{
	if (region_size == 0)
		return UINT64_MAX;
	return div_round_up(bitmap_bytes_for(data_size, region_size), SB_ALIGN) * SB_ALIGN;
}

uint64_t superblock_default_region_size(uint64_t data_size, uint64_t data_offset)
{
	uint64_t region_size;

	if (data_offset < SB_BITMAP_OFFSET)
		return DEFAULT_REGION_MAX;
	for (region_size = DEFAULT_REGION_MIN; region_size < DEFAULT_REGION_MAX; region_size <<= 1)
		if (superblock_bitmap_space(data_size, region_size) <=
		    data_offset - SB_BITMAP_OFFSET)
			break;
	return region_size;
}

/* ---- Names and UUIDs ----------------------------------------------------------------------- */

const char *sb_role_name(enum sb_role role)
{
	switch (role) {
	case SB_ROLE_EMPTY:
		return "empty";
	case SB_ROLE_IN_SYNC:
		return "in_sync";
	case SB_ROLE_FAILED:
		return "failed";
	case SB_ROLE_RESYNCING:
		return "resyncing";
	case SB_ROLE_SPARE:
		return "spare";
	}
	return "unknown";
}

void uuid_format(const uint8_t uuid[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned int i, o = 0;

	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[uuid[i] >> 4];
		out[o++] = hex[uuid[i] & 0xf];
	}
	out[o] = '\0';
}

void uuid_generate_random_v4(uint8_t uuid[16])
{
	size_t got = 0;
	unsigned int i;

	while (got < 16) {
		ssize_t r = getrandom(uuid + got, 16 - got, 0);

		if (r > 0) {
			got += (size_t)r;
		} else if (r < 0 && errno != EINTR) {
			/* No getrandom (old kernel, seccomp): glib's generator instead. */
			for (i = (unsigned int)got; i < 16; i++)
				uuid[i] = (uint8_t)g_random_int();
			break;
		}
	}
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* variant 10 (RFC 4122) */
}

/* ---- Encode -------------------------------------------------------------------------------- */

/* Two non-empty slots below num_legs with one leg UUID: slot j into *first, or -1. */
static int duplicate_slot(const struct superblock *sb, unsigned int *first)
{
	unsigned int i, j, n = MIN(sb->num_legs, SB_MAX_LEGS);

	for (i = 0; i < n; i++) {
		if (sb->roles[i].role == SB_ROLE_EMPTY)
			continue;
		for (j = 0; j < i; j++) {
			if (sb->roles[j].role != SB_ROLE_EMPTY &&
			    memcmp(sb->roles[j].uuid, sb->roles[i].uuid, 16) == 0) {
				*first = j;
				return (int)i;
			}
		}
	}
	return -1;
}

int superblock_encode(const struct superblock *sb, void *buf)
{
	uint8_t *p = buf;
	unsigned int i, first;
	int dup;

	memset(p, 0, SB_SIZE);
	dup = duplicate_slot(sb, &first);
	if (dup >= 0) {
		char uuid[37];

		/* Decode would refuse it on every leg at the next start: never write it. */
		uuid_format(sb->roles[dup].uuid, uuid);
		g_critical("superblock of array '%s': roles[%u] and roles[%d] have the same leg "
			   "uuid %s: not written",
			   sb->name, first, dup, uuid);
		return -EINVAL;
	}
	put_u64(p + OFF_MAGIC, SB_MAGIC);
	put_u32(p + OFF_VERSION, sb->version);
	put_u32(p + OFF_HEADER_SIZE, SB_SIZE);
	memcpy(p + OFF_ARRAY_UUID, sb->array_uuid, 16);
	memcpy(p + OFF_LEG_UUID, sb->leg_uuid, 16);
	put_u32(p + OFF_LEG_INDEX, sb->leg_index);
	put_u32(p + OFF_NUM_LEGS, sb->num_legs);
	put_u64(p + OFF_DATA_OFFSET, sb->data_offset);
	put_u64(p + OFF_DATA_SIZE, sb->data_size);
	put_u64(p + OFF_REGION_SIZE, sb->region_size);
	put_u64(p + OFF_EVENTS, sb->events);
	put_u64(p + OFF_EVENTS_CLEARED, sb->events_cleared);
	put_u32(p + OFF_FLAGS, sb->flags);
	put_u64(p + OFF_RECOVERY_OFFSET, sb->recovery_offset);
	put_u64(p + OFF_BITMAP_OFFSET, sb->bitmap_offset);
	put_u64(p + OFF_BITMAP_BYTES, sb->bitmap_bytes);
	put_u64(p + OFF_CTIME, sb->ctime);
	put_u64(p + OFF_UTIME, sb->utime);
	memcpy(p + OFF_NAME, sb->name, strnlen(sb->name, SB_NAME_MAX));
	for (i = 0; i < SB_MAX_LEGS; i++) {
		uint8_t *e = p + OFF_ROLES + i * ROLE_ENTRY_SIZE;

		memcpy(e, sb->roles[i].uuid, 16);
		put_u32(e + 16, sb->roles[i].role);
	}
	superblock_names_encode(sb, p + OFF_NAMES, NAMES_SIZE);
	put_u32(p + OFF_CRC, crc32c(0, p, OFF_CRC));
	return 0;
}

/* ---- Decode -------------------------------------------------------------------------------- */

static bool uuid_is_nil(const uint8_t uuid[16])
{
	static const uint8_t nil[16];

	return memcmp(uuid, nil, 16) == 0;
}

static bool is_power_of_two(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/*
 * The name: UTF-8 without control characters (fusemirror.conf(5) takes printable names of up to
 * 64 bytes, not only ASCII), then only NUL up to its 64 bytes.
 */
static char *check_name(const uint8_t *name)
{
	const char *text = (const char *)name, *end, *c;
	unsigned int i, len = (unsigned int)strnlen(text, SB_NAME_MAX);

	if (!g_utf8_validate(text, len, &end))
		return g_strdup_printf("name is not valid UTF-8 (byte %u)",
				       (unsigned int)(end - text));
	for (c = text; c < text + len; c = g_utf8_next_char(c))
		if (g_unichar_iscntrl(g_utf8_get_char(c)))
			return g_strdup_printf(
			    "name byte %u (U+%04" PRIX32 ") is a control character",
			    (unsigned int)(c - text), (uint32_t)g_utf8_get_char(c));
	for (i = len; i < SB_NAME_MAX; i++)
		if (name[i] != 0)
			return g_strdup_printf("name is not NUL-padded: byte %u (0x%02x) follows "
					       "its terminating NUL at byte %u",
					       i, name[i], len);
	return NULL;
}

static char *check_roles(const struct superblock *sb)
{
	char a[37], b[37];
	unsigned int i, j;

	for (i = 0; i < SB_MAX_LEGS; i++) {
		const struct sb_leg_role *r = &sb->roles[i];

		if (i >= sb->num_legs) {
			if (r->role != SB_ROLE_EMPTY || !uuid_is_nil(r->uuid))
				return g_strdup_printf("roles[%u] is beyond num_legs %u but not "
						       "empty (role %u)",
						       i, sb->num_legs, r->role);
			continue;
		}
		if (r->role > SB_ROLE_SPARE)
			return g_strdup_printf("roles[%u] has role %u, not one of 0 (empty) to %u "
					       "(spare)",
					       i, r->role, SB_ROLE_SPARE);
		if (i == sb->leg_index && r->role == SB_ROLE_EMPTY)
			return g_strdup_printf("roles[%u] (this leg) is empty", i);
		if (r->role == SB_ROLE_EMPTY)
			continue;
		if (uuid_is_nil(r->uuid))
			return g_strdup_printf("roles[%u] (%s) has an all-zero uuid", i,
					       sb_role_name(r->role));
		if (i == sb->leg_index && memcmp(r->uuid, sb->leg_uuid, 16) != 0) {
			uuid_format(r->uuid, a);
			uuid_format(sb->leg_uuid, b);
			return g_strdup_printf("roles[%u] (this leg) has uuid %s, not leg_uuid %s",
					       i, a, b);
		}
		for (j = 0; j < i; j++) {
			if (sb->roles[j].role != SB_ROLE_EMPTY &&
			    memcmp(sb->roles[j].uuid, r->uuid, 16) == 0) {
				uuid_format(r->uuid, a);
				return g_strdup_printf(
				    "roles[%u] and roles[%u] have the same uuid %s", j, i, a);
			}
		}
	}
	return NULL;
}

/* Every field's range, in the order of the layout; NULL when the superblock is consistent. */
static char *check_fields(const struct superblock *sb, uint32_t header_size, const uint8_t *name)
{
	char *problem;
	uint64_t space;

	if (header_size != SB_SIZE)
		return g_strdup_printf("header size %" PRIu32 " is not %u", header_size, SB_SIZE);
	if (uuid_is_nil(sb->array_uuid))
		return g_strdup("array_uuid is all zeroes");
	if (uuid_is_nil(sb->leg_uuid))
		return g_strdup("leg_uuid is all zeroes");
	if (sb->num_legs < 1 || sb->num_legs > SB_MAX_LEGS)
		return g_strdup_printf("num_legs %" PRIu32 " is not between 1 and %u", sb->num_legs,
				       SB_MAX_LEGS);
	if (sb->leg_index >= sb->num_legs)
		return g_strdup_printf("leg_index %" PRIu32 " is not below num_legs %" PRIu32,
				       sb->leg_index, sb->num_legs);
	if (sb->data_offset % SB_ALIGN != 0)
		return g_strdup_printf("data_offset %" PRIu64 " is not a multiple of %u",
				       sb->data_offset, SB_ALIGN);
	if (sb->data_size == 0)
		return g_strdup("data_size is 0: the mirror holds no data");
	if (sb->data_size % SB_ALIGN != 0)
		return g_strdup_printf("data_size %" PRIu64 " is not a multiple of %u",
				       sb->data_size, SB_ALIGN);
	if (sb->data_offset + sb->data_size < sb->data_offset)
		return g_strdup_printf("data_offset %" PRIu64 " + data_size %" PRIu64
				       " is past the largest offset",
				       sb->data_offset, sb->data_size);
	if (!is_power_of_two(sb->region_size) || sb->region_size < SB_MIN_REGION_SIZE)
		return g_strdup_printf("region_size %" PRIu64 " is not a power of two >= %u",
				       sb->region_size, SB_MIN_REGION_SIZE);
	if (sb->flags & ~(uint32_t)SB_FLAGS_KNOWN)
		return g_strdup_printf("flags 0x%" PRIx32 " has unknown bits 0x%" PRIx32, sb->flags,
				       sb->flags & ~(uint32_t)SB_FLAGS_KNOWN);
	if (sb->recovery_offset != SB_RECOVERY_DONE && sb->recovery_offset > sb->data_size)
		return g_strdup_printf("recovery_offset %" PRIu64 " is past data_size %" PRIu64,
				       sb->recovery_offset, sb->data_size);
	if (sb->bitmap_offset != SB_BITMAP_OFFSET)
		return g_strdup_printf("bitmap_offset %" PRIu64 " is not %u", sb->bitmap_offset,
				       SB_BITMAP_OFFSET);
	if (sb->bitmap_bytes != bitmap_bytes_for(sb->data_size, sb->region_size))
		return g_strdup_printf("bitmap_bytes %" PRIu64 " does not match data_size %" PRIu64
				       " at region_size %" PRIu64 " (%" PRIu64 " expected)",
				       sb->bitmap_bytes, sb->data_size, sb->region_size,
				       bitmap_bytes_for(sb->data_size, sb->region_size));
	space = superblock_bitmap_space(sb->data_size, sb->region_size);
	if (sb->data_offset < SB_BITMAP_OFFSET || sb->data_offset - SB_BITMAP_OFFSET < space)
		return g_strdup_printf("bitmap does not fit: %" PRIu64 " bytes needed between %u "
				       "and the data offset %" PRIu64,
				       space, SB_BITMAP_OFFSET, sb->data_offset);
	problem = check_name(name);
	return problem != NULL ? problem : check_roles(sb);
}

enum sb_error superblock_decode(const void *buf, struct superblock *sb, char **why)
{
	const uint8_t *p = buf;
	uint64_t magic = get_u64(p + OFF_MAGIC);
	uint32_t stored, computed, version;
	char *problem = NULL;
	enum sb_error err = SB_ERROR_NONE;
	unsigned int i;

	memset(sb, 0, sizeof(*sb));
	if (why != NULL)
		*why = NULL;

	if (magic != SB_MAGIC) {
		problem = g_strdup_printf("not a fusemirror leg: no superblock magic at offset 0 "
					  "(found 0x%016" PRIx64 ")",
					  magic);
		err = SB_ERROR_MAGIC;
		goto out;
	}
	/* Nothing past the magic is trusted before the checksum says it is what was written. */
	stored = get_u32(p + OFF_CRC);
	computed = crc32c(0, p, OFF_CRC);
	if (stored != computed) {
		problem = g_strdup_printf("bad checksum: stored 0x%08" PRIx32
					  ", computed 0x%08" PRIx32 " (torn or corrupt superblock)",
					  stored, computed);
		err = SB_ERROR_CRC;
		goto out;
	}
	version = get_u32(p + OFF_VERSION);
	if (version != SB_VERSION) {
		if (version > SB_VERSION)
			problem = g_strdup_printf("format version %" PRIu32
						  " is newer than this fusemirror (%u)",
						  version, SB_VERSION);
		else
			problem = g_strdup_printf("format version %" PRIu32
						  " is unknown to this fusemirror (%u)",
						  version, SB_VERSION);
		err = SB_ERROR_VERSION;
		goto out;
	}

	sb->version = version;
	memcpy(sb->array_uuid, p + OFF_ARRAY_UUID, 16);
	memcpy(sb->leg_uuid, p + OFF_LEG_UUID, 16);
	sb->leg_index = get_u32(p + OFF_LEG_INDEX);
	sb->num_legs = get_u32(p + OFF_NUM_LEGS);
	sb->data_offset = get_u64(p + OFF_DATA_OFFSET);
	sb->data_size = get_u64(p + OFF_DATA_SIZE);
	sb->region_size = get_u64(p + OFF_REGION_SIZE);
	sb->events = get_u64(p + OFF_EVENTS);
	sb->events_cleared = get_u64(p + OFF_EVENTS_CLEARED);
	sb->flags = get_u32(p + OFF_FLAGS);
	sb->recovery_offset = get_u64(p + OFF_RECOVERY_OFFSET);
	sb->bitmap_offset = get_u64(p + OFF_BITMAP_OFFSET);
	sb->bitmap_bytes = get_u64(p + OFF_BITMAP_BYTES);
	sb->ctime = get_u64(p + OFF_CTIME);
	sb->utime = get_u64(p + OFF_UTIME);
	memcpy(sb->name, p + OFF_NAME, SB_NAME_MAX);
	sb->name[SB_NAME_MAX] = '\0';
	for (i = 0; i < SB_MAX_LEGS; i++) {
		const uint8_t *e = p + OFF_ROLES + i * ROLE_ENTRY_SIZE;

		memcpy(sb->roles[i].uuid, e, 16);
		sb->roles[i].role = get_u32(e + 16);
	}
	/* A field out of range leaves the decoded values in *sb, for examine to show. */
	problem = check_fields(sb, get_u32(p + OFF_HEADER_SIZE), p + OFF_NAME);
	if (problem == NULL)
		problem = superblock_names_decode(p + OFF_NAMES, NAMES_SIZE, sb);
	if (problem != NULL)
		err = SB_ERROR_FIELD;
out:
	if (why != NULL)
		*why = problem;
	else
		g_free(problem);
	return err;
}

/* ---- I/O ----------------------------------------------------------------------------------- */

/* One synchronous dmio call over the superblock's sectors; 0 or the region's -errno. */
static int superblock_io(struct dmio_dev *dev, enum dmio_op op, unsigned int flags, void *page)
{
	struct dmio_region where = {.dev = dev, .sector = 0, .count = SB_SECTORS};
	int region_error = 0;
	struct dmio_request req = {
	    .op = op,
	    .flags = flags,
	    .mem = {.type = DMIO_MEM_VM, .ptr.vma = page},
	    .region_errors = &region_error,
	};
	int r;

	if (dev == NULL || dmio_dev_sectors(dev) < SB_SECTORS)
		return -EINVAL;
	r = dmio(&req, 1, &where, NULL);
	if (r == -EIO && region_error != 0)
		return region_error < 0 ? region_error : -region_error;
	return r;
}

int superblock_read_raw(struct dmio_dev *dev, void *buf)
{
	void *page;
	int r;

	/* Page-aligned: a DMIO_DEV_DIRECT leg then needs no bounce. */
	if (posix_memalign(&page, SB_ALIGN, SB_SIZE) != 0)
		return -ENOMEM;
	r = superblock_io(dev, DMIO_READ, 0, page);
	if (r == 0)
		memcpy(buf, page, SB_SIZE);
	free(page);
	return r;
}

int superblock_write(struct dmio_dev *dev, const struct superblock *sb)
{
	void *page;
	int r;

	if (posix_memalign(&page, SB_ALIGN, SB_SIZE) != 0)
		return -ENOMEM;
	r = superblock_encode(sb, page);
	if (r == 0)
		r = superblock_io(dev, DMIO_WRITE, DMIO_REQ_FUA, page);
	free(page);
	return r;
}
