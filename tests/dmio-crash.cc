/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The crash-test device kind (src/dmio/dev-crash.c): an in-memory disk with a volatile write
 * cache, driven through the public dmio() calls on "crash:NAME" devices, on each engine, sync
 * and async.  Reads see the latest writes; a power cut keeps what a flush made durable, every
 * FUA write and a seeded random half of the rest, in sequence order; the same seed and cut give
 * the same image; a cut disk is a disk of its own; a failing disk fails everything with EIO.
 *
 * The unflushed writes are checked slot by slot: each write fills its own 4 KiB slot with its
 * own pattern, so a slot after a cut holds exactly that pattern (kept) or what was there before
 * (lost), and anything else is garbage.
 */
#include "test-util.h"

#include "dmio/dev-crash.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <iostream>
#include <random>
#include <set>

using namespace dmio_test;

namespace
{

constexpr uint64_t kDiskSize = 1024 * 1024;
constexpr uint64_t kSlotSectors = 8;
constexpr size_t kSlotBytes = kSlotSectors * DMIO_SECTOR_SIZE;
constexpr unsigned kSlots = 64;
constexpr unsigned kSeeds = 200;

/* ---- Disks ---------------------------------------------------------------------------------- */

struct DiskDestroyer {
	void operator()(dmio_crash_disk *disk) const
	{
		dmio_crash_disk_destroy(disk);
	}
};

/* A crash disk with a name unique in the process, destroyed with the object. */
class CrashDisk
{
      public:
	int create(uint64_t size = kDiskSize)
	{
		name_ = next_name();
		dmio_crash_disk *disk = nullptr;
		int r = dmio_crash_disk_create(name_.c_str(), size, &disk);
		disk_.reset(disk);
		return r;
	}
	int cut(const CrashDisk &from, uint64_t at, uint64_t seed)
	{
		name_ = next_name();
		dmio_crash_disk *disk = nullptr;
		int r = dmio_crash_disk_cut(from.get(), at, seed, name_.c_str(), &disk);
		disk_.reset(disk);
		return r;
	}
	dmio_crash_disk *get() const
	{
		return disk_.get();
	}
	const std::string &name() const
	{
		return name_;
	}
	std::string path() const
	{
		return "crash:" + name_;
	}
	/* What the disk holds now, through the test's own view of it. */
	std::vector<uint8_t> bytes(uint64_t sector, uint64_t count) const
	{
		std::vector<uint8_t> v(count * DMIO_SECTOR_SIZE);
		EXPECT_EQ(
		    0, dmio_crash_disk_read(get(), sector * DMIO_SECTOR_SIZE, v.data(), v.size()));
		return v;
	}
	std::vector<uint8_t> slot(unsigned i) const
	{
		return bytes(i * kSlotSectors, kSlotSectors);
	}
	std::vector<uint8_t> image() const
	{
		return bytes(0, dmio_crash_disk_size(get()) / DMIO_SECTOR_SIZE);
	}

      private:
	static std::string next_name()
	{
		static std::atomic<unsigned> count;
		return "test-" + std::to_string(count++);
	}
	std::string name_;
	std::unique_ptr<dmio_crash_disk, DiskDestroyer> disk_;
};

std::vector<uint8_t> slot_data(unsigned i, unsigned generation = 0)
{
	return pattern(kSlotBytes, 1000 + i + 100 * generation);
}

std::vector<uint8_t> zeroes(size_t len)
{
	return std::vector<uint8_t>(len, 0);
}

std::vector<uint8_t> slice(const std::vector<uint8_t> &v, size_t from, size_t len)
{
	return std::vector<uint8_t>(v.begin() + from, v.begin() + from + len);
}

/* ---- The fixture ------------------------------------------------------------------------------
 */

struct CrashParam {
	Engine engine;
	bool async;
};

void PrintTo(const CrashParam &p, std::ostream *os)
{
	*os << engine_name(p.engine) << (p.async ? " async" : " sync");
}

std::string crash_name(const ::testing::TestParamInfo<CrashParam> &info)
{
	return std::string(engine_name(info.param.engine)) +
	       (info.param.async ? "_async" : "_sync");
}

class Crash : public DefaultClientParamTest<CrashParam>
{
      protected:
	void SetUp() override
	{
		DefaultClientParamTest<CrashParam>::SetUp();
		if (IsSkipped() || HasFatalFailure())
			return;
		DMIO_REQUIRE_CLIENT(GetParam().engine, client_);
	}
	Call call() const
	{
		return GetParam().async ? Call::DmioAsync : Call::DmioSync;
	}

	/* A new disk and a device open on it. */
	void make_disk(CrashDisk *disk, Dev *dev, uint64_t size = kDiskSize, unsigned flags = 0)
	{
		ASSERT_EQ(0, disk->create(size));
		ASSERT_EQ(0, open_dev(disk->path(), flags, dev)) << disk->path();
	}

