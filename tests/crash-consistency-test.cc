/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Crash consistency, CrashMonkey's and dm-log-writes' way: a mirror of crash-test legs
 * (src/dmio/dev-crash.h: a volatile write cache, FUA goes through, a power cut keeps a seeded
 * random subset of the unflushed writes) runs one workload - writes, FUA writes, write-zeroes
 * and flushes, a leg that dies, its re-add and resync, a new leg's hot add and full copy, a
 * clean stop - while every operation on the legs is recorded.  Then the power is cut at every
 * boundary between two operations of that recording, and at random ones up to CRASH_TEST_POINTS
 * (default 500) when there are fewer, each with its own seed for what the caches lose; for each:
 *
 *   - the mirror reassembles from what survived (it never refuses a mirror it wrote itself);
 *   - after its resync, every leg's data area is identical (no leg claimed in_sync, or a
 *     recovery offset, over data it lacked);
 *   - every sector reads back a value it may hold: the last write acknowledged before a
 *     completed flush (or a FUA write acknowledged before the cut), or a write issued after it -
 *     never an older one, never garbage.
 *
 * Every sector a write covers carries the write's id, its own sector number and bytes derived
 * from both, so a sector tells which write it holds.  A failure prints the seed (CRASH_TEST_SEED)
 * and the cut; the cut choice replays with the seed, the recording depends on thread timing.
 */
#include "mirror-util.h"

#include "dmio/dev-crash.h"

#include <cinttypes>
#include <random>
#include <set>

using namespace mirror_test;

namespace
{

constexpr uint64_t kSector = 512;
constexpr uint64_t kLegSize = 1 * MiB + 2 * MiB;
constexpr uint64_t kData = 2 * MiB;
constexpr uint64_t kSectors = kData / kSector;
constexpr uint64_t kRegion = 64 * KiB;

uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The 512 bytes that write id puts in data sector s (id 0: zeroes). */
void fill_sector(uint8_t *p, uint32_t id, uint64_t s)
{
	if (id == 0) {
		memset(p, 0, kSector);
		return;
	}
	memcpy(p, &id, 4);
	memcpy(p + 4, &s, 8);
	for (unsigned i = 12; i < kSector; i += 4) {
		uint32_t v = (uint32_t)splitmix(((uint64_t)id << 32) ^ (s << 9) ^ i);
		memcpy(p + i, &v, std::min<size_t>(4, kSector - i));
	}
}

/* Which write's sector s this is: its id, 0 for zeroes, -1 for anything else. */
int64_t decode_sector(const uint8_t *p, uint64_t s)
{
	uint8_t want[kSector];
	uint32_t id;

	memcpy(&id, p, 4);
	fill_sector(want, id, s);
	if (memcmp(p, want, kSector) == 0)
		return id;
	return -1;
}

struct Op {
	enum Kind { Write, Zero, Flush } kind;
	uint32_t id;	       /* data written: 0 for zeroes */
	uint64_t first, count; /* data sectors */
	bool fua;
	uint64_t issued, done; /* crash sequence numbers around the call */
};

class CrashConsistency : public MirrorTest
{
      protected:
	void TearDown() override
	{
		close_mirror();
		for (auto &d : disks_)
			dmio_crash_disk_destroy(d.second);
		disks_.clear();
		MirrorTest::TearDown();
	}

	dmio_crash_disk *new_disk(const std::string &name)
	{
		dmio_crash_disk *d = nullptr;
		EXPECT_EQ(0, dmio_crash_disk_create(name.c_str(), kLegSize, &d)) << name;
		disks_[name] = d;
		return d;
	}

	/* One operation through the mirror, recorded. */
	void run(Op op)
	{
		op.issued = dmio_crash_seq();
		ssize_t r;
		if (op.kind == Op::Flush) {
			r = flush();
			EXPECT_EQ(0, r) << "flush";
		} else if (op.kind == Op::Zero) {
			r = write_zeroes(op.first * kSector, op.count * kSector,
					 op.fua ? MIRROR_FUA : 0);
			EXPECT_EQ((ssize_t)(op.count * kSector), r) << "write-zeroes";
		} else {
			std::vector<uint8_t> buf(op.count * kSector);
			for (uint64_t i = 0; i < op.count; i++)
				fill_sector(&buf[i * kSector], op.id, op.first + i);
			r = write(buf, op.first * kSector, op.fua ? MIRROR_FUA : 0);
			EXPECT_EQ((ssize_t)buf.size(), r) << "write " << op.id;
		}
		op.done = dmio_crash_seq();
		ops_.push_back(op);
	}

