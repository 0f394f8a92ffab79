/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A leg is who its superblock says (issue 10), through mirror_open over real leg files: slots
 * follow the superblocks whatever the config's order, names and omissions; a missing slot shows
 * the name and path its superblocks recorded; a left-out leg hot-added back returns to its slot;
 * a commit never wraps the events counter; and a commit that would write two slots with one leg
 * UUID writes nothing.
 */
/* mirror/atomics.h names the C11 atomic types for C++. */
#include "mirror-util.h"

extern "C" {
#include "mirror/mirror-internal.h"
}

using namespace mirror_test;

namespace
{

constexpr uint64_t kLegSize = 1 * MiB + 4 * MiB; /* metadata + 4 MiB of data */

class Identity : public MirrorTest
{
      protected:
	void SetUp() override
	{
		MirrorTest::SetUp();
		for (const char *n : {"a", "b", "c"})
			add_leg(n, kLegSize);
		ASSERT_NO_FATAL_FAILURE(format_legs());
		/* The first start records every slot's name and path (format_legs wrote none). */
		ASSERT_NO_FATAL_FAILURE(open_ok());
		for (unsigned i = 0; i < 3; i++)
			memcpy(uuid_[i], m_->legs[i].uuid, 16);
		close_mirror();
		all_ = legs_;
	}

	/* Slot i of the open mirror: its name, path, state and leg UUID. */
	void expect_slot(unsigned i, const std::string &name, const std::string &path,
			 enum leg_state state, unsigned uuid_of)
	{
		SCOPED_TRACE("slot " + std::to_string(i));
		leg_status st;
		mirror_leg_status(m_, i, &st);
		EXPECT_EQ(name, st.name);
		EXPECT_EQ(path, st.path);
		EXPECT_STREQ(leg_state_name(state), leg_state_name(st.state));
		EXPECT_EQ(0, memcmp(m_->legs[i].uuid, uuid_[uuid_of], 16));
	}

	uint8_t uuid_[3][16];
	std::vector<LegSpec> all_; /* a, b, c as created */
};

TEST_F(Identity, ConfigOrderNeverRenumbers)
{
	legs_ = {all_[2], all_[0], all_[1]};
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_EQ(3u, mirror_num_legs(m_));
	expect_slot(0, "a", all_[0].path, LEG_IN_SYNC, 0);
	expect_slot(1, "b", all_[1].path, LEG_IN_SYNC, 1);
	expect_slot(2, "c", all_[2].path, LEG_IN_SYNC, 2);
	close_mirror();
	/* And the superblocks still say so: no slot with another's UUID. */
	superblock sb = read_superblock(0);
	for (unsigned i = 0; i < 3; i++)
		EXPECT_EQ(0, memcmp(sb.roles[i].uuid, uuid_[i], 16)) << i;
}

TEST_F(Identity, LeftOutLegIsMissingInItsSlotWithItsRecordedNameAndPath)
{
	legs_ = {all_[0], all_[2]};
	for (int run = 0; run < 2; run++) {
		SCOPED_TRACE("start " + std::to_string(run + 1));
		ASSERT_NO_FATAL_FAILURE(open_ok());
		ASSERT_EQ(3u, mirror_num_legs(m_));
		expect_slot(0, "a", all_[0].path, LEG_IN_SYNC, 0);
		expect_slot(1, "b", all_[1].path, LEG_FAILED, 1);
		expect_slot(2, "c", all_[2].path, LEG_IN_SYNC, 2);
		std::vector<uint8_t> data(64 * KiB, (uint8_t)(0x30 + run));
		EXPECT_EQ((ssize_t)data.size(),
			  mirror_write_wait(m_, data.data(), data.size(), 0, 0));
		close_mirror();
		superblock sb = read_superblock(0); /* a's: slot 1 recorded as failed, b */
		EXPECT_EQ((uint32_t)SB_ROLE_FAILED, sb.roles[1].role);
		EXPECT_STREQ("b", sb.roles[1].name);
		EXPECT_STREQ(all_[1].path.c_str(), sb.roles[1].path);
	}
}

TEST_F(Identity, RenamedGroupRenamesTheLeg)
{
	legs_ = all_;
	legs_[1].name = "bee";
	ASSERT_NO_FATAL_FAILURE(open_ok());
	expect_slot(1, "bee", all_[1].path, LEG_IN_SYNC, 1);
	close_mirror();
	EXPECT_STREQ("bee", read_superblock(1).roles[1].name);
}

TEST_F(Identity, LeftOutLegAddedBackReturnsToItsSlot)
{
	legs_ = {all_[2], all_[0]};
	ASSERT_NO_FATAL_FAILURE(open_ok());
	GError *error = nullptr;
	EXPECT_EQ(1, mirror_add_leg(m_, all_[1].path.c_str(), false, &error))
	    << (error ? error->message : "");
	g_clear_error(&error);
	ASSERT_TRUE(wait_resync());
	expect_slot(1, "b", all_[1].path, LEG_IN_SYNC, 1);
	EXPECT_EQ(3u, mirror_num_legs(m_));
}

TEST_F(Identity, CommitNeverWrapsTheEventsCounter)
{
	legs_ = all_;
	ASSERT_NO_FATAL_FAILURE(open_ok());
	uint64_t before = read_superblock(0).events;
	g_mutex_lock(&m_->sb_lock);
	m_->array.events = UINT64_MAX;
	g_mutex_unlock(&m_->sb_lock);
	metadata_set_clean(m_, true); /* a change that bumps events */
	EXPECT_EQ(-EOVERFLOW, metadata_sync(m_));
	EXPECT_EQ(UINT64_MAX, mirror_events(m_)) << "the counter moved";
	for (unsigned i = 0; i < 3; i++)
		EXPECT_EQ(before, read_superblock(i).events) << "leg " << i << " was written";
	close_mirror(); /* its clean mark cannot be recorded either */
	for (unsigned i = 0; i < 3; i++) {
		superblock sb = read_superblock(i);
		EXPECT_EQ(before, sb.events) << "leg " << i;
		EXPECT_FALSE(sb.flags & SB_FLAG_CLEAN) << "leg " << i;
	}
}

TEST_F(Identity, CommitOfTwoSlotsWithOneUuidWritesNothing)
{
	legs_ = all_;
	ASSERT_NO_FATAL_FAILURE(open_ok());
	superblock before = read_superblock(2);
	/*
	 * A bug's state: slot 2 carries slot 0's UUID.  Under state_lock, as leg.c writes it: the
	 * reconnect thread reads it meanwhile (TSan saw the race once).
	 */
	g_mutex_lock(&m_->state_lock);
	memcpy(m_->legs[2].uuid, m_->legs[0].uuid, 16);
	g_mutex_unlock(&m_->state_lock);
	mirror_state_changed(m_, true, false);
	EXPECT_EQ(-EINVAL, metadata_sync(m_));
	EXPECT_EQ(1u, LogCapture::get().count_level(G_LOG_LEVEL_CRITICAL));
	for (unsigned i = 0; i < 3; i++)
		EXPECT_EQ(before.events, read_superblock(i).events)
		    << "leg " << i << " was written";
	/* Put right, the mirror commits again (and TearDown finds the one critical expected). */
	g_mutex_lock(&m_->state_lock);
	memcpy(m_->legs[2].uuid, uuid_[2], 16);
	g_mutex_unlock(&m_->state_lock);
	EXPECT_EQ(0, metadata_sync(m_));
	LogCapture::get().clear();
}

} // namespace