	IoOutcome io(dmio_op op, std::vector<dmio_region> regions, Memory *mem = nullptr,
		     unsigned flags = 0)
	{
		return run_io(call(), client_.get(), op, mem, std::move(regions), flags);
	}
	void write(dmio_dev *dev, uint64_t sector, const std::vector<uint8_t> &data,
		   unsigned flags = 0)
	{
		Memory mem(MemKind::Vm, data.size());
		mem.fill(data);
		expect_success(
		    io(DMIO_WRITE, {{dev, sector, data.size() / DMIO_SECTOR_SIZE}}, &mem, flags),
		    call(), 1, flags & DMIO_REQ_FUA ? "FUA write" : "write");
	}
	void write_slot(dmio_dev *dev, unsigned i, unsigned generation = 0, unsigned flags = 0)
	{
		write(dev, i * kSlotSectors, slot_data(i, generation), flags);
	}
	/* Flush, write-zeroes or discard of the regions. */
	void no_data(dmio_op op, std::vector<dmio_region> regions, unsigned flags = 0)
	{
		size_t n = regions.size();
		expect_success(io(op, std::move(regions), nullptr, flags), call(), n, "no-data op");
	}
	void flush(dmio_dev *dev)
	{
		no_data(DMIO_FLUSH, {{dev, 0, 0}});
	}
	std::vector<uint8_t> read(dmio_dev *dev, uint64_t sector, uint64_t count)
	{
		Memory mem(MemKind::Vm, count * DMIO_SECTOR_SIZE);
		mem.fill_byte(0xee);
		expect_success(io(DMIO_READ, {{dev, sector, count}}, &mem), call(), 1, "read");
		return mem.contents();
	}

