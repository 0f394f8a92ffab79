/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mirror layer (src/mirror) over real files: assembly and its errors, the write fan-out
 * (aligned, read-modify-write, concurrent, past the end), a leg that really fails (its file on a
 * small tmpfs that fills up), read errors and their retry (a leg file truncated under the
 * mirror's feet), the read policies, operator failure, flush, discard and write-zeroes.  Every
 * check looks at the leg files themselves with plain POSIX calls, not only through the mirror.
 */
/* mirror/atomics.h names the C11 atomic types for C++. */
#include "mirror-util.h"

extern "C" {
#include "mirror/mirror-internal.h"
}
#include "dmio/dev-crash.h"

#include <sys/stat.h>

#include <map>
#include <set>

using namespace mirror_test;

namespace
{

/* ---- Helpers -------------------------------------------------------------------------------- */

/* Every leg in `legs` holds expected at offset (pread on the leg files). */
::testing::AssertionResult legs_hold(const std::vector<LegSpec> &legs,
				     const std::vector<unsigned> &which,
				     const std::vector<uint8_t> &expected, uint64_t offset)
{
	for (unsigned i : which) {
		auto r = same_bytes(expected, read_at(legs[i].path, offset, expected.size()));
		if (!r)
			return ::testing::AssertionFailure()
			       << "leg " << i << " (" << legs[i].path << ") at offset " << offset
			       << ": " << r.message();
	}
	return ::testing::AssertionSuccess();
}

/*
 * Legs on crash-test disks (src/dmio/dev-crash.h: a volatile write cache), so that what is
 * durable can be told from what only reached a cache: survives() cuts the power at operation
 * `cut` with many seeds and checks every leg's surviving image holds expected at offset.
 */
class CrashLegs
{
      public:
	~CrashLegs()
	{
		for (dmio_crash_disk *d : disks_)
			dmio_crash_disk_destroy(d);
	}
	/* A disk of size bytes; its path for a LegSpec. */
	std::string add(const std::string &name, uint64_t size)
	{
		std::string full = "ml" + std::to_string(getpid()) + "-" + name;
		dmio_crash_disk *d = nullptr;
		EXPECT_EQ(0, dmio_crash_disk_create(full.c_str(), size, &d)) << full;
		disks_.push_back(d);
		return "crash:" + full;
	}
	/* How many of `seeds` cuts at cut leave expected at offset on every disk. */
	unsigned survives(uint64_t cut, const std::vector<uint8_t> &expected, uint64_t offset,
			  unsigned seeds = 16)
	{
		unsigned kept = 0;
		for (unsigned seed = 1; seed <= seeds; seed++) {
			bool all = true;
			for (size_t i = 0; i < disks_.size(); i++) {
				dmio_crash_disk *c = nullptr;
				std::string name = "cut" + std::to_string(getpid()) + "-" +
						   std::to_string(i) + "-" + std::to_string(seed);
				EXPECT_EQ(
				    0, dmio_crash_disk_cut(disks_[i], cut, seed, name.c_str(), &c));
				if (c == nullptr)
					return 0;
				std::vector<uint8_t> got(expected.size());
				EXPECT_EQ(0,
					  dmio_crash_disk_read(c, offset, got.data(), got.size()));
				all = all && got == expected;
				dmio_crash_disk_destroy(c);
			}
			kept += all;
		}
		return kept;
	}

      private:
	std::vector<dmio_crash_disk *> disks_;
};

std::vector<unsigned> all_legs(size_t n)
{
	std::vector<unsigned> v;
	for (unsigned i = 0; i < n; i++)
		v.push_back(i);
	return v;
}

/* The file's contents at offset through lseek(SEEK_HOLE/SEEK_DATA). */
off_t seek(const std::string &path, off_t offset, int whence)
{
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	EXPECT_GE(fd, 0) << path;
	off_t r = lseek(fd, offset, whence);
	close(fd);
	return r;
}

class MirrorOpen : public MirrorTest
{
};
class MirrorWrite : public MirrorTest
{
};
class MirrorFailingLeg : public MirrorTest
{
};
class MirrorRead : public MirrorTest
{
};
class MirrorReadPolicy : public MirrorTest
{
      protected:
	void set_pending(unsigned i, unsigned n)
	{
		m_->legs[i].pending.store(n);
	}
	void clear_pending()
	{
		for (unsigned i = 0; i < m_->num_legs; i++)
			m_->legs[i].pending.store(0);
	}
	/* n picks, counted per leg. */
	std::map<int, int> picks(int n, std::vector<int> *sequence = nullptr)
	{
		std::map<int, int> count;
		for (int i = 0; i < n; i++) {
			int leg = mirror_pick_read_leg(m_);
			count[leg]++;
			if (sequence != nullptr)
				sequence->push_back(leg);
		}
		return count;
	}
};
class MirrorFailLeg : public MirrorTest
{
};
class MirrorOps : public MirrorTest
{
};
class MirrorLog : public MirrorTest
{
};

/* ---- Assembly ------------------------------------------------------------------------------- */

TEST_F(MirrorOpen, ReportsNameLegsAndCleanState)
{
	name_ = "vol0";
	add_leg("left", 1 * MiB);
	add_leg("right", 1 * MiB, "", true);
	ASSERT_NO_FATAL_FAILURE(open_ok());

	EXPECT_STREQ("vol0", mirror_name(m_));
	EXPECT_EQ(2u, mirror_num_legs(m_));
	EXPECT_EQ(1 * MiB, mirror_size(m_));
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
	EXPECT_EQ(0u, mirror_events(m_));
	EXPECT_EQ(0ul, mirror_error_bits(m_));
	for (unsigned i = 0; i < 2; i++) {
		leg_status st = leg(i);
		EXPECT_STREQ(legs_[i].name.c_str(), st.name);
		EXPECT_STREQ(legs_[i].path.c_str(), st.path);
		EXPECT_EQ(LEG_IN_SYNC, st.state);
		EXPECT_EQ(i == 1, st.write_mostly);
		EXPECT_EQ(0u, st.read_errors);
		EXPECT_EQ(0u, st.write_errors);
		EXPECT_EQ(0u, st.pending);
	}
}

TEST_F(MirrorOpen, SizeIsTheSmallestLegRoundedDownTo4K)
{
	add_leg("a", 3 * MiB + 123);
	add_leg("b", 1 * MiB + 5000); /* the smallest: 1 MiB + 4096 + 904 */
	add_leg("c", 2 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ(1 * MiB + 4096, mirror_size(m_));
	close_mirror();

	legs_.clear();
	add_leg("d", 8191);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ(4096u, mirror_size(m_));
	close_mirror();

	legs_.clear();
	add_leg("e", 4096);
	add_leg("f", 64 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ(4096u, mirror_size(m_));
}

/* mirror_open fails with r, no mirror, and a MIRROR_ERROR message containing every needle. */
#define EXPECT_OPEN_FAILS(r_expected, ...)                                                         \
	do {                                                                                       \
		GError *error_ = nullptr;                                                          \
		int r_ = open_mirror(&error_);                                                     \
		EXPECT_EQ((r_expected), r_);                                                       \
		EXPECT_EQ(nullptr, m_);                                                            \
		ASSERT_NE(nullptr, error_) << "no GError";                                         \
		EXPECT_EQ(MIRROR_ERROR, error_->domain);                                           \
		for (const std::string &needle_ : std::vector<std::string>{__VA_ARGS__})           \
			EXPECT_NE(std::string::npos, std::string(error_->message).find(needle_))   \
			    << "'" << needle_ << "' not in: " << error_->message;                  \
		g_clear_error(&error_);                                                            \
	} while (0)

TEST_F(MirrorOpen, MissingLegPathIsNamed)
{
	add_leg("present", 1 * MiB);
	legs_.push_back({"absent-leg", tmp_ / "no-such-file.img"});
	EXPECT_OPEN_FAILS(-ENOENT, "absent-leg", tmp_ / "no-such-file.img", g_strerror(ENOENT));
}

TEST_F(MirrorOpen, DirectoryLegIsRefused)
{
	std::string dir = tmp_ / "a-directory";
	ASSERT_EQ(0, mkdir(dir.c_str(), 0755));
	add_leg("fine", 1 * MiB);
	legs_.push_back({"dir-leg", dir});
	GError *error = nullptr;
	int r = open_mirror(&error);
	EXPECT_LT(r, 0);
	EXPECT_EQ(nullptr, m_);
	ASSERT_NE(nullptr, error);
	EXPECT_EQ(MIRROR_ERROR, error->domain);
	EXPECT_EQ(MIRROR_ERROR_LEG, error->code);
	EXPECT_NE(std::string::npos, std::string(error->message).find("dir-leg")) << error->message;
	EXPECT_NE(std::string::npos, std::string(error->message).find(dir)) << error->message;
	g_clear_error(&error);
}

TEST_F(MirrorOpen, LegSmallerThan4KIsRefused)
{
	for (uint64_t size : {(uint64_t)0, (uint64_t)511, (uint64_t)4095}) {
		SCOPED_TRACE("leg of " + std::to_string(size) + " bytes");
		legs_.clear();
		add_leg("big", 1 * MiB);
		add_leg("tiny-leg", size);
		GError *error = nullptr;
		int r = open_mirror(&error);
		EXPECT_LT(r, 0);
		EXPECT_EQ(nullptr, m_);
		ASSERT_NE(nullptr, error);
		EXPECT_EQ(MIRROR_ERROR_LEG, error->code);
		std::string msg = error->message;
		EXPECT_NE(std::string::npos, msg.find("tiny-leg")) << msg;
		EXPECT_NE(std::string::npos, msg.find(legs_[1].path)) << msg;
		EXPECT_NE(std::string::npos, msg.find("4 KiB")) << msg;
		g_clear_error(&error);
	}
}

TEST_F(MirrorOpen, TwoLegsOnTheSameFileAreRefused)
{
	std::string path = add_leg("first", 1 * MiB);
	legs_.push_back({"again", path});
	EXPECT_OPEN_FAILS(-EINVAL, "first", "again", "same file");

	/* Through a hard link: another name, the same inode. */
	std::string link_path = tmp_ / "hardlink.img";
	ASSERT_EQ(0, link(path.c_str(), link_path.c_str())) << strerror(errno);
	legs_.pop_back();
	add_leg("other", 1 * MiB);
	legs_.push_back({"linked", link_path});
	EXPECT_OPEN_FAILS(-EINVAL, "first", "linked", link_path, "same file");

	/* Through a symbolic link. */
	std::string sym_path = tmp_ / "symlink.img";
	ASSERT_EQ(0, symlink(path.c_str(), sym_path.c_str())) << strerror(errno);
	legs_.pop_back();
	legs_.push_back({"symlinked", sym_path});
	EXPECT_OPEN_FAILS(-EINVAL, "first", "symlinked", "same file");
}

TEST_F(MirrorOpen, ZeroLegsAreRefused)
{
	EXPECT_OPEN_FAILS(-EINVAL, "legs");
}

TEST_F(MirrorOpen, MoreThan64LegsAreRefused)
{
	for (int i = 0; i < 65; i++)
		legs_.push_back({"l" + std::to_string(i), tmp_ / ("l" + std::to_string(i))});
	EXPECT_OPEN_FAILS(-EINVAL, "65");
}

TEST_F(MirrorOpen, FailedOpenLeavesNoDescriptorBehind)
{
	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB);
	legs_.push_back({"missing", tmp_ / "missing.img"});
	int before = open_fds();
	ASSERT_GT(before, 0);
	EXPECT_OPEN_FAILS(-ENOENT, "missing");
	EXPECT_EQ(before, open_fds());
}

/* ---- Writes --------------------------------------------------------------------------------- */

TEST_F(MirrorWrite, LandsByteIdenticalOnEveryLeg)
{
	for (int i = 0; i < 3; i++)
		add_leg("leg" + std::to_string(i), 4 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());

	struct {
		uint64_t offset;
		size_t len;
	} cases[] = {
	    {0, 4096}, {512, 512}, {8192, 65536}, {1 * MiB, 1 * MiB}, {4 * MiB - 4096, 4096}};
	uint32_t seed = 1;
	for (auto c : cases) {
		SCOPED_TRACE("write " + std::to_string(c.len) + " at " + std::to_string(c.offset));
		std::vector<uint8_t> data = pattern(c.len, seed++);
		EXPECT_EQ((ssize_t)c.len, write(data, c.offset));
		EXPECT_TRUE(legs_hold(legs_, all_legs(3), data, c.offset));
		EXPECT_TRUE(same_bytes(data, read(c.len, c.offset)));
	}
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
	EXPECT_EQ(0u, mirror_events(m_));
	EXPECT_TRUE(events().empty()) << dump_events();
}

/*
 * A FUA write is durable when it returns: a power cut right after it keeps it on every leg,
 * whichever unflushed writes the disks lose - an aligned one, and an unaligned one (its
 * read-modify-write).  A plain write at the same point can be lost, which shows the cut bites.
 */
TEST_F(MirrorWrite, FuaWriteLands)
{
	CrashLegs disks;
	legs_.push_back({"a", disks.add("a", 1 * MiB), false});
	legs_.push_back({"b", disks.add("b", 1 * MiB), false});
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> plain = pattern(64 * KiB, 8);
	EXPECT_EQ((ssize_t)plain.size(), write(plain, 512 * KiB));
	std::vector<uint8_t> data = pattern(128 * KiB, 9);
	EXPECT_EQ((ssize_t)data.size(), write(data, 64 * KiB, MIRROR_FUA));
	uint64_t cut = dmio_crash_seq();
	EXPECT_EQ(16u, disks.survives(cut, data, 64 * KiB)) << "a FUA write was lost";
	EXPECT_LT(disks.survives(cut, plain, 512 * KiB), 16u)
	    << "no cut lost a write that was never flushed: the test cannot tell FUA from none";

	std::vector<uint8_t> odd = pattern(777, 10);
	EXPECT_EQ((ssize_t)odd.size(), write(odd, 3, MIRROR_FUA));
	EXPECT_EQ(16u, disks.survives(dmio_crash_seq(), odd, 3))
	    << "an unaligned FUA write was lost";
	close_mirror();
}

TEST_F(MirrorWrite, UnalignedWritesReadModifyWrite)
{
	constexpr uint64_t kSize = 256 * KiB;
	add_leg("a", kSize);
	add_leg("b", kSize);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> model = pattern(kSize, 100);
	ASSERT_EQ((ssize_t)kSize, write(model, 0));

	struct {
		uint64_t offset;
		size_t len;
	} cases[] = {
	    {1, 1},	   /* one byte inside a sector */
	    {511, 2},	   /* two bytes across a sector boundary */
	    {100, 1000},   /* partial head, whole sector, partial tail */
	    {4095, 4097},  /* across pages */
	    {513, 511},	   /* the tail of a sector exactly */
	    {1024, 100},   /* aligned start, partial end */
	    {2000, 48},	   /* aligned end, partial start */
	    {8192, 513},   /* one whole sector and one byte */
	    {0, 1},	   /* the first byte */
	    {kSize - 1, 1} /* the last byte */
	};
	uint32_t seed = 200;
	for (auto c : cases) {
		SCOPED_TRACE("write " + std::to_string(c.len) + " at " + std::to_string(c.offset));
		std::vector<uint8_t> data = pattern(c.len, seed++);
		EXPECT_EQ((ssize_t)c.len, write(data, c.offset));
		std::copy(data.begin(), data.end(), model.begin() + (ptrdiff_t)c.offset);
		EXPECT_TRUE(legs_hold(legs_, all_legs(2), model, 0));
		EXPECT_TRUE(same_bytes(data, read(c.len, c.offset)));
	}
	EXPECT_TRUE(same_bytes(model, read(kSize, 0)));
}

/*
 * Nine threads write disjoint bytes of the same two sectors at the same moment, over and over
 * (one of them straddles the sector boundary): every read-modify-write must keep the others'
 * bytes.
 */
TEST_F(MirrorWrite, ConcurrentUnalignedWritesToOneSectorAllSurvive)
{
	constexpr uint64_t kBase = 8192; /* sectors 16 and 17 */
	constexpr int kIterations = 300;
	struct Range {
		uint64_t start, len;
	};
	std::vector<Range> ranges;
	for (uint64_t t = 0; t < 8; t++)
		ranges.push_back({t * 128 + 20, 100}); /* [404, 504) and [532, 632) around 512 */
	ranges.push_back({505, 26});		       /* [505, 531): across the boundary */

	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> model = pattern(1024, 7);
	ASSERT_EQ(1024, write(model, kBase));

	for (int iter = 0; iter < kIterations && !HasFailure(); iter++) {
		std::atomic<bool> go{false};
		std::vector<std::thread> threads;
		for (size_t t = 0; t < ranges.size(); t++) {
			uint8_t value = (uint8_t)(iter * 31 + t * 7 + 1);
			std::fill(model.begin() + (ptrdiff_t)ranges[t].start,
				  model.begin() + (ptrdiff_t)(ranges[t].start + ranges[t].len),
				  value);
			threads.emplace_back([&, t, value] {
				std::vector<uint8_t> data(ranges[t].len, value);
				while (!go.load())
					std::this_thread::yield();
				EXPECT_EQ((ssize_t)data.size(),
					  write(data, kBase + ranges[t].start));
			});
		}
		go.store(true);
		for (auto &th : threads)
			th.join();
		ASSERT_TRUE(same_bytes(model, read(1024, kBase))) << "iteration " << iter;
		ASSERT_TRUE(legs_hold(legs_, all_legs(2), model, kBase)) << "iteration " << iter;
	}
}

TEST_F(MirrorWrite, ManyAsyncWritesInFlight)
{
	constexpr int kWrites = 256;
	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB);
	add_leg("c", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());

	std::vector<std::vector<uint8_t>> data;
	std::vector<Request *> reqs;
	for (int i = 0; i < kWrites; i++)
		data.push_back(pattern(4096, 1000 + i));
	for (int i = 0; i < kWrites; i++) {
		Request *r = new_request("async write " + std::to_string(i));
		reqs.push_back(r);
		mirror_write(m_, data[i].data(), 4096, (uint64_t)i * 4096, 0, Request::done, r);
	}
	int in_caller = 0;
	for (int i = 0; i < kWrites; i++) {
		EXPECT_EQ(4096, finish(reqs[i])) << "write " << i;
		in_caller += std::this_thread::get_id() == reqs[i]->thread();
	}
	/* Fast legs: the caller's thread writes them itself and replies (DMIO_REQ_CALLER_RUNS). */
	EXPECT_GT(in_caller, 0) << "every write went through an engine thread";
	for (int i = 0; i < kWrites; i++)
		ASSERT_TRUE(legs_hold(legs_, all_legs(3), data[i], (uint64_t)i * 4096)) << i;
	for (unsigned i = 0; i < 3; i++)
		EXPECT_EQ(0u, leg(i).pending) << "leg " << i;
}

TEST_F(MirrorWrite, PastTheEndIsShortenedAtTheEndENOSPC)
{
	add_leg("small", 1 * MiB);
	add_leg("large", 2 * MiB); /* the mirror uses its first MiB only */
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_EQ(1 * MiB, mirror_size(m_));

	std::vector<uint8_t> data = pattern(8192, 1);
	EXPECT_EQ(4096, write(data, 1 * MiB - 4096));
	std::vector<uint8_t> head(data.begin(), data.begin() + 4096);
	EXPECT_TRUE(legs_hold(legs_, all_legs(2), head, 1 * MiB - 4096));
	EXPECT_TRUE(dmio_test::all_bytes_are(read_at(legs_[1].path, 1 * MiB, 1 * MiB), 0))
	    << "the larger leg was written past the mirror's end";
	EXPECT_EQ(1 * MiB, file_size(legs_[0].path)) << "the smaller leg grew";

	/* Unaligned, through read-modify-write. */
	std::vector<uint8_t> odd = pattern(1000, 2);
	EXPECT_EQ(100, write(odd, 1 * MiB - 100));
	std::vector<uint8_t> odd_head(odd.begin(), odd.begin() + 100);
	EXPECT_TRUE(legs_hold(legs_, all_legs(2), odd_head, 1 * MiB - 100));
	EXPECT_TRUE(dmio_test::all_bytes_are(read_at(legs_[1].path, 1 * MiB, 4096), 0));

	/* At or past the end: ENOSPC, reported at once from the caller's thread. */
	for (uint64_t offset : {1 * MiB, 1 * MiB + 1, 1 * MiB + 4096, (uint64_t)UINT64_MAX - 10}) {
		Request *r = new_request("write at " + std::to_string(offset));
		mirror_write(m_, data.data(), 4096, offset, 0, Request::done, r);
		EXPECT_EQ(1, r->calls()) << "done not called before mirror_write returned";
		EXPECT_EQ(-ENOSPC, finish(r)) << "offset " << offset;
		EXPECT_EQ(std::this_thread::get_id(), r->thread());
	}
	EXPECT_EQ(1 * MiB, file_size(legs_[0].path));
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));

	/* A zero-length write does nothing. */
	EXPECT_EQ(0, write(data.data(), 0, 0));
}

