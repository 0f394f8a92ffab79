/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The range lock (src/mirror/rangelock.c): overlapping holds exclude each other and are granted
 * in arrival order, adjacent and disjoint ones never wait, a large hold is not starved by a
 * stream of small ones, and ranges over many units (every bucket, a wrap-around of the buckets)
 * neither overlap nor deadlock under many threads.
 */
#include <gtest/gtest.h>

#include "mirror/rangelock.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace
{

using namespace std::chrono_literals;

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB;
constexpr uint64_t kUnit = 1ull << RANGELOCK_UNIT_SHIFT;

class RangeLock : public ::testing::Test
{
      protected:
	void SetUp() override
	{
		/* A lock that deadlocks must fail the binary, not hang make check (SIGALRM kills).
		 */
		alarm(120);
		rl_ = rangelock_new();
	}
	void TearDown() override
	{
		EXPECT_EQ(0u, rangelock_count(rl_)) << "holds left at the end";
		rangelock_free(rl_);
		alarm(0);
	}
	bool try_hold(rangelock_hold *h, uint64_t offset, uint64_t len)
	{
		return rangelock_try_acquire(rl_, h, offset, len);
	}

	rangelock *rl_ = nullptr;
};

/* Wait until n holds are in the lock (taken or waiting); false after 5 s. */
bool wait_count(rangelock *rl, unsigned n)
{
	auto deadline = std::chrono::steady_clock::now() + 5s;
	while (rangelock_count(rl) != n) {
		if (std::chrono::steady_clock::now() > deadline)
			return false;
		std::this_thread::sleep_for(1ms);
	}
	return true;
}

TEST_F(RangeLock, OverlapWaitsAdjacentAndDisjointDoNot)
{
	rangelock_hold a, b, c, d, e;
	ASSERT_TRUE(try_hold(&a, 4096, 4096));
	EXPECT_FALSE(try_hold(&b, 6144, 512)) << "inside a";
	EXPECT_FALSE(try_hold(&b, 0, 4097)) << "one byte into a";
	EXPECT_FALSE(try_hold(&b, 8191, 2)) << "a's last byte";
	EXPECT_FALSE(try_hold(&b, 0, 1 * MiB)) << "covering a";
	EXPECT_EQ(1u, rangelock_count(rl_)) << "a refused try leaves nothing behind";
	ASSERT_TRUE(try_hold(&c, 0, 4096)) << "adjacent below";
	ASSERT_TRUE(try_hold(&d, 8192, 512)) << "adjacent above";
	ASSERT_TRUE(try_hold(&e, 3 * MiB, 64 * KiB)) << "far away, another unit";
	EXPECT_EQ(4u, rangelock_count(rl_));
	rangelock_release(rl_, &a);
	ASSERT_TRUE(try_hold(&b, 6144, 512)) << "a released";
	for (rangelock_hold *h : {&b, &c, &d, &e})
		rangelock_release(rl_, h);
}

TEST_F(RangeLock, ZeroLengthCountsAsOneByte)
{
	rangelock_hold a, b;
	ASSERT_TRUE(try_hold(&a, 100, 0));
	EXPECT_FALSE(try_hold(&b, 100, 1));
	ASSERT_TRUE(try_hold(&b, 101, 1));
	rangelock_release(rl_, &a);
	rangelock_release(rl_, &b);
}

/* A waiter goes on exactly when the hold it overlaps is released. */
TEST_F(RangeLock, WaiterGoesOnWhenTheOverlapIsReleased)
{
	rangelock_hold a, b;
	std::atomic<bool> got{false};
	rangelock_acquire(rl_, &a, 0, 64 * KiB);
	std::thread t([&] {
		rangelock_acquire(rl_, &b, 32 * KiB, 64 * KiB);
		got = true;
	});
	ASSERT_TRUE(wait_count(rl_, 2));
	std::this_thread::sleep_for(50ms);
	EXPECT_FALSE(got) << "an overlapping hold was granted while the first one was held";
	rangelock_release(rl_, &a);
	t.join();
	EXPECT_TRUE(got);
	rangelock_release(rl_, &b);
}

/*
 * Arrival order: with W1 held, W2 and then W3 queue on overlapping ranges (W3 overlaps W2 but
 * not W1).  W3 must not overtake W2: both legs would otherwise see the two in either order.
 */
TEST_F(RangeLock, OverlappingHoldsAreGrantedInArrivalOrder)
{
	rangelock_hold w1, w2, w3;
	std::mutex lock;
	std::vector<int> order;
	rangelock_acquire(rl_, &w1, 0, 8 * KiB);
	std::thread t2([&] {
		rangelock_acquire(rl_, &w2, 4 * KiB, 8 * KiB); /* overlaps w1 and w3 */
		{
			std::lock_guard<std::mutex> g(lock);
			order.push_back(2);
		}
		std::this_thread::sleep_for(20ms);
		rangelock_release(rl_, &w2);
	});
	ASSERT_TRUE(wait_count(rl_, 2));
	std::thread t3([&] {
		rangelock_acquire(rl_, &w3, 10 * KiB, 4 * KiB); /* overlaps w2 only */
		std::lock_guard<std::mutex> g(lock);
		order.push_back(3);
	});
	ASSERT_TRUE(wait_count(rl_, 3));
	std::this_thread::sleep_for(20ms);
	{
		std::lock_guard<std::mutex> g(lock);
		EXPECT_TRUE(order.empty()) << "w3 went ahead of w2, which arrived first";
	}
	rangelock_release(rl_, &w1);
	t2.join();
	t3.join();
	EXPECT_EQ((std::vector<int>{2, 3}), order);
	rangelock_release(rl_, &w3);
}

/*
 * Fairness: four threads keep small holds going on four disjoint ranges, so that at almost every
 * instant some part of the large range is held.  A lock that grants whatever does not overlap
 * what is held now (md's) starves the large hold; arrival order grants it once the holds before
 * it are done.
 */
TEST_F(RangeLock, StreamOfSmallHoldsCannotStarveALargeOne)
{
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> small{0};
	auto stream = [&](uint64_t base) {
		rangelock_hold h;
		while (!stop) {
			rangelock_acquire(rl_, &h, base, 8 * KiB);
			small++;
			std::this_thread::sleep_for(200us);
			rangelock_release(rl_, &h);
		}
	};
	/* Disjoint, so that they hold at once: all four are rarely between two holds together. */
	std::thread s1(stream, 0), s2(stream, 8 * KiB), s3(stream, 16 * KiB), s4(stream, 24 * KiB);
	while (small < 20)
		std::this_thread::sleep_for(1ms);
	auto large = std::async(std::launch::async, [&] {
		rangelock_hold h;
		rangelock_acquire(rl_, &h, 0, 1 * MiB);
		rangelock_release(rl_, &h);
	});
	EXPECT_EQ(std::future_status::ready, large.wait_for(5s))
	    << "the large hold was starved by " << small.load() << " small ones";
	stop = true;
	s1.join();
	s2.join();
	s3.join();
	s4.join();
	large.wait();
}

/*
 * Why no stream starves a large hold, without timing: while a large hold waits, a small one
 * that arrives after it and overlaps it (even if it overlaps nothing that is held) queues
 * behind it; a small one that overlaps neither goes at once.
 */
TEST_F(RangeLock, LaterSmallHoldsQueueBehindAWaitingLargeOne)
{
	rangelock_hold s1, s2, s3, large;
	ASSERT_TRUE(try_hold(&s1, 0, 8 * KiB));
	std::thread t([&] {
		rangelock_acquire(rl_, &large, 0, 1 * MiB);
		rangelock_release(rl_, &large);
	});
	ASSERT_TRUE(wait_count(rl_, 2));
	EXPECT_FALSE(try_hold(&s2, 16 * KiB, 8 * KiB))
	    << "a later small hold went ahead of the waiting large one it overlaps";
	ASSERT_TRUE(try_hold(&s3, 2 * MiB, 8 * KiB)) << "one that overlaps neither must not wait";
	rangelock_release(rl_, &s1);
	t.join();
	ASSERT_TRUE(try_hold(&s2, 16 * KiB, 8 * KiB));
	rangelock_release(rl_, &s2);
	rangelock_release(rl_, &s3);
}

/* A range of more units than there are buckets holds every bucket and excludes all in it. */
TEST_F(RangeLock, RangeOverEveryBucket)
{
	rangelock_hold big, h;
	const uint64_t len = (RANGELOCK_BUCKETS + 10) * kUnit;
	ASSERT_TRUE(try_hold(&big, kUnit / 2, len));
	for (uint64_t off :
	     {kUnit / 2, 7 * kUnit, (RANGELOCK_BUCKETS + 5) * kUnit, kUnit / 2 + len - 1})
		EXPECT_FALSE(try_hold(&h, off, 512)) << "offset " << off;
	/* The same buckets further on, outside the range: not excluded. */
	ASSERT_TRUE(try_hold(&h, kUnit / 2 + len, 512));
	rangelock_release(rl_, &h);
	ASSERT_TRUE(try_hold(&h, 0, 512));
	rangelock_release(rl_, &h);
	rangelock_release(rl_, &big);
}

/* A range over the last and the first bucket (units B-1 and B) wraps around the buckets. */
TEST_F(RangeLock, RangeThatWrapsAroundTheBuckets)
{
	rangelock_hold a, b;
	const uint64_t edge = RANGELOCK_BUCKETS * kUnit;
	ASSERT_TRUE(try_hold(&a, edge - 4 * KiB, 8 * KiB));
	EXPECT_FALSE(try_hold(&b, edge, 512)) << "the part in bucket 0";
	EXPECT_FALSE(try_hold(&b, edge - 512, 512)) << "the part in the last bucket";
	ASSERT_TRUE(try_hold(&b, 0, 512)) << "bucket 0, another unit";
	rangelock_release(rl_, &b);
	rangelock_release(rl_, &a);
}

/*
 * Many threads, random ranges from 512 bytes to more than every bucket, overlapping a lot: no
 * two holds that overlap are ever held at once (each 512-byte block has an owner count that must
 * stay at most 1), and everyone finishes (no deadlock between multi-bucket holds).
 */
TEST_F(RangeLock, ManyThreadsNeverOverlapAndNeverDeadlock)
{
	constexpr uint64_t kSpace = 80 * MiB; /* more units than buckets */
	constexpr uint64_t kBlock =
	    512; /* the holds' granularity: no two share a block unless they overlap */
	std::vector<std::atomic<int>> owners(kSpace / kBlock);
	std::atomic<int> violations{0};
	std::atomic<uint64_t> done{0};
	auto worker = [&](unsigned seed) {
		std::mt19937_64 rng(seed);
		for (int i = 0; i < 400; i++) {
			uint64_t len;
			switch (rng() % 8) {
			case 0:
				len = 512 + rng() % (8 * KiB);
				break;
			case 1:
				len = (RANGELOCK_BUCKETS + 1) * kUnit; /* every bucket */
				break;
			case 2:
				len = kUnit + rng() % (3 * kUnit); /* several units */
				break;
			default:
				len = 512 * (1 + rng() % 256);
				break;
			}
			len = std::min<uint64_t>((len + 511) & ~511ull, kSpace);
			uint64_t off = (rng() % (kSpace - len + 1)) & ~511ull;
			rangelock_hold h;
			rangelock_acquire(rl_, &h, off, len);
			uint64_t first = off / kBlock, last = (off + len - 1) / kBlock;
			for (uint64_t b = first; b <= last; b++)
				if (owners[b].fetch_add(1) != 0)
					violations++;
			if (rng() % 4 == 0)
				std::this_thread::yield();
			for (uint64_t b = first; b <= last; b++)
				owners[b].fetch_sub(1);
			rangelock_release(rl_, &h);
			done++;
		}
	};
	std::vector<std::thread> threads;
	for (unsigned t = 0; t < 8; t++)
		threads.emplace_back(worker, 1000 + t);
	auto all = std::async(std::launch::async, [&] {
		for (auto &t : threads)
			t.join();
	});
	ASSERT_EQ(std::future_status::ready, all.wait_for(60s))
	    << "deadlock: " << done.load() << " of " << 8 * 400 << " holds done";
	EXPECT_EQ(0, violations.load()) << "overlapping holds were held at once";
	EXPECT_EQ(8u * 400, done.load());
}

} // namespace