	Client client_;
};

/* ---- Reads, the sequence, the counts -------------------------------------------------------- */

TEST_P(Crash, ReadsSeeTheLatestWrites)
{
	CrashDisk disk;
	Dev a, b;
	ASSERT_NO_FATAL_FAILURE(make_disk(&disk, &a));
	/* A second device on the same disk (the mirror and a superblock reader). */
	ASSERT_EQ(0, open_dev(disk.path(), 0, &b));
	EXPECT_TRUE(all_bytes_are(read(a.get(), 0, 96), 0)) << "a new disk holds zeroes";

	std::vector<uint8_t> first = pattern(64 * DMIO_SECTOR_SIZE, 1);
	std::vector<uint8_t> second = pattern(64 * DMIO_SECTOR_SIZE, 2);
	write(a.get(), 0, first);
	write(b.get(), 32, second, DMIO_REQ_FUA);
	std::vector<uint8_t> expected = slice(first, 0, 32 * DMIO_SECTOR_SIZE);
	expected.insert(expected.end(), second.begin(), second.end());
	EXPECT_TRUE(same_bytes(expected, read(a.get(), 0, 96)));
	EXPECT_TRUE(same_bytes(expected, read(b.get(), 0, 96)));
	EXPECT_TRUE(same_bytes(expected, disk.bytes(0, 96)));

	/* Write-zeroes and discard read back as zeroes at once. */
	no_data(DMIO_WRITE_ZEROES, {{a.get(), 8, 8}});
	no_data(DMIO_DISCARD, {{b.get(), 80, 8}});
	std::fill(expected.begin() + 8 * DMIO_SECTOR_SIZE, expected.begin() + 16 * DMIO_SECTOR_SIZE,
		  0);
	std::fill(expected.begin() + 80 * DMIO_SECTOR_SIZE,
		  expected.begin() + 88 * DMIO_SECTOR_SIZE, 0);
	EXPECT_TRUE(same_bytes(expected, read(a.get(), 0, 96)));
	EXPECT_TRUE(same_bytes(expected, disk.bytes(0, 96)));
}

/*
 * Every operation reaches the disk once, as what it is: one number per write, FUA write, flush,
 * write-zeroes and discard, none per read; a FUA write is one FUA write, not a write and a flush;
 * a FUA write-zeroes is followed by a flush.  On io_uring too (devices without an fd go to its
 * fallback pool).
 */
TEST_P(Crash, EveryOperationTakesOneSequenceNumber)
{
	CrashDisk disk;
	Dev dev;
	ASSERT_NO_FATAL_FAILURE(make_disk(&disk, &dev));
	uint64_t seq = dmio_crash_seq();
	write_slot(dev.get(), 0);
	EXPECT_EQ(seq + 1, dmio_crash_seq()) << "write";
	read(dev.get(), 0, kSlotSectors);
	EXPECT_EQ(seq + 1, dmio_crash_seq()) << "read";
	write_slot(dev.get(), 1, 0, DMIO_REQ_FUA);
	EXPECT_EQ(seq + 2, dmio_crash_seq()) << "FUA write";
	EXPECT_EQ(1u, dmio_crash_disk_unflushed(disk.get(), dmio_crash_seq()))
	    << "a FUA write is no unflushed write, and it flushed nothing";
	flush(dev.get());
	EXPECT_EQ(seq + 3, dmio_crash_seq()) << "flush";
	no_data(DMIO_WRITE_ZEROES, {{dev.get(), 0, 8}});
	EXPECT_EQ(seq + 4, dmio_crash_seq()) << "write-zeroes";
	no_data(DMIO_DISCARD, {{dev.get(), 8, 8}});
	EXPECT_EQ(seq + 5, dmio_crash_seq()) << "discard";
	no_data(DMIO_WRITE_ZEROES, {{dev.get(), 16, 8}}, DMIO_REQ_FUA);
	EXPECT_EQ(seq + 7, dmio_crash_seq()) << "FUA write-zeroes: zeroes, then a flush";
}

TEST_P(Crash, UnflushedCounts)
{
	CrashDisk disk;
	Dev dev;
	ASSERT_NO_FATAL_FAILURE(make_disk(&disk, &dev));
	uint64_t start = dmio_crash_seq();
	EXPECT_EQ(0u, dmio_crash_disk_unflushed(disk.get(), start));
	write_slot(dev.get(), 0);
	write_slot(dev.get(), 1);
	write_slot(dev.get(), 2, 0, DMIO_REQ_FUA);
	no_data(DMIO_WRITE_ZEROES, {{dev.get(), 0, 8}});
	no_data(DMIO_DISCARD, {{dev.get(), 8, 8}});
	uint64_t before_flush = dmio_crash_seq();
	EXPECT_EQ(4u, dmio_crash_disk_unflushed(disk.get(), before_flush))
	    << "two writes, write-zeroes, discard; not the FUA write";
	EXPECT_EQ(1u, dmio_crash_disk_unflushed(disk.get(), start + 1));
	EXPECT_EQ(0u, dmio_crash_disk_unflushed(disk.get(), start));
	flush(dev.get());
	EXPECT_EQ(0u, dmio_crash_disk_unflushed(disk.get(), dmio_crash_seq()));
	EXPECT_EQ(4u, dmio_crash_disk_unflushed(disk.get(), before_flush))
	    << "a cut before the flush may still lose them";
	write_slot(dev.get(), 3);
	EXPECT_EQ(1u, dmio_crash_disk_unflushed(disk.get(), dmio_crash_seq()));
	EXPECT_EQ(1u, dmio_crash_disk_unflushed(disk.get(), UINT64_MAX));
}

/* ---- Cuts ---------------------------------------------------------------------------------------
 */

TEST_P(Crash, CutAfterAFlushKeepsEverythingBeforeIt)
{
	CrashDisk disk;
	Dev dev;
	ASSERT_NO_FATAL_FAILURE(make_disk(&disk, &dev));
	for (unsigned i = 0; i < kSlots; i++)
		write_slot(dev.get(), i);
	/* Overlapping writes and zeroes too: the newest counts. */
	write(dev.get(), 4, pattern(16 * DMIO_SECTOR_SIZE, 7));
	no_data(DMIO_WRITE_ZEROES, {{dev.get(), 40, 4}});
	no_data(DMIO_DISCARD, {{dev.get(), 100, 12}});
	flush(dev.get());
	uint64_t after_flush = dmio_crash_seq();
	std::vector<uint8_t> durable = disk.image();
	/* Later unflushed writes of the same slots, which a cut at after_flush must not see. */
	for (unsigned i = 0; i < kSlots; i += 2)
		write_slot(dev.get(), i, 1);
	for (uint64_t seed = 0; seed < kSeeds / 4; seed++) {
		CrashDisk cut;
		ASSERT_EQ(0, cut.cut(disk, after_flush, seed));
		ASSERT_TRUE(same_bytes(durable, cut.image())) << "seed " << seed;
	}
}

/*
 * A cut before the flush: each unflushed write is kept or lost (its slot holds its data or the
 * zeroes of before, nothing else), independently, about half of them.
 */
TEST_P(Crash, CutBeforeTheFlushLosesAboutHalfTheUnflushedWrites)
{
	CrashDisk disk;
	Dev dev;
	ASSERT_NO_FATAL_FAILURE(make_disk(&disk, &dev));
	for (unsigned i = 0; i < kSlots; i++)
		write_slot(dev.get(), i);
	uint64_t before_flush = dmio_crash_seq();
	flush(dev.get());
	EXPECT_EQ(kSlots, dmio_crash_disk_unflushed(disk.get(), before_flush));

	std::vector<unsigned> kept_by_slot(kSlots, 0);
	unsigned kept = 0;
	std::set<std::vector<bool>> outcomes;
	for (uint64_t seed = 0; seed < kSeeds; seed++) {
		CrashDisk cut;
		ASSERT_EQ(0, cut.cut(disk, before_flush, seed));
		std::vector<bool> outcome;
		for (unsigned i = 0; i < kSlots; i++) {
			std::vector<uint8_t> got = cut.slot(i);
			bool is_kept = got == slot_data(i);
			ASSERT_TRUE(is_kept || got == zeroes(kSlotBytes))
			    << "seed " << seed << ": slot " << i << " holds garbage";
			kept_by_slot[i] += is_kept;
			kept += is_kept;
			outcome.push_back(is_kept);
		}
		outcomes.insert(outcome);
	}
	for (unsigned i = 0; i < kSlots; i++) {
		EXPECT_GT(kept_by_slot[i], 0u) << "no seed keeps the write of slot " << i;
		EXPECT_LT(kept_by_slot[i], kSeeds) << "no seed loses the write of slot " << i;
	}
	/* 12800 fair coins: 0.45..0.55 is more than 11 standard deviations wide. */
	double fraction = (double)kept / (kSlots * kSeeds);
	EXPECT_GT(fraction, 0.45) << kept << " of " << kSlots * kSeeds << " kept";
	EXPECT_LT(fraction, 0.55) << kept << " of " << kSlots * kSeeds << " kept";
	EXPECT_EQ(kSeeds, outcomes.size()) << "seeds that chose the same subset of 64 writes";
}

TEST_P(Crash, FuaWritesAlwaysSurvive)
{
	CrashDisk disk;
	Dev dev;
	ASSERT_NO_FATAL_FAILURE(make_disk(&disk, &dev));
	/* Even slots FUA, odd ones plain; no flush at all. */
	for (unsigned i = 0; i < kSlots; i++)
		write_slot(dev.get(), i, 0, i % 2 == 0 ? DMIO_REQ_FUA : 0);
	/* A FUA write over a plain one: FUA wins whatever happened to the plain one. */
	write_slot(dev.get(), 1, 1, DMIO_REQ_FUA);
	uint64_t at = dmio_crash_seq();
	EXPECT_EQ(kSlots / 2, dmio_crash_disk_unflushed(disk.get(), at));

	unsigned plain_lost = 0;
	for (uint64_t seed = 0; seed < kSeeds / 2; seed++) {
		CrashDisk cut;
		ASSERT_EQ(0, cut.cut(disk, at, seed));
		for (unsigned i = 0; i < kSlots; i += 2)
			ASSERT_TRUE(same_bytes(slot_data(i), cut.slot(i)))
			    << "seed " << seed << ": the FUA write of slot " << i << " was lost";
		ASSERT_TRUE(same_bytes(slot_data(1, 1), cut.slot(1)))
		    << "seed " << seed << ": the FUA write over slot 1 was lost";
		for (unsigned i = 3; i < kSlots; i += 2)
			plain_lost += cut.slot(i) == zeroes(kSlotBytes);
	}
	EXPECT_GT(plain_lost, 0u) << "the plain writes beside them are never lost";
}

/*
 * Entries are applied in sequence order: an unflushed write over a flushed one leaves either,
 * and of two overlapping unflushed writes the later one wins where both are kept.
 */
TEST_P(Crash, CutKeepsSequenceOrder)
{
	CrashDisk disk;
	Dev dev;
	ASSERT_NO_FATAL_FAILURE(make_disk(&disk, &dev));
	/* Slot 0: A, flushed, then B over it. */
	write_slot(dev.get(), 0, 0);
	flush(dev.get());
	write_slot(dev.get(), 0, 1);
	/* Sectors 64..88: A over 64..80, then B over 72..88, both unflushed. */
	std::vector<uint8_t> a = pattern(16 * DMIO_SECTOR_SIZE, 11);
	std::vector<uint8_t> b = pattern(16 * DMIO_SECTOR_SIZE, 12);
	write(dev.get(), 64, a);
	write(dev.get(), 72, b);
	uint64_t at = dmio_crash_seq();
	const size_t half = 8 * DMIO_SECTOR_SIZE;

	std::set<std::string> seen;
	for (uint64_t seed = 0; seed < kSeeds; seed++) {
		CrashDisk cut;
		ASSERT_EQ(0, cut.cut(disk, at, seed));
		std::vector<uint8_t> slot0 = cut.slot(0);
		bool b_kept0 = slot0 == slot_data(0, 1);
		ASSERT_TRUE(b_kept0 || slot0 == slot_data(0, 0))
		    << "seed " << seed << ": slot 0 is neither the flushed nor the later write";
		seen.insert(b_kept0 ? "B over flushed A" : "flushed A");

		std::vector<uint8_t> left = cut.bytes(64, 8), mid = cut.bytes(72, 8),
				     right = cut.bytes(80, 8);
		bool a_kept = left == slice(a, 0, half);
		bool b_kept = right == slice(b, half, half);
		ASSERT_TRUE(a_kept || left == zeroes(half)) << "seed " << seed;
		ASSERT_TRUE(b_kept || right == zeroes(half)) << "seed " << seed;
		std::vector<uint8_t> want_mid = b_kept	 ? slice(b, 0, half)
						: a_kept ? slice(a, half, half)
							 : zeroes(half);
		ASSERT_TRUE(same_bytes(want_mid, mid))
		    << "seed " << seed << ": A " << (a_kept ? "kept" : "lost") << ", B "
		    << (b_kept ? "kept" : "lost");
		seen.insert(std::string("A ") + (a_kept ? "kept" : "lost") + ", B " +
			    (b_kept ? "kept" : "lost"));
	}
	EXPECT_EQ(6u, seen.size()) << "not every outcome was seen in " << kSeeds << " seeds";
}

TEST_P(Crash, SameSeedAndCutGiveTheSameImage)
{
	CrashDisk disk;
	Dev dev;
	ASSERT_NO_FATAL_FAILURE(make_disk(&disk, &dev));
	for (unsigned i = 0; i < kSlots / 2; i++)
		write_slot(dev.get(), i);
	uint64_t half = dmio_crash_seq();
	for (unsigned i = kSlots / 2; i < kSlots; i++)
		write_slot(dev.get(), i);
	uint64_t all = dmio_crash_seq();

	CrashDisk first, again, other_seed, earlier;
	ASSERT_EQ(0, first.cut(disk, all, 42));
	ASSERT_EQ(0, again.cut(disk, all, 42));
	EXPECT_TRUE(same_bytes(first.image(), again.image()));
	ASSERT_EQ(0, other_seed.cut(disk, all, 43));
	EXPECT_FALSE(first.image() == other_seed.image()) << "seeds 42 and 43 chose alike";
	/* A seed's choice of a write does not depend on where the cut is. */
	ASSERT_EQ(0, earlier.cut(disk, half, 42));
	EXPECT_TRUE(same_bytes(first.bytes(0, kSlots / 2 * kSlotSectors),
			       earlier.bytes(0, kSlots / 2 * kSlotSectors)));
	EXPECT_TRUE(
	    all_bytes_are(earlier.bytes(kSlots / 2 * kSlotSectors, kSlots / 2 * kSlotSectors), 0));
}

TEST_P(Crash, FlushOfOneDiskCoversOnlyThatDisk)
{
	CrashDisk p, q, r;
	Dev pdev, qdev, rdev;
	ASSERT_NO_FATAL_FAILURE(make_disk(&p, &pdev));
	ASSERT_NO_FATAL_FAILURE(make_disk(&q, &qdev));
	ASSERT_NO_FATAL_FAILURE(make_disk(&r, &rdev));
	for (unsigned i = 0; i < kSlots; i++) {
		write_slot(pdev.get(), i);
		write_slot(qdev.get(), i);
		write_slot(rdev.get(), i);
	}
	flush(pdev.get());
	/* One flush call over two regions flushes both devices. */
	no_data(DMIO_FLUSH, {{rdev.get(), 0, 0}, {pdev.get(), 0, 0}});
	uint64_t at = dmio_crash_seq();
	EXPECT_EQ(0u, dmio_crash_disk_unflushed(p.get(), at));
	EXPECT_EQ(kSlots, dmio_crash_disk_unflushed(q.get(), at));
	EXPECT_EQ(0u, dmio_crash_disk_unflushed(r.get(), at));
	unsigned q_lost = 0;
	for (uint64_t seed = 0; seed < 20; seed++) {
		CrashDisk pc, qc, rc;
		ASSERT_EQ(0, pc.cut(p, at, seed));
		ASSERT_EQ(0, qc.cut(q, at, seed));
		ASSERT_EQ(0, rc.cut(r, at, seed));
		for (unsigned i = 0; i < kSlots; i++) {
			ASSERT_TRUE(same_bytes(slot_data(i), pc.slot(i))) << "seed " << seed;
			ASSERT_TRUE(same_bytes(slot_data(i), rc.slot(i))) << "seed " << seed;
			q_lost += qc.slot(i) != slot_data(i);
		}
	}
	EXPECT_GT(q_lost, 0u) << "the flush of p and r made q's writes durable";
}

TEST_P(Crash, WriteZeroesAndDiscardAreWritesOfZeroes)
{
	CrashDisk disk;
	Dev dev;
	ASSERT_NO_FATAL_FAILURE(make_disk(&disk, &dev));
	for (unsigned i = 0; i < 4; i++)
		write_slot(dev.get(), i);
	flush(dev.get());
	no_data(DMIO_WRITE_ZEROES, {{dev.get(), 0 * kSlotSectors, kSlotSectors}});
	no_data(DMIO_DISCARD, {{dev.get(), 1 * kSlotSectors, kSlotSectors}});
	uint64_t before_flush = dmio_crash_seq();
	flush(dev.get());
	uint64_t after_flush = dmio_crash_seq();
	std::set<std::string> seen;
	for (uint64_t seed = 0; seed < 40; seed++) {
		CrashDisk before, after;
		ASSERT_EQ(0, before.cut(disk, before_flush, seed));
		ASSERT_EQ(0, after.cut(disk, after_flush, seed));
		for (unsigned i = 0; i < 2; i++) {
			bool zeroed = before.slot(i) == zeroes(kSlotBytes);
			ASSERT_TRUE(zeroed || before.slot(i) == slot_data(i)) << "seed " << seed;
			seen.insert(std::to_string(i) + (zeroed ? " zeroed" : " old data"));
			ASSERT_TRUE(all_bytes_are(after.slot(i), 0)) << "seed " << seed;
		}
		ASSERT_TRUE(same_bytes(slot_data(2), before.slot(2)));
	}
	EXPECT_EQ(4u, seen.size()) << "write-zeroes and discard are never (or always) lost";
}

/* The cut disk is a disk of its own, with a recording of its own; the source is not changed. */
TEST_P(Crash, CutDiskIsIndependentOfItsSource)
{
	CrashDisk source;
	Dev sdev;
	ASSERT_NO_FATAL_FAILURE(make_disk(&source, &sdev));
	for (unsigned i = 0; i < 8; i++)
		write_slot(sdev.get(), i);
	flush(sdev.get());
	write_slot(sdev.get(), 8);
	uint64_t first_cut = dmio_crash_seq();
	std::vector<uint8_t> source_then = source.image();

	auto cut = std::make_unique<CrashDisk>();
	ASSERT_EQ(0, cut->cut(source, first_cut, 1));
	EXPECT_EQ(dmio_crash_disk_size(source.get()), dmio_crash_disk_size(cut->get()));
	std::vector<uint8_t> cut_base = cut->image();
	uint64_t cut_start = dmio_crash_seq();
	EXPECT_EQ(0u, dmio_crash_disk_unflushed(cut->get(), cut_start));
	{
		Dev cdev;
		ASSERT_EQ(0, open_dev(cut->path(), 0, &cdev));
		EXPECT_EQ(dmio_crash_disk_size(source.get()) / DMIO_SECTOR_SIZE,
			  dmio_dev_sectors(cdev.get()));
		EXPECT_TRUE(
		    same_bytes(cut_base, read(cdev.get(), 0, kDiskSize / DMIO_SECTOR_SIZE)));
		/* Writes to the cut do not reach the source, and the other way round. */
		write_slot(cdev.get(), 20, 5);
		write_slot(sdev.get(), 21, 6);
		EXPECT_TRUE(same_bytes(slot_data(20, 5), cut->slot(20)));
		EXPECT_TRUE(all_bytes_are(source.slot(20), 0));
		EXPECT_TRUE(all_bytes_are(cut->slot(21), 0));
		flush(cdev.get());
		EXPECT_EQ(2u, dmio_crash_disk_unflushed(source.get(), dmio_crash_seq()))
		    << "the cut's flush flushed its source (slots 8 and 21 are unflushed there)";
	}
	/* The cut's recording starts from its image: a cut of the cut before its first write. */
	CrashDisk cut_of_cut;
	ASSERT_EQ(0, cut_of_cut.cut(*cut, cut_start, 99));
	EXPECT_TRUE(same_bytes(cut_base, cut_of_cut.image()));
	CrashDisk cut_after_flush;
	ASSERT_EQ(0, cut_after_flush.cut(*cut, dmio_crash_seq(), 99));
	EXPECT_TRUE(same_bytes(slot_data(20, 5), cut_after_flush.slot(20)));

	/* The source can be cut again, at another point, and lives on without its cut. */
	cut.reset();
	std::vector<uint8_t> source_now = source_then;
	std::vector<uint8_t> slot21 = slot_data(21, 6);
	std::copy(slot21.begin(), slot21.end(), source_now.begin() + 21 * kSlotBytes);
	EXPECT_TRUE(same_bytes(source_now, source.image()));
	CrashDisk again;
	ASSERT_EQ(0, again.cut(source, first_cut, 1));
	EXPECT_TRUE(same_bytes(cut_base, again.image())) << "the source changed under the cut";
}

TEST_P(Crash, FailingDiskFailsEveryOperationWithEio)
{
	CrashDisk good, bad;
	Dev gdev, bdev;
	ASSERT_NO_FATAL_FAILURE(make_disk(&good, &gdev));
	ASSERT_NO_FATAL_FAILURE(make_disk(&bad, &bdev));
	write_slot(bdev.get(), 0);
	flush(bdev.get());
	uint64_t unflushed = dmio_crash_disk_unflushed(bad.get(), dmio_crash_seq());
	dmio_crash_disk_set_failing(bad.get(), true);

	std::vector<uint8_t> data = slot_data(1);
	Memory mem(MemKind::Vm, data.size());
	mem.fill(data);
	struct Case {
		const char *what;
		dmio_op op;
		unsigned flags;
	};
	for (const Case &c :
	     {Case{"write", DMIO_WRITE, 0}, Case{"FUA write", DMIO_WRITE, DMIO_REQ_FUA},
	      Case{"flush", DMIO_FLUSH, 0}, Case{"write-zeroes", DMIO_WRITE_ZEROES, 0},
	      Case{"discard", DMIO_DISCARD, 0}}) {
		SCOPED_TRACE(c.what);
		uint64_t count = c.op == DMIO_FLUSH ? 0 : kSlotSectors;
		IoOutcome o = io(c.op, {{gdev.get(), 0, count}, {bdev.get(), 0, count}},
				 c.op == DMIO_WRITE ? &mem : nullptr, c.flags);
		EXPECT_EQ(is_async(call()) ? 0 : -EIO, o.ret);
		EXPECT_EQ(1ul << 1, o.bits) << "exactly the failing region's bit";
		ASSERT_EQ(2u, o.region_errors.size());
		EXPECT_EQ(0, o.region_errors[0]);
		EXPECT_EQ(EIO, o.region_errors[1]);
	}
	/* Reads fail too, and zero the buffer. */
	Memory rmem(MemKind::Vm, kSlotBytes);
	rmem.fill_byte(0xee);
	IoOutcome o = io(DMIO_READ, {{bdev.get(), 0, kSlotSectors}}, &rmem);
	EXPECT_EQ(1ul, o.bits);
	EXPECT_TRUE(all_bytes_are(rmem.contents(), 0));

	/* Nothing was logged or applied: the test's view still shows the old data. */
	EXPECT_EQ(unflushed, dmio_crash_disk_unflushed(bad.get(), dmio_crash_seq()));
	EXPECT_TRUE(same_bytes(slot_data(0), bad.slot(0)));
	CrashDisk cut;
	ASSERT_EQ(0, cut.cut(bad, dmio_crash_seq(), 0));
	EXPECT_TRUE(same_bytes(slot_data(0), cut.slot(0)));
	EXPECT_TRUE(all_bytes_are(cut.slot(1), 0));

	/* And it comes back. */
	dmio_crash_disk_set_failing(bad.get(), false);
	write_slot(bdev.get(), 1);
	EXPECT_TRUE(same_bytes(slot_data(1), read(bdev.get(), kSlotSectors, kSlotSectors)));
	EXPECT_EQ(unflushed + 1, dmio_crash_disk_unflushed(bad.get(), dmio_crash_seq()));
}

/* ---- The device ---------------------------------------------------------------------------- */

TEST_P(Crash, DeviceProperties)
{
	CrashDisk disk;
	Dev dev, direct, rdonly;
	ASSERT_NO_FATAL_FAILURE(make_disk(&disk, &dev, 3 * kDiskSize));
	EXPECT_EQ(3 * kDiskSize / DMIO_SECTOR_SIZE, dmio_dev_sectors(dev.get()));
	EXPECT_EQ(512u, dmio_dev_logical_block_size(dev.get()));
	EXPECT_FALSE(dmio_dev_is_block(dev.get()));
	EXPECT_STREQ(disk.path().c_str(), dmio_dev_path(dev.get()));
	EXPECT_EQ(0u, dmio_dev_flags(dev.get()));
	EXPECT_TRUE(dmio_dev_can_discard(dev.get()));
	EXPECT_TRUE(dmio_dev_can_zero(dev.get()));
	EXPECT_TRUE(dmio_dev_can_fua(dev.get()));

	/* DMIO_DEV_DIRECT: 512-byte alignment; unaligned memory is bounced. */
	ASSERT_EQ(0, open_dev(disk.path(), DMIO_DEV_DIRECT, &direct));
	EXPECT_EQ((unsigned)DMIO_DEV_DIRECT, dmio_dev_flags(direct.get()));
	std::vector<uint8_t> data = pattern(16 * DMIO_SECTOR_SIZE, 3);
	Memory odd(MemKind::Vm, data.size(), 7);
	odd.fill(data);
	expect_success(io(DMIO_WRITE, {{direct.get(), 8, 16}}, &odd), call(), 1, "direct write");
	EXPECT_TRUE(same_bytes(data, disk.bytes(8, 16)));
	Memory back(MemKind::Vm, data.size(), 7);
	expect_success(io(DMIO_READ, {{direct.get(), 8, 16}}, &back), call(), 1, "direct read");
	EXPECT_TRUE(same_bytes(data, back.contents()));
	EXPECT_TRUE(back.guards_intact());

	/* DMIO_DEV_RDONLY: reads, no writes. */
	ASSERT_EQ(0, open_dev(disk.path(), DMIO_DEV_RDONLY, &rdonly));
	EXPECT_TRUE(same_bytes(data, read(rdonly.get(), 8, 16)));
	uint64_t seq = dmio_crash_seq();
	EXPECT_EQ(-EROFS, io(DMIO_WRITE, {{rdonly.get(), 8, 16}}, &odd).ret);
	EXPECT_EQ(seq, dmio_crash_seq());
}

INSTANTIATE_TEST_SUITE_P(EnginesSyncAsync, Crash,
			 ::testing::Values(CrashParam{Engine::Threads, false},
					   CrashParam{Engine::Threads, true},
					   CrashParam{Engine::IoUring, false},
					   CrashParam{Engine::IoUring, true}),
			 crash_name);

/* ---- Errors, names, timing ---------------------------------------------------------------- */

class CrashDisks : public DefaultClientTest
{
};

TEST_F(CrashDisks, NamesAndErrors)
{
	Dev dev;
	EXPECT_EQ(-ENOENT, open_dev("crash:no-such-disk", 0, &dev));
	EXPECT_EQ(-ENOENT, open_dev("crash:", 0, &dev));

	char sentinel;
	dmio_crash_disk *disk = nullptr, *other = reinterpret_cast<dmio_crash_disk *>(&sentinel);
	EXPECT_EQ(-EINVAL, dmio_crash_disk_create("bad", 0, &other));
	EXPECT_EQ(nullptr, other);
	EXPECT_EQ(-EINVAL, dmio_crash_disk_create("bad", 1000, &other));
	EXPECT_EQ(-EINVAL, dmio_crash_disk_create("", 4096, &other));
	EXPECT_EQ(-EINVAL, dmio_crash_disk_create(nullptr, 4096, &other));
	EXPECT_EQ(-EINVAL, dmio_crash_disk_create("bad", 4096, nullptr));

	ASSERT_EQ(0, dmio_crash_disk_create("names-one", 4096, &disk));
	EXPECT_EQ(4096u, dmio_crash_disk_size(disk));
	EXPECT_EQ(-EEXIST, dmio_crash_disk_create("names-one", 8192, &other));
	EXPECT_EQ(nullptr, other);
	EXPECT_EQ(-EEXIST, dmio_crash_disk_cut(disk, dmio_crash_seq(), 0, "names-one", &other));
	EXPECT_EQ(nullptr, other);
	EXPECT_EQ(-EINVAL, dmio_crash_disk_cut(disk, dmio_crash_seq(), 0, "", &other));
	std::vector<uint8_t> buf(8192);
	EXPECT_EQ(-EINVAL, dmio_crash_disk_read(disk, 4096 - 512, buf.data(), 1024));
	EXPECT_EQ(-EINVAL, dmio_crash_disk_read(disk, 8192, buf.data(), 1));
	EXPECT_EQ(0, dmio_crash_disk_read(disk, 0, buf.data(), 4096));

	ASSERT_EQ(0, open_dev("crash:names-one", 0, &dev));
	EXPECT_EQ(8u, dmio_dev_sectors(dev.get()));
	dev.reset();
	dmio_crash_disk_destroy(disk);
	dmio_crash_disk_destroy(nullptr);
	/* The name is free again. */
	EXPECT_EQ(-ENOENT, open_dev("crash:names-one", 0, &dev));
	ASSERT_EQ(0, dmio_crash_disk_create("names-one", 8192, &disk));
	ASSERT_EQ(0, open_dev("crash:names-one", 0, &dev));
	EXPECT_EQ(16u, dmio_dev_sectors(dev.get()));
	dev.reset();
	dmio_crash_disk_destroy(disk);

	/* Only the prefix is special: a file whose path has "crash:" elsewhere is a file. */
	write_file(tmp_ / "crash:file", pattern(4096, 1));
	ASSERT_EQ(0, open_dev(tmp_ / "crash:file", 0, &dev));
	EXPECT_EQ(8u, dmio_dev_sectors(dev.get()));
}

/*
 * A recording like a mirror crash test's (a few thousand writes of 512 B to 1 MiB, flushes now and
 * then, on a 4 MiB disk) cut at 500 random points: each cut must take well under 10 ms.
 */
TEST_F(CrashDisks, CutsOfABigRecordingAreFast)
{
	constexpr uint64_t kSize = 4 * 1024 * 1024, kSectors = kSize / DMIO_SECTOR_SIZE;
	const unsigned kWrites = std::max(3000u / scale(), 300u);
	const unsigned kCuts = std::max(500u / scale(), 50u);
	CrashDisk disk;
	ASSERT_EQ(0, disk.create(kSize));
	Dev dev;
	ASSERT_EQ(0, open_dev(disk.path(), 0, &dev));
	std::vector<uint8_t> data = pattern(1024 * 1024, 5);
	std::mt19937_64 rng(1);
	uint64_t start = dmio_crash_seq();
	for (unsigned i = 0; i < kWrites; i++) {
		/* Log-uniform sizes: mostly small writes, some of 1 MiB. */
		uint64_t count = (uint64_t)std::exp2(std::uniform_real_distribution<>(0, 11)(rng));
		count = std::min<uint64_t>(std::max<uint64_t>(count, 1), 2048);
		dmio_region where = {dev.get(), rng() % (kSectors - count + 1), count};
		dmio_request req;
		memset(&req, 0, sizeof(req));
		req.op = DMIO_WRITE;
		req.flags = rng() % 20 == 0 ? DMIO_REQ_FUA : 0;
		req.mem.type = DMIO_MEM_VM;
		req.mem.ptr.vma = data.data();
		ASSERT_EQ(0, dmio(&req, 1, &where, nullptr));
		if (rng() % 40 == 0) {
			dmio_region all = {dev.get(), 0, 0};
			req.op = DMIO_FLUSH;
			req.flags = 0;
			ASSERT_EQ(0, dmio(&req, 1, &all, nullptr));
		}
	}
	uint64_t end = dmio_crash_seq();

	double total_ms = 0, max_ms = 0;
	for (unsigned i = 0; i < kCuts; i++) {
		uint64_t at = start + rng() % (end - start + 1);
		auto t0 = std::chrono::steady_clock::now();
		{
			CrashDisk cut;
			ASSERT_EQ(0, cut.cut(disk, at, rng()));
		}
		double ms =
		    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
			.count();
		total_ms += ms;
		max_ms = std::max(max_ms, ms);
	}
	double mean_ms = total_ms / kCuts;
	std::cout << kCuts << " cuts of " << end - start << " operations on " << kSize / 1048576
		  << " MiB (cut, then destroy): mean " << mean_ms << " ms, max " << max_ms
		  << " ms\n";
	RecordProperty("cut_mean_us", (int)(mean_ms * 1000));
	EXPECT_LT(mean_ms, 10.0 * scale());
}

} // namespace