TEST_F(MirrorWrite, ReadsPastTheEndAreShort)
{
	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB + 4000);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> tail = pattern(4096, 3);
	ASSERT_EQ(4096, write(tail, 1 * MiB - 4096));

	ssize_t r;
	std::vector<uint8_t> got = read(8192, 1 * MiB - 4096, &r);
	EXPECT_EQ(4096, r);
	EXPECT_TRUE(same_bytes(tail, std::vector<uint8_t>(got.begin(), got.begin() + 4096)));

	got = read(1000, 1 * MiB - 100, &r);
	EXPECT_EQ(100, r);
	EXPECT_TRUE(same_bytes(std::vector<uint8_t>(tail.end() - 100, tail.end()),
			       std::vector<uint8_t>(got.begin(), got.begin() + 100)));

	for (uint64_t offset : {1 * MiB, 1 * MiB + 1, 2 * MiB, (uint64_t)UINT64_MAX}) {
		read(4096, offset, &r);
		EXPECT_EQ(0, r) << "read at " << offset;
	}
	read(0, 0, &r);
	EXPECT_EQ(0, r);
}

/* ---- A leg that really fails ---------------------------------------------------------------- */

/*
 * Leg 1 lies on a 1 MiB tmpfs: a sparse 16 MiB file that runs out of space after about 1 MiB.
 * Writing 4 MiB never fails, leg 1 is failed once and never written again, leg 0 has everything.
 */
