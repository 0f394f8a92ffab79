/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Asynchronous calls under load: 10,000 requests in flight at once, reads and writes mixed over
 * several files, through dmio() on a client and dmio_async_vm on the default client.  Every
 * notify must arrive exactly once, with its own context, from an engine thread, and no extra call
 * may arrive afterwards.  Also: destroying a client (or giving back the last dmio_get reservation)
 * waits for the in-flight calls.  With DMIO_REQ_CALLER_RUNS the caller does the work itself when
 * it can, and the notify may then run in the submitting thread, before dmio() returns.
 */
#include "test-util.h"

#include <atomic>

using namespace dmio_test;

namespace
{

constexpr size_t kSlot = 1024; /* bytes per request: two sectors */
constexpr uint64_t kSlotSectors = kSlot / DMIO_SECTOR_SIZE;
constexpr int kFiles = 3;

struct Shared {
	std::atomic<unsigned> arrived{0};
	std::atomic<unsigned> in_submitter{0};
	std::thread::id submitter;
	std::mutex lock;
	std::condition_variable cond;
	unsigned expected = 0;
};

struct Request {
	Shared *shared;
	unsigned index;
	std::atomic<int> calls{0};
	std::atomic<unsigned long> error{~0ul};
	std::atomic<unsigned> seen_index{~0u};
	int region_errors[kFiles];
	bool read;
	int file; /* the file read, or the number of files written */
};

void request_done(unsigned long error, void *context)
{
	auto *r = static_cast<Request *>(context);
	Shared *s = r->shared;
	r->error = error;
	r->seen_index = r->index;
	r->calls.fetch_add(1);
	if (std::this_thread::get_id() == s->submitter)
		s->in_submitter.fetch_add(1);
	/*
	 * Counted under the lock: once the waiter sees the last arrival it may return and destroy
	 * s, so the notify that follows that arrival must be over before the waiter can see it.
	 */
	std::lock_guard<std::mutex> guard(s->lock);
	if (s->arrived.fetch_add(1) + 1 >= s->expected)
		s->cond.notify_all();
}

class Async : public DefaultClientParamTest<Engine>
{
};

TEST_P(Async, TenThousandConcurrentRequestsEachNotifiedOnceWithItsContext)
{
	Client client;
	DMIO_REQUIRE_CLIENT(GetParam(), client);
	const unsigned n = std::max(1000u, 10000u / scale());

	std::vector<std::string> paths;
	std::vector<std::vector<uint8_t>> images;
	std::vector<Dev> devs(kFiles);
	for (int f = 0; f < kFiles; f++) {
		paths.push_back(tmp_ / ("async" + std::to_string(f) + ".img"));
		images.push_back(pattern((size_t)n * kSlot, 1000 + f));
		write_file(paths[f], images[f]);
		ASSERT_EQ(0, open_dev(paths[f], 0, &devs[f]));
	}

	Shared shared;
	shared.submitter = std::this_thread::get_id();
	shared.expected = n;
	std::vector<Request> requests(n);
	std::vector<uint8_t> arena((size_t)n * kSlot);
	std::vector<std::vector<uint8_t>> expected = images;
	std::vector<dmio_region> where(kFiles);

	unsigned submitted = 0, refused = 0;
	for (unsigned i = 0; i < n; i++) {
		Request &r = requests[i];
		r.shared = &shared;
		r.index = i;
		r.read = i % 4 == 3;
		r.file = r.read ? (int)(i % kFiles) : (int)(1 + i % kFiles);
		for (int &e : r.region_errors)
			e = kUnsetRegionError;
		uint8_t *buf = arena.data() + (size_t)i * kSlot;
		unsigned nregions;
		if (r.read) {
			memset(buf, 0xaa, kSlot);
			where[0] = {devs[r.file].get(), i * kSlotSectors, kSlotSectors};
			nregions = 1;
		} else {
			std::vector<uint8_t> data = pattern(kSlot, 50000 + i);
			memcpy(buf, data.data(), kSlot);
			for (int f = 0; f < r.file; f++) {
				where[f] = {devs[f].get(), i * kSlotSectors, kSlotSectors};
				std::copy(data.begin(), data.end(),
					  expected[f].begin() + (size_t)i * kSlot);
			}
			nregions = (unsigned)r.file;
		}
		int ret;
		if (i % 2 == 0) {
			dmio_request req;
			memset(&req, 0, sizeof(req));
			req.op = r.read ? DMIO_READ : DMIO_WRITE;
			req.mem.type = DMIO_MEM_VM;
			req.mem.ptr.vma = buf;
			req.client = client.get();
			req.region_errors = r.region_errors;
			req.notify.fn = request_done;
			req.notify.context = &r;
			ret = dmio(&req, nregions, where.data(), nullptr);
		} else {
			ret = dmio_async_vm(nregions, where.data(), r.read ? DMIO_READ : DMIO_WRITE,
					    buf, request_done, &r);
		}
		if (ret == 0)
			submitted++;
		else if (refused++ < 5)
			ADD_FAILURE() << "request " << i << " refused: " << ret;
	}
	ASSERT_EQ(n, submitted);

	{
		std::unique_lock<std::mutex> guard(shared.lock);
		bool all = shared.cond.wait_for(guard, completion_timeout() * 2,
						[&] { return shared.arrived.load() >= n; });
		ASSERT_TRUE(all) << "only " << shared.arrived.load() << " of " << n
				 << " notify calls arrived";
	}
	/* Any late duplicate would arrive now. */
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	EXPECT_EQ(n, shared.arrived.load()) << "more notify calls than requests";
	EXPECT_EQ(0u, shared.in_submitter.load()) << "notify calls ran in the submitting thread";

	unsigned bad_calls = 0, bad_errors = 0, bad_data = 0;
	for (unsigned i = 0; i < n; i++) {
		Request &r = requests[i];
		if (r.calls.load() != 1 && bad_calls++ < 5)
			ADD_FAILURE()
			    << "request " << i << " notified " << r.calls.load() << " times";
		if (r.seen_index.load() != i && bad_calls++ < 5)
			ADD_FAILURE() << "request " << i << " was notified with another context";
		if (r.error.load() != 0 && bad_errors++ < 5)
			ADD_FAILURE() << "request " << i << " error bits " << r.error.load();
		if (i % 2 == 0) {
			unsigned nregions = r.read ? 1 : (unsigned)r.file;
			for (unsigned k = 0; k < nregions; k++)
				if (r.region_errors[k] != 0 && bad_errors++ < 5)
					ADD_FAILURE() << "request " << i << " region_errors[" << k
						      << "] = " << r.region_errors[k];
		}
		if (r.read) {
			const uint8_t *got = arena.data() + (size_t)i * kSlot;
			const uint8_t *want = images[r.file].data() + (size_t)i * kSlot;
			if (memcmp(got, want, kSlot) != 0 && bad_data++ < 5)
				ADD_FAILURE() << "read " << i << " returned the wrong bytes";
		}
	}
	EXPECT_EQ(0u, bad_calls);
	EXPECT_EQ(0u, bad_errors);
	EXPECT_EQ(0u, bad_data);
	for (int f = 0; f < kFiles; f++)
		EXPECT_TRUE(same_bytes(expected[f], read_at(paths[f], 0, (size_t)n * kSlot)))
		    << paths[f];
}

/* The largest fan-out, asynchronously: one notify for 64 regions. */
TEST_P(Async, SixtyFourRegionsOneNotify)
{
	Client client;
	DMIO_REQUIRE_CLIENT(GetParam(), client);
	std::vector<std::string> paths;
	std::vector<Dev> devs(4);
	for (int f = 0; f < 4; f++) {
		paths.push_back(tmp_ / ("wide" + std::to_string(f) + ".img"));
		write_file(paths[f], pattern(256 * 1024, f));
		ASSERT_EQ(0, open_dev(paths[f], 0, &devs[f]));
	}
	std::vector<uint8_t> data = pattern(8 * DMIO_SECTOR_SIZE, 99);
	Memory mem(MemKind::PageList, data.size());
	mem.fill(data);
	std::vector<dmio_region> where;
	for (unsigned i = 0; i < DMIO_MAX_REGIONS; i++)
		where.push_back({devs[i % 4].get(), (i / 4) * 16 + 3, 8});
	IoOutcome o = run_io(Call::DmioAsync, client.get(), DMIO_WRITE, &mem, where);
	expect_success(o, Call::DmioAsync, DMIO_MAX_REGIONS, "64-region write");
	for (unsigned i = 0; i < DMIO_MAX_REGIONS; i++)
		EXPECT_TRUE(same_bytes(
		    data, read_at(paths[i % 4], where[i].sector * DMIO_SECTOR_SIZE, data.size())))
		    << "region " << i;
}

/*
 * DMIO_REQ_CALLER_RUNS: still exactly one notify per call with the right outcome and data; a
 * one-region call runs its region in the caller, so it is notified there, before dmio() returns.
 */
TEST_P(Async, CallerRunsNotifiesOnceInTheCallerWhenItRanTheRegions)
{
	Client client;
	DMIO_REQUIRE_CLIENT(GetParam(), client);
	constexpr unsigned n = 2000;
	std::vector<std::string> paths;
	std::vector<std::vector<uint8_t>> images;
	std::vector<Dev> devs(2);
	for (int f = 0; f < 2; f++) {
		paths.push_back(tmp_ / ("caller" + std::to_string(f) + ".img"));
		images.push_back(pattern((size_t)n * kSlot, 3000 + f));
		write_file(paths[f], images[f]);
		ASSERT_EQ(0, open_dev(paths[f], 0, &devs[f]));
	}
	Shared shared;
	shared.submitter = std::this_thread::get_id();
	shared.expected = n;
	std::vector<Request> requests(n);
	std::vector<uint8_t> arena((size_t)n * kSlot);
	std::vector<std::vector<uint8_t>> expected = images;
	unsigned early_reads = 0, reads = 0;
	for (unsigned i = 0; i < n; i++) {
		Request &r = requests[i];
		r.shared = &shared;
		r.index = i;
		r.read = i % 2 == 1;
		r.file = r.read ? (int)(i % 4 / 2) : 2;
		uint8_t *buf = arena.data() + (size_t)i * kSlot;
		std::vector<dmio_region> where;
		if (r.read) {
			memset(buf, 0xaa, kSlot);
			where.push_back({devs[r.file].get(), i * kSlotSectors, kSlotSectors});
		} else {
			std::vector<uint8_t> data = pattern(kSlot, 70000 + i);
			memcpy(buf, data.data(), kSlot);
			for (int f = 0; f < 2; f++) {
				where.push_back({devs[f].get(), i * kSlotSectors, kSlotSectors});
				std::copy(data.begin(), data.end(),
					  expected[f].begin() + (size_t)i * kSlot);
			}
		}
		dmio_request req;
		memset(&req, 0, sizeof(req));
		req.op = r.read ? DMIO_READ : DMIO_WRITE;
		req.flags = DMIO_REQ_CALLER_RUNS;
		req.mem.type = DMIO_MEM_VM;
		req.mem.ptr.vma = buf;
		req.client = client.get();
		req.region_errors = r.region_errors;
		req.notify.fn = request_done;
		req.notify.context = &r;
		ASSERT_EQ(0, dmio(&req, (unsigned)where.size(), where.data(), nullptr));
		if (r.read) {
			reads++;
			early_reads += r.calls.load() == 1;
		}
	}
	{
		std::unique_lock<std::mutex> guard(shared.lock);
		ASSERT_TRUE(shared.cond.wait_for(guard, completion_timeout() * 2,
						 [&] { return shared.arrived.load() >= n; }))
		    << "only " << shared.arrived.load() << " of " << n << " notify calls arrived";
	}
	std::this_thread::sleep_for(std::chrono::milliseconds(100));
	EXPECT_EQ(n, shared.arrived.load()) << "more notify calls than requests";
	EXPECT_EQ(reads, early_reads) << "one-region reads not run and notified by the caller";
	EXPECT_GE(shared.in_submitter.load(), reads);
	for (unsigned i = 0; i < n; i++) {
		Request &r = requests[i];
		EXPECT_EQ(1, r.calls.load()) << "request " << i;
		EXPECT_EQ(0ul, r.error.load()) << "request " << i;
		if (r.read) {
			EXPECT_EQ(0, memcmp(arena.data() + (size_t)i * kSlot,
					    images[r.file].data() + (size_t)i * kSlot, kSlot))
			    << "read " << i << " returned the wrong bytes";
		}
	}
	for (int f = 0; f < 2; f++)
		EXPECT_TRUE(same_bytes(expected[f], read_at(paths[f], 0, (size_t)n * kSlot)))
		    << paths[f];
}

/* A completion counter that outlives the client. */
struct Counter {
	std::atomic<unsigned> calls{0};
	std::atomic<unsigned long> errors{0};
};

void count_done(unsigned long error, void *context)
{
	auto *c = static_cast<Counter *>(context);
	/* Slow completions make "destroy did not wait" visible. */
	std::this_thread::sleep_for(std::chrono::microseconds(200));
	c->errors |= error;
	c->calls++;
}

TEST_P(Async, ClientDestroyWaitsForInFlightCalls)
{
	Client client;
	DMIO_REQUIRE_CLIENT(GetParam(), client);
	std::string path = tmp_ / "destroy.img";
	write_file(path, pattern(1024 * 1024, 5));
	Dev dev;
	ASSERT_EQ(0, open_dev(path, 0, &dev));
	constexpr unsigned kCalls = 200;
	std::vector<uint8_t> data = pattern(4096, 6);
	Counter counter;
	unsigned submitted = 0;
	for (unsigned i = 0; i < kCalls; i++) {
		dmio_region where = {dev.get(), (i % 256) * 8, 8};
		dmio_request req;
		memset(&req, 0, sizeof(req));
		req.op = DMIO_WRITE;
		req.mem.type = DMIO_MEM_VM;
		req.mem.ptr.vma = data.data();
		req.client = client.get();
		req.notify.fn = count_done;
		req.notify.context = &counter;
		submitted += dmio(&req, 1, &where, nullptr) == 0;
	}
	EXPECT_EQ(kCalls, submitted);
	client.reset(); /* dmio_client_destroy */
	EXPECT_EQ(submitted, counter.calls.load())
	    << "dmio_client_destroy returned before every notify had run";
	EXPECT_EQ(0ul, counter.errors.load());
}

INSTANTIATE_TEST_SUITE_P(Engines, Async, ::testing::Values(Engine::Threads, Engine::IoUring),
			 [](const ::testing::TestParamInfo<Engine> &info) {
				 return std::string(engine_name(info.param));
			 });

class DefaultClient : public DmioTest
{
};

/* The last dmio_put waits for the default client's in-flight I/O. */
TEST_F(DefaultClient, LastPutWaitsForInFlightCalls)
{
	ASSERT_EQ(0, dmio_get(4));
	std::string path = tmp_ / "put.img";
	write_file(path, pattern(1024 * 1024, 5));
	Dev dev;
	ASSERT_EQ(0, open_dev(path, 0, &dev));
	constexpr unsigned kCalls = 200;
	std::vector<uint8_t> data = pattern(4096, 6);
	Counter counter;
	unsigned submitted = 0;
	for (unsigned i = 0; i < kCalls; i++) {
		dmio_region where = {dev.get(), (i % 256) * 8, 8};
		submitted +=
		    dmio_async_vm(1, &where, DMIO_WRITE, data.data(), count_done, &counter) == 0;
	}
	EXPECT_EQ(kCalls, submitted);
	dmio_put(4);
	EXPECT_EQ(submitted, counter.calls.load())
	    << "the last dmio_put returned before every notify had run";
	/* The default client comes back on the next dmio_get. */
	ASSERT_EQ(0, dmio_get(1));
	dmio_region where = {dev.get(), 0, 8};
	unsigned long bits = ~0ul;
	EXPECT_EQ(0, dmio_sync_vm(1, &where, DMIO_WRITE, data.data(), &bits));
	EXPECT_EQ(0ul, bits);
	dmio_put(1);
}

} // namespace
