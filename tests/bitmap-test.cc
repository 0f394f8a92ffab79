/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The write-intent bitmap (src/mirror/bitmap.c) with a persist callback that records every call
 * (first block, count, a copy of the bytes) into an image of the on-disk bitmap, and can be told
 * to fail or to block.  What is checked is what reaches the "disk": a region's bit is durable
 * before its first write starts, is never taken off the disk while a write to the region is in
 * flight (the writer/clearer race, hammered from several threads), is laid out as doc/format.md
 * says (bit i = bit i % 8 of byte i / 8, 4 KiB blocks), and costs nothing when already set.
 */
#include <gtest/gtest.h>

/*
 * bitmap.h includes <stdatomic.h>, which GCC 12's libstdc++ leaves empty before C++23; the
 * header's API uses no atomic type (struct bitmap is opaque), so nothing needs a shim here.
 */
#include "mirror/bitmap.h"

#include <pthread.h>
#include <sys/prctl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace
{

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB;
constexpr uint64_t kBlock = 4096;
constexpr uint64_t kBitsPerBlock = kBlock * 8;

/* ---- The recording persist callback --------------------------------------------------------- */

struct PersistCall {
	uint64_t first, count;
	std::vector<uint8_t> bytes;
};

/*
 * Records every persist: the call, and the image of the on-disk bitmap that the successful calls
 * built (a failed call changes nothing on "disk").  fail makes the next calls fail with that
 * errno (fail_times of them, or all when fail_times < 0).  hook, when set, runs inside the
 * callback (under the bitmap's lock) before the call is recorded, without the recorder's lock.
 */
class Recorder
{
      public:
	static int persist(void *opaque, const void *bits, uint64_t first, uint64_t count)
	{
		auto *r = static_cast<Recorder *>(opaque);
		std::function<void(uint64_t, uint64_t)> hook;

		{
			std::lock_guard<std::mutex> lock(r->mu);
			hook = r->hook;
		}
		if (hook)
			hook(first, count);

		std::lock_guard<std::mutex> lock(r->mu);
		const auto *p = static_cast<const uint8_t *>(bits);
		r->calls.push_back({first, count,
				    r->keep_bytes ? std::vector<uint8_t>(p, p + count * kBlock)
						  : std::vector<uint8_t>()});
		if (r->fail != 0 && r->fail_times != 0) {
			if (r->fail_times > 0)
				r->fail_times--;
			return -r->fail;
		}
		if (r->disk.size() < (first + count) * kBlock)
			r->disk.resize((first + count) * kBlock);
		memcpy(r->disk.data() + first * kBlock, p, count * kBlock);
		if (r->on_image)
			r->on_image();
		return 0;
	}

	/* The bit of region on "disk" (caller holds mu, or no thread runs). */
	bool disk_bit_locked(uint64_t region) const
	{
		return region / 8 < disk.size() && ((disk[region / 8] >> (region % 8)) & 1);
	}
	bool disk_bit(uint64_t region)
	{
		std::lock_guard<std::mutex> lock(mu);
		return disk_bit_locked(region);
	}
	size_t num_calls()
	{
		std::lock_guard<std::mutex> lock(mu);
		return calls.size();
	}
	/* Set regions on "disk", in order. */
	std::vector<uint64_t> disk_bits()
	{
		std::lock_guard<std::mutex> lock(mu);
		std::vector<uint64_t> out;
		for (uint64_t i = 0; i < disk.size() * 8; i++)
			if (disk_bit_locked(i))
				out.push_back(i);
		return out;
	}
	void fail_with(int err, int times = -1)
	{
		std::lock_guard<std::mutex> lock(mu);
		fail = err;
		fail_times = times;
	}

	std::mutex mu;
	std::vector<PersistCall> calls;
	std::vector<uint8_t> disk;
	int fail = 0, fail_times = 0;
	bool keep_bytes = true; /* copy each call's bytes into calls (the race test does not) */
	std::function<void(uint64_t, uint64_t)> hook;
	std::function<void()> on_image; /* after a successful call, under mu */
};

/* A bitmap over data_size at region_size, persisting into a Recorder. */
class Bitmap
{
      public:
	Bitmap(uint64_t data_size, uint64_t region_size)
	    : b(bitmap_new(data_size, region_size, Recorder::persist, &rec))
	{
	}
	~Bitmap()
	{
		bitmap_free(b);
	}
	Bitmap(const Bitmap &) = delete;
	Bitmap &operator=(const Bitmap &) = delete;

	uint64_t region_size() const
	{
		return bitmap_region_size(b);
	}
	/* Offset of region r. */
	uint64_t at(uint64_t r) const
	{
		return r * region_size();
	}
	/* Set bits in memory, in order. */
	std::vector<uint64_t> memory_bits() const
	{
		std::vector<uint64_t> out;
		for (uint64_t r = 0; r < bitmap_regions(b); r++)
			if (bitmap_test(b, r))
				out.push_back(r);
		return out;
	}

	Recorder rec;
	struct bitmap *b;
};

std::vector<uint64_t> V(std::initializer_list<uint64_t> l)
{
	return std::vector<uint64_t>(l);
}

/* The bytes of a bitmap image with these bits set, bytes long. */
std::vector<uint8_t> image_of(const std::vector<uint64_t> &bits, size_t bytes)
{
	std::vector<uint8_t> out(bytes, 0);
	for (uint64_t i : bits)
		out[i / 8] |= (uint8_t)(1u << (i % 8));
	return out;
}

/* ---- Geometry ------------------------------------------------------------------------------- */

TEST(BitmapGeometry, RegionsAndDiskBytes)
{
	const struct {
		uint64_t data_size, region_size, regions, disk_bytes;
	} cases[] = {
		{64 * MiB, 512 * KiB, 128, 4096},
		{64 * MiB + 4096, 512 * KiB, 129, 4096}, /* a partial last region counts */
		{4096, 4096, 1, 4096},
		{1, 4096, 1, 4096},
		{kBitsPerBlock * 4096, 4096, kBitsPerBlock, 4096},	       /* one full block */
		{(kBitsPerBlock + 1) * 4096, 4096, kBitsPerBlock + 1, 8192}, /* one bit more */
		{(3 * kBitsPerBlock - 8) * 4096 + 1, 4096, 3 * kBitsPerBlock - 7, 3 * 4096},
		{1024 * 1024 * MiB, 64 * MiB, 16384, 4096},
		{0, 4096, 0, 0},
	};

	for (const auto &c : cases) {
		SCOPED_TRACE("data_size " + std::to_string(c.data_size) + " region_size " +
			     std::to_string(c.region_size));
		Bitmap bm(c.data_size, c.region_size);

		EXPECT_EQ(bitmap_regions(bm.b), c.regions);
		EXPECT_EQ(bitmap_region_size(bm.b), c.region_size);
		EXPECT_EQ(bitmap_disk_bytes(bm.b), c.disk_bytes);
		EXPECT_EQ(bitmap_count(bm.b), 0u);
		EXPECT_EQ(bitmap_next_set(bm.b, 0), c.regions);
		EXPECT_EQ(bm.rec.num_calls(), 0u) << "a new bitmap persists nothing";
	}
}

/* ---- Writes --------------------------------------------------------------------------------- */

TEST(BitmapWrite, FirstWriteToCleanRegionPersistsOnceAndSetsTheBit)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(3) + 4096, 8192), 0);
	EXPECT_TRUE(bitmap_test(bm.b, 3));
	EXPECT_EQ(bitmap_count(bm.b), 1u);
	EXPECT_EQ(bm.memory_bits(), V({3}));
	ASSERT_EQ(bm.rec.num_calls(), 1u);
	EXPECT_EQ(bm.rec.calls[0].first, 0u);
	EXPECT_EQ(bm.rec.calls[0].count, 1u);
	EXPECT_EQ(bm.rec.calls[0].bytes, image_of({3}, kBlock));
	EXPECT_EQ(bm.rec.disk_bits(), V({3}));
	bitmap_end_write(bm.b, bm.at(3) + 4096, 8192);
}