	/* n random writes (some FUA, some zeroes) with a flush every few. */
	void random_ops(std::mt19937_64 &rng, unsigned n)
	{
		for (unsigned i = 0; i < n; i++) {
			Op op{};
			unsigned what = rng() % 100;
			if (what < 12) {
				op.kind = Op::Flush;
			} else {
				op.kind = what < 17 ? Op::Zero : Op::Write;
				op.id = op.kind == Op::Zero ? 0 : next_id_++;
				op.count = 1 + rng() % (rng() % 4 == 0 ? 256 : 16);
				op.first = rng() % (kSectors - op.count + 1);
				op.fua = rng() % 10 == 0;
			}
			run(op);
		}
	}

	/*
	 * The ids data sector s may hold after a cut before operation number cut: the last write
	 * guaranteed durable (acknowledged before a flush that completed, or FUA and done), or the
	 * initial zeroes, and every write of s issued after that one before the cut.
	 */
	std::set<int64_t> allowed(uint64_t s, uint64_t cut, size_t last_flush) const
	{
		std::set<int64_t> ids = {0};
		for (size_t i = 0; i < ops_.size() && ops_[i].issued < cut; i++) {
			const Op &op = ops_[i];
			if (op.kind == Op::Flush || s < op.first || s >= op.first + op.count)
				continue;
			bool durable = (last_flush != SIZE_MAX && i < last_flush) ||
				       (op.fua && op.done <= cut);
			if (durable)
				ids.clear();
			ids.insert(op.id);
		}
		return ids;
	}