TEST_F(MirrorFailingLeg, LegOnFullTmpfsIsFailedAndWritesSucceed)
{
	std::string small = tmp_ / "small";
	DMIO_REQUIRE_TMPFS(new_mount(), small, "1M");
	add_leg("good", 16 * MiB);
	add_leg("doomed", 16 * MiB, small);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	uint64_t events_before = mirror_events(m_);

	std::vector<uint8_t> data = pattern(4 * MiB, 42);
	for (uint64_t off = 0; off < data.size(); off += 64 * KiB)
		ASSERT_EQ((ssize_t)(64 * KiB), write(data.data() + off, 64 * KiB, off))
		    << "write at " << off;

	leg_status st0 = leg(0), st1 = leg(1);
	EXPECT_EQ(LEG_IN_SYNC, st0.state);
	EXPECT_EQ(0u, st0.write_errors);
	EXPECT_EQ(LEG_FAILED, st1.state);
	EXPECT_GE(st1.write_errors, 1u);
	EXPECT_EQ(1u, st1.write_errors) << "sequential writes: only the first one reached leg 1";
	EXPECT_EQ(MIRROR_DEGRADED, mirror_state(m_));
	EXPECT_EQ(0x2ul, mirror_error_bits(m_));
	EXPECT_EQ(events_before + 1, mirror_events(m_));
	EXPECT_TRUE(legs_hold(legs_, {0}, data, 0));
	EXPECT_TRUE(same_bytes(data, read(data.size(), 0)));

	EXPECT_EQ(1u, count_events("LegFailed", 1)) << dump_events();
	EXPECT_EQ(0u, count_events("LegFailed", 0)) << dump_events();
	EXPECT_EQ(1u, count_events("DegradedArray", -1)) << dump_events();
	/* The log says what happened: the leg, its path, the errno and the bitset. */
	EXPECT_GE(
	    LogCapture::get().count("IOError", {"write", legs_[1].path, g_strerror(ENOSPC), "0x2"}),
	    1u)
	    << LogCapture::get().dump();
	EXPECT_EQ(1u, LogCapture::get().count("LegFailed", {legs_[1].name, "0x2"}))
	    << LogCapture::get().dump();

	/* Later writes leave leg 1 alone, even where it still has room to take them. */
	std::vector<uint8_t> before = read_at(legs_[1].path, 0, 256 * KiB);
	std::vector<uint8_t> fresh = pattern(256 * KiB, 43);
	ASSERT_EQ((ssize_t)fresh.size(), write(fresh, 0));
	ASSERT_EQ(4096, write(fresh.data(), 4096, 8 * MiB));
	EXPECT_TRUE(same_bytes(before, read_at(legs_[1].path, 0, 256 * KiB)));
	EXPECT_TRUE(legs_hold(legs_, {0}, fresh, 0));
	EXPECT_EQ(st1.write_errors, leg(1).write_errors);
	EXPECT_EQ(0u, leg(1).read_errors);
	EXPECT_EQ(events_before + 1, mirror_events(m_));
	EXPECT_EQ(1u, count_events("LegFailed", 1));

	/* Reads are served by leg 0 only. */
	for (int i = 0; i < 10; i++)
		EXPECT_EQ(0, mirror_pick_read_leg(m_));
	EXPECT_TRUE(same_bytes(fresh, read(fresh.size(), 0)));
	EXPECT_EQ(0u, leg(1).read_errors);
}

