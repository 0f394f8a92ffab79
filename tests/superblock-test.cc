/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The superblock codec (src/mirror/superblock.c): crc32c against the published check values, the
 * byte layout that doc/format.md promises, encode -> decode round trips, and every way a
 * superblock can be wrong - each bit flipped, a foreign or blank device, a newer version, each
 * field out of range (re-sealed with a valid checksum, so that only the range check can catch
 * it) - each with the error class and a message that names the problem.  Then the sizes
 * (bitmap space, default region size), the UUIDs, and the superblock's I/O through libdmio on
 * real files, O_DIRECT included.
 */
#include <gtest/gtest.h>

#include "mirror/superblock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace
{

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB, TiB = 1024 * GiB;
constexpr size_t kCrcOffset = SB_SIZE - 4;

using Block = std::vector<uint8_t>;

/* ---- Helpers -------------------------------------------------------------------------------- */

uint32_t le32(const Block &b, size_t off)
{
	return (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
	       (uint32_t)b[off + 3] << 24;
}

uint64_t le64(const Block &b, size_t off)
{
	return (uint64_t)le32(b, off) | (uint64_t)le32(b, off + 4) << 32;
}

void put_le32(Block &b, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[off + i] = (uint8_t)(v >> (8 * i));
}

void put_le64(Block &b, size_t off, uint64_t v)
{
	put_le32(b, off, (uint32_t)v);
	put_le32(b, off + 4, (uint32_t)(v >> 32));
}

/* Recompute the checksum after patching bytes, so that only the other checks can object. */
void reseal(Block &b)
{
	put_le32(b, kCrcOffset, crc32c(0, b.data(), kCrcOffset));
}

/* A UUID of its own for each seed. */
void fill_uuid(uint8_t uuid[16], uint8_t seed)
{
	uuid[0] = seed;
	for (int i = 1; i < 16; i++)
		uuid[i] = (uint8_t)(0x10 + i);
}

/* A valid superblock: leg 1 of a two-leg 1 GiB mirror with the defaults. */
superblock valid_sb()
{
	superblock sb;
	memset(&sb, 0, sizeof(sb));
	sb.version = SB_VERSION;
	fill_uuid(sb.array_uuid, 0xa);
	fill_uuid(sb.leg_uuid, 2);
	sb.leg_index = 1;
	sb.num_legs = 2;
	sb.data_offset = SB_DATA_OFFSET;
	sb.data_size = GiB;
	sb.region_size = 512 * KiB;
	sb.events = 42;
	sb.events_cleared = 40;
	sb.flags = SB_FLAG_CLEAN;
	sb.recovery_offset = SB_RECOVERY_DONE;
	sb.bitmap_offset = SB_BITMAP_OFFSET;
	sb.bitmap_bytes = 256; /* 2048 regions */
	sb.ctime = 1700000000;
	sb.utime = 1700000123;
	strcpy(sb.name, "data");
	fill_uuid(sb.roles[0].uuid, 1);
	sb.roles[0].role = SB_ROLE_IN_SYNC;
	fill_uuid(sb.roles[1].uuid, 2);
	sb.roles[1].role = SB_ROLE_IN_SYNC;
	return sb;
}

Block encode(const superblock &sb)
{
	Block b(SB_SIZE, 0xee);
	EXPECT_EQ(0, superblock_encode(&sb, b.data()));
	return b;
}

struct Decoded {
	sb_error err;
	superblock sb;
	std::string why;
};

Decoded decode(const Block &b)
{
	Decoded d;
	char *why = (char *)0x1; /* must be overwritten, with NULL on success */
	memset(&d.sb, 0x5a, sizeof(d.sb));
	d.err = superblock_decode(b.data(), &d.sb, &why);
	if (d.err == SB_ERROR_NONE) {
		EXPECT_EQ(nullptr, why) << "decode succeeded but left a message";
	} else {
		EXPECT_NE(nullptr, why) << "decode failed (" << d.err << ") without a message";
		EXPECT_NE((char *)0x1, why);
	}
	if (d.err == SB_ERROR_MAGIC || d.err == SB_ERROR_CRC || d.err == SB_ERROR_VERSION) {
		/* Nothing of an untrusted superblock leaks out. */
		superblock zero;
		memset(&zero, 0, sizeof(zero));
		EXPECT_EQ(0, memcmp(&zero, &d.sb, sizeof(zero))) << "*sb not cleared on error";
	}
	if (why != nullptr && why != (char *)0x1) {
		d.why = why;
		EXPECT_EQ(std::string::npos, d.why.find('\n')) << "not one line: " << d.why;
		g_free(why);
	}
	return d;
}

::testing::AssertionResult same_sb(const superblock &a, const superblock &b)
{
#define SAME(field)                                                                                \
	if (a.field != b.field)                                                                    \
		return ::testing::AssertionFailure()                                               \
		       << #field << ": " << a.field << " != " << b.field;
	SAME(version);
	SAME(leg_index);
	SAME(num_legs);
	SAME(data_offset);
	SAME(data_size);
	SAME(region_size);
	SAME(events);
	SAME(events_cleared);
	SAME(flags);
	SAME(recovery_offset);
	SAME(bitmap_offset);
	SAME(bitmap_bytes);
	SAME(ctime);
	SAME(utime);
#undef SAME
	if (memcmp(a.array_uuid, b.array_uuid, 16) != 0)
		return ::testing::AssertionFailure() << "array_uuid differs";
	if (memcmp(a.leg_uuid, b.leg_uuid, 16) != 0)
		return ::testing::AssertionFailure() << "leg_uuid differs";
	if (strcmp(a.name, b.name) != 0)
		return ::testing::AssertionFailure()
		       << "name: '" << a.name << "' != '" << b.name << "'";
	for (unsigned i = 0; i < SB_MAX_LEGS; i++) {
		if (a.roles[i].role != b.roles[i].role)
			return ::testing::AssertionFailure()
			       << "roles[" << i << "].role: " << a.roles[i].role
			       << " != " << b.roles[i].role;
		if (memcmp(a.roles[i].uuid, b.roles[i].uuid, 16) != 0)
			return ::testing::AssertionFailure() << "roles[" << i << "].uuid differs";
		if (strcmp(a.roles[i].name, b.roles[i].name) != 0 ||
		    strcmp(a.roles[i].path, b.roles[i].path) != 0)
			return ::testing::AssertionFailure()
			       << "roles[" << i << "]: '" << a.roles[i].name << "' at '"
			       << a.roles[i].path << "' != '" << b.roles[i].name << "' at '"
			       << b.roles[i].path << "'";
	}
	return ::testing::AssertionSuccess();
}

/* A temporary directory, removed with its contents. */
class TempDir
{
      public:
	explicit TempDir(const char *parent = nullptr)
	{
		const char *base = parent != nullptr ? parent : g_get_tmp_dir();
		std::string templ = std::string(base) + "/superblock-test.XXXXXX";
		std::vector<char> buf(templ.begin(), templ.end());
		buf.push_back('\0');
		if (mkdtemp(buf.data()) != nullptr)
			path_ = buf.data();
	}
	~TempDir()
	{
		if (!path_.empty()) {
			std::string cmd = "rm -rf '" + path_ + "'";
			if (system(cmd.c_str()) != 0)
				fprintf(stderr, "cannot remove %s\n", path_.c_str());
		}
	}
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
	bool ok() const
	{
		return !path_.empty();
	}
	std::string operator/(const std::string &name) const
	{
		return path_ + "/" + name;
	}

      private:
	std::string path_;
};

void make_file(const std::string &path, off_t size)
{
	int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
	ASSERT_EQ(0, ftruncate(fd, size)) << strerror(errno);
	close(fd);
}

Block read_file_at(const std::string &path, off_t offset, size_t len)
{
	Block b(len);
	int fd = open(path.c_str(), O_RDONLY);
	EXPECT_GE(fd, 0) << path << ": " << strerror(errno);
	if (fd < 0)
		return b;
	EXPECT_EQ((ssize_t)len, pread(fd, b.data(), len, offset)) << strerror(errno);
	close(fd);
	return b;
}

struct DevCloser {
	void operator()(dmio_dev *dev) const
	{
		dmio_dev_close(dev);
	}
};
using Dev = std::unique_ptr<dmio_dev, DevCloser>;

Dev open_dev(const std::string &path, unsigned flags, int *err)
{
	dmio_dev *dev = nullptr;
	*err = dmio_dev_open(path.c_str(), flags, &dev);
	return Dev(dev);
}

/* ---- crc32c ------------------------------------------------------------------------------- */

/* First in the file: the table is built on first use, here by several threads at once. */
TEST(Crc32c, ConcurrentFirstUse)
{
	std::vector<std::thread> threads;
	std::vector<uint32_t> results(8);
	for (size_t i = 0; i < results.size(); i++)
		threads.emplace_back([&results, i] { results[i] = crc32c(0, "123456789", 9); });
	for (auto &t : threads)
		t.join();
	for (uint32_t r : results)
		EXPECT_EQ(0xE3069283u, r);
}

TEST(Crc32c, CheckValue)
{
	EXPECT_EQ(0xE3069283u, crc32c(0, "123456789", 9));
}

TEST(Crc32c, Empty)
{
	EXPECT_EQ(0u, crc32c(0, "", 0));
	EXPECT_EQ(0u, crc32c(0, nullptr, 0));
	/* Nothing to add: the running value comes back unchanged. */
	EXPECT_EQ(0xE3069283u, crc32c(0xE3069283u, "x", 0));
}

/* RFC 3720 (iSCSI) appendix B.4. */
TEST(Crc32c, Rfc3720Vectors)
{
	Block zeroes(32, 0), ones(32, 0xff), up(32), down(32);
	for (int i = 0; i < 32; i++) {
		up[i] = (uint8_t)i;
		down[i] = (uint8_t)(31 - i);
	}
	EXPECT_EQ(0x8A9136AAu, crc32c(0, zeroes.data(), zeroes.size()));
	EXPECT_EQ(0x62A8AB43u, crc32c(0, ones.data(), ones.size()));
	EXPECT_EQ(0x46DD794Eu, crc32c(0, up.data(), up.size()));
	EXPECT_EQ(0x113FDB5Cu, crc32c(0, down.data(), down.size()));
}

TEST(Crc32c, IncrementalEqualsOneShot)
{
	std::mt19937 rng(7);
	Block data(10000);
	for (auto &b : data)
		b = (uint8_t)rng();
	uint32_t whole = crc32c(0, data.data(), data.size());
	for (size_t split :
	     {(size_t)0, (size_t)1, (size_t)7, (size_t)4092, (size_t)9999, (size_t)10000}) {
		uint32_t c = crc32c(0, data.data(), split);
		c = crc32c(c, data.data() + split, data.size() - split);
		EXPECT_EQ(whole, c) << "split at " << split;
	}
	uint32_t c = 0;
	for (uint8_t byte : data)
		c = crc32c(c, &byte, 1);
	EXPECT_EQ(whole, c) << "byte by byte";
}

/* ---- Layout --------------------------------------------------------------------------------- */

/* The offsets doc/format.md documents; a change here is a format change. */
TEST(SuperblockLayout, FieldsAtTheirOffsets)
{
	superblock sb = valid_sb();
	sb.events = 0x0102030405060708ull;
	sb.events_cleared = 0x1112131415161718ull;
	sb.recovery_offset = 0x2000;
	sb.ctime = 0x2122232425262728ull;
	sb.utime = 0x3132333435363738ull;
	sb.roles[1].role = SB_ROLE_RESYNCING;
	Block b = encode(sb);

	EXPECT_EQ(0, memcmp(b.data(), "FSMMIRM1", 8)) << "magic";
	EXPECT_EQ(SB_MAGIC, le64(b, 0));
	EXPECT_EQ(SB_VERSION, le32(b, 8));
	EXPECT_EQ(SB_SIZE, le32(b, 12)) << "header size";
	EXPECT_EQ(0, memcmp(b.data() + 16, sb.array_uuid, 16));
	EXPECT_EQ(0, memcmp(b.data() + 32, sb.leg_uuid, 16));
	EXPECT_EQ(1u, le32(b, 48)) << "leg_index";
	EXPECT_EQ(2u, le32(b, 52)) << "num_legs";
	EXPECT_EQ(SB_DATA_OFFSET, le64(b, 56));
	EXPECT_EQ(GiB, le64(b, 64));
	EXPECT_EQ(512 * KiB, le64(b, 72));
	EXPECT_EQ(sb.events, le64(b, 80));
	EXPECT_EQ(sb.events_cleared, le64(b, 88));
	EXPECT_EQ(SB_FLAG_CLEAN, le32(b, 96));
	EXPECT_EQ(0u, le32(b, 100)) << "reserved";
	EXPECT_EQ(0x2000u, le64(b, 104));
	EXPECT_EQ(SB_BITMAP_OFFSET, le64(b, 112));
	EXPECT_EQ(256u, le64(b, 120));
	EXPECT_EQ(sb.ctime, le64(b, 128));
	EXPECT_EQ(sb.utime, le64(b, 136));
	EXPECT_EQ(0, memcmp(b.data() + 144, "data\0\0\0\0", 8));
	for (size_t i = 148; i < 256; i++)
		EXPECT_EQ(0, b[i]) << "name padding and reserved, byte " << i;
	EXPECT_EQ(0, memcmp(b.data() + 256, sb.roles[0].uuid, 16));
	EXPECT_EQ((uint32_t)SB_ROLE_IN_SYNC, le32(b, 256 + 16));
	EXPECT_EQ(0, memcmp(b.data() + 276, sb.roles[1].uuid, 16));
	EXPECT_EQ((uint32_t)SB_ROLE_RESYNCING, le32(b, 276 + 16));
	for (size_t i = 296; i < kCrcOffset; i++)
		ASSERT_EQ(0, b[i]) << "empty roles and reserved, byte " << i;
	EXPECT_EQ(crc32c(0, b.data(), kCrcOffset), le32(b, kCrcOffset));
}

/* ---- Round trips ---------------------------------------------------------------------------- */

void expect_round_trip(const superblock &sb)
{
	Block b = encode(sb);
	Decoded d = decode(b);
	ASSERT_EQ(SB_ERROR_NONE, d.err) << d.why;
	EXPECT_TRUE(same_sb(sb, d.sb));
	EXPECT_EQ(b, encode(d.sb)) << "decode then encode changed the bytes";
}

TEST(SuperblockRoundTrip, Defaults)
{
	expect_round_trip(valid_sb());
}

TEST(SuperblockRoundTrip, SixtyFourLegsEveryRoleLongName)
{
	superblock sb = valid_sb();
	sb.num_legs = SB_MAX_LEGS;
	sb.leg_index = SB_MAX_LEGS - 1;
	for (unsigned i = 0; i < SB_MAX_LEGS; i++) {
		fill_uuid(sb.roles[i].uuid, (uint8_t)(i + 1));
		sb.roles[i].role = i % 5; /* empty, in_sync, failed, resyncing, spare, ... */
	}
	sb.roles[SB_MAX_LEGS - 1].role = SB_ROLE_SPARE;
	memcpy(sb.leg_uuid, sb.roles[SB_MAX_LEGS - 1].uuid, 16);
	std::string name;
	for (unsigned i = 0; i < SB_NAME_MAX; i++)
		name += (char)(' ' + i % 95); /* every printable character class, space included */
	name[SB_NAME_MAX - 1] = '~';
	ASSERT_EQ(SB_NAME_MAX, name.size());
	strcpy(sb.name, name.c_str());
	expect_round_trip(sb);
}

TEST(SuperblockRoundTrip, ExtremeValues)
{
	superblock sb = valid_sb();
	sb.events = UINT64_MAX;
	sb.events_cleared = UINT64_MAX; /* may pass events: set on a clean stop */
	sb.ctime = 0;
	sb.utime = UINT64_MAX;
	sb.flags = 0;
	sb.recovery_offset = 0;
	sb.name[0] = '\0';
	sb.data_size = 8 * TiB + 4096; /* not a multiple of the region: the last region is short */
	sb.region_size = 2 * MiB;
	sb.bitmap_bytes = (8 * TiB / (2 * MiB) + 1 + 7) / 8;
	expect_round_trip(sb);

	sb.recovery_offset = sb.data_size; /* at the end but not marked done: still valid */
	expect_round_trip(sb);
	sb.recovery_offset = 123 * 4096;
	expect_round_trip(sb);

	/* The smallest layout: one 4 KiB region, the data right after a one-block bitmap. */
	superblock small = valid_sb();
	small.data_size = 4096;
	small.region_size = 4096;
	small.bitmap_bytes = 1;
	small.data_offset = 8192;
	small.num_legs = 1;
	small.leg_index = 0;
	memcpy(small.roles[0].uuid, small.leg_uuid, 16);
	memset(&small.roles[1], 0, sizeof(small.roles[1]));
	expect_round_trip(small);

	/* The largest region size that is a power of two. */
	superblock big = valid_sb();
	big.region_size = 1ull << 63;
	big.bitmap_bytes = 1;
	expect_round_trip(big);
}

/* fusemirror.conf(5) names are printable UTF-8, up to 64 bytes. */
TEST(SuperblockRoundTrip, Utf8Names)
{
	superblock sb = valid_sb();
	strcpy(sb.name, "donn\xc3\xa9"
			"es \xe2\x82\xac \xf0\x9f\x92\xbe"); /* "données € 💾" */
	expect_round_trip(sb);
	std::string e_acute;
	for (int i = 0; i < 32; i++)
		e_acute += "\xc3\xa9";
	ASSERT_EQ(SB_NAME_MAX, e_acute.size());
	strcpy(sb.name, e_acute.c_str());
	expect_round_trip(sb);
}

/* Names longer than the field are cut at 64 bytes. */
TEST(SuperblockRoundTrip, NameIsCutAtSixtyFourBytes)
{
	superblock sb = valid_sb();
	memset(sb.name, 'n', SB_NAME_MAX);
	sb.name[SB_NAME_MAX] = 'X'; /* not NUL-terminated in memory */
	Decoded d = decode(encode(sb));
	ASSERT_EQ(SB_ERROR_NONE, d.err) << d.why;
	EXPECT_EQ(std::string(SB_NAME_MAX, 'n'), d.sb.name);
}

TEST(SuperblockRoundTrip, WhyMayBeNull)
{
	Block b = encode(valid_sb());
	superblock sb;
	EXPECT_EQ(SB_ERROR_NONE, superblock_decode(b.data(), &sb, nullptr));
	b[100] ^= 1;
	EXPECT_EQ(SB_ERROR_CRC, superblock_decode(b.data(), &sb, nullptr));
	Block zero(SB_SIZE, 0);
	EXPECT_EQ(SB_ERROR_MAGIC, superblock_decode(zero.data(), &sb, nullptr));
	superblock bad = valid_sb();
	bad.num_legs = 0;
	EXPECT_EQ(SB_ERROR_FIELD, superblock_decode(encode(bad).data(), &sb, nullptr));
}

/* ---- Corruption ---------------------------------------------------------------------------- */

/* Every single-bit flip: in the magic "not a leg", anywhere else (the checksum too) "bad crc". */
TEST(SuperblockCorruption, EveryBitFlip)
{
	const Block good = encode(valid_sb());
	Block b = good;
	superblock sb;
	unsigned wrong = 0;
	for (size_t bit = 0; bit < SB_SIZE * 8; bit++) {
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		sb_error expected = bit < 64 ? SB_ERROR_MAGIC : SB_ERROR_CRC;
		sb_error err = superblock_decode(b.data(), &sb, nullptr);
		if (err != expected && wrong++ < 10)
			ADD_FAILURE() << "bit " << bit << " (byte " << bit / 8
				      << ") flipped: error " << err << ", expected " << expected;
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	EXPECT_EQ(0u, wrong) << "bit flips not caught";
	EXPECT_EQ(good, b);
}

TEST(SuperblockCorruption, BadChecksumMessage)
{
	Block b = encode(valid_sb());
	uint32_t computed = le32(b, kCrcOffset);
	put_le32(b, kCrcOffset, 0x1234abcd);
	Decoded d = decode(b);
	EXPECT_EQ(SB_ERROR_CRC, d.err);
	char expected[128];
	snprintf(expected, sizeof(expected),
		 "bad checksum: stored 0x1234abcd, computed 0x%08x (torn or corrupt superblock)",
		 computed);
	EXPECT_EQ(expected, d.why);
}

/* A torn write: the new superblock's first half over the old one's second half. */
TEST(SuperblockCorruption, TornWrite)
{
	superblock older = valid_sb(), newer = valid_sb();
	newer.events++;
	newer.flags = 0;
	newer.roles[0].role = SB_ROLE_FAILED;
	Block a = encode(older), b = encode(newer);
	for (size_t cut : {(size_t)512, (size_t)2048, (size_t)3584}) {
		Block torn(b.begin(), b.begin() + cut);
		torn.insert(torn.end(), a.begin() + cut, a.end());
		EXPECT_EQ(SB_ERROR_CRC, decode(torn).err) << "torn at " << cut;
	}
}

TEST(SuperblockCorruption, NotALeg)
{
	Block zero(SB_SIZE, 0);
	Decoded d = decode(zero);
	EXPECT_EQ(SB_ERROR_MAGIC, d.err);
	EXPECT_NE(std::string::npos, d.why.find("not a fusemirror leg")) << d.why;

	std::mt19937 rng(1);
	for (int i = 0; i < 100; i++) {
		Block random(SB_SIZE);
		for (auto &byte : random)
			byte = (uint8_t)rng();
		EXPECT_EQ(SB_ERROR_MAGIC, decode(random).err);
	}

	/* An ext4 or an NTFS boot sector, a file of text: no magic, whatever follows. */
	Block text(SB_SIZE, 'a');
	EXPECT_EQ(SB_ERROR_MAGIC, decode(text).err);

	/* The magic comes before the checksum: with a valid checksum it is still foreign. */
	Block b = encode(valid_sb());
	b[7] = '2';
	reseal(b);
	d = decode(b);
	EXPECT_EQ(SB_ERROR_MAGIC, d.err);
	EXPECT_NE(std::string::npos, d.why.find("0x324d52494d4d5346")) << d.why;
}

/* Magic right, the rest garbage: corrupt, not foreign. */
TEST(SuperblockCorruption, MagicThenGarbage)
{
	std::mt19937 rng(2);
	Block b(SB_SIZE);
	for (auto &byte : b)
		byte = (uint8_t)rng();
	put_le64(b, 0, SB_MAGIC);
	EXPECT_EQ(SB_ERROR_CRC, decode(b).err);
}

TEST(SuperblockCorruption, NewerVersion)
{
	superblock sb = valid_sb();
	sb.version = 2;
	Decoded d = decode(encode(sb));
	EXPECT_EQ(SB_ERROR_VERSION, d.err);
	EXPECT_EQ("format version 2 is newer than this fusemirror (1)", d.why);

	sb.version = 7;
	d = decode(encode(sb));
	EXPECT_EQ(SB_ERROR_VERSION, d.err);
	EXPECT_EQ("format version 7 is newer than this fusemirror (1)", d.why);

	sb.version = 0;
	d = decode(encode(sb));
	EXPECT_EQ(SB_ERROR_VERSION, d.err);
	EXPECT_NE(std::string::npos, d.why.find("version 0")) << d.why;
}

/* The version is checked before the fields: a newer format may use them differently. */
TEST(SuperblockCorruption, VersionBeforeFields)
{
	superblock sb = valid_sb();
	sb.version = 2;
	sb.num_legs = 0;
	EXPECT_EQ(SB_ERROR_VERSION, decode(encode(sb)).err);
}

/* One field out of range, with a valid checksum. */
struct FieldCase {
	const char *name;
	std::function<void(superblock &)> edit; /* on the struct, before encoding */
	std::function<void(Block &)> patch;	/* or on the bytes (resealed) */
	const char *why;			/* a substring of the message */
};

std::vector<FieldCase> field_cases()
{
	auto sb_edit = [](const char *name, std::function<void(superblock &)> edit,
			  const char *why) {
		return FieldCase{name, edit, nullptr, why};
	};
	auto byte_patch = [](const char *name, std::function<void(Block &)> patch,
			     const char *why) {
		return FieldCase{name, nullptr, patch, why};
	};
	return {
	    byte_patch(
		"HeaderSize", [](Block &b) { put_le32(b, 12, 512); },
		"header size 512 is not 4096"),
	    sb_edit(
		"ArrayUuidNil", [](superblock &s) { memset(s.array_uuid, 0, 16); },
		"array_uuid is all zeroes"),
	    sb_edit(
		"LegUuidNil", [](superblock &s) { memset(s.leg_uuid, 0, 16); },
		"leg_uuid is all zeroes"),
	    sb_edit(
		"NumLegsZero", [](superblock &s) { s.num_legs = 0; },
		"num_legs 0 is not between 1 and 64"),
	    sb_edit(
		"NumLegs65", [](superblock &s) { s.num_legs = 65; },
		"num_legs 65 is not between 1 and 64"),
	    sb_edit(
		"LegIndexPastNumLegs", [](superblock &s) { s.leg_index = 5; },
		"leg_index 5 is not below num_legs 2"),
	    sb_edit(
		"LegIndexEqualsNumLegs", [](superblock &s) { s.leg_index = 2; },
		"leg_index 2 is not below num_legs 2"),
	    sb_edit(
		"DataOffsetUnaligned", [](superblock &s) { s.data_offset = 1000; },
		"data_offset 1000 is not a multiple of 4096"),
	    sb_edit(
		"DataOffsetSectorAligned", [](superblock &s) { s.data_offset = MiB + 512; },
		"data_offset 1049088 is not a multiple of 4096"),
	    sb_edit(
		"DataSizeZero", [](superblock &s) { s.data_size = 0; }, "data_size is 0"),
	    sb_edit(
		"DataSizeUnaligned",
		[](superblock &s) {
			s.data_size = GiB + 512;
			s.bitmap_bytes = 257;
		},
		"data_size 1073742336 is not a multiple of 4096"),
	    sb_edit(
		"DataEndOverflows",
		[](superblock &s) { s.data_offset = UINT64_MAX - 4095 - 1 * MiB; },
		"data_offset 18446744073708498944 + data_size 1073741824 is past"),
	    sb_edit(
		"RegionSizeNotPowerOfTwo", [](superblock &s) { s.region_size = 3000; },
		"region_size 3000 is not a power of two >= 4096"),
	    sb_edit(
		"RegionSizeNotPowerOfTwoBig",
		[](superblock &s) {
			s.region_size = 3 * 4096;
			s.bitmap_bytes = (GiB / (3 * 4096) + 1 + 7) / 8;
		},
		"region_size 12288 is not a power of two >= 4096"),
	    sb_edit(
		"RegionSizeTooSmall",
		[](superblock &s) {
			s.region_size = 2048;
			s.bitmap_bytes = 65536;
		},
		"region_size 2048 is not a power of two >= 4096"),
	    sb_edit(
		"RegionSizeZero", [](superblock &s) { s.region_size = 0; },
		"region_size 0 is not a power of two >= 4096"),
	    sb_edit(
		"UnknownFlags", [](superblock &s) { s.flags = SB_FLAG_CLEAN | 0x80; },
		"flags 0x81 has unknown bits 0x80"),
	    sb_edit(
		"RecoveryOffsetPastEnd", [](superblock &s) { s.recovery_offset = GiB + 4096; },
		"recovery_offset 1073745920 is past data_size 1073741824"),
	    sb_edit(
		"BitmapOffset", [](superblock &s) { s.bitmap_offset = 8192; },
		"bitmap_offset 8192 is not 4096"),
	    sb_edit(
		"BitmapBytesTooMany", [](superblock &s) { s.bitmap_bytes = 257; },
		"bitmap_bytes 257 does not match"),
	    sb_edit(
		"BitmapBytesTooFew", [](superblock &s) { s.bitmap_bytes = 255; },
		"bitmap_bytes 255 does not match data_size 1073741824 at region_size 524288 (256 "
		"expected)"),
	    sb_edit(
		"BitmapDoesNotFit",
		[](superblock &s) {
			s.data_offset = 65536;
			s.data_size = 4 * TiB;
			s.region_size = 512 * KiB;
			s.bitmap_bytes = 1048576;
		},
		"bitmap does not fit: 1048576 bytes needed between 4096 and the data offset 65536"),
	    sb_edit(
		"DataOffsetInsideSuperblock", [](superblock &s) { s.data_offset = 0; },
		"bitmap does not fit: 4096 bytes needed between 4096 and the data offset 0"),
	    sb_edit(
		"NameControlCharacter", [](superblock &s) { s.name[3] = '\x07'; },
		"name byte 3 (U+0007) is a control character"),
	    sb_edit(
		"NameDelete", [](superblock &s) { s.name[1] = '\x7f'; },
		"name byte 1 (U+007F) is a control character"),
	    sb_edit(
		"NameC1Control", [](superblock &s) { strcpy(s.name, "ab\xc2\x85"); },
		"name byte 2 (U+0085) is a control character"),
	    sb_edit(
		"NameNotUtf8",
		[](superblock &s) {
			strcpy(s.name, "d\xc3"
				       "a");
		},
		"name is not valid UTF-8 (byte 1)"),
	    sb_edit(
		"NameTruncatedUtf8", [](superblock &s) { strcpy(s.name, "data\xe2\x82"); },
		"name is not valid UTF-8 (byte 4)"),
	    byte_patch(
		"NameNotNulPadded", [](Block &b) { b[144 + 10] = 'z'; },
		"name is not NUL-padded: byte 10"),
	    sb_edit(
		"RoleBeyondNumLegs", [](superblock &s) { s.roles[2].role = SB_ROLE_SPARE; },
		"roles[2] is beyond num_legs 2 but not empty"),
	    sb_edit(
		"UuidBeyondNumLegs", [](superblock &s) { s.roles[63].uuid[15] = 1; },
		"roles[63] is beyond num_legs 2 but not empty"),
	    sb_edit(
		"UnknownRole", [](superblock &s) { s.roles[0].role = 5; }, "roles[0] has role 5"),
	    sb_edit(
		"OwnSlotEmpty", [](superblock &s) { s.roles[1].role = SB_ROLE_EMPTY; },
		"roles[1] (this leg) is empty"),
	    sb_edit(
		"OwnSlotOtherUuid", [](superblock &s) { s.roles[1].uuid[0] ^= 0xff; },
		"roles[1] (this leg) has uuid"),
	    sb_edit(
		"RoleWithNilUuid", [](superblock &s) { memset(s.roles[0].uuid, 0, 16); },
		"roles[0] (in_sync) has an all-zero uuid"),
	    /* The encoder refuses to write it (LegTable.EncodeRefusesDuplicateUuid): patched in. */
	    byte_patch(
		"DuplicateUuid", [](Block &b) { memcpy(&b[256], &b[256 + 20], 16); },
		"roles[0] and roles[1] have the same uuid"),
	    /* The leg table (offset 1536): name NUL path NUL per slot below num_legs. */
	    byte_patch(
		"LegTableNotTerminated", [](Block &b) { memset(&b[1536], 'a', kCrcOffset - 1536); },
		"leg table: slot 0's name is not terminated within the table"),
	    byte_patch(
		"LegTablePathNotTerminated",
		[](Block &b) {
			memset(&b[1536], 0, kCrcOffset - 1536);
			memset(&b[1539], 'p', kCrcOffset - 1539);
		},
		"leg table: slot 1's path is not terminated within the table"),
	    byte_patch(
		"LegTableNameTooLong", [](Block &b) { memset(&b[1536], 'n', 65); },
		"leg table: slot 0's name is 65 bytes, more than 64"),
	    byte_patch(
		"LegTablePathTooLong", [](Block &b) { memset(&b[1537], 'p', 256); },
		"leg table: slot 0's path is 256 bytes, more than 255"),
	    byte_patch(
		"LegTableNameControl", [](Block &b) { memcpy(&b[1536], "a\x1b[2J", 6); },
		"leg table: slot 0's name byte 1 (U+001B) is a control character"),
	    byte_patch(
		"LegTablePathNewline", [](Block &b) { memcpy(&b[1537], "/dev/x\nforged", 14); },
		"leg table: slot 0's path byte 6 (U+000A) is a control character"),
	    byte_patch(
		"LegTableNotUtf8", [](Block &b) { memcpy(&b[1538], "b\xc3", 2); },
		"leg table: slot 1's name is not valid UTF-8 (byte 1)"),
	    byte_patch(
		"LegTableGarbageAfter", [](Block &b) { b[1536 + 100] = 1; },
		"leg table: byte 100 after its end is 0x01"),
	};
}

/* Parameters print as their name in failure messages. */
void PrintTo(const FieldCase &c, std::ostream *os)
{
	*os << c.name;
}

class SuperblockField : public ::testing::TestWithParam<FieldCase>
{
};

TEST_P(SuperblockField, OutOfRange)
{
	const FieldCase &c = GetParam();
	superblock sb = valid_sb();
	if (c.edit)
		c.edit(sb);
	Block b = encode(sb);
	if (c.patch) {
		c.patch(b);
		reseal(b);
	}
	Decoded d = decode(b);
	EXPECT_EQ(SB_ERROR_FIELD, d.err) << d.why;
	EXPECT_NE(std::string::npos, d.why.find(c.why))
	    << "message: " << d.why << "\nexpected it to contain: " << c.why;
	/* The decoded values stay available (examine shows them). */
	if (c.edit) {
		EXPECT_TRUE(same_sb(sb, d.sb));
	}
}

INSTANTIATE_TEST_SUITE_P(Superblock, SuperblockField, ::testing::ValuesIn(field_cases()),
			 [](const ::testing::TestParamInfo<FieldCase> &info) {
				 return std::string(info.param.name);
			 });

/* The other side of each range: the limits themselves are accepted. */
TEST(SuperblockField, LimitsAccepted)
{
	superblock sb = valid_sb();
	sb.data_offset = SB_BITMAP_OFFSET + 4096; /* the bitmap exactly fills its space */
	expect_round_trip(sb);

	sb = valid_sb();
	sb.data_size = 32768ull * 8 * 512 * KiB; /* 262144 regions: 32 KiB of bitmap */
	sb.bitmap_bytes = 32768;
	sb.data_offset = SB_BITMAP_OFFSET + 32768;
	expect_round_trip(sb);
	sb.data_offset -= 4096;
	EXPECT_EQ(SB_ERROR_FIELD, decode(encode(sb)).err);

	sb = valid_sb();
	sb.region_size = 4096;
	sb.bitmap_bytes = GiB / 4096 / 8;
	sb.data_offset = SB_BITMAP_OFFSET + GiB / 4096 / 8;
	expect_round_trip(sb);

	sb = valid_sb();
	sb.recovery_offset = sb.data_size;
	expect_round_trip(sb);

	sb = valid_sb();
	sb.roles[0].role = SB_ROLE_EMPTY; /* a removed leg's slot; its uuid may stay */
	expect_round_trip(sb);
	memset(sb.roles[0].uuid, 0, 16);
	expect_round_trip(sb);

	sb = valid_sb();
	sb.roles[1].role = SB_ROLE_FAILED; /* the leg's own record may say anything but empty */
	expect_round_trip(sb);
}

/* The first problem is the one reported: magic, then checksum, then version, then fields. */
TEST(SuperblockCorruption, FirstProblemWins)
{
	superblock sb = valid_sb();
	sb.num_legs = 0;
	sb.version = 9;
	Block b = encode(sb);
	EXPECT_EQ(SB_ERROR_VERSION, decode(b).err);
	b[200] ^= 1;
	EXPECT_EQ(SB_ERROR_CRC, decode(b).err);
	b[0] ^= 1;
	EXPECT_EQ(SB_ERROR_MAGIC, decode(b).err);
}

/* ---- Sizes ---------------------------------------------------------------------------------- */

TEST(SuperblockSizes, BitmapSpace)
{
	EXPECT_EQ(0u, superblock_bitmap_space(0, 512 * KiB));
	EXPECT_EQ(4096u, superblock_bitmap_space(1, 512 * KiB));
	EXPECT_EQ(4096u, superblock_bitmap_space(GiB, 512 * KiB));
	/* 32768 regions fill one block exactly; one more needs a second. */
	EXPECT_EQ(4096u, superblock_bitmap_space(32768 * 4096ull, 4096));
	EXPECT_EQ(8192u, superblock_bitmap_space(32768 * 4096ull + 1, 4096));
	EXPECT_EQ(1044480u, superblock_bitmap_space(8355840ull * 512 * KiB, 512 * KiB));
	EXPECT_EQ(1048576u, superblock_bitmap_space(8355841ull * 512 * KiB, 512 * KiB));
	EXPECT_EQ(4096u, superblock_bitmap_space(UINT64_MAX, 1ull << 63));
	EXPECT_EQ(1ull << 61, superblock_bitmap_space(UINT64_MAX, 1));
}

TEST(SuperblockSizes, DefaultRegionSizeTable)
{
	struct {
		uint64_t data_size, data_offset, region_size;
	} table[] = {
	    {4096, SB_DATA_OFFSET, 512 * KiB},
	    {GiB, SB_DATA_OFFSET, 512 * KiB},
	    {TiB, SB_DATA_OFFSET, 512 * KiB},
	    {8355840ull * 512 * KiB, SB_DATA_OFFSET, 512 * KiB}, /* 3.98 TiB: the last at 512 KiB */
	    {8355840ull * 512 * KiB + 1, SB_DATA_OFFSET, 1 * MiB},
	    {8 * TiB, SB_DATA_OFFSET, 2 * MiB},
	    {100 * TiB, SB_DATA_OFFSET, 16 * MiB},
	    {8355840ull * 64 * MiB, SB_DATA_OFFSET, 64 * MiB}, /* 510 TiB: the most 1 MiB allows */
	    {8 * TiB, 16 * MiB, 512 * KiB},		       /* a bigger data offset */
	    {GiB, 8192, 512 * KiB},			       /* one bitmap block */
	};
	for (const auto &t : table) {
		uint64_t r = superblock_default_region_size(t.data_size, t.data_offset);
		EXPECT_EQ(t.region_size, r)
		    << "data_size " << t.data_size << ", data_offset " << t.data_offset;
		EXPECT_LE(SB_BITMAP_OFFSET + superblock_bitmap_space(t.data_size, r),
			  t.data_offset);
	}
}

/* When even 64 MiB regions do not fit, 64 MiB anyway: the caller sees that it does not fit. */
TEST(SuperblockSizes, DefaultRegionSizeTooBig)
{
	uint64_t big = 8355840ull * 64 * MiB + 1;
	EXPECT_EQ(64 * MiB, superblock_default_region_size(big, SB_DATA_OFFSET));
	EXPECT_GT(SB_BITMAP_OFFSET + superblock_bitmap_space(big, 64 * MiB), SB_DATA_OFFSET);
	EXPECT_EQ(64 * MiB, superblock_default_region_size(GiB, 4096)); /* no room at all */
	EXPECT_EQ(64 * MiB, superblock_default_region_size(GiB, 0));
}

/* The smallest that fits: half of it would not (unless it is the 512 KiB floor). */
TEST(SuperblockSizes, DefaultRegionSizeIsSmallestThatFits)
{
	std::mt19937_64 rng(3);
	for (int i = 0; i < 2000; i++) {
		uint64_t data_size = (rng() >> (rng() % 40)) & ~4095ull;
		uint64_t data_offset = (1 + rng() % 4096) * 4096;
		uint64_t r = superblock_default_region_size(data_size, data_offset);
		ASSERT_TRUE(r >= 512 * KiB && r <= 64 * MiB && (r & (r - 1)) == 0) << r;
		bool fits = SB_BITMAP_OFFSET + superblock_bitmap_space(data_size, r) <= data_offset;
		ASSERT_TRUE(fits || r == 64 * MiB) << data_size << " " << data_offset;
		if (r > 512 * KiB) {
			ASSERT_GT(SB_BITMAP_OFFSET + superblock_bitmap_space(data_size, r / 2),
				  data_offset)
			    << data_size << " " << data_offset << ": " << r / 2 << " fits too";
		}
	}
}

/* ---- Names and UUIDs ------------------------------------------------------------------------ */

TEST(SuperblockNames, Roles)
{
	EXPECT_STREQ("empty", sb_role_name(SB_ROLE_EMPTY));
	EXPECT_STREQ("in_sync", sb_role_name(SB_ROLE_IN_SYNC));
	EXPECT_STREQ("failed", sb_role_name(SB_ROLE_FAILED));
	EXPECT_STREQ("resyncing", sb_role_name(SB_ROLE_RESYNCING));
	EXPECT_STREQ("spare", sb_role_name(SB_ROLE_SPARE));
	EXPECT_STREQ("unknown", sb_role_name((sb_role)17));
}

TEST(SuperblockUuid, Format)
{
	const uint8_t uuid[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
				  0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
	char out[37];
	memset(out, 'x', sizeof(out));
	uuid_format(uuid, out);
	EXPECT_STREQ("00112233-4455-6677-8899-aabbccddeeff", out);
	EXPECT_EQ(36u, strlen(out));
}

TEST(SuperblockUuid, RandomV4)
{
	std::set<std::string> seen;
	for (int i = 0; i < 1000; i++) {
		uint8_t uuid[16];
		char text[37];
		uuid_generate_random_v4(uuid);
		EXPECT_EQ(0x40, uuid[6] & 0xf0) << "version 4";
		EXPECT_EQ(0x80, uuid[8] & 0xc0) << "RFC 4122 variant";
		uuid_format(uuid, text);
		ASSERT_EQ(36u, strlen(text));
		EXPECT_EQ('4', text[14]);
		EXPECT_NE(std::string::npos, std::string("89ab").find(text[19])) << text;
		EXPECT_TRUE(seen.insert(text).second) << "repeated " << text;
	}
}

/* ---- I/O through libdmio -------------------------------------------------------------------- */

class SuperblockIo : public ::testing::Test
{
      protected:
	TempDir tmp_;
};

void expect_write_read(const std::string &path, unsigned flags)
{
	int err;
	Dev dev = open_dev(path, flags, &err);
	ASSERT_EQ(0, err) << path << ": " << strerror(-err);

	superblock sb = valid_sb();
	sb.events = 77;
	ASSERT_EQ(0, superblock_write(dev.get(), &sb));
	/* On the device, at offset 0, exactly the encoded bytes. */
	EXPECT_EQ(encode(sb), read_file_at(path, 0, SB_SIZE));

	/* Read back into an unaligned buffer: the codec takes any memory. */
	std::vector<uint8_t> raw(SB_SIZE + 1, 0xcc);
	ASSERT_EQ(0, superblock_read_raw(dev.get(), raw.data() + 1));
	EXPECT_EQ(0xcc, raw[0]);
	Block got(raw.begin() + 1, raw.end());
	Decoded d = decode(got);
	ASSERT_EQ(SB_ERROR_NONE, d.err) << d.why;
	EXPECT_TRUE(same_sb(sb, d.sb));

	/* A second write replaces the first; the bytes after the superblock are untouched. */
	sb.events = 78;
	sb.flags = 0;
	ASSERT_EQ(0, superblock_write(dev.get(), &sb));
	ASSERT_EQ(0, superblock_read_raw(dev.get(), got.data()));
	d = decode(got);
	ASSERT_EQ(SB_ERROR_NONE, d.err) << d.why;
	EXPECT_EQ(78u, d.sb.events);
	EXPECT_EQ(0u, d.sb.flags);
	EXPECT_EQ(Block(4096, 0), read_file_at(path, SB_SIZE, 4096));
}

TEST_F(SuperblockIo, WriteReadFile)
{
	ASSERT_TRUE(tmp_.ok());
	make_file(tmp_ / "leg", 2 * MiB);
	expect_write_read(tmp_ / "leg", 0);
}

/* O_DIRECT: /var/tmp is usually on a disk (tmpfs refuses O_DIRECT on older kernels). */
TEST_F(SuperblockIo, WriteReadDirect)
{
	TempDir dir("/var/tmp");
	if (!dir.ok())
		GTEST_SKIP() << "cannot create a directory in /var/tmp";
	make_file(dir / "leg", 2 * MiB);
	int fd = open((dir / "leg").c_str(), O_RDWR | O_DIRECT);
	if (fd < 0)
		GTEST_SKIP() << "O_DIRECT is refused in /var/tmp: " << strerror(errno);
	close(fd);
	expect_write_read(dir / "leg", DMIO_DEV_DIRECT);
}

/* A device smaller than a superblock is refused before any I/O. */
TEST_F(SuperblockIo, DeviceTooSmall)
{
	ASSERT_TRUE(tmp_.ok());
	for (off_t size : {(off_t)0, (off_t)512, (off_t)4095}) {
		make_file(tmp_ / "small", size);
		int err;
		Dev dev = open_dev(tmp_ / "small", 0, &err);
		ASSERT_EQ(0, err) << strerror(-err);
		Block b(SB_SIZE, 0xcc);
		EXPECT_EQ(-EINVAL, superblock_read_raw(dev.get(), b.data())) << size;
		EXPECT_EQ(Block(SB_SIZE, 0xcc), b) << "the buffer was touched";
		superblock sb = valid_sb();
		EXPECT_EQ(-EINVAL, superblock_write(dev.get(), &sb)) << size;
		struct stat st;
		ASSERT_EQ(0, stat((tmp_ / "small").c_str(), &st));
		EXPECT_EQ(size, st.st_size) << "the write grew the file";
	}
}

/* The file shrank under the open device: the region's errno comes back. */
TEST_F(SuperblockIo, TruncatedUnderneath)
{
	ASSERT_TRUE(tmp_.ok());
	make_file(tmp_ / "leg", MiB);
	int err;
	Dev dev = open_dev(tmp_ / "leg", 0, &err);
	ASSERT_EQ(0, err) << strerror(-err);
	ASSERT_EQ(0, truncate((tmp_ / "leg").c_str(), 1000));
	Block b(SB_SIZE);
	EXPECT_EQ(-EIO, superblock_read_raw(dev.get(), b.data()));
}

TEST_F(SuperblockIo, ReadOnlyDevice)
{
	ASSERT_TRUE(tmp_.ok());
	make_file(tmp_ / "leg", MiB);
	int err;
	Dev dev = open_dev(tmp_ / "leg", DMIO_DEV_RDONLY, &err);
	ASSERT_EQ(0, err) << strerror(-err);
	superblock sb = valid_sb();
	EXPECT_EQ(-EROFS, superblock_write(dev.get(), &sb));
	Block b(SB_SIZE);
	ASSERT_EQ(0, superblock_read_raw(dev.get(), b.data()));
	EXPECT_EQ(SB_ERROR_MAGIC, decode(b).err) << "a blank leg";
}

/* ---- The leg table: each slot's recorded name and last path ---------------------------------- */

/* A leg's text of n copies of c. */
std::string text_of(size_t n, char c)
{
	return std::string(n, c);
}

void set_leg(superblock &sb, unsigned i, const std::string &name, const std::string &path)
{
	ASSERT_LE(name.size(), SB_LEG_NAME_MAX);
	ASSERT_LE(path.size(), SB_LEG_PATH_MAX);
	strcpy(sb.roles[i].name, name.c_str());
	strcpy(sb.roles[i].path, path.c_str());
}

TEST(LegTable, RoundTripAndLayout)
{
	superblock sb = valid_sb();
	set_leg(sb, 0, "a", "/dev/sdb");
	set_leg(sb, 1, "b\xc3\xa9", "/var/lib/legs/b.img"); /* UTF-8 is kept */
	expect_round_trip(sb);

	/* The documented layout: per slot name NUL path NUL, then zeroes up to the crc. */
	Block b = encode(sb);
	const char want[] = "a\0/dev/sdb\0b\xc3\xa9\0/var/lib/legs/b.img";
	EXPECT_EQ(0, memcmp(&b[1536], want, sizeof(want))) << "the table is not at offset 1536";
	for (size_t i = 1536 + sizeof(want); i < kCrcOffset; i++)
		ASSERT_EQ(0, b[i]) << "byte " << i << " after the table";
}

TEST(LegTable, OldSuperblockReadsAsUnknown)
{
	/* Before the table, bytes 1536..4091 were reserved zeroes: every name and path unknown. */
	superblock sb = valid_sb();
	set_leg(sb, 0, "a", "/dev/sdb");
	Block b = encode(sb);
	memset(&b[1536], 0, kCrcOffset - 1536);
	reseal(b);
	Decoded d = decode(b);
	ASSERT_EQ(SB_ERROR_NONE, d.err) << d.why;
	for (unsigned i = 0; i < SB_MAX_LEGS; i++) {
		EXPECT_STREQ("", d.sb.roles[i].name) << i;
		EXPECT_STREQ("", d.sb.roles[i].path) << i;
	}
}

TEST(LegTable, EmptySlotAndUnstorableTextAreWrittenUnknown)
{
	superblock sb = valid_sb();
	sb.num_legs = 3;
	fill_uuid(sb.roles[2].uuid, 3);
	sb.roles[2].role = SB_ROLE_FAILED;
	set_leg(sb, 0, "a\x07", "/dev/sdb"); /* BEL in a name: decode would refuse it */
	set_leg(sb, 1, "b", "/dev/\xff");    /* not UTF-8 */
	sb.roles[2].role = SB_ROLE_EMPTY;    /* a removed slot has no name */
	memset(sb.roles[2].uuid, 0, 16);
	set_leg(sb, 2, "c", "/dev/sdd");
	Decoded d = decode(encode(sb));
	ASSERT_EQ(SB_ERROR_NONE, d.err) << d.why;
	EXPECT_STREQ("", d.sb.roles[0].name);
	EXPECT_STREQ("/dev/sdb", d.sb.roles[0].path);
	EXPECT_STREQ("b", d.sb.roles[1].name);
	EXPECT_STREQ("", d.sb.roles[1].path);
	EXPECT_STREQ("", d.sb.roles[2].name);
	EXPECT_STREQ("", d.sb.roles[2].path);
}

/* Found by fuzz-superblock: an empty slot with a name decoded, and encoded without it. */
TEST(LegTable, EmptySlotWithTextIsRefused)
{
	superblock sb = valid_sb();
	sb.num_legs = 3;
	fill_uuid(sb.roles[2].uuid, 3);
	sb.roles[2].role = SB_ROLE_FAILED;
	set_leg(sb, 2, "c", "/dev/sdd");
	Block b = encode(sb);
	/* Slot 2 made empty behind the encoder's back, its text left. */
	memset(&b[256 + 2 * 20], 0, 20);
	reseal(b);
	Decoded d = decode(b);
	EXPECT_EQ(SB_ERROR_FIELD, d.err);
	EXPECT_EQ("leg table: slot 2 is empty but has a name", d.why);
}

TEST(LegTable, TooLongPathsDropTheHighestSlotsFirst)
{
	/* 10 slots of "legN" and a 255-byte path: 2620 bytes, 64 more than the 2556 there are. */
	superblock sb = valid_sb();
	sb.num_legs = 10;
	for (unsigned i = 0; i < 10; i++) {
		fill_uuid(sb.roles[i].uuid, (uint8_t)(i + 1));
		sb.roles[i].role = SB_ROLE_IN_SYNC;
		set_leg(sb, i, "leg" + std::to_string(i), "/" + text_of(254, (char)('a' + i)));
	}
	memcpy(sb.leg_uuid, sb.roles[1].uuid, 16);
	Decoded d = decode(encode(sb));
	ASSERT_EQ(SB_ERROR_NONE, d.err) << d.why;
	for (unsigned i = 0; i < 10; i++) {
		EXPECT_STREQ(sb.roles[i].name, d.sb.roles[i].name) << "every name is kept";
		if (i < 9)
			EXPECT_STREQ(sb.roles[i].path, d.sb.roles[i].path) << i;
		else
			EXPECT_STREQ("", d.sb.roles[i].path)
			    << "the highest slot's path goes first";
	}
}

TEST(LegTable, SixtyFourLongNamesDropPathsThenTheHighestNames)
{
	/* Paths all go (64 x 256 > 2556); then names from slot 63 down until 2556 bytes fit:
	 * 64 x 65 + 64 = 4224 bytes, 64 saved per name dropped, 27 dropped. */
	superblock sb = valid_sb();
	sb.num_legs = SB_MAX_LEGS;
	for (unsigned i = 0; i < SB_MAX_LEGS; i++) {
		fill_uuid(sb.roles[i].uuid, (uint8_t)(i + 1));
		sb.roles[i].role = SB_ROLE_IN_SYNC;
		set_leg(sb, i, text_of(SB_LEG_NAME_MAX, (char)('A' + i % 26)), "/p");
	}
	memcpy(sb.leg_uuid, sb.roles[1].uuid, 16);
	Decoded d = decode(encode(sb));
	ASSERT_EQ(SB_ERROR_NONE, d.err) << d.why;
	for (unsigned i = 0; i < SB_MAX_LEGS; i++) {
		EXPECT_STREQ("", d.sb.roles[i].path) << i;
		EXPECT_STREQ(i < 37 ? sb.roles[i].name : "", d.sb.roles[i].name) << i;
	}
}

TEST(LegTable, TextOk)
{
	EXPECT_TRUE(superblock_leg_text_ok("", SB_LEG_NAME_MAX));
	EXPECT_TRUE(superblock_leg_text_ok(text_of(64, 'x').c_str(), SB_LEG_NAME_MAX));
	EXPECT_FALSE(superblock_leg_text_ok(text_of(65, 'x').c_str(), SB_LEG_NAME_MAX));
	EXPECT_TRUE(superblock_leg_text_ok(text_of(255, 'x').c_str(), SB_LEG_PATH_MAX));
	EXPECT_FALSE(superblock_leg_text_ok(text_of(256, 'x').c_str(), SB_LEG_PATH_MAX));
	EXPECT_FALSE(superblock_leg_text_ok("a\tb", SB_LEG_NAME_MAX));
	EXPECT_FALSE(superblock_leg_text_ok("a\xc2\x85", SB_LEG_NAME_MAX)); /* C1 control */
	EXPECT_FALSE(superblock_leg_text_ok("\xe2\x82", SB_LEG_NAME_MAX));  /* cut UTF-8 */
}

/* Criticals are captured: a refused encode must say so, loudly. */
std::vector<std::string> criticals;

GLogWriterOutput capture_writer(GLogLevelFlags level, const GLogField *fields, gsize n,
				gpointer data)
{
	if (!(level & G_LOG_LEVEL_CRITICAL))
		return g_log_writer_default(level, fields, n, data);
	for (gsize i = 0; i < n; i++)
		if (strcmp(fields[i].key, "MESSAGE") == 0)
			criticals.emplace_back((const char *)fields[i].value);
	return G_LOG_WRITER_HANDLED;
}

TEST(LegTable, EncodeRefusesDuplicateUuid)
{
	/* Once per process: glib refuses a second writer. */
	static bool installed;
	if (!installed)
		g_log_set_writer_func(capture_writer, nullptr, nullptr);
	installed = true;
	superblock sb = valid_sb();
	sb.num_legs = 3;
	memcpy(sb.roles[2].uuid, sb.roles[0].uuid, 16);
	sb.roles[2].role = SB_ROLE_FAILED;
	Block b(SB_SIZE, 0xee);
	criticals.clear();
	EXPECT_EQ(-EINVAL, superblock_encode(&sb, b.data()));
	EXPECT_EQ(Block(SB_SIZE, 0), b) << "a refused superblock must not be left in the buffer";
	ASSERT_EQ(1u, criticals.size());
	EXPECT_NE(std::string::npos,
		  criticals[0].find("roles[0] and roles[2] have the same leg uuid"))
	    << criticals[0];

	/* An empty slot may keep a removed leg's UUID: that is no duplicate. */
	sb.roles[2].role = SB_ROLE_EMPTY;
	sb.num_legs = 3;
	criticals.clear();
	EXPECT_EQ(0, superblock_encode(&sb, b.data()));
	EXPECT_TRUE(criticals.empty());

	/* Nor is it written to a leg. */
	TempDir tmp;
	ASSERT_TRUE(tmp.ok());
	make_file(tmp / "leg", MiB);
	int err;
	Dev dev = open_dev(tmp / "leg", 0, &err);
	ASSERT_EQ(0, err) << strerror(-err);
	sb.roles[2].role = SB_ROLE_SPARE;
	EXPECT_EQ(-EINVAL, superblock_write(dev.get(), &sb));
	EXPECT_EQ(Block(SB_SIZE, 0), read_file_at(tmp / "leg", 0, SB_SIZE));
}

} // namespace