TEST(BitmapWrite, WriteToDirtyRegionPersistsNothing)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(7), 4096), 0);
	ASSERT_EQ(bm.rec.num_calls(), 1u);
	/* Overlapping, in flight at the same time: no second persist. */
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(7) + 64 * KiB, 4096), 0);
	bitmap_end_write(bm.b, bm.at(7) + 64 * KiB, 4096);
	bitmap_end_write(bm.b, bm.at(7), 4096);
	/* After the first ended: still nothing. */
	for (int i = 0; i < 100; i++) {
		ASSERT_EQ(bitmap_start_write(bm.b, bm.at(7) + (uint64_t)i * 4096, 4096), 0);
		bitmap_end_write(bm.b, bm.at(7) + (uint64_t)i * 4096, 4096);
	}
	EXPECT_EQ(bm.rec.num_calls(), 1u);
	EXPECT_EQ(bm.memory_bits(), V({7}));
}

TEST(BitmapWrite, EndWriteKeepsTheBit)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(0), 512 * KiB), 0);
	bitmap_end_write(bm.b, bm.at(0), 512 * KiB);
	EXPECT_TRUE(bitmap_test(bm.b, 0));
	EXPECT_EQ(bitmap_count(bm.b), 1u);
	EXPECT_EQ(bm.rec.num_calls(), 1u) << "end_write persists nothing";
	EXPECT_EQ(bm.rec.disk_bits(), V({0}));
}

TEST(BitmapWrite, WriteSpanningRegionsSetsAllTheirBitsInOnePersist)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	/* From the last 4 KiB of region 5 to the first 4 KiB of region 9. */
	const uint64_t off = bm.at(6) - 4096, len = bm.at(9) + 4096 - off;
	ASSERT_EQ(bitmap_start_write(bm.b, off, len), 0);
	EXPECT_EQ(bm.memory_bits(), V({5, 6, 7, 8, 9}));
	ASSERT_EQ(bm.rec.num_calls(), 1u);
	EXPECT_EQ(bm.rec.calls[0].bytes[0], 0xe0); /* bits 5, 6, 7 */
	EXPECT_EQ(bm.rec.calls[0].bytes[1], 0x03); /* bits 8, 9 */
	EXPECT_EQ(bm.rec.disk_bits(), V({5, 6, 7, 8, 9}));
	bitmap_end_write(bm.b, off, len);
	EXPECT_EQ(bm.memory_bits(), V({5, 6, 7, 8, 9}));
}

TEST(BitmapWrite, WriteEndingOnARegionBoundaryDoesNotTouchTheNext)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(2), 2 * 512 * KiB), 0);
	EXPECT_EQ(bm.memory_bits(), V({2, 3}));
	EXPECT_EQ(bm.rec.disk_bits(), V({2, 3}));
	bitmap_end_write(bm.b, bm.at(2), 2 * 512 * KiB);
}

TEST(BitmapWrite, PartlyDirtySpanPersistsTheNewBitsWithTheOld)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(10), 4096), 0);
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(9), 3 * 512 * KiB), 0);
	EXPECT_EQ(bm.rec.num_calls(), 2u);
	EXPECT_EQ(bm.memory_bits(), V({9, 10, 11}));
	EXPECT_EQ(bm.rec.disk_bits(), V({9, 10, 11}));
	bitmap_end_write(bm.b, bm.at(9), 3 * 512 * KiB);
	bitmap_end_write(bm.b, bm.at(10), 4096);
}

TEST(BitmapWrite, WritePastTheEndIsClampedToTheLastRegion)
{
	/* 10.5 regions: the last one is partial. */
	Bitmap bm(10 * 512 * KiB + 256 * KiB, 512 * KiB);
	ASSERT_EQ(bitmap_regions(bm.b), 11u);

	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(10), 4 * MiB), 0);
	EXPECT_EQ(bm.memory_bits(), V({10}));
	EXPECT_EQ(bm.rec.disk_bits(), V({10}));
	bitmap_end_write(bm.b, bm.at(10), 4 * MiB);

	/* Entirely past the end: no region, nothing persisted, nothing broken. */
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(20), 4096), 0);
	bitmap_end_write(bm.b, bm.at(20), 4096);
	EXPECT_EQ(bm.memory_bits(), V({10}));
	EXPECT_EQ(bm.rec.num_calls(), 1u);
}

/* ---- On-disk layout ------------------------------------------------------------------------- */

TEST(BitmapLayout, BitIIsBitIMod8OfByteIDiv8)
{
	Bitmap bm(1000 * 512 * KiB, 512 * KiB);
	const std::vector<uint64_t> regions = {0, 1, 7, 8, 9, 15, 16, 31, 32, 63, 64, 65, 127, 128,
					       200, 255, 256, 511, 512, 999};
	std::vector<uint64_t> set;

	for (uint64_t r : regions) {
		SCOPED_TRACE("region " + std::to_string(r));
		const size_t before = bm.rec.num_calls();

		ASSERT_EQ(bitmap_start_write(bm.b, bm.at(r), 4096), 0);
		bitmap_end_write(bm.b, bm.at(r), 4096);
		set.push_back(r);
		ASSERT_EQ(bm.rec.num_calls(), before + 1);
		const PersistCall &c = bm.rec.calls.back();
		EXPECT_EQ(c.first, 0u);
		EXPECT_EQ(c.count, 1u);
		/* The whole block: exactly the bits set so far, nothing else. */
		EXPECT_EQ(c.bytes, image_of(set, kBlock));
	}
	EXPECT_EQ(bm.memory_bits(), regions);
	EXPECT_EQ(bm.rec.disk_bits(), regions);
	/* A few bytes spelled out. */
	EXPECT_EQ(bm.rec.disk[0], 0x83);  /* 0, 1, 7 */
	EXPECT_EQ(bm.rec.disk[1], 0x83);  /* 8, 9, 15 */
	EXPECT_EQ(bm.rec.disk[2], 0x01);  /* 16 */
	EXPECT_EQ(bm.rec.disk[3], 0x80);  /* 31 */
	EXPECT_EQ(bm.rec.disk[7], 0x80);  /* 63 */
	EXPECT_EQ(bm.rec.disk[8], 0x03);  /* 64, 65 */
	EXPECT_EQ(bm.rec.disk[124], 0x80); /* 999 */
}

