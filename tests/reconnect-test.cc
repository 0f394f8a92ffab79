/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reconnect (src/mirror/reconnect.c, issue 12): a remote leg whose server dies is failed, the
 * writes in flight are answered on the local leg at once, and the mirror goes on degraded; when
 * the server comes back on the same socket and export, the leg is re-added by itself and catches
 * up from the write-intent bitmap (only the regions written meanwhile), and the legs end
 * identical.  A server that comes back with another export (blank, or another member's copy) is
 * never taken.  Removing the leg, failing it by hand, and closing the mirror end the tries, also
 * while a try is stuck connecting to a server that accepts and never answers (SIGSTOP).
 *
 * A real nbdkit (file plugin) on a unix socket, killed with SIGKILL and started again by the test;
 * the local leg a file; metadata = internal.  Skipped only when nbdkit is not installed.
 */
#include "mirror-util.h"

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

using namespace mirror_test;
using dmio_test::have_nbdkit;
using dmio_test::NbdKit;

namespace
{

constexpr uint64_t kLegSize = 33 * MiB; /* 32 MiB of data after the 1 MiB data offset */
constexpr size_t kLen = 64 * KiB;
constexpr unsigned kIoTimeoutMs = 2000;

using Clock = std::chrono::steady_clock;


class Reconnect : public MirrorTest
{
      protected:
	void SetUp() override
	{
		MirrorTest::SetUp();
		if (!have_nbdkit())
			GTEST_SKIP() << "nbdkit is not installed";
		sock_ = tmp_ / "nbd.sock";
		uri_ = "nbd+unix:///?socket=" + sock_;
		export_ = tmp_ / "b.img";
		dmio_test::create_sparse(export_, kLegSize);
		ASSERT_EQ(0, server_.start(sock_, {"file", export_})) << "start nbdkit";
		local_ = add_leg("a", kLegSize);
		legs_.push_back({"b", uri_, false});
		more_legs();
		ASSERT_NO_FATAL_FAILURE(format_legs());
		io_timeout_ms_ = kIoTimeoutMs;
		reconnect_delay_ms_ = 100;
		reconnect_max_ = 50;
	}
	void TearDown() override
	{
		close_mirror();
		server_.stop(SIGKILL);
		MirrorTest::TearDown();
	}
	virtual void more_legs()
	{
	}
	std::string reconnect_text(unsigned i)
	{
		char *s = mirror_leg_reconnect_status(m_, i);
		std::string t = s;
		g_free(s);
		return t;
	}
	/* Wait until pred holds (true) or the timeout passes (false). */
	template <class Pred> bool wait_for(Pred pred, std::chrono::milliseconds timeout)
	{
		auto deadline = Clock::now() + timeout;
		while (!pred()) {
			if (Clock::now() > deadline)
				return false;
			std::this_thread::sleep_for(std::chrono::milliseconds(5));
		}
		return true;
	}
	bool wait_state(unsigned i, leg_state st, std::chrono::milliseconds timeout)
	{
		return wait_for([&] { return state_of(i) == st; }, timeout);
	}
	bool wait_event(const std::string &name, int leg, std::chrono::milliseconds timeout)
	{
		return wait_for([&] { return count_events(name, leg) > 0; }, timeout);
	}
	/* The leg is failed for a lost server and its tries are under way. */
	void kill_server_and_fail_leg()
	{
		server_.stop(SIGKILL);
		/* The next write finds the connection dead. */
		std::vector<uint8_t> data = pattern(kLen, 99);
		ASSERT_EQ((ssize_t)kLen, write(data, 4 * MiB));
		ASSERT_TRUE(wait_state(1, LEG_FAILED, std::chrono::seconds(5))) << dump_events();
		ASSERT_TRUE(wait_event("LegDisconnected", 1, std::chrono::seconds(5)))
		    << dump_events();
	}

	std::string sock_, uri_, export_, local_;
	NbdKit server_;
};

/*
 * SIGKILL during writes: the writes in flight return at once on the local leg, the leg is failed
 * and LegDisconnected raised; writes go on degraded; the server back on the same socket and file
 * brings the leg back by itself, resynced from the bitmap (a few regions, not the whole 32 MiB),
 * and the two legs end identical.
 */
TEST_F(Reconnect, ServerKilledDuringWritesComesBackAndCatchesUp)
{
	ASSERT_NO_FATAL_FAILURE(open_ok());
	uint64_t size = mirror_size(m_);
	ASSERT_EQ(32 * MiB, size);
	ASSERT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ("idle", reconnect_text(1));

	/* A writer over the first 2 MiB, timing every write. */
	std::atomic<bool> stop{false};
	std::atomic<long long> slowest_ms{0};
	std::atomic<unsigned> writes{0}, failed_writes{0};
	std::thread writer([&] {
		std::vector<uint8_t> data = pattern(kLen, 1);
		for (unsigned n = 0; !stop.load(); n++) {
			data[0] = (uint8_t)n;
			auto t0 = Clock::now();
			ssize_t r =
			    mirror_write_wait(m_, data.data(), kLen, (uint64_t)(n % 32) * kLen, 0);
			long long ms =
			    std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0)
				.count();
			if (r != (ssize_t)kLen)
				failed_writes++;
			long long prev = slowest_ms.load();
			while (ms > prev && !slowest_ms.compare_exchange_weak(prev, ms))
				;
			writes++;
		}
	});
	ASSERT_TRUE(wait_for([&] { return writes.load() > 50; }, std::chrono::seconds(10)));
	auto killed = Clock::now();
	server_.stop(SIGKILL);
	ASSERT_TRUE(wait_state(1, LEG_FAILED, std::chrono::milliseconds(kIoTimeoutMs + 1000)))
	    << dump_events();
	auto failed_after = Clock::now() - killed;
	unsigned at_failure = writes.load();
	/* Degraded, the writes go on. */
	ASSERT_TRUE(
	    wait_for([&] { return writes.load() > at_failure + 50; }, std::chrono::seconds(5)));
	stop = true;
	writer.join();
	EXPECT_EQ(0u, failed_writes.load()) << "a write failed while the local leg was in sync";
	EXPECT_LT(slowest_ms.load(), (long long)kIoTimeoutMs + 1000)
	    << "a write in flight when the server died waited too long";
	printf(
	    "server killed -> leg failed in %lld ms; slowest write %lld ms\n",
	    (long long)std::chrono::duration_cast<std::chrono::milliseconds>(failed_after).count(),
	    slowest_ms.load());
	ASSERT_TRUE(wait_event("LegDisconnected", 1, std::chrono::seconds(2))) << dump_events();
	EXPECT_EQ(1u, count_events("LegDisconnected", 1)) << dump_events();
	EXPECT_EQ(0u, count_events("LegReconnected", 1));
	/* One region far away, written only while degraded. */
	std::vector<uint8_t> far = pattern(kLen, 77);
	ASSERT_EQ((ssize_t)kLen, write(far, 20 * MiB));
	EXPECT_EQ(0u, count_events("LegReconnected", 1));
	EXPECT_EQ(LEG_FAILED, state_of(1));

	/* Back on the same socket and file: the leg comes back by itself. */
	auto restarted = Clock::now();
	ASSERT_EQ(0, server_.start(sock_, {"file", export_}));
	ASSERT_TRUE(wait_event("LegReconnected", 1, std::chrono::seconds(10))) << dump_events();
	ASSERT_TRUE(wait_state(1, LEG_IN_SYNC, std::chrono::seconds(20))) << dump_events();
	printf("server back -> leg in sync in %lld ms\n",
	       (long long)std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
										restarted)
		   .count());
	ASSERT_TRUE(wait_resync());
	resync_status rs;
	mirror_resync_status(m_, &rs);
	EXPECT_GT(rs.total, 0u);
	EXPECT_LE(rs.total, 4 * MiB) << "a bitmap resync copies what the leg missed, not all of it";
	printf("resync total %llu bytes of %llu\n", (unsigned long long)rs.total,
	       (unsigned long long)size);
	EXPECT_EQ("idle", reconnect_text(1));
	EXPECT_EQ(1u, count_events("LegReconnected", 1)) << dump_events();
	EXPECT_EQ(LEG_RESYNC_NONE, leg(1).resync);
	EXPECT_EQ(kIoTimeoutMs, leg(1).io_timeout_ms) << "the member keeps its io-timeout";
	/* The reconnected leg serves reads too: the write made while it was away is there. */
	close_mirror();
	EXPECT_TRUE(same_bytes(read_at(local_, SB_DATA_OFFSET, size),
			       read_at(export_, SB_DATA_OFFSET, size)))
	    << "the legs differ after the reconnect";
	EXPECT_TRUE(same_bytes(far, read_at(export_, SB_DATA_OFFSET + 20 * MiB, kLen)));
}

