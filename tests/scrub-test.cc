/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Scrub (src/mirror/scrub.c) on real leg files through mirror_open: check finds exactly the
 * sectors that differ and changes nothing, merges ranges across its chunks, lists at most
 * SCRUB_MAX_RANGES and counts the rest; repair takes the majority of three legs, the
 * authoritative leg of two (and on a tie), the named source over a majority; the refusals.
 */
#include "mirror-util.h"

#include <cerrno>

using namespace mirror_test;

namespace
{

constexpr uint64_t kSize = 4 * MiB;

class Scrub : public MirrorTest
{
      protected:
	/* n legs holding the same pattern (metadata = none: leg offsets are mirror offsets). */
	void open_legs(unsigned n)
	{
		name_ = "sc";
		for (unsigned i = 0; i < n; i++)
			add_leg("leg" + std::to_string(i), kSize);
		ASSERT_NO_FATAL_FAILURE(open_ok());
		data_ = pattern(kSize, 11);
		ASSERT_EQ((ssize_t)kSize, write(data_, 0));
		close_mirror();
	}
	void smash(unsigned leg, uint64_t offset, uint64_t len, uint32_t seed)
	{
		dmio_test::write_at(legs_[leg].path, offset, pattern(len, seed));
	}
	check_status run(bool repair, int source = -1)
	{
		g_autoptr(GError) error = nullptr;
		check_status st;

		EXPECT_EQ(0, mirror_check(m_, repair, source, &error))
		    << (error ? error->message : "");
		EXPECT_TRUE(wait_resync()) << "the pass did not end";
		mirror_check_status(m_, &st);
		EXPECT_FALSE(st.active);
		return st;
	}
	std::string ranges(const check_status &st)
	{
		g_autofree char *text = mirror_check_ranges_text(&st);
		return text;
	}
	std::vector<uint8_t> data_;
};

TEST_F(Scrub, CheckFindsExactlyTheSectorsAndChangesNothing)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(3));
	smash(1, 4096 + 512, 512, 1);
	smash(1, 5120, 1024, 2);       /* adjacent to the first: merged */
	smash(2, MiB - 1024, 2048, 3); /* across the 1 MiB chunk boundary: merged */
	smash(2, 3 * MiB, 4096, 4);
	std::vector<std::vector<uint8_t>> before;
	for (const LegSpec &l : legs_)
		before.push_back(read_at(l.path, 0, kSize));
	ASSERT_NO_FATAL_FAILURE(open_ok());
	check_status st = run(false);
	EXPECT_EQ((512u + 1024 + 2048 + 4096) / 512, st.mismatch_cnt);
	EXPECT_EQ("4608+1536 1047552+2048 3145728+4096", ranges(st));
	EXPECT_EQ(0u, st.ranges_dropped);
	EXPECT_EQ(0u, st.repaired);
	EXPECT_EQ(1u, count_events("MismatchesFound", -1)) << dump_events();
	close_mirror();
	for (size_t i = 0; i < legs_.size(); i++)
		EXPECT_TRUE(read_at(legs_[i].path, 0, kSize) == before[i]) << "leg " << i;
}

TEST_F(Scrub, RepairTakesTheMajority)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(3));
	smash(0, 8192, 512, 1); /* the authoritative leg is the one outvoted */
	smash(2, 2 * MiB, 8192, 2);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	check_status st = run(true);
	EXPECT_EQ("8192+512 2097152+8192", ranges(st));
	EXPECT_EQ(4096u + 8192, st.repaired);
	EXPECT_EQ(0u, run(false).mismatch_cnt);
	close_mirror();
	for (size_t i = 0; i < legs_.size(); i++)
		EXPECT_TRUE(read_at(legs_[i].path, 0, kSize) == data_) << "leg " << i;
	EXPECT_EQ(1u, LogCapture::get().count("MismatchRepaired",
					      {"leg 0 (leg0) at offset 8192 length 4096 from leg 1 "
					       "(leg1), the majority"}))
	    << LogCapture::get().dump();
}

TEST_F(Scrub, TwoLegsAndTiesTakeTheAuthoritativeLeg)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(3));
	/* Three different blocks: no majority. */
	smash(1, 0, 4096, 1);
	smash(2, 0, 4096, 2);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ(8u, run(true).mismatch_cnt);
	close_mirror();
	for (size_t i = 0; i < legs_.size(); i++)
		EXPECT_TRUE(read_at(legs_[i].path, 0, 4096) ==
			    std::vector<uint8_t>(data_.begin(), data_.begin() + 4096))
		    << "leg " << i;
	/* Legs 1 and 2 rewritten, each from leg 0. */
	EXPECT_EQ(2u, LogCapture::get().count("MismatchRepaired", {"from leg 0 (leg0), the "
								   "authoritative leg"}));
}

TEST_F(Scrub, SourceWinsOverTheMajority)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(3));
	smash(2, MiB, 4096, 7);
	std::vector<uint8_t> c = read_at(legs_[2].path, MiB, 4096);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	run(true, 2);
	close_mirror();
	for (size_t i = 0; i < legs_.size(); i++)
		EXPECT_TRUE(read_at(legs_[i].path, MiB, 4096) == c) << "leg " << i;
}

TEST_F(Scrub, RangesBeyondTheLimitAreCountedNotListed)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	for (unsigned i = 0; i < SCRUB_MAX_RANGES + 3; i++)
		smash(1, (uint64_t)i * 8192, 512, i + 1);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	check_status st = run(false);
	EXPECT_EQ(SCRUB_MAX_RANGES + 3u, st.mismatch_cnt);
	EXPECT_EQ(SCRUB_MAX_RANGES, st.nranges);
	EXPECT_EQ(3u, st.ranges_dropped);
	EXPECT_EQ((uint64_t)(SCRUB_MAX_RANGES - 1) * 8192, st.offsets[SCRUB_MAX_RANGES - 1]);
}

TEST_F(Scrub, Refusals)
{
	g_autoptr(GError) e1 = nullptr;
	g_autoptr(GError) e2 = nullptr;
	g_autoptr(GError) e3 = nullptr;
	g_autoptr(GError) e4 = nullptr;

	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	ASSERT_NO_FATAL_FAILURE(open_ok());
	mirror_set_resync_rate(m_, 1 * MiB, 1 * MiB); /* about 4 s */
	ASSERT_EQ(0, mirror_check(m_, false, -1, nullptr));
	EXPECT_EQ(MIRROR_CHECKING, mirror_state(m_));
	EXPECT_EQ(-EALREADY, mirror_check(m_, true, -1, &e1));
	EXPECT_STREQ("a check of mirror sc is running already", e1->message);
	close_mirror(); /* stops the pass */
	EXPECT_EQ(1u, count_events("CheckAborted", -1)) << dump_events();

	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ(-EINVAL, mirror_check(m_, true, 5, &e2));
	EXPECT_STREQ("leg 5 of mirror sc is not in sync: repair --source needs an in-sync leg",
		     e2->message);
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	EXPECT_EQ(-EINVAL, mirror_check(m_, true, 1, &e3));
	EXPECT_EQ(-EBUSY, mirror_check(m_, false, -1, &e4));
	EXPECT_STREQ("mirror sc has 1 in-sync leg: a check compares two or more", e4->message);
}

} // namespace