/* The same with every write in flight at once: several may fail on leg 1, none is lost. */
TEST_F(MirrorFailingLeg, ConcurrentWritesToAFillingLeg)
{
	std::string small = tmp_ / "small";
	DMIO_REQUIRE_TMPFS(new_mount(), small, "1M");
	add_leg("good", 16 * MiB);
	add_leg("doomed", 16 * MiB, small);
	add_leg("also-good", 16 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());

	std::vector<uint8_t> data = pattern(4 * MiB, 44);
	std::vector<Request *> reqs;
	for (uint64_t off = 0; off < data.size(); off += 64 * KiB) {
		Request *r = new_request("write at " + std::to_string(off));
		reqs.push_back(r);
		mirror_write(m_, data.data() + off, 64 * KiB, off, 0, Request::done, r);
	}
	for (Request *r : reqs)
		EXPECT_EQ((ssize_t)(64 * KiB), finish(r)) << r->what;

	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_GE(leg(1).write_errors, 1u);
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(LEG_IN_SYNC, state_of(2));
	EXPECT_EQ(MIRROR_DEGRADED, mirror_state(m_));
	EXPECT_EQ(0x2ul, mirror_error_bits(m_));
	EXPECT_EQ(1u, mirror_events(m_)) << "one leg failed once";
	EXPECT_EQ(1u, count_events("LegFailed", 1)) << dump_events();
	EXPECT_TRUE(legs_hold(legs_, {0, 2}, data, 0));
	EXPECT_TRUE(same_bytes(data, read(data.size(), 0)));
}

/*
 * Every leg fails the write: the caller gets the (majority) errno, and no leg is failed -- the
 * last in-sync leg never is, and none of them missed an acknowledged write.
 */
TEST_F(MirrorFailingLeg, AllLegsFailAWrite)
{
	std::string d0 = tmp_ / "full0", d1 = tmp_ / "full1";
	DMIO_REQUIRE_TMPFS(new_mount(), d0, "1M");
	DMIO_REQUIRE_TMPFS(new_mount(), d1, "1M");
	add_leg("a", 16 * MiB, d0);
	add_leg("b", 16 * MiB, d1);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(fill_filesystem(d0));
	ASSERT_NO_FATAL_FAILURE(fill_filesystem(d1));

	std::vector<uint8_t> data = pattern(64 * KiB, 45);
	EXPECT_EQ(-ENOSPC, write(data, 0));
	EXPECT_EQ(-ENOSPC, write(data.data() + 1, 1000, 3)) << "read-modify-write";
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
	EXPECT_EQ(2u, leg(0).write_errors);
	EXPECT_EQ(2u, leg(1).write_errors);
	EXPECT_EQ(0x3ul, mirror_error_bits(m_));
	EXPECT_EQ(0u, mirror_events(m_));
	EXPECT_EQ(0u, count_events("LegFailed", 0) + count_events("LegFailed", 1)) << dump_events();

	/* Make room again: both legs take writes, the mirror is still whole. */
	ASSERT_EQ(0, unlink((d0 + "/filler").c_str()));
	ASSERT_EQ(0, unlink((d1 + "/filler").c_str()));
	EXPECT_EQ((ssize_t)data.size(), write(data, 0));
	EXPECT_TRUE(legs_hold(legs_, {0, 1}, data, 0));
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
}

/* Two legs of three fail the same write: both are failed, the write succeeds. */
TEST_F(MirrorFailingLeg, TwoOfThreeLegsFailAWrite)
{
	std::string full = tmp_ / "full";
	DMIO_REQUIRE_TMPFS(new_mount(), full, "1M");
	add_leg("good", 16 * MiB);
	add_leg("bad1", 16 * MiB, full);
	add_leg("bad2", 16 * MiB, full);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(fill_filesystem(full));

	std::vector<uint8_t> data = pattern(64 * KiB, 46);
	EXPECT_EQ((ssize_t)data.size(), write(data, 128 * KiB));
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_EQ(LEG_FAILED, state_of(2));
	EXPECT_EQ(MIRROR_DEGRADED, mirror_state(m_));
	EXPECT_EQ(0x6ul, mirror_error_bits(m_));
	EXPECT_EQ(2u, mirror_events(m_));
	EXPECT_EQ(1u, count_events("LegFailed", 1)) << dump_events();
	EXPECT_EQ(1u, count_events("LegFailed", 2)) << dump_events();
	EXPECT_TRUE(legs_hold(legs_, {0}, data, 128 * KiB));
	EXPECT_TRUE(same_bytes(data, read(data.size(), 128 * KiB)));
}

/* ---- Reads ---------------------------------------------------------------------------------- */