/* A server that stops answering (SIGSTOP) fails the leg by its io-timeout; SIGCONT: it is back. */
TEST_F(Reconnect, HungServerFailedByIoTimeoutComesBack)
{
	io_timeout_ms_ = 500;
	ASSERT_NO_FATAL_FAILURE(open_ok());
	std::vector<uint8_t> data = pattern(kLen, 5);
	ASSERT_EQ((ssize_t)kLen, write(data, 0));
	server_.signal(SIGSTOP);
	auto t0 = Clock::now();
	ASSERT_EQ((ssize_t)kLen, write(data, kLen));
	EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(500 + 1000));
	ASSERT_TRUE(wait_state(1, LEG_FAILED, std::chrono::seconds(3)));
	ASSERT_TRUE(wait_event("LegDisconnected", 1, std::chrono::seconds(3))) << dump_events();
	/* Its tries hang in the handshake meanwhile: connecting, never re-added. */
	ASSERT_TRUE(wait_for([&] { return reconnect_text(1).rfind("connecting", 0) == 0; },
			     std::chrono::seconds(3)))
	    << reconnect_text(1);
	server_.signal(SIGCONT);
	ASSERT_TRUE(wait_event("LegReconnected", 1, std::chrono::seconds(10))) << dump_events();
	ASSERT_TRUE(wait_state(1, LEG_IN_SYNC, std::chrono::seconds(20))) << dump_events();
	uint64_t size = mirror_size(m_);
	close_mirror();
	EXPECT_TRUE(same_bytes(read_at(local_, SB_DATA_OFFSET, size),
			       read_at(export_, SB_DATA_OFFSET, size)));
}