TEST(BitmapLayout, RegionsPastTheFirstBlockPersistTheirBlock)
{
	/* 4 KiB regions, 4 full bitmap blocks and 10 bits of a fifth. */
	const uint64_t regions = 4 * kBitsPerBlock + 10;
	Bitmap bm(regions * 4096, 4096);
	ASSERT_EQ(bitmap_regions(bm.b), regions);
	ASSERT_EQ(bitmap_disk_bytes(bm.b), 5 * kBlock);

	struct {
		uint64_t region, block;
	} cases[] = {
		{kBitsPerBlock + 5, 1},
		{3 * kBitsPerBlock + 100, 3},
		{2 * kBitsPerBlock - 1, 1},
		{2 * kBitsPerBlock, 2},
		{regions - 1, 4},
		{5, 0},
	};
	for (const auto &c : cases) {
		SCOPED_TRACE("region " + std::to_string(c.region));
		const size_t before = bm.rec.num_calls();

		ASSERT_EQ(bitmap_start_write(bm.b, bm.at(c.region), 4096), 0);
		bitmap_end_write(bm.b, bm.at(c.region), 4096);
		ASSERT_EQ(bm.rec.num_calls(), before + 1);
		const PersistCall &call = bm.rec.calls.back();
		EXPECT_EQ(call.first, c.block);
		EXPECT_EQ(call.count, 1u);
		const uint64_t in_block = c.region - c.block * kBitsPerBlock;
		EXPECT_EQ(call.bytes[in_block / 8], 1u << (in_block % 8));
		EXPECT_TRUE(bm.rec.disk_bit(c.region));
	}

	/* A write across the boundary of blocks 0 and 1: both, in one call. */
	const size_t before = bm.rec.num_calls();
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(kBitsPerBlock - 1), 8192), 0);
	bitmap_end_write(bm.b, bm.at(kBitsPerBlock - 1), 8192);
	ASSERT_EQ(bm.rec.num_calls(), before + 1);
	EXPECT_EQ(bm.rec.calls.back().first, 0u);
	EXPECT_EQ(bm.rec.calls.back().count, 2u);
	EXPECT_EQ(bm.rec.calls.back().bytes[kBlock - 1], 0x80);
	EXPECT_EQ(bm.rec.calls.back().bytes[kBlock], 0x01 | (1u << 5)); /* with region 32768+5 */

	std::vector<uint64_t> want = {5,
				      kBitsPerBlock - 1,
				      kBitsPerBlock,
				      kBitsPerBlock + 5,
				      2 * kBitsPerBlock - 1,
				      2 * kBitsPerBlock,
				      3 * kBitsPerBlock + 100,
				      regions - 1};
	EXPECT_EQ(bm.memory_bits(), want);
	EXPECT_EQ(bm.rec.disk_bits(), want);
	/* The final block's bytes past the last region are zero. */
	for (uint64_t i = (regions + 7) / 8; i < 5 * kBlock; i++)
		ASSERT_EQ(bm.rec.disk[i], 0) << "byte " << i;
}

/* ---- Persist failures ----------------------------------------------------------------------- */

TEST(BitmapPersistFailure, StartWriteReturnsTheErrorAndLeavesNoBit)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	bm.rec.fail_with(EIO);
	EXPECT_EQ(bitmap_start_write(bm.b, bm.at(4), 4096), -EIO);
	bitmap_end_write(bm.b, bm.at(4), 4096);
	EXPECT_FALSE(bitmap_test(bm.b, 4));
	EXPECT_EQ(bitmap_count(bm.b), 0u);
	EXPECT_EQ(bitmap_next_set(bm.b, 0), bitmap_regions(bm.b));
	EXPECT_EQ(bm.rec.num_calls(), 1u);
	EXPECT_TRUE(bm.rec.disk_bits().empty());

	/* Once the disk answers again, the next write persists the bit. */
	bm.rec.fail_with(0);
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(4), 4096), 0);
	EXPECT_EQ(bm.rec.num_calls(), 2u);
	EXPECT_EQ(bm.memory_bits(), V({4}));
	EXPECT_EQ(bm.rec.disk_bits(), V({4}));
	bitmap_end_write(bm.b, bm.at(4), 4096);
}

TEST(BitmapPersistFailure, SpanLeavesNoneOfItsNewBits)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	bm.rec.fail_with(ENOSPC);
	EXPECT_EQ(bitmap_start_write(bm.b, bm.at(20), 3 * 512 * KiB), -ENOSPC);
	bitmap_end_write(bm.b, bm.at(20), 3 * 512 * KiB);
	EXPECT_TRUE(bm.memory_bits().empty());
	/* A later write to one of them is not mistaken for a write to a dirty region. */
	bm.rec.fail_with(0);
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(21), 4096), 0);
	EXPECT_EQ(bm.rec.num_calls(), 2u);
	EXPECT_EQ(bm.rec.disk_bits(), V({21}));
	bitmap_end_write(bm.b, bm.at(21), 4096);
}

TEST(BitmapPersistFailure, FailureKeepsTheBitsThatWereAlreadyDurable)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	/* Writer A on region 0: its bit is on disk and it is in flight. */
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(0), 4096), 0);
	/* Writer B on regions 0 and 1: region 1's bit cannot be persisted. */
	bm.rec.fail_with(EIO);
	EXPECT_EQ(bitmap_start_write(bm.b, bm.at(0), 2 * 512 * KiB), -EIO);
	bitmap_end_write(bm.b, bm.at(0), 2 * 512 * KiB);
	bm.rec.fail_with(0);
	EXPECT_TRUE(bitmap_test(bm.b, 0)) << "region 0 is dirty on disk and A is still writing";
	EXPECT_FALSE(bitmap_test(bm.b, 1));

	/* Writer C on region 2 rewrites block 0: region 0 must stay set on disk while A writes. */
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(2), 4096), 0);
	EXPECT_TRUE(bm.rec.disk_bit(0)) << "a write in flight whose region is clean on disk";
	EXPECT_EQ(bm.rec.disk_bits(), V({0, 2}));
	bitmap_end_write(bm.b, bm.at(2), 4096);
	bitmap_end_write(bm.b, bm.at(0), 4096);
}

TEST(BitmapPersistFailure, SetAllFailureLeavesNoBitThatIsNotOnDisk)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(1), 4096), 0);
	bitmap_end_write(bm.b, bm.at(1), 4096);
	bm.rec.fail_with(EIO);
	EXPECT_EQ(bitmap_set_all(bm.b), -EIO);
	bm.rec.fail_with(0);
	EXPECT_EQ(bm.rec.disk_bits(), V({1}));

	/* Region 5 is clean on disk: a write to it must make its bit durable first. */
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(5), 4096), 0);
	EXPECT_TRUE(bm.rec.disk_bit(5)) << "write to region 5 starts with its bit clean on disk";
	bitmap_end_write(bm.b, bm.at(5), 4096);
	EXPECT_TRUE(bitmap_test(bm.b, 1));
}

/*
 * A second writer to a region whose bit a first writer is persisting right now must not start
 * before that persist is done: its write would go out with the region clean on disk.
 */
class BlockingPersist
{
      public:
	explicit BlockingPersist(Bitmap &bm) : bm_(bm)
	{
		bm_.rec.hook = [this](uint64_t, uint64_t) {
			std::unique_lock<std::mutex> lock(mu_);
			if (blocked_++ > 0)
				return; /* only the first call blocks */
			cv_.notify_all();
			cv_.wait(lock, [this] { return released_; });
		};
	}
	void wait_entered()
	{
		std::unique_lock<std::mutex> lock(mu_);
		cv_.wait(lock, [this] { return blocked_ > 0; });
	}
	void release()
	{
		std::lock_guard<std::mutex> lock(mu_);
		released_ = true;
		cv_.notify_all();
	}

      private:
	Bitmap &bm_;
	std::mutex mu_;
	std::condition_variable cv_;
	int blocked_ = 0;
	bool released_ = false;
};