/* A leg file truncated under the mirror: reads past its new end fail with EIO. */
TEST_F(MirrorRead, ReadErrorIsRetriedOnTheOtherLeg)
{
	policy_ = READ_POLICY_PRIMARY; /* leg 0 is read first */
	add_leg("short", 1 * MiB);
	add_leg("whole", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> data = pattern(1 * MiB, 50);
	ASSERT_EQ((ssize_t)data.size(), write(data, 0));
	ASSERT_NO_FATAL_FAILURE(truncate_file(legs_[0].path, 512 * KiB));

	ssize_t r;
	std::vector<uint8_t> got = read(64 * KiB, 768 * KiB, &r);
	EXPECT_EQ((ssize_t)(64 * KiB), r);
	EXPECT_TRUE(same_bytes(
	    std::vector<uint8_t>(data.begin() + 768 * KiB, data.begin() + 832 * KiB), got));
	EXPECT_EQ(1u, leg(0).read_errors);
	EXPECT_EQ(0u, leg(0).write_errors);
	EXPECT_EQ(LEG_FAILED, state_of(0));
	EXPECT_EQ(0u, leg(1).read_errors);
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ(MIRROR_DEGRADED, mirror_state(m_));
	EXPECT_EQ(0x1ul, mirror_error_bits(m_));
	EXPECT_EQ(1u, mirror_events(m_));
	EXPECT_EQ(1u, count_events("LegFailed", 0)) << dump_events();
	EXPECT_EQ(1u, count_events("DegradedArray", -1)) << dump_events();
	EXPECT_GE(LogCapture::get().count("IOError", {"read", legs_[0].path, "0x1"}), 1u)
	    << LogCapture::get().dump();

	/* Everything reads right from the survivor, and the failed leg is not read again. */
	EXPECT_TRUE(same_bytes(data, read(data.size(), 0)));
	EXPECT_EQ(1u, leg(0).read_errors);
}

TEST_F(MirrorRead, UnalignedReadErrorIsRetried)
{
	policy_ = READ_POLICY_PRIMARY;
	add_leg("short", 1 * MiB);
	add_leg("whole", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> data = pattern(1 * MiB, 51);
	ASSERT_EQ((ssize_t)data.size(), write(data, 0));
	ASSERT_NO_FATAL_FAILURE(truncate_file(legs_[0].path, 512 * KiB));

	ssize_t r;
	std::vector<uint8_t> got = read(1000, 768 * KiB + 3, &r);
	EXPECT_EQ(1000, r);
	EXPECT_TRUE(same_bytes(
	    std::vector<uint8_t>(data.begin() + 768 * KiB + 3, data.begin() + 768 * KiB + 1003),
	    got));
	EXPECT_EQ(1u, leg(0).read_errors);
	EXPECT_EQ(LEG_FAILED, state_of(0));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
}

TEST_F(MirrorRead, RoundRobinReadErrorFailsOnlyTheBadLeg)
{
	policy_ = READ_POLICY_ROUND_ROBIN;
	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB);
	add_leg("c", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> data = pattern(1 * MiB, 52);
	ASSERT_EQ((ssize_t)data.size(), write(data, 0));
	ASSERT_NO_FATAL_FAILURE(truncate_file(legs_[1].path, 0));

	for (int i = 0; i < 12; i++) {
		uint64_t off = (uint64_t)i * 8192;
		EXPECT_TRUE(same_bytes(std::vector<uint8_t>(data.begin() + (ptrdiff_t)off,
							    data.begin() + (ptrdiff_t)off + 8192),
				       read(8192, off)))
		    << "read " << i;
	}
	EXPECT_EQ(1u, leg(1).read_errors) << "leg 1 is failed at its first error";
	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(LEG_IN_SYNC, state_of(2));
	EXPECT_EQ(0u, leg(0).read_errors + leg(2).read_errors);
	EXPECT_EQ(0x2ul, mirror_error_bits(m_));
}

/* The only leg that can serve fails the read: the caller gets the errno, the leg stays. */
TEST_F(MirrorRead, OnlyInSyncLegFailsARead)
{
	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> data = pattern(1 * MiB, 53);
	ASSERT_EQ((ssize_t)data.size(), write(data, 0));
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	ASSERT_NO_FATAL_FAILURE(truncate_file(legs_[0].path, 512 * KiB));

	ssize_t r;
	read(64 * KiB, 768 * KiB, &r);
	EXPECT_EQ(-EIO, r);
	read(1000, 768 * KiB + 1, &r);
	EXPECT_EQ(-EIO, r) << "unaligned";
	EXPECT_EQ(LEG_IN_SYNC, state_of(0)) << "the last in-sync leg was failed";
	EXPECT_EQ(2u, leg(0).read_errors);
	EXPECT_EQ(0u, leg(1).read_errors) << "a failed leg was read";
	EXPECT_EQ(MIRROR_DEGRADED, mirror_state(m_));
	EXPECT_EQ(0x1ul, mirror_error_bits(m_));
	EXPECT_EQ(1u, mirror_events(m_)) << "only the operator's fail";
	/* What the leg still has reads fine. */
	EXPECT_TRUE(same_bytes(std::vector<uint8_t>(data.begin(), data.begin() + 512 * KiB),
			       read(512 * KiB, 0)));
}

TEST_F(MirrorRead, SingleLegReadErrorKeepsTheMirrorClean)
{
	add_leg("only", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(truncate_file(legs_[0].path, 4096));
	ssize_t r;
	read(4096, 8192, &r);
	EXPECT_EQ(-EIO, r);
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
	EXPECT_EQ(1u, leg(0).read_errors);
	EXPECT_EQ(0u, mirror_events(m_));
}

/* Both legs fail the read: the first is failed (another leg remained), the last is not. */
TEST_F(MirrorRead, EveryLegFailsARead)
{
	policy_ = READ_POLICY_PRIMARY;
	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(truncate_file(legs_[0].path, 4096));
	ASSERT_NO_FATAL_FAILURE(truncate_file(legs_[1].path, 4096));
	ssize_t r;
	read(4096, 64 * KiB, &r);
	EXPECT_EQ(-EIO, r);
	EXPECT_EQ(1u, leg(0).read_errors);
	EXPECT_EQ(1u, leg(1).read_errors);
	EXPECT_EQ(LEG_FAILED, state_of(0));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ(MIRROR_DEGRADED, mirror_state(m_));
	EXPECT_EQ(0x2ul, mirror_error_bits(m_)) << "the last request that failed was on leg 1";
}

/* A read-modify-write whose read fails on one leg still writes, through the other. */
TEST_F(MirrorRead, ReadModifyWriteSurvivesAReadError)
{
	policy_ = READ_POLICY_PRIMARY;
	add_leg("short", 1 * MiB);
	add_leg("whole", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> model = pattern(1 * MiB, 54);
	ASSERT_EQ((ssize_t)model.size(), write(model, 0));
	ASSERT_NO_FATAL_FAILURE(truncate_file(legs_[0].path, 512 * KiB));

	std::vector<uint8_t> data = pattern(100, 55);
	EXPECT_EQ(100, write(data, 768 * KiB + 10));
	std::copy(data.begin(), data.end(), model.begin() + 768 * KiB + 10);
	EXPECT_EQ(LEG_FAILED, state_of(0));
	EXPECT_EQ(1u, leg(0).read_errors);
	EXPECT_TRUE(legs_hold(legs_, {1}, model, 0));
	/*
	 * The read error no longer fails the leg in the completion: its correction (readfix.c)
	 * finds the leg shrunk and fails it, maybe after the write reached it; not read again.
	 */
	EXPECT_TRUE(same_bytes(model, read(model.size(), 0)));
}

/* A dying leg cannot flood the log: I/O error lines are rate-limited per leg. */
TEST_F(MirrorRead, IoErrorLogIsRateLimited)
{
	add_leg("dying", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(truncate_file(legs_[0].path, 0));
	constexpr int kErrors = 60;
	for (int i = 0; i < kErrors; i++) {
		ssize_t r;
		read(512, (uint64_t)i * 512, &r);
		ASSERT_EQ(-EIO, r);
	}
	EXPECT_EQ((uint64_t)kErrors, leg(0).read_errors);
	size_t lines = LogCapture::get().count("IOError", {legs_[0].name});
	EXPECT_GE(lines, 1u);
	EXPECT_LE(lines, (size_t)kErrors / 3) << LogCapture::get().dump();
}

/* ---- Read policy ---------------------------------------------------------------------------- */

TEST_F(MirrorReadPolicy, PrimaryIsTheFirstInSyncLeg)
{
	policy_ = READ_POLICY_PRIMARY;
	for (int i = 0; i < 3; i++)
		add_leg("l" + std::to_string(i), 64 * KiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ((std::map<int, int>{{0, 20}}), picks(20));
	set_pending(0, 1000); /* load does not matter to primary */
	EXPECT_EQ((std::map<int, int>{{0, 20}}), picks(20));
	clear_pending();
	ASSERT_EQ(0, mirror_fail_leg(m_, 0, nullptr));
	EXPECT_EQ((std::map<int, int>{{1, 20}}), picks(20));
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	EXPECT_EQ((std::map<int, int>{{2, 20}}), picks(20));
}

TEST_F(MirrorReadPolicy, PrimarySkipsWriteMostlyLegs)
{
	policy_ = READ_POLICY_PRIMARY;
	add_leg("remote", 64 * KiB, "", true);
	add_leg("a", 64 * KiB);
	add_leg("b", 64 * KiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ((std::map<int, int>{{1, 20}}), picks(20));
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	EXPECT_EQ((std::map<int, int>{{2, 20}}), picks(20));
	ASSERT_EQ(0, mirror_fail_leg(m_, 2, nullptr));
	EXPECT_EQ((std::map<int, int>{{0, 20}}), picks(20)) << "write-mostly: nothing else left";
}

TEST_F(MirrorReadPolicy, RoundRobinCyclesOverTheLegs)
{
	policy_ = READ_POLICY_ROUND_ROBIN;
	for (int i = 0; i < 3; i++)
		add_leg("l" + std::to_string(i), 64 * KiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<int> seq;
	EXPECT_EQ((std::map<int, int>{{0, 100}, {1, 100}, {2, 100}}), picks(300, &seq));
	/* Every three consecutive picks name the three legs. */
	for (size_t i = 0; i + 3 <= seq.size(); i++) {
		std::set<int> window(seq.begin() + (ptrdiff_t)i, seq.begin() + (ptrdiff_t)i + 3);
		ASSERT_EQ(3u, window.size()) << "picks " << i << ".." << i + 2;
	}
	set_pending(0, 1000); /* load does not matter to round-robin */
	EXPECT_EQ((std::map<int, int>{{0, 10}, {1, 10}, {2, 10}}), picks(30));
	clear_pending();
}

TEST_F(MirrorReadPolicy, RoundRobinSkipsFailedAndWriteMostlyLegs)
{
	policy_ = READ_POLICY_ROUND_ROBIN;
	add_leg("a", 64 * KiB);
	add_leg("b", 64 * KiB);
	add_leg("remote", 64 * KiB, "", true);
	add_leg("d", 64 * KiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	std::map<int, int> count = picks(400);
	EXPECT_EQ(0, count.count(1)) << "a failed leg was chosen";
	EXPECT_EQ(0, count.count(2)) << "a write-mostly leg was chosen";
	EXPECT_EQ(400, count[0] + count[3]);
	EXPECT_GT(count[0], 0);
	EXPECT_GT(count[3], 0);
}

/*
 * Round-robin spreads the reads evenly over the legs that can serve them, also when some legs
 * are failed or write-mostly: with two of four eligible, they alternate.
 */
TEST_F(MirrorReadPolicy, RoundRobinIsEvenOverTheLegsThatCanServe)
{
	policy_ = READ_POLICY_ROUND_ROBIN;
	add_leg("a", 64 * KiB);
	add_leg("b", 64 * KiB);
	add_leg("c", 64 * KiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	std::map<int, int> count = picks(300);
	EXPECT_EQ(150, count[0]) << "leg 0: " << count[0] << ", leg 2: " << count[2];
	EXPECT_EQ(150, count[2]) << "leg 0: " << count[0] << ", leg 2: " << count[2];
}

TEST_F(MirrorReadPolicy, LeastPendingPicksTheLegWithFewestRequests)
{
	policy_ = READ_POLICY_LEAST_PENDING;
	for (int i = 0; i < 3; i++)
		add_leg("l" + std::to_string(i), 64 * KiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	struct {
		unsigned pending[3];
		std::set<int> expected;
	} cases[] = {
	    {{5, 2, 7}, {1}},	 {{0, 3, 3}, {0}},	 {{4, 4, 1}, {2}},
	    {{2, 2, 5}, {0, 1}}, {{9, 9, 9}, {0, 1, 2}},
	};
	for (auto &c : cases) {
		for (unsigned i = 0; i < 3; i++)
			set_pending(i, c.pending[i]);
		for (int n = 0; n < 5; n++) {
			int got = mirror_pick_read_leg(m_);
			EXPECT_EQ(1u, c.expected.count(got))
			    << "pending " << c.pending[0] << "," << c.pending[1] << ","
			    << c.pending[2] << ": picked " << got;
		}
	}
	/* A failed leg is never chosen, even idle. */
	set_pending(0, 10);
	set_pending(1, 0);
	set_pending(2, 5);
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	EXPECT_EQ((std::map<int, int>{{2, 10}}), picks(10));
	clear_pending();
}

TEST_F(MirrorReadPolicy, WriteMostlyOnlyWhenNothingElseCanServe)
{
	policy_ = READ_POLICY_LEAST_PENDING;
	add_leg("local", 64 * KiB);
	add_leg("remote", 64 * KiB, "", true);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	set_pending(0, 1000);
	set_pending(1, 0);
	EXPECT_EQ((std::map<int, int>{{0, 10}}), picks(10))
	    << "an idle write-mostly leg was chosen";
	clear_pending();
	ASSERT_EQ(0, mirror_fail_leg(m_, 0, nullptr));
	EXPECT_EQ((std::map<int, int>{{1, 10}}), picks(10));
}

TEST_F(MirrorReadPolicy, OnlyWriteMostlyLegsStillFollowThePolicy)
{
	policy_ = READ_POLICY_LEAST_PENDING;
	add_leg("r0", 64 * KiB, "", true);
	add_leg("r1", 64 * KiB, "", true);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	set_pending(0, 3);
	set_pending(1, 1);
	EXPECT_EQ((std::map<int, int>{{1, 10}}), picks(10));
	clear_pending();
}

TEST_F(MirrorReadPolicy, FailedLegsAreNeverChosen)
{
	for (read_policy p :
	     {READ_POLICY_LEAST_PENDING, READ_POLICY_ROUND_ROBIN, READ_POLICY_PRIMARY}) {
		SCOPED_TRACE(config_read_policy_name(p));
		policy_ = p;
		legs_.clear();
		for (int i = 0; i < 4; i++)
			add_leg("l" + std::to_string(i), 64 * KiB);
		ASSERT_NO_FATAL_FAILURE(open_ok());
		ASSERT_EQ(0, mirror_fail_leg(m_, 0, nullptr));
		ASSERT_EQ(0, mirror_fail_leg(m_, 2, nullptr));
		std::map<int, int> count = picks(100);
		EXPECT_EQ(0, count.count(0));
		EXPECT_EQ(0, count.count(2));
		EXPECT_EQ(0, count.count(-1));
		EXPECT_EQ(100, count[1] + count[3]);
		close_mirror();
	}
}

/* The policy is what mirror_read() really uses: the legs hold different bytes, on purpose. */
TEST_F(MirrorReadPolicy, ReadsGoWhereThePolicySays)
{
	std::vector<uint8_t> a = pattern(64 * KiB, 60), b = pattern(64 * KiB, 61);
	auto setup = [&](read_policy p, bool first_write_mostly) {
		close_mirror();
		legs_.clear();
		policy_ = p;
		add_leg("a", 64 * KiB, "", first_write_mostly);
		add_leg("b", 64 * KiB);
		dmio_test::write_file(legs_[0].path, a);
		dmio_test::write_file(legs_[1].path, b);
		open_ok();
	};
	auto from = [&]() -> int {
		std::vector<uint8_t> got = read(4096, 0);
		if (std::equal(got.begin(), got.end(), a.begin()))
			return 0;
		if (std::equal(got.begin(), got.end(), b.begin()))
			return 1;
		return -1;
	};

	ASSERT_NO_FATAL_FAILURE(setup(READ_POLICY_PRIMARY, false));
	for (int i = 0; i < 6; i++)
		EXPECT_EQ(0, from()) << "primary, read " << i;

	ASSERT_NO_FATAL_FAILURE(setup(READ_POLICY_ROUND_ROBIN, false));
	int first = from();
	ASSERT_GE(first, 0);
	for (int i = 1; i < 8; i++)
		EXPECT_EQ((first + i) % 2, from()) << "round-robin, read " << i;

	ASSERT_NO_FATAL_FAILURE(setup(READ_POLICY_LEAST_PENDING, false));
	set_pending(0, 1000);
	for (int i = 0; i < 6; i++)
		EXPECT_EQ(1, from()) << "least-pending, leg 0 busy, read " << i;
	clear_pending();
	set_pending(1, 1000);
	for (int i = 0; i < 6; i++)
		EXPECT_EQ(0, from()) << "least-pending, leg 1 busy, read " << i;
	clear_pending();

	ASSERT_NO_FATAL_FAILURE(setup(READ_POLICY_LEAST_PENDING, true));
	for (int i = 0; i < 6; i++)
		EXPECT_EQ(1, from()) << "write-mostly leg 0 was read, read " << i;
	ASSERT_NO_FATAL_FAILURE(setup(READ_POLICY_PRIMARY, true));
	for (int i = 0; i < 6; i++)
		EXPECT_EQ(1, from()) << "primary: write-mostly leg 0 was read, read " << i;
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	EXPECT_EQ(0, from()) << "only the write-mostly leg is left";
}

/* ---- Operator failure and state names ------------------------------------------------------- */

TEST_F(MirrorFailLeg, ErrorsAndEvents)
{
	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ(-EINVAL, mirror_fail_leg(m_, 2, nullptr));
	EXPECT_EQ(-EINVAL, mirror_fail_leg(m_, UINT_MAX, nullptr));
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));

	EXPECT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_EQ(MIRROR_DEGRADED, mirror_state(m_));
	EXPECT_EQ(1u, mirror_events(m_));
	EXPECT_EQ(0u, leg(1).read_errors + leg(1).write_errors) << "no I/O error happened";
	EXPECT_EQ(1u, count_events("LegFailed", 1)) << dump_events();
	EXPECT_EQ(1u, count_events("DegradedArray", -1)) << dump_events();
	for (const Event &e : events())
		if (e.name == "LegFailed") {
			EXPECT_NE(std::string::npos, e.message.find("b")) << e.message;
			EXPECT_NE(std::string::npos, e.message.find(legs_[1].path)) << e.message;
			EXPECT_EQ(G_LOG_LEVEL_WARNING, e.level);
		}

	EXPECT_EQ(-EALREADY, mirror_fail_leg(m_, 1, nullptr));
	EXPECT_EQ(-EBUSY, mirror_fail_leg(m_, 0, nullptr)) << "the last in-sync leg";
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(1u, mirror_events(m_));
	EXPECT_EQ(1u, count_events("LegFailed", 1));
	EXPECT_EQ(0u, count_events("LegFailed", 0));
}

TEST_F(MirrorFailLeg, SingleLegCannotBeFailed)
{
	add_leg("only", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ(-EBUSY, mirror_fail_leg(m_, 0, nullptr));
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
	EXPECT_EQ(0u, mirror_events(m_));
}

TEST_F(MirrorFailLeg, FailedLegIsNotWrittenAnyMore)
{
	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB);
	add_leg("c", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> old_data = pattern(256 * KiB, 70);
	ASSERT_EQ((ssize_t)old_data.size(), write(old_data, 0));
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));

	std::vector<uint8_t> fresh = pattern(256 * KiB, 71);
	EXPECT_EQ((ssize_t)fresh.size(), write(fresh, 0));
	EXPECT_EQ(100, write(fresh.data(), 100, 300 * KiB + 7));
	EXPECT_EQ(0, flush());
	EXPECT_EQ(4096, write_zeroes(512 * KiB, 4096));
	EXPECT_TRUE(legs_hold(legs_, {0, 2}, fresh, 0));
	EXPECT_TRUE(legs_hold(legs_, {1}, old_data, 0)) << "a failed leg was written";
	EXPECT_TRUE(dmio_test::all_bytes_are(read_at(legs_[1].path, 300 * KiB, 4096), 0));
	EXPECT_EQ(MIRROR_DEGRADED, mirror_state(m_));
}

TEST(MirrorNames, StateNames)
{
	EXPECT_STREQ("clean", mirror_state_name(MIRROR_CLEAN));
	EXPECT_STREQ("degraded", mirror_state_name(MIRROR_DEGRADED));
	EXPECT_STREQ("failed", mirror_state_name(MIRROR_FAILED));
	EXPECT_STREQ("unknown", mirror_state_name((enum mirror_state)42));
	EXPECT_STREQ("in_sync", leg_state_name(LEG_IN_SYNC));
	EXPECT_STREQ("failed", leg_state_name(LEG_FAILED));
	EXPECT_STREQ("unknown", leg_state_name((enum leg_state)42));
}

/* ---- Flush, discard, write-zeroes ----------------------------------------------------------- */

/*
 * A flush that succeeded made every write before it durable on every in-sync leg: a power cut
 * right after it keeps them, whatever the disks' caches lose; before it, they can be lost.  With
 * a failed leg the flush still succeeds and makes the survivor durable.
 */
TEST_F(MirrorOps, FlushSucceeds)
{
	CrashLegs disks;
	legs_.push_back({"a", disks.add("a", 1 * MiB), false});
	legs_.push_back({"b", disks.add("b", 1 * MiB), false});
	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ(0, flush());
	std::vector<uint8_t> data = pattern(64 * KiB, 80);
	ASSERT_EQ((ssize_t)data.size(), write(data, 0));
	EXPECT_LT(disks.survives(dmio_crash_seq(), data, 0), 16u)
	    << "no cut lost a write that was never flushed: the test cannot tell a flush from none";
	EXPECT_EQ(0, flush());
	EXPECT_EQ(16u, disks.survives(dmio_crash_seq(), data, 0)) << "a flushed write was lost";

	ASSERT_EQ(0, mirror_fail_leg(m_, 0, nullptr));
	std::vector<uint8_t> more = pattern(64 * KiB, 81);
	ASSERT_EQ((ssize_t)more.size(), write(more, 128 * KiB));
	EXPECT_EQ(0, flush()) << "flush with a failed leg";
	EXPECT_EQ(0u, leg(1).write_errors);
	close_mirror();
}

/* The same, leg b only: what the failed leg a holds does not matter. */
TEST_F(MirrorOps, FlushWithAFailedLegMakesTheSurvivorDurable)
{
	CrashLegs a, b;
	legs_.push_back({"a", a.add("a", 1 * MiB), false});
	legs_.push_back({"b", b.add("b", 1 * MiB), false});
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_EQ(0, mirror_fail_leg(m_, 0, nullptr));
	std::vector<uint8_t> data = pattern(64 * KiB, 82);
	ASSERT_EQ((ssize_t)data.size(), write(data, 128 * KiB));
	EXPECT_EQ(0, flush());
	EXPECT_EQ(16u, b.survives(dmio_crash_seq(), data, 128 * KiB));
	close_mirror();
}

TEST_F(MirrorOps, DiscardLeavesHolesThatReadAsZeroes)
{
	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> model = pattern(1 * MiB, 81);
	ASSERT_EQ((ssize_t)model.size(), write(model, 0));
	ASSERT_EQ(0, flush());
	uint64_t blocks_before[2] = {dmio_test::allocated_blocks(legs_[0].path),
				     dmio_test::allocated_blocks(legs_[1].path)};

	EXPECT_EQ((ssize_t)(512 * KiB), discard(128 * KiB, 512 * KiB));
	std::fill(model.begin() + 128 * KiB, model.begin() + 640 * KiB, 0);
	EXPECT_TRUE(same_bytes(model, read(model.size(), 0)));
	EXPECT_TRUE(legs_hold(legs_, all_legs(2), model, 0));
	for (unsigned i = 0; i < 2; i++) {
		SCOPED_TRACE("leg " + std::to_string(i));
		EXPECT_EQ((off_t)(128 * KiB), seek(legs_[i].path, 128 * KiB, SEEK_HOLE));
		EXPECT_EQ((off_t)(640 * KiB), seek(legs_[i].path, 128 * KiB, SEEK_DATA));
		EXPECT_LE(dmio_test::allocated_blocks(legs_[i].path) + 512 * KiB / 512,
			  blocks_before[i]);
	}
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
}

TEST_F(MirrorOps, UnalignedDiscardZeroesItsEdgesOnly)
{
	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> model = pattern(1 * MiB, 82);
	ASSERT_EQ((ssize_t)model.size(), write(model, 0));

	struct {
		uint64_t offset, len;
	} cases[] = {
	    {1000, 10000},	 /* partial head and tail sectors around whole ones */
	    {100, 50},		 /* inside one sector */
	    {600000 - 7, 520},	 /* two partial sectors, nothing whole */
	    {300 * KiB, 1},	 /* one byte */
	    {400 * KiB + 3, 509} /* the rest of a sector */
	};
	for (auto c : cases) {
		SCOPED_TRACE("discard " + std::to_string(c.len) + " at " +
			     std::to_string(c.offset));
		ssize_t r = discard(c.offset, c.len);
		EXPECT_EQ((ssize_t)c.len, r);
		std::fill(model.begin() + (ptrdiff_t)c.offset,
			  model.begin() + (ptrdiff_t)(c.offset + c.len), 0);
		EXPECT_TRUE(legs_hold(legs_, all_legs(2), model, 0));
		EXPECT_TRUE(same_bytes(model, read(model.size(), 0)));
	}
}

TEST_F(MirrorOps, WriteZeroesMakesZeroes)
{
	add_leg("a", 1 * MiB);
	add_leg("b", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> model = pattern(1 * MiB, 83);
	ASSERT_EQ((ssize_t)model.size(), write(model, 0));

	struct {
		uint64_t offset, len;
		unsigned flags;
	} cases[] = {
	    {64 * KiB, 128 * KiB, 0},
	    {256 * KiB, 4096, MIRROR_FUA},
	    {513, 2000, 0},
	    {700 * KiB + 1, 1, MIRROR_FUA},
	};
	for (auto c : cases) {
		SCOPED_TRACE("write-zeroes " + std::to_string(c.len) + " at " +
			     std::to_string(c.offset));
		EXPECT_EQ((ssize_t)c.len, write_zeroes(c.offset, c.len, c.flags));
		std::fill(model.begin() + (ptrdiff_t)c.offset,
			  model.begin() + (ptrdiff_t)(c.offset + c.len), 0);
		EXPECT_TRUE(legs_hold(legs_, all_legs(2), model, 0));
		EXPECT_TRUE(same_bytes(model, read(model.size(), 0)));
	}
}

TEST_F(MirrorOps, DiscardAndZeroesPastTheEndAreClipped)
{
	add_leg("a", 1 * MiB);
	add_leg("b", 2 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> tail = pattern(1 * MiB, 84);
	dmio_test::write_at(legs_[1].path, 1 * MiB, tail); /* beyond the mirror */
	std::vector<uint8_t> model = pattern(1 * MiB, 85);
	ASSERT_EQ((ssize_t)model.size(), write(model, 0));

	EXPECT_GE(discard(1 * MiB - 8192, 64 * KiB), 0);
	EXPECT_GE(write_zeroes(1 * MiB - 16384 - 100, 64 * KiB), 0);
	std::fill(model.end() - 16384 - 100, model.end(), 0);
	EXPECT_TRUE(legs_hold(legs_, all_legs(2), model, 0));
	EXPECT_TRUE(legs_hold(legs_, {1}, tail, 1 * MiB)) << "written past the mirror's end";
	EXPECT_EQ(1 * MiB, file_size(legs_[0].path));
	/* Starting at the end: nothing to do, no error. */
	EXPECT_GE(discard(1 * MiB, 4096), 0);
	EXPECT_GE(write_zeroes(1 * MiB, 4096), 0);
	EXPECT_TRUE(legs_hold(legs_, {1}, tail, 1 * MiB));
}

/* ---- Logs --------------------------------------------------------------------------------- */

/*
 * Under journald the events are fields, not only text: FUSEMIRROR_EVENT (the stable event name),
 * FUSEMIRROR_MIRROR, FUSEMIRROR_LEG, FUSEMIRROR_LEG_PATH, and FUSEMIRROR_ERRNO for I/O errors.
 */
TEST_F(MirrorLog, EventsCarryTheirJournalFields)
{
	name_ = "journalled";
	policy_ = READ_POLICY_PRIMARY;
	add_leg("first", 1 * MiB);
	add_leg("second", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(truncate_file(legs_[0].path, 4096));
	ssize_t r;
	read(4096, 64 * KiB, &r);
	ASSERT_EQ(4096, r);
	ASSERT_EQ(LEG_FAILED, state_of(0));

	int seen = 0;
	for (const LogLine &l : LogCapture::get().lines()) {
		SCOPED_TRACE(l.message);
		if (l.is_event("IOError")) {
			seen |= 1;
			EXPECT_EQ("IOError", l.field("FUSEMIRROR_EVENT"));
			EXPECT_EQ("journalled", l.field("FUSEMIRROR_MIRROR"));
			EXPECT_EQ("first", l.field("FUSEMIRROR_LEG"));
			EXPECT_EQ(std::to_string(EIO), l.field("FUSEMIRROR_ERRNO"));
		} else if (l.is_event("LegFailed")) {
			seen |= 2;
			EXPECT_EQ("LegFailed", l.field("FUSEMIRROR_EVENT"));
			EXPECT_EQ("journalled", l.field("FUSEMIRROR_MIRROR"));
			EXPECT_EQ("first", l.field("FUSEMIRROR_LEG"));
			EXPECT_EQ(legs_[0].path, l.field("FUSEMIRROR_LEG_PATH"));
		} else if (l.is_event("DegradedArray")) {
			seen |= 4;
			EXPECT_EQ("DegradedArray", l.field("FUSEMIRROR_EVENT"));
			EXPECT_EQ("journalled", l.field("FUSEMIRROR_MIRROR"));
		}
	}
	EXPECT_EQ(7, seen) << "missing lines (1 IOError, 2 LegFailed, 4 DegradedArray):\n"
			   << LogCapture::get().dump();
}

} // namespace