/* Another export behind the same URI: blank, or a copy of the other member. Never re-added. */
TEST_F(Reconnect, AnotherExportIsRefused)
{
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(kill_server_and_fail_leg());
	std::string blank = tmp_ / "blank.img";
	dmio_test::create_sparse(blank, kLegSize);
	ASSERT_EQ(0, server_.start(sock_, {"file", blank}));
	ASSERT_TRUE(wait_event("LegReconnectRefused", 1, std::chrono::seconds(10)))
	    << dump_events();
	EXPECT_EQ(0u, count_events("LegReconnected", 1));
	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_EQ(0u, count_events("LegAdded", 1));
	std::string text = reconnect_text(1);
	EXPECT_EQ(0u, text.rfind("refused: ", 0)) << text;
	EXPECT_NE(std::string::npos, text.find("no fusemirror superblock")) << text;
	/* The tries stopped: the right export back later is not taken either. */
	server_.stop(SIGKILL);
	ASSERT_EQ(0, server_.start(sock_, {"file", export_}));
	std::this_thread::sleep_for(std::chrono::milliseconds(800));
	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_EQ(1u, count_events("LegReconnectRefused", 1));
	EXPECT_EQ(0u, read_at(blank, 0, 4096)[0]) << "nothing was written to the blank export";
}

TEST_F(Reconnect, AnotherMembersCopyIsRefused)
{
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(kill_server_and_fail_leg());
	std::string copy = tmp_ / "copy.img";
	dmio_test::write_file(copy, read_at(local_, 0, kLegSize));
	ASSERT_EQ(0, server_.start(sock_, {"file", copy}));
	ASSERT_TRUE(wait_event("LegReconnectRefused", 1, std::chrono::seconds(10)))
	    << dump_events();
	EXPECT_EQ(LEG_FAILED, state_of(1));
	std::string text = reconnect_text(1);
	EXPECT_NE(std::string::npos, text.find("another member of this array")) << text;
}

/* A third leg after the remote one: removing the remote leg leaves its slot in the middle. */
class ReconnectMiddle : public Reconnect
{
      protected:
	void more_legs() override
	{
		add_leg("c", kLegSize);
	}
};