TEST(BitmapRace, SecondWriterWaitsForTheFirstWritersPersist)
{
	Bitmap bm(64 * MiB, 512 * KiB);
	BlockingPersist blocking(bm);
	std::atomic<bool> second_returned{false};
	std::atomic<bool> second_saw_disk_bit{false};
	int first_result = -1, second_result = -1;

	std::thread first([&] { first_result = bitmap_start_write(bm.b, bm.at(5), 4096); });
	blocking.wait_entered();
	std::thread second([&] {
		second_result = bitmap_start_write(bm.b, bm.at(5) + 8192, 4096);
		second_saw_disk_bit = bm.rec.disk_bit(5);
		second_returned = true;
	});
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	EXPECT_FALSE(second_returned) << "the second writer went ahead while region 5's bit was "
					 "still being persisted";
	blocking.release();
	first.join();
	second.join();
	EXPECT_EQ(first_result, 0);
	EXPECT_EQ(second_result, 0);
	EXPECT_TRUE(second_saw_disk_bit) << "the second writer returned before the bit was on disk";
	EXPECT_EQ(bm.rec.disk_bits(), V({5}));
	bitmap_end_write(bm.b, bm.at(5) + 8192, 4096);
	bitmap_end_write(bm.b, bm.at(5), 4096);
}

TEST(BitmapRace, SecondWriterDoesNotRideOnAFailedPersist)
{
	Bitmap bm(64 * MiB, 512 * KiB);
	BlockingPersist blocking(bm);
	std::atomic<bool> second_returned{false};
	int first_result = 0, second_result = -1;

	bm.rec.fail_with(EIO, 1); /* the first writer's persist fails, later ones work */
	std::thread first([&] { first_result = bitmap_start_write(bm.b, bm.at(5), 4096); });
	blocking.wait_entered();
	std::thread second([&] {
		second_result = bitmap_start_write(bm.b, bm.at(5) + 8192, 4096);
		second_returned = true;
	});
	std::this_thread::sleep_for(std::chrono::milliseconds(100));
	blocking.release();
	first.join();
	second.join();
	EXPECT_EQ(first_result, -EIO);
	bitmap_end_write(bm.b, bm.at(5), 4096);
	/* The second writer is in flight: either it failed too, or its bit is on disk. */
	if (second_result == 0) {
		EXPECT_TRUE(bm.rec.disk_bit(5))
			<< "the second writer is writing region 5, which is clean on disk";
	} else {
		EXPECT_EQ(second_result, -EIO);
	}
	bitmap_end_write(bm.b, bm.at(5) + 8192, 4096);
}

/* ---- Lazy clearing -------------------------------------------------------------------------- */

TEST(BitmapClear, WriteInFlightIsNotCleared)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(3), 4096), 0);
	const size_t calls = bm.rec.num_calls();
	/* Even with a `since` far in the future. */
	EXPECT_EQ(bitmap_clear_idle(bm.b, g_get_monotonic_time() + (gint64)3600 * G_USEC_PER_SEC), 0);
	EXPECT_TRUE(bitmap_test(bm.b, 3));
	EXPECT_EQ(bm.rec.num_calls(), calls) << "nothing cleared, nothing to persist";
	EXPECT_EQ(bm.rec.disk_bits(), V({3}));

	/* One of two overlapping writes ended: still in flight. */
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(3) + 4096, 4096), 0);
	bitmap_end_write(bm.b, bm.at(3), 4096);
	EXPECT_EQ(bitmap_clear_idle(bm.b, g_get_monotonic_time() + (gint64)3600 * G_USEC_PER_SEC), 0);
	EXPECT_TRUE(bitmap_test(bm.b, 3));
	EXPECT_EQ(bm.rec.disk_bits(), V({3}));
	bitmap_end_write(bm.b, bm.at(3) + 4096, 4096);
}

TEST(BitmapClear, SinceBeforeTheWriteKeepsTheBitLaterClearsIt)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(9), 4096), 0);
	const gint64 before_end = g_get_monotonic_time();
	g_usleep(2000);
	bitmap_end_write(bm.b, bm.at(9), 4096);
	g_usleep(2000);
	const gint64 after_end = g_get_monotonic_time();
	const size_t calls = bm.rec.num_calls();

	/* The legs were flushed before the write ended: it may not be on them. */
	EXPECT_EQ(bitmap_clear_idle(bm.b, before_end), 0);
	EXPECT_TRUE(bitmap_test(bm.b, 9));
	EXPECT_EQ(bm.rec.num_calls(), calls);

	/* Flushed after it ended: the bit goes, in memory and on disk. */
	EXPECT_EQ(bitmap_clear_idle(bm.b, after_end), 1);
	EXPECT_FALSE(bitmap_test(bm.b, 9));
	EXPECT_EQ(bitmap_count(bm.b), 0u);
	EXPECT_EQ(bitmap_next_set(bm.b, 0), bitmap_regions(bm.b));
	ASSERT_EQ(bm.rec.num_calls(), calls + 1);
	EXPECT_EQ(bm.rec.calls.back().first, 0u);
	EXPECT_EQ(bm.rec.calls.back().bytes, image_of({}, kBlock * bm.rec.calls.back().count));
	EXPECT_TRUE(bm.rec.disk_bits().empty());

	/* Clean again: the next write to it pays for the persist again. */
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(9), 4096), 0);
	EXPECT_EQ(bm.rec.num_calls(), calls + 2);
	EXPECT_EQ(bm.rec.disk_bits(), V({9}));
	bitmap_end_write(bm.b, bm.at(9), 4096);
}

TEST(BitmapClear, ClearsOnlyTheIdleRegions)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	for (uint64_t r : {1, 2, 3, 4})
		ASSERT_EQ(bitmap_start_write(bm.b, bm.at(r), 4096), 0);
	bitmap_end_write(bm.b, bm.at(1), 4096);
	bitmap_end_write(bm.b, bm.at(4), 4096);
	g_usleep(2000);
	const gint64 since = g_get_monotonic_time();
	g_usleep(2000);
	bitmap_end_write(bm.b, bm.at(3), 4096); /* ended after the flush */
	/* 2 is still in flight */

	EXPECT_EQ(bitmap_clear_idle(bm.b, since), 2);
	EXPECT_EQ(bm.memory_bits(), V({2, 3}));
	EXPECT_EQ(bm.rec.disk_bits(), V({2, 3}));
	EXPECT_EQ(bitmap_count(bm.b), 2u);
	EXPECT_EQ(bitmap_next_set(bm.b, 0), 2u);
	EXPECT_EQ(bitmap_next_set(bm.b, 3), 3u);
	EXPECT_EQ(bitmap_next_set(bm.b, 4), bitmap_regions(bm.b));
	bitmap_end_write(bm.b, bm.at(2), 4096);
}

TEST(BitmapClear, ClearsAcrossBlocks)
{
	const uint64_t regions = 4 * kBitsPerBlock;
	Bitmap bm(regions * 4096, 4096);
	const std::vector<uint64_t> dirty = {3, kBitsPerBlock + 1, 3 * kBitsPerBlock + 7};

	for (uint64_t r : dirty) {
		ASSERT_EQ(bitmap_start_write(bm.b, bm.at(r), 4096), 0);
		bitmap_end_write(bm.b, bm.at(r), 4096);
	}
	EXPECT_EQ(bm.rec.disk_bits(), dirty);
	g_usleep(1000);
	EXPECT_EQ(bitmap_clear_idle(bm.b, g_get_monotonic_time()), 3);
	EXPECT_TRUE(bm.memory_bits().empty());
	EXPECT_TRUE(bm.rec.disk_bits().empty()) << "every cleared block reached the disk";
}