	std::map<std::string, dmio_crash_disk *> disks_;
	std::vector<Op> ops_;
	uint32_t next_id_ = 1;
};

uint64_t env_u64(const char *name, uint64_t fallback)
{
	const char *v = getenv(name);
	return v != nullptr && *v != '\0' ? strtoull(v, nullptr, 0) : fallback;
}

TEST_F(CrashConsistency, PowerCutsAnywhereLoseNothingAcknowledgedAndNeverDiverge)
{
	const uint64_t seed = env_u64("CRASH_TEST_SEED", 20261203);
	const uint64_t points = std::max<uint64_t>(1, env_u64("CRASH_TEST_POINTS", 500));
	std::mt19937_64 rng(seed);
	const std::vector<std::string> names = {"a", "b", "c", "d"};
	std::string prefix = "cc" + std::to_string(getpid()) + "-";

	/* ---- The recording ---- */
	for (const std::string &n : names)
		new_disk(prefix + n);
	for (unsigned i = 0; i < 3; i++)
		legs_.push_back({names[i], "crash:" + prefix + names[i], false});
	threads_ = 2;
	ASSERT_NO_FATAL_FAILURE(format_legs(kRegion));
	const uint64_t start = dmio_crash_seq();
	ASSERT_NO_FATAL_FAILURE(open_ok());
	random_ops(rng, 60);

	/* Leg a dies: the writes go on, acknowledged once b and c record its failure. */
	dmio_crash_disk_set_failing(disks_[prefix + "a"], true);
	random_ops(rng, 30);
	ASSERT_EQ(LEG_FAILED, state_of(0)) << dump_events();

	/* It comes back: re-added into its slot, resynced from the bitmap under writes. */
	dmio_crash_disk_set_failing(disks_[prefix + "a"], false);
	GError *error = nullptr;
	ASSERT_EQ(0, mirror_add_leg(m_, legs_[0].path.c_str(), false, &error))
	    << (error ? error->message : "");
	random_ops(rng, 20);
	ASSERT_TRUE(wait_resync());
	ASSERT_EQ(LEG_IN_SYNC, state_of(0));
	random_ops(rng, 20);

	/* A new leg: a spare, copied in full under writes. */
	ASSERT_EQ(3, mirror_add_leg(m_, ("crash:" + prefix + "d").c_str(), false, &error))
	    << (error ? error->message : "");
	random_ops(rng, 20);
	ASSERT_TRUE(wait_resync());
	ASSERT_EQ(LEG_IN_SYNC, state_of(3));
	random_ops(rng, 20);
	run(Op{Op::Flush, 0, 0, 0, false, 0, 0});
	close_mirror();
	const uint64_t end = dmio_crash_seq();
	ASSERT_GT(end, start + 100) << "the recording is too short to cut";

	/* ---- The cuts ---- */
	/* Every boundary between two operations once, then random ones up to the points asked. */
	const uint64_t span = end - start, total = std::max(points, span + 1);
	uint64_t unflushed = 0, resynced = 0;
	for (uint64_t p = 0; p < total; p++) {
		uint64_t cut = p <= span ? start + p : start + splitmix(seed ^ p) % (span + 1);
		uint64_t cut_seed = splitmix(seed * 31 + p);
		SCOPED_TRACE("CRASH_TEST_SEED=" + std::to_string(seed) + " cut " +
			     std::to_string(p) + " at operation " + std::to_string(cut) +
			     " (recording " + std::to_string(start) + ".." + std::to_string(end) +
			     ")");

		/* What each leg holds after the power cut. */
		std::vector<dmio_crash_disk *> cut_disks;
		legs_.clear();
		for (const std::string &n : names) {
			dmio_crash_disk *d = nullptr;
			std::string name = prefix + n + "@" + std::to_string(p);
			ASSERT_EQ(0, dmio_crash_disk_cut(disks_[prefix + n], cut, cut_seed,
							 name.c_str(), &d));
			unflushed += dmio_crash_disk_unflushed(disks_[prefix + n], cut);
			cut_disks.push_back(d);
			/* The new leg is in the config once it has a superblock (the operator's).
			 */
			uint8_t magic[8];
			ASSERT_EQ(0, dmio_crash_disk_read(d, 0, magic, sizeof(magic)));
			uint64_t m;
			memcpy(&m, magic, 8);
			if (n != "d" || m == SB_MAGIC)
				legs_.push_back({n, "crash:" + name, false});
		}

		GError *err = nullptr;
		int r = open_mirror(&err);
		EXPECT_EQ(0, r) << "the mirror did not reassemble: "
				<< (err ? err->message : "(no message)");
		g_clear_error(&err);
		if (r == 0) {
			resync_status rs;
			mirror_resync_status(m_, &rs);
			resynced += rs.active;
			EXPECT_TRUE(wait_resync()) << "the resync did not finish";

			/* Every sector holds what it may. */
			std::vector<uint8_t> data(kData);
			ASSERT_EQ((ssize_t)kData, read(data.data(), kData, 0));
			size_t last_flush = SIZE_MAX;
			for (size_t i = 0; i < ops_.size(); i++)
				if (ops_[i].kind == Op::Flush && ops_[i].done <= cut)
					last_flush = i;
			unsigned bad = 0;
			for (uint64_t s = 0; s < kSectors && bad < 5; s++) {
				int64_t id = decode_sector(&data[s * kSector], s);
				std::set<int64_t> ok = allowed(s, cut, last_flush);
				if (ok.count(id) == 0) {
					std::string list;
					for (int64_t a : ok)
						list += " " + std::to_string(a);
					ADD_FAILURE() << "data sector " << s << " holds "
						      << (id < 0 ? std::string("garbage")
								 : "write " + std::to_string(id))
						      << "; it may hold only:" << list;
					bad++;
				}
			}

			/* Every leg that is in sync holds the same data area. */
			std::vector<int> in_sync;
			for (unsigned i = 0; i < mirror_num_legs(m_) && i < legs_.size(); i++)
				if (state_of(i) == LEG_IN_SYNC)
					in_sync.push_back((int)i);
			EXPECT_GE(in_sync.size(), 1u);
			close_mirror();
			std::vector<uint8_t> first(kData), other(kData);
			for (size_t k = 0; k < in_sync.size(); k++) {
				std::vector<uint8_t> &buf = k == 0 ? first : other;
				ASSERT_EQ(0,
					  dmio_crash_disk_read(cut_disks[in_sync[k]],
							       SB_DATA_OFFSET, buf.data(), kData));
				if (k > 0 && buf != first) {
					uint64_t at = 0;
					while (buf[at] == first[at])
						at++;
					ADD_FAILURE()
					    << "after the resync leg " << names[in_sync[k]]
					    << " differs from leg " << names[in_sync[0]]
					    << " from data byte " << at;
				}
			}
		}
		for (dmio_crash_disk *d : cut_disks)
			dmio_crash_disk_destroy(d);
		if (HasFailure())
			break; /* the first failing cut says enough */
	}
	printf("[          ] %" PRIu64 " cut points over %" PRIu64
	       " operations (%zu of the mirror), %" PRIu64 " unflushed writes exposed to the cuts, "
	       "%" PRIu64 " reassemblies resyncing; seed %" PRIu64 "\n",
	       total, span, ops_.size(), unflushed, resynced, seed);
}

} // namespace