/* Removing the leg while its next try waits ends the tries; the server back changes nothing. */
TEST_F(ReconnectMiddle, RemoveWhileWaitingCancels)
{
	reconnect_delay_ms_ = 60000;
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(kill_server_and_fail_leg());
	EXPECT_EQ(0u, reconnect_text(1).rfind("waiting ", 0)) << reconnect_text(1);
	EXPECT_NE(std::string::npos, reconnect_text(1).find("try 1 of 50")) << reconnect_text(1);
	GError *error = nullptr;
	ASSERT_EQ(0, mirror_remove_leg(m_, 1, false, &error)) << (error ? error->message : "");
	ASSERT_TRUE(wait_for([&] { return reconnect_text(1) == "idle"; }, std::chrono::seconds(3)))
	    << reconnect_text(1);
	EXPECT_EQ(3u, mirror_num_legs(m_)) << "slot 1 is a removed slot between two legs";
	EXPECT_EQ(LEG_REMOVED, state_of(1));
	close_mirror();
}

/* The same at the end of the slots (remove drops it). */
TEST_F(Reconnect, RemoveLastSlotWhileWaitingCancels)
{
	reconnect_delay_ms_ = 60000;
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(kill_server_and_fail_leg());
	GError *error = nullptr;
	ASSERT_EQ(0, mirror_remove_leg(m_, 1, false, &error)) << (error ? error->message : "");
	ASSERT_TRUE(wait_for([&] { return reconnect_text(1) == "idle"; }, std::chrono::seconds(3)))
	    << reconnect_text(1);
	EXPECT_EQ(1u, mirror_num_legs(m_));
}

/* The same while a try is stuck connecting (a server that accepts and never answers). */
TEST_F(ReconnectMiddle, RemoveWhileConnectingCancels)
{
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(kill_server_and_fail_leg());
	ASSERT_EQ(0, server_.start(sock_, {"file", export_}));
	server_.signal(SIGSTOP);
	ASSERT_TRUE(wait_for([&] { return reconnect_text(1).rfind("connecting", 0) == 0; },
			     std::chrono::seconds(5)))
	    << reconnect_text(1);
	GError *error = nullptr;
	ASSERT_EQ(0, mirror_remove_leg(m_, 1, false, &error)) << (error ? error->message : "");
	ASSERT_TRUE(wait_for([&] { return reconnect_text(1) == "idle"; }, std::chrono::seconds(3)))
	    << reconnect_text(1);
	server_.signal(SIGCONT);
	std::this_thread::sleep_for(std::chrono::milliseconds(500));
	EXPECT_EQ(0u, count_events("LegReconnected", 1));
	EXPECT_EQ(LEG_REMOVED, state_of(1));
}

/* fusemirrorctl fail of a leg waiting to reconnect: the operator keeps it out. */
TEST_F(Reconnect, FailByTheOperatorStopsTheTries)
{
	reconnect_delay_ms_ = 1000;
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(kill_server_and_fail_leg());
	GError *error = nullptr;
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, &error)) << (error ? error->message : "");
	EXPECT_EQ("stopped: failed by the operator", reconnect_text(1));
	ASSERT_EQ(0, server_.start(sock_, {"file", export_}));
	std::this_thread::sleep_for(std::chrono::milliseconds(2500));
	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_EQ(0u, count_events("LegReconnected", 1));
	/* Failed again: nothing pending, the usual refusal. */
	EXPECT_EQ(-EALREADY, mirror_fail_leg(m_, 1, &error));
	g_clear_error(&error);
}

/* An in-sync remote leg failed by the operator is not reconnected. */
TEST_F(Reconnect, OperatorFailureIsNoDisconnect)
{
	ASSERT_NO_FATAL_FAILURE(open_ok());
	GError *error = nullptr;
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, &error)) << (error ? error->message : "");
	std::this_thread::sleep_for(std::chrono::milliseconds(500));
	EXPECT_EQ(0u, count_events("LegDisconnected", 1)) << dump_events();
	EXPECT_EQ("idle", reconnect_text(1));
	EXPECT_EQ(LEG_FAILED, state_of(1));
}

/* Closing the mirror while a try waits, and while one is stuck connecting, returns at once. */
TEST_F(Reconnect, CloseWhileWaiting)
{
	reconnect_delay_ms_ = 60000;
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(kill_server_and_fail_leg());
	auto t0 = Clock::now();
	close_mirror();
	EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
}

TEST_F(Reconnect, CloseWhileConnecting)
{
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(kill_server_and_fail_leg());
	ASSERT_EQ(0, server_.start(sock_, {"file", export_}));
	server_.signal(SIGSTOP);
	ASSERT_TRUE(wait_for([&] { return reconnect_text(1).rfind("connecting", 0) == 0; },
			     std::chrono::seconds(5)))
	    << reconnect_text(1);
	auto t0 = Clock::now();
	close_mirror();
	EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
	/* The stuck try finishes once the server goes, and frees itself (LSan watches). */
	server_.stop(SIGKILL);
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
}