TEST(BitmapClear, NothingToClearPersistsNothing)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	EXPECT_EQ(bitmap_clear_idle(bm.b, g_get_monotonic_time()), 0);
	EXPECT_EQ(bm.rec.num_calls(), 0u);
}

TEST(BitmapClear, PersistFailureReturnsTheErrorAndLeavesTheDiskDirty)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(6), 4096), 0);
	bitmap_end_write(bm.b, bm.at(6), 4096);
	g_usleep(1000);
	bm.rec.fail_with(EIO);
	EXPECT_EQ(bitmap_clear_idle(bm.b, g_get_monotonic_time()), -EIO);
	bm.rec.fail_with(0);
	EXPECT_EQ(bm.rec.disk_bits(), V({6})) << "a failed clear is harmless: the bit stays on disk";

	/* Whatever memory now says, the next write to it keeps (or re-makes) the bit durable. */
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(6), 4096), 0);
	EXPECT_TRUE(bitmap_test(bm.b, 6));
	EXPECT_TRUE(bm.rec.disk_bit(6));
	bitmap_end_write(bm.b, bm.at(6), 4096);
}

/* ---- Queries, load, set_all, flush ---------------------------------------------------------- */

TEST(BitmapQuery, CountNextSetAndTestAgree)
{
	const uint64_t regions = 700;
	Bitmap bm(regions * 512 * KiB, 512 * KiB);
	std::mt19937 rng(42);
	std::set<uint64_t> want = {0, 63, 64, 127, 128, 191, 192, 255, 256, regions - 1};

	for (int i = 0; i < 60; i++)
		want.insert(rng() % regions);
	std::vector<uint8_t> bytes = image_of(std::vector<uint64_t>(want.begin(), want.end()),
					      (size_t)bitmap_disk_bytes(bm.b));
	bitmap_load(bm.b, bytes.data(), (regions + 7) / 8);
	EXPECT_EQ(bm.rec.num_calls(), 0u) << "loading what is on disk persists nothing";

	EXPECT_EQ(bitmap_count(bm.b), want.size());
	for (uint64_t r = 0; r < regions; r++)
		ASSERT_EQ(bitmap_test(bm.b, r), want.count(r) == 1) << "region " << r;
	/* next_set walks exactly the set bits, from anywhere. */
	std::vector<uint64_t> walked;
	for (uint64_t r = bitmap_next_set(bm.b, 0); r < regions; r = bitmap_next_set(bm.b, r + 1))
		walked.push_back(r);
	EXPECT_EQ(walked, std::vector<uint64_t>(want.begin(), want.end()));
	for (uint64_t from = 0; from <= regions; from++) {
		auto it = want.lower_bound(from);
		ASSERT_EQ(bitmap_next_set(bm.b, from), it == want.end() ? regions : *it)
			<< "from " << from;
	}
	/* Loaded bits are dirty: writing to them persists nothing more. */
	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(63), 2 * 512 * KiB), 0);
	bitmap_end_write(bm.b, bm.at(63), 2 * 512 * KiB);
	EXPECT_EQ(bm.rec.num_calls(), 0u);
}