/* reconnect-max: the tries run out (LegReconnectGaveUp); 0 never tries. */
TEST_F(Reconnect, TriesRunOut)
{
	reconnect_delay_ms_ = 20;
	reconnect_max_ = 3;
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(kill_server_and_fail_leg());
	ASSERT_TRUE(wait_event("LegReconnectGaveUp", 1, std::chrono::seconds(5))) << dump_events();
	std::string text = reconnect_text(1);
	EXPECT_EQ(0u, text.rfind("gave up after 3 tries: ", 0)) << text;
}

TEST_F(Reconnect, MaxZeroNeverTries)
{
	reconnect_max_ = 0;
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(kill_server_and_fail_leg());
	EXPECT_EQ(0u, reconnect_text(1).rfind("off: ", 0)) << reconnect_text(1);
	ASSERT_EQ(0, server_.start(sock_, {"file", export_}));
	std::this_thread::sleep_for(std::chrono::milliseconds(500));
	EXPECT_EQ(LEG_FAILED, state_of(1));
	/* Set at run time, per leg: the next loss is tried again. */
	unsigned delay, max;
	ASSERT_EQ(0, mirror_set_reconnect(m_, 1, 50, 5));
	mirror_get_reconnect(m_, 1, &delay, &max);
	EXPECT_EQ(50u, delay);
	EXPECT_EQ(5u, max);
	EXPECT_EQ(-EINVAL, mirror_set_reconnect(m_, 2, 50, 5));
	EXPECT_EQ(-EINVAL, mirror_set_reconnect(m_, -1, 0, 5));
}

} // namespace

namespace
{

/* A remote leg whose server does not answer at start: the mirror starts without it (array.c),
 * and the leg comes back by itself once its server does. */
TEST_F(Reconnect, MissingAtStartComesBack)
{
	/* Once opened, the superblocks record the legs' names and paths (the fixture's do not). */
	ASSERT_NO_FATAL_FAILURE(open_ok());
	close_mirror();
	server_.stop(SIGKILL);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ(LEG_FAILED, state_of(1));
	ASSERT_TRUE(wait_event("LegDisconnected", 1, std::chrono::seconds(3))) << dump_events();
	std::vector<uint8_t> data = pattern(kLen, 3);
	ASSERT_EQ((ssize_t)kLen, write(data, 2 * MiB));
	ASSERT_EQ(0, server_.start(sock_, {"file", export_}));
	ASSERT_TRUE(wait_event("LegReconnected", 1, std::chrono::seconds(10))) << dump_events();
	ASSERT_TRUE(wait_state(1, LEG_IN_SYNC, std::chrono::seconds(20))) << dump_events();
	resync_status rs;
	mirror_resync_status(m_, &rs);
	EXPECT_LE(rs.total, 1 * MiB) << "from the bitmap";
	close_mirror();
	EXPECT_TRUE(same_bytes(data, read_at(export_, SB_DATA_OFFSET + 2 * MiB, kLen)));
}

} // namespace

namespace
{

/* The leg's own export, but written elsewhere meanwhile (its events ahead of the array's): split
 * brain, never taken by itself. */
TEST_F(Reconnect, WrittenElsewhereIsRefused)
{
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(kill_server_and_fail_leg());
	dmio_dev *dev = nullptr;
	ASSERT_EQ(0, dmio_dev_open(export_.c_str(), 0, &dev));
	std::vector<uint8_t> buf(SB_SIZE);
	ASSERT_EQ(0, superblock_read_raw(dev, buf.data()));
	superblock sb;
	char *why = nullptr;
	ASSERT_EQ(SB_ERROR_NONE, superblock_decode(buf.data(), &sb, &why)) << (why ? why : "");
	g_free(why);
	sb.events += 1000;
	ASSERT_EQ(0, superblock_write(dev, &sb));
	dmio_dev_close(dev);
	ASSERT_EQ(0, server_.start(sock_, {"file", export_}));
	ASSERT_TRUE(wait_event("LegReconnectRefused", 1, std::chrono::seconds(10)))
	    << dump_events();
	EXPECT_EQ(LEG_FAILED, state_of(1));
	std::string text = reconnect_text(1);
	EXPECT_NE(std::string::npos, text.find("split brain")) << text;
}

} // namespace