TEST(BitmapQuery, LoadIgnoresBitsPastTheLastRegionAndShortBuffers)
{
	Bitmap bm(10 * 512 * KiB, 512 * KiB);
	const uint8_t ones[4] = {0xff, 0xff, 0xff, 0xff};

	bitmap_load(bm.b, ones, sizeof(ones));
	EXPECT_EQ(bitmap_count(bm.b), 10u);
	EXPECT_EQ(bitmap_next_set(bm.b, 9), 9u);
	EXPECT_EQ(bitmap_next_set(bm.b, 10), 10u);

	Bitmap shorter(100 * 512 * KiB, 512 * KiB);
	bitmap_load(shorter.b, ones, 1);
	EXPECT_EQ(shorter.memory_bits(), V({0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(BitmapQuery, SetAllSetsEveryRegionAndPersistsIt)
{
	Bitmap bm(130 * 512 * KiB, 512 * KiB);

	ASSERT_EQ(bitmap_set_all(bm.b), 0);
	EXPECT_EQ(bitmap_count(bm.b), 130u);
	EXPECT_EQ(bitmap_next_set(bm.b, 0), 0u);
	EXPECT_EQ(bitmap_next_set(bm.b, 129), 129u);
	ASSERT_EQ(bm.rec.num_calls(), 1u);
	EXPECT_EQ(bm.rec.calls[0].first, 0u);
	EXPECT_EQ(bm.rec.calls[0].count, 1u);
	std::vector<uint8_t> want(kBlock, 0);
	for (int i = 0; i < 16; i++)
		want[i] = 0xff;
	want[16] = 0x03; /* regions 128 and 129; nothing past the end */
	EXPECT_EQ(bm.rec.calls[0].bytes, want);
	/* Every write now is to a dirty region. */
	ASSERT_EQ(bitmap_start_write(bm.b, 0, 130 * 512 * KiB), 0);
	bitmap_end_write(bm.b, 0, 130 * 512 * KiB);
	EXPECT_EQ(bm.rec.num_calls(), 1u);
}

TEST(BitmapQuery, SetAllOverSeveralBlocks)
{
	const uint64_t regions = 2 * kBitsPerBlock + 3;
	Bitmap bm(regions * 4096, 4096);

	ASSERT_EQ(bitmap_set_all(bm.b), 0);
	EXPECT_EQ(bitmap_count(bm.b), regions);
	ASSERT_EQ(bm.rec.disk.size(), 3 * kBlock) << "every block persisted";
	for (uint64_t i = 0; i < 2 * kBlock; i++)
		ASSERT_EQ(bm.rec.disk[i], 0xff) << "byte " << i;
	EXPECT_EQ(bm.rec.disk[2 * kBlock], 0x07);
	for (uint64_t i = 2 * kBlock + 1; i < 3 * kBlock; i++)
		ASSERT_EQ(bm.rec.disk[i], 0) << "byte " << i;
}

TEST(BitmapQuery, ClearRegionDoesNotPersist)
{
	Bitmap bm(64 * MiB, 512 * KiB);

	ASSERT_EQ(bitmap_start_write(bm.b, bm.at(12), 4096), 0);
	bitmap_end_write(bm.b, bm.at(12), 4096);
	bitmap_clear_region(bm.b, 12);
	bitmap_clear_region(bm.b, 1u << 30); /* out of range: ignored */
	EXPECT_FALSE(bitmap_test(bm.b, 12));
	EXPECT_EQ(bm.rec.num_calls(), 1u);
	EXPECT_EQ(bm.rec.disk_bits(), V({12}));
}

TEST(BitmapQuery, FlushPersistsTheWholeBitmapAsInMemory)
{
	const uint64_t regions = 2 * kBitsPerBlock + 100;
	Bitmap bm(regions * 4096, 4096);
	const uint8_t bits[2] = {0x81, 0x10};

	bitmap_load(bm.b, bits, sizeof(bits));
	ASSERT_EQ(bitmap_flush(bm.b), 0);
	ASSERT_EQ(bm.rec.num_calls(), 1u);
	EXPECT_EQ(bm.rec.calls[0].first, 0u);
	EXPECT_EQ(bm.rec.calls[0].count, 3u);
	EXPECT_EQ(bm.rec.disk_bits(), V({0, 7, 12}));

	/* After clear_region (resync copied it), flush makes the disk agree. */
	bitmap_clear_region(bm.b, 7);
	ASSERT_EQ(bitmap_flush(bm.b), 0);
	EXPECT_EQ(bm.rec.disk_bits(), V({0, 12}));

	bm.rec.fail_with(EROFS);
	EXPECT_EQ(bitmap_flush(bm.b), -EROFS);
}

TEST(BitmapQuery, EmptyBitmap)
{
	Bitmap bm(0, 4096);

	EXPECT_EQ(bitmap_regions(bm.b), 0u);
	EXPECT_EQ(bitmap_set_all(bm.b), 0);
	EXPECT_EQ(bitmap_flush(bm.b), 0);
	EXPECT_EQ(bitmap_clear_idle(bm.b, g_get_monotonic_time()), 0);
	EXPECT_EQ(bm.rec.num_calls(), 0u);
}

/* ---- The writer / clearer race -------------------------------------------------------------- */

/*
 * Preemption injection: a kicker thread sends SIGUSR1 to the clearer and to the writers at random
 * moments, so that they stop at any instruction - inside bitmap.c too - far more often than the
 * scheduler would stop them, and at worse moments:
 *   - a writer stops until the clearer has made two passes (or PAUSE_US passed): the window of a
 *     writer that looked at the bit before counting itself in;
 *   - the clearer, wherever it is in clear_idle(), runs a write (start, end) to every hot region
 *     whose bit is set.  Those take bitmap_start_write()'s fast path (nobody but the clearer
 *     clears bits, and it is the thread being interrupted), which takes no lock, so the handler
 *     cannot deadlock on the clearer's own lock; and a region the clearer had looked at but not
 *     yet cleared gets a write that ends after `since` - the window of a clear_idle() without its
 *     second look.
 * The handler uses only lock-free atomics, thread-local data, clock_gettime() and those two
 * lock-free paths of bitmap.c.
 */
#ifndef PAUSE_US
#define PAUSE_US 200
#endif

struct PausePoint {
	const std::atomic<long> *progress; /* the other side's progress counter */
	long steps;			    /* how much of it to wait for */
};

struct RaceState {
	struct bitmap *b;
	uint64_t region_size;
	const std::vector<uint64_t> *hot;
	std::atomic<gint64> *ended; /* per region: when its last write ended (or later) */
	std::atomic<long> writes{0}, errors{0};
};

thread_local const PausePoint *tl_pause = nullptr;
thread_local RaceState *tl_interrupt_writes = nullptr; /* set in the clearer */

/* The targeted test's clearer: write to the region it is at (see ClearIdleLooksAgain...). */
struct SweepState {
	struct bitmap *b;
	uint64_t region_size;
	std::atomic<gint64> *ended;
	std::atomic<long> writes{0}, errors{0};
};
thread_local SweepState *tl_sweep = nullptr;
thread_local bool tl_sweep_in_clear = false;
thread_local uint64_t tl_sweep_from = 0; /* below it: regions this handler already wrote */

/* LastWriteTimeNeverGoesBack: a write that starts and ends inside another's end_write(). */
struct OvertakeState {
	struct bitmap *b;
	std::atomic<bool> ran{false};
	std::atomic<gint64> before_end{0};
	std::atomic<long> errors{0};
};
thread_local OvertakeState *tl_overtake = nullptr;
thread_local volatile sig_atomic_t tl_in_end_write = 0;
std::atomic<long> g_pauses{0};

gint64 monotonic_us()
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (gint64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Let a race run for at least `least`, then on until enough() (what the test asserts it ran), up
 * to 20 s: under TSan or valgrind, or on a loaded machine, it runs far fewer rounds per second.
 */
template <typename Enough> void run_at_least(std::chrono::milliseconds least, Enough enough)
{
	const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);

	std::this_thread::sleep_for(least);
	while (!enough() && std::chrono::steady_clock::now() < give_up)
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

/* ended[r] = max(ended[r], t) */
void raise_to(std::atomic<gint64> &ended, gint64 t)
{
	gint64 prev = ended.load();

	while (prev < t && !ended.compare_exchange_weak(prev, t))
		;
}

void pause_handler(int)
{
	const int saved_errno = errno;
	const PausePoint *p = tl_pause;
	RaceState *st = tl_interrupt_writes;

	g_pauses.fetch_add(1, std::memory_order_relaxed);
	if (tl_overtake != nullptr) {
		OvertakeState *ov = tl_overtake;

		/* In end_write(), this thread holds no lock; the bit is set: the fast path. */
		if (tl_in_end_write && !ov->ran.load() && bitmap_test(ov->b, 0)) {
			if (bitmap_start_write(ov->b, 8192, 512) != 0)
				ov->errors.fetch_add(1);
			const gint64 t = monotonic_us() + 3;
			while (monotonic_us() < t)
				;
			ov->before_end = monotonic_us();
			bitmap_end_write(ov->b, 8192, 512);
			ov->ran = true;
		}
	} else if (tl_sweep != nullptr) {
		SweepState *sw = tl_sweep;
		const uint64_t r = tl_sweep_in_clear ? bitmap_next_set(sw->b, tl_sweep_from)
						     : bitmap_regions(sw->b);

		if (r < bitmap_regions(sw->b)) {
			const uint64_t off = r * sw->region_size, len = 512;

			if (bitmap_start_write(sw->b, off, len) != 0)
				sw->errors.fetch_add(1);
			raise_to(sw->ended[r], monotonic_us());
			bitmap_end_write(sw->b, off, len);
			sw->writes.fetch_add(1);
			tl_sweep_from = r + 1;
		}
	} else if (st != nullptr) {
		for (uint64_t r : *st->hot) {
			const uint64_t off = r * st->region_size + 1024, len = 512;

			if (!bitmap_test(st->b, r))
				continue; /* its write would take the lock the clearer may hold */
			if (bitmap_start_write(st->b, off, len) != 0)
				st->errors.fetch_add(1);
			raise_to(st->ended[r], monotonic_us());
			bitmap_end_write(st->b, off, len);
			st->writes.fetch_add(1);
		}
	} else if (p != nullptr) {
		const long start = p->progress->load();
		const gint64 deadline = monotonic_us() + PAUSE_US;

		while (p->progress->load() < start + p->steps && monotonic_us() < deadline)
			;
	}
	errno = saved_errno;
}

/* The `since` of the clear_idle() this thread is in, 0 outside (for the persist check). */
thread_local gint64 tl_clear_since = 0;

/*
 * Writers hammer a handful of regions (64 in the first bitmap block, four around the boundary of
 * the first two blocks, some writes over two regions) while a clearer loops
 * bitmap_clear_idle(now).  The test keeps its own count of writes in flight per region (raised
 * after start_write returned, lowered before end_write) and the time each region's last write
 * ended (taken before end_write), and checks under the recorder's lock:
 *   - in the writer, right after start_write returned: its regions are set on "disk";
 *   - after every image persisted: every region with a write in flight is set;
 *   - after every image the clearer persisted in clear_idle(since): every region whose last
 *     write ended at or after `since` is set (the legs were flushed before it ended).
 * With inject_pauses, a kicker thread stops the clearer and the writers at random instructions
 * (see pause_handler), which opens the windows that a clear_idle without its second look at the
 * writers, or a writer that tests the bit before counting itself in, leaves open.
 */
struct RaceResult {
	long writes = 0, cleared = 0, passes = 0, failed = 0, pauses = 0;
	long interrupt_writes = 0, interrupt_errors = 0; /* by the handler, in the clearer */
	size_t persists = 0;
	long violations = 0;
	std::string first_violation;
	bool empty_at_end = false;
};

RaceResult run_race(bool inject_pauses, std::chrono::milliseconds duration)
{
	const uint64_t regions = kBitsPerBlock + 64;
	std::vector<uint64_t> hot;
	for (uint64_t r = 0; r < 12; r++)
		hot.push_back(r);
	for (uint64_t r = kBitsPerBlock - 2; r <= kBitsPerBlock + 1; r++)
		hot.push_back(r);
	auto is_hot = [&](uint64_t r) { return std::find(hot.begin(), hot.end(), r) != hot.end(); };

	Bitmap bm(regions * 4096, 4096);
	bm.rec.keep_bytes = false;
	std::vector<int> active(regions, 0); /* under bm.rec.mu */
	std::unique_ptr<std::atomic<gint64>[]> ended(new std::atomic<gint64>[regions]());
	RaceState state;
	state.b = bm.b;
	state.region_size = bm.region_size();
	state.hot = &hot;
	state.ended = ended.get();
	std::atomic<long> violations{0}, writes{0}, passes{0}, cleared{0}, failed{0};
	std::string first_violation; /* under bm.rec.mu */
	std::atomic<bool> stop{false};

	auto violation = [&](const std::string &what) {
		/* caller holds bm.rec.mu */
		if (violations++ == 0)
			first_violation = what;
	};
	bm.rec.on_image = [&] {
		for (uint64_t r : hot) {
			if (bm.rec.disk_bit_locked(r))
				continue;
			if (active[r] > 0)
				violation("persisted an image with region " + std::to_string(r) +
					  " clean while " + std::to_string(active[r]) +
					  " write(s) to it were in flight");
			else if (tl_clear_since != 0 && ended[r].load() >= tl_clear_since)
				violation("clear_idle(" + std::to_string(tl_clear_since) +
					  ") cleared region " + std::to_string(r) +
					  ", whose last write ended at " +
					  std::to_string(ended[r].load()) + ", after the flush");
		}
	};

	struct sigaction sa = {}, old_sa = {};
	sa.sa_handler = pause_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (inject_pauses)
		sigaction(SIGUSR1, &sa, &old_sa);
	const long pauses_before = g_pauses.load();
	const PausePoint writer_pause = {&passes, 2};

	const unsigned int num_writers = 4;
	std::vector<std::thread> writers;
	for (unsigned int w = 0; w < num_writers; w++) {
		writers.emplace_back([&, w] {
			std::mt19937 rng(1000 + w);

			tl_pause = inject_pauses ? &writer_pause : nullptr;
			while (!stop.load(std::memory_order_relaxed)) {
				/* Mostly to dirty regions (the fast path, which runs on while the
				 * clearer holds the lock), now and then to a clean one. */
				uint64_t r = hot[rng() % hot.size()];
				for (int tries = 0; tries < 6 && !bitmap_test(bm.b, r) && rng() % 4 != 0;
				     tries++)
					r = hot[rng() % hot.size()];
				const uint64_t n = (rng() % 4 == 0 && is_hot(r + 1)) ? 2 : 1;
				const uint64_t off = bm.at(r) + (rng() % 4) * 512,
					       len = (n - 1) * 4096 + 512;

				if (bitmap_start_write(bm.b, off, len) != 0) {
					failed++;
					bitmap_end_write(bm.b, off, len);
					continue;
				}
				{
					std::lock_guard<std::mutex> lock(bm.rec.mu);
					for (uint64_t i = r; i < r + n; i++) {
						active[i]++;
						if (!bm.rec.disk_bit_locked(i))
							violation("start_write returned with region " +
								  std::to_string(i) + " clean on disk");
					}
				}
				/* "The write": sometimes long enough for the clearer to run. */
				if (rng() % 8 == 0)
					std::this_thread::yield();
				{
					std::lock_guard<std::mutex> lock(bm.rec.mu);
					for (uint64_t i = r; i < r + n; i++)
						active[i]--;
				}
				const gint64 t = g_get_monotonic_time();
				for (uint64_t i = r; i < r + n; i++)
					raise_to(ended[i], t);
				bitmap_end_write(bm.b, off, len);
				writes++;
				/* Idle now and then, so that regions get cleared. */
				if (rng() % 16 == 0)
					g_usleep(rng() % 50);
			}
			tl_pause = nullptr;
		});
	}
	std::thread clearer([&] {
		tl_interrupt_writes = inject_pauses ? &state : nullptr;
		while (!stop.load(std::memory_order_relaxed)) {
			const gint64 since = g_get_monotonic_time();

			tl_clear_since = since;
			long n = bitmap_clear_idle(bm.b, since);
			tl_clear_since = 0;
			if (n > 0)
				cleared += n;
			else if (n < 0)
				failed++;
			passes++;
		}
		tl_interrupt_writes = nullptr;
	});
	std::thread kicker;
	if (inject_pauses) {
		kicker = std::thread([&] {
			std::mt19937 rng(7);

			/* Sleeps of a few microseconds, not the default 50 us of timer slack. */
			prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
			while (!stop.load(std::memory_order_relaxed)) {
				pthread_t target = rng() % 4 != 0
							   ? clearer.native_handle()
							   : writers[rng() % writers.size()].native_handle();
				pthread_kill(target, SIGUSR1);
				const struct timespec ts = {0, (long)(rng() % 20) * 1000};
				nanosleep(&ts, nullptr);
			}
		});
	}

	std::this_thread::sleep_for(duration);
	stop = true;
	/* The kicker first: it must not signal a thread that was joined. */
	if (kicker.joinable())
		kicker.join();
	for (auto &t : writers)
		t.join();
	clearer.join();
	if (inject_pauses)
		sigaction(SIGUSR1, &old_sa, nullptr);

	RaceResult res;
	res.writes = writes.load();
	res.cleared = cleared.load();
	res.passes = passes.load();
	res.failed = failed.load();
	res.pauses = g_pauses.load() - pauses_before;
	res.interrupt_writes = state.writes.load();
	res.interrupt_errors = state.errors.load();
	res.persists = bm.rec.num_calls();
	{
		std::lock_guard<std::mutex> lock(bm.rec.mu);
		res.violations = violations.load();
		res.first_violation = first_violation;
	}
	/* Quiet now: one more clear empties it, on disk too. */
	g_usleep(1000);
	bitmap_clear_idle(bm.b, g_get_monotonic_time());
	res.empty_at_end = bitmap_count(bm.b) == 0 && bm.rec.disk_bits().empty();
	bm.rec.on_image = nullptr;
	return res;
}

void expect_race_ok(const RaceResult &res)
{
	std::cerr << "[          ] " << res.writes << " writes, " << res.passes << " clear passes, "
		  << res.cleared << " bits cleared, " << res.persists << " persists, " << res.pauses
		  << " signals, " << res.interrupt_writes << " writes from the clearer's handler\n";
	EXPECT_EQ(res.failed, 0);
	EXPECT_EQ(res.interrupt_errors, 0);
	EXPECT_EQ(res.violations, 0) << "first: " << res.first_violation;
	/* The race was really run: writes, clears, and bits set again after being cleared. */
	EXPECT_GT(res.writes, 1000);
	EXPECT_GT(res.cleared, 100);
	EXPECT_GT(res.persists, 200u);
	EXPECT_TRUE(res.empty_at_end);
}

TEST(BitmapRace, ClearerNeverTakesABitFromAWriteInFlight)
{
	expect_race_ok(run_race(false, std::chrono::milliseconds(1000)));
}

TEST(BitmapRace, ClearerNeverTakesABitFromAWriteInFlightWithPreemptionInjected)
{
	RaceResult res = run_race(true, std::chrono::milliseconds(1000));

	expect_race_ok(res);
	EXPECT_GT(res.pauses, 500) << "the preemption injection did not happen";
	EXPECT_GT(res.interrupt_writes, 500) << "the clearer was hardly ever interrupted";
}

/*
 * The clear_idle() window, aimed at: every region is dirty and idle, so one clear_idle() pass
 * walks all of them in order, and a kicker interrupts it again and again.  Each time, the handler
 * (on the clearer's own thread) writes to the region the pass has reached: the first set bit at or
 * after the last one it wrote - a region clear_idle() has either not looked at yet, or looked at
 * and not cleared yet.  That write ends after `since`, so the region must stay dirty on disk: a
 * clear_idle() that clears on its first look alone loses it.
 */
TEST(BitmapRace, ClearIdleLooksAgainBeforeItClears)
{
	const uint64_t regions = 4096;
	Bitmap bm(regions * 4096, 4096);
	bm.rec.keep_bytes = false;
	std::unique_ptr<std::atomic<gint64>[]> ended(new std::atomic<gint64>[regions]());
	SweepState sweep;
	sweep.b = bm.b;
	sweep.region_size = bm.region_size();
	sweep.ended = ended.get();
	std::atomic<long> violations{0}, passes{0}, cleared{0}, failed{0};
	std::string first_violation; /* under bm.rec.mu */
	std::atomic<bool> in_clear{false}, stop{false};

	bm.rec.on_image = [&] {
		if (!tl_sweep_in_clear)
			return; /* the refill's own persist */
		for (uint64_t r = 0; r < regions; r++) {
			if (!bm.rec.disk_bit_locked(r) && ended[r].load() >= tl_clear_since &&
			    violations++ == 0)
				first_violation = "clear_idle(" + std::to_string(tl_clear_since) +
						  ") cleared region " + std::to_string(r) +
						  ", written during it until " +
						  std::to_string(ended[r].load());
		}
	};

	struct sigaction sa = {}, old_sa = {};
	sa.sa_handler = pause_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old_sa);

	std::thread clearer([&] {
		tl_sweep = &sweep;
		while (!stop.load(std::memory_order_relaxed)) {
			/* Every region dirty, and idle since before `since`. */
			if (bitmap_start_write(bm.b, 0, regions * 4096) != 0)
				failed++;
			bitmap_end_write(bm.b, 0, regions * 4096);
			g_usleep(2);
			const gint64 since = g_get_monotonic_time();

			tl_sweep_from = 0;
			tl_clear_since = since;
			in_clear = true;
			tl_sweep_in_clear = true;
			const long n = bitmap_clear_idle(bm.b, since);
			tl_sweep_in_clear = false;
			in_clear = false;
			tl_clear_since = 0;
			if (n > 0)
				cleared += n;
			else if (n < 0)
				failed++;
			passes++;
		}
		tl_sweep = nullptr;
	});
	std::thread kicker([&] {
		std::mt19937 rng(11);

		while (!stop.load(std::memory_order_relaxed)) {
			if (!in_clear.load()) {
				std::this_thread::yield();
				continue;
			}
			const gint64 until = monotonic_us() + rng() % 20;
			while (monotonic_us() < until)
				;
			pthread_kill(clearer.native_handle(), SIGUSR1);
		}
	});

	/* 700 ms, longer where everything is slower (TSan, valgrind, a loaded machine) until the
	 * race has run as often as checked below, up to 20 s. */
	run_at_least(std::chrono::milliseconds(700),
		     [&] { return passes.load() > 20 && sweep.writes.load() > 50; });
	stop = true;
	kicker.join();
	clearer.join();
	sigaction(SIGUSR1, &old_sa, nullptr);

	std::cerr << "[          ] " << passes.load() << " passes, " << cleared.load()
		  << " bits cleared, " << sweep.writes.load() << " writes from the handler\n";
	EXPECT_EQ(failed.load(), 0);
	EXPECT_EQ(sweep.errors.load(), 0);
	{
		std::lock_guard<std::mutex> lock(bm.rec.mu);
		EXPECT_EQ(violations.load(), 0) << "first: " << first_violation;
	}
	EXPECT_GT(passes.load(), 20);
	EXPECT_GT(sweep.writes.load(), 50) << "the clearer was hardly ever interrupted in its pass";
	/* The written regions stayed; the others went. */
	EXPECT_LT(cleared.load(), passes.load() * (long)regions);
	EXPECT_GT(cleared.load(), passes.load() * (long)regions / 2);
	bm.rec.on_image = nullptr;
}

/*
 * Two writes to one region, the second starting and ending while the first is inside
 * bitmap_end_write() (the kicker interrupts it there, and the handler writes).  Whatever the
 * order, the region's last write ended no earlier than when the second one began to end: a
 * clear_idle() whose `since` is that moment must keep the bit.  An end_write() that stores the
 * time it read on entry, after the second one stored its later time, turns the clock back and
 * lets the bit go although the second write may not have been flushed.
 */
TEST(BitmapRace, LastWriteTimeNeverGoesBack)
{
	Bitmap bm(64 * MiB, 512 * KiB);
	OvertakeState ov;
	ov.b = bm.b;
	std::atomic<bool> stop{false};
	std::atomic<long> overtakes{0}, violations{0}, failed{0};
	gint64 first_since = 0;

	struct sigaction sa = {}, old_sa = {};
	sa.sa_handler = pause_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old_sa);

	std::thread writer([&] {
		tl_overtake = &ov;
		while (!stop.load(std::memory_order_relaxed)) {
			ov.ran = false;
			if (bitmap_start_write(bm.b, 0, 512) != 0)
				failed++;
			std::atomic_signal_fence(std::memory_order_seq_cst);
			tl_in_end_write = 1;
			std::atomic_signal_fence(std::memory_order_seq_cst);
			bitmap_end_write(bm.b, 0, 512);
			std::atomic_signal_fence(std::memory_order_seq_cst);
			tl_in_end_write = 0;
			std::atomic_signal_fence(std::memory_order_seq_cst);
			if (!ov.ran.load())
				continue;
			overtakes++;
			const gint64 since = ov.before_end.load();
			const long n = bitmap_clear_idle(bm.b, since);
			if (n != 0 || !bitmap_test(bm.b, 0)) {
				if (violations++ == 0)
					first_since = since;
			}
		}
		tl_overtake = nullptr;
	});
	std::thread kicker([&] {
		std::mt19937 rng(13);

		while (!stop.load(std::memory_order_relaxed)) {
			const gint64 until = monotonic_us() + rng() % 4;
			while (monotonic_us() < until)
				;
			pthread_kill(writer.native_handle(), SIGUSR1);
		}
	});

	run_at_least(std::chrono::milliseconds(500), [&] { return overtakes.load() > 50; });
	stop = true;
	kicker.join();
	writer.join();
	sigaction(SIGUSR1, &old_sa, nullptr);

	std::cerr << "[          ] " << overtakes.load() << " writes overtook another's end\n";
	EXPECT_EQ(failed.load(), 0);
	EXPECT_EQ(ov.errors.load(), 0);
	EXPECT_EQ(violations.load(), 0)
		<< "first: clear_idle(" << first_since
		<< ") cleared a region whose last write ended after it";
	EXPECT_GT(overtakes.load(), 50);
}

} // namespace
