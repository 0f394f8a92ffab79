/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The NBD device kind (src/dmio/dev-nbd.c) against a real nbdkit, started by each test on a unix
 * socket in its temporary directory (the file plugin over a file there, so what landed is read
 * back with plain pread, not through our code), on both engines, sync and async: size and
 * capabilities, writes over an NBD leg and a file leg in one call, FUA and flush, discard and
 * write-zeroes, a read-only export, requests split to the server's maximum, many writers at once
 * (and how many connections they open), a server killed under the device, bad URIs, and the
 * redaction of secrets in messages.  The asynchronous path (NbdAio): many requests in flight on
 * one connection with few engine threads, multi-conn spreading them, a server killed with
 * requests in flight, abandoned requests answering late, the device's submit op itself (split,
 * scatter, refusals, a close with requests in flight), and random concurrent I/O landing intact.
 * Skipped only when nbdkit is not installed.
 */
#include "test-util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <set>
#include <random>
#include <fstream>
#include <sstream>

using namespace dmio_test;

extern "C" char *dmio_nbd_redact_uri(const char *uri);
/* dmio-nbd-raw.c: the device's own asynchronous submit op, as the engines call it. */
extern "C" int dmio_test_dev_submit(dmio_dev *dev, int op, const struct iovec *iov,
				    unsigned int iovcnt, uint64_t offset, uint64_t len,
				    unsigned int flags, void (*done)(void *opaque, int err),
				    void *opaque);

namespace
{

constexpr uint64_t kSize = 8 * 1024 * 1024;


struct NbdParam {
	Engine engine;
	bool async;
};

void PrintTo(const NbdParam &p, std::ostream *os)
{
	*os << engine_name(p.engine) << (p.async ? " async" : " sync");
}

class Nbd : public DefaultClientParamTest<NbdParam>
{
      protected:
	void SetUp() override
	{
		DefaultClientParamTest<NbdParam>::SetUp();
		if (IsSkipped() || HasFatalFailure())
			return;
		if (!have_nbdkit())
			GTEST_SKIP() << "nbdkit is not installed";
		DMIO_REQUIRE_CLIENT(GetParam().engine, client_);
		sock_ = tmp_ / "nbd.sock";
		uri_ = "nbd+unix:///?socket=" + sock_;
		export_ = tmp_ / "export.img";
		image_ = pattern(kSize, 7);
		write_file(export_, image_);
	}
	void TearDown() override
	{
		dev_.reset();
		server_.stop(SIGTERM);
		client_.reset();
		DefaultClientParamTest<NbdParam>::TearDown();
	}
	Call call() const
	{
		return GetParam().async ? Call::DmioAsync : Call::DmioSync;
	}
	/* Serve the export file (extra: options before the plugin), and open it. */
	void serve(const std::vector<std::string> &before = {},
		   const std::vector<std::string> &after = {}, unsigned flags = 0)
	{
		std::vector<std::string> args = before;
		args.push_back("file");
		args.push_back(export_);
		args.insert(args.end(), after.begin(), after.end());
		ASSERT_EQ(0, server_.start(sock_, args)) << "start nbdkit";
		ASSERT_EQ(0, open_dev(uri_, flags, &dev_)) << uri_;
	}
	std::vector<uint8_t> exported(uint64_t offset, size_t len)
	{
		return read_at(export_, offset, len);
	}

	Client client_;
	NbdKit server_;
	Dev dev_;
	std::string sock_, uri_, export_;
	std::vector<uint8_t> image_;
};

TEST_P(Nbd, SizeAndCapabilitiesComeFromTheServer)
{
	ASSERT_NO_FATAL_FAILURE(serve());
	EXPECT_EQ(kSize / DMIO_SECTOR_SIZE, dmio_dev_sectors(dev_.get()));
	EXPECT_EQ(DMIO_SECTOR_SIZE, dmio_dev_logical_block_size(dev_.get()));
	EXPECT_EQ(uri_, dmio_dev_path(dev_.get()));
	EXPECT_TRUE(dmio_dev_can_fua(dev_.get()));
	EXPECT_TRUE(dmio_dev_can_zero(dev_.get()));
	EXPECT_TRUE(dmio_dev_can_discard(dev_.get()));
	/* A trimmed range of an export need not read back as zeroes: a disk, not a file. */
	EXPECT_TRUE(dmio_dev_is_block(dev_.get()));
	EXPECT_EQ(0u, dmio_dev_flags(dev_.get()) & DMIO_DEV_RDONLY);
}

TEST_P(Nbd, CapabilitiesTheServerLacksAreOff)
{
	/* nozero: the server offers no write-zeroes (nbdkit 1.32's fua filter cannot hide FUA). */
	ASSERT_NO_FATAL_FAILURE(serve({"--filter=nozero"}));
	EXPECT_FALSE(dmio_dev_can_zero(dev_.get()));
	EXPECT_TRUE(dmio_dev_can_discard(dev_.get()));
	/* Write-zeroes then writes zero pages (not a trim: a trimmed range need not read zero). */
	expect_success(
	    run_io(call(), client_.get(), DMIO_WRITE_ZEROES, nullptr, {{dev_.get(), 64, 8}}),
	    call(), 1, "write-zeroes without the command");
	EXPECT_TRUE(all_bytes_are(exported(64 * DMIO_SECTOR_SIZE, 8 * DMIO_SECTOR_SIZE), 0));
}

TEST_P(Nbd, WritesReachAnNbdLegAndAFileLegInOneCall)
{
	ASSERT_NO_FATAL_FAILURE(serve());
	std::string file = tmp_ / "local.img";
	write_file(file, pattern(kSize, 9));
	Dev local;
	ASSERT_EQ(0, open_dev(file, 0, &local));

	struct Piece {
		uint64_t sector, count;
		MemKind kind;
	} pieces[] = {{0, 8, MemKind::Vm},
		      {1000, 72, MemKind::Bvec},
		      {4096, 2048, MemKind::Iovec},
		      {kSize / DMIO_SECTOR_SIZE - 24, 24, MemKind::PageList}};
	uint32_t seed = 100;
	for (const Piece &p : pieces) {
		SCOPED_TRACE(mem_kind_name(p.kind));
		std::vector<uint8_t> data = pattern(p.count * DMIO_SECTOR_SIZE, seed++);
		Memory mem(p.kind, data.size(), 1);
		mem.fill(data);
		expect_success(
		    run_io(call(), client_.get(), DMIO_WRITE, &mem,
			   {{dev_.get(), p.sector, p.count}, {local.get(), p.sector, p.count}}),
		    call(), 2, "write");
		EXPECT_TRUE(same_bytes(data, exported(p.sector * DMIO_SECTOR_SIZE, data.size())));
		EXPECT_TRUE(
		    same_bytes(data, read_at(file, p.sector * DMIO_SECTOR_SIZE, data.size())));

		Memory back(p.kind, data.size(), 1);
		back.fill_byte(0xee);
		expect_success(run_io(call(), client_.get(), DMIO_READ, &back,
				      {{dev_.get(), p.sector, p.count}}),
			       call(), 1, "read");
		EXPECT_TRUE(same_bytes(data, back.contents()));
		EXPECT_TRUE(back.guards_intact());
	}
	/* What was not written is still the server's. */
	EXPECT_TRUE(same_bytes(std::vector<uint8_t>(image_.begin() + 8 * DMIO_SECTOR_SIZE,
						    image_.begin() + 1000 * DMIO_SECTOR_SIZE),
			       exported(8 * DMIO_SECTOR_SIZE, 992 * DMIO_SECTOR_SIZE)));
}

TEST_P(Nbd, RequestsAreSplitToTheServersMaximum)
{
	/* The server refuses (EINVAL) any request of more than 64 KiB. */
	ASSERT_NO_FATAL_FAILURE(serve({"--filter=blocksize-policy"},
				      {"blocksize-minimum=512", "blocksize-preferred=4096",
				       "blocksize-maximum=65536", "blocksize-error-policy=error"}));
	std::vector<uint8_t> data = pattern(1024 * 1024 + 3 * DMIO_SECTOR_SIZE, 21);
	uint64_t sectors = data.size() / DMIO_SECTOR_SIZE;
	Memory mem(MemKind::Iovec, data.size(), 1);
	mem.fill(data);
	expect_success(run_io(call(), client_.get(), DMIO_WRITE, &mem, {{dev_.get(), 5, sectors}}),
		       call(), 1, "1 MiB write");
	EXPECT_TRUE(same_bytes(data, exported(5 * DMIO_SECTOR_SIZE, data.size())));
	Memory back(MemKind::Vm, data.size(), 3);
	expect_success(run_io(call(), client_.get(), DMIO_READ, &back, {{dev_.get(), 5, sectors}}),
		       call(), 1, "1 MiB read");
	EXPECT_TRUE(same_bytes(data, back.contents()));
}

TEST_P(Nbd, FuaWriteAndFlush)
{
	ASSERT_NO_FATAL_FAILURE(serve());
	std::vector<uint8_t> data = pattern(32 * DMIO_SECTOR_SIZE, 31);
	Memory mem(MemKind::Bvec, data.size(), 1);
	mem.fill(data);
	expect_success(
	    run_io(call(), client_.get(), DMIO_WRITE, &mem, {{dev_.get(), 200, 32}}, DMIO_REQ_FUA),
	    call(), 1, "FUA write");
	EXPECT_TRUE(same_bytes(data, exported(200 * DMIO_SECTOR_SIZE, data.size())));
	expect_success(run_io(call(), client_.get(), DMIO_FLUSH, nullptr, {{dev_.get(), 0, 0}}),
		       call(), 1, "flush");
}

TEST_P(Nbd, DiscardAndWriteZeroesReadBackZeroes)
{
	ASSERT_NO_FATAL_FAILURE(serve());
	/* The file plugin punches a hole for trim: zeroes, 4 KiB-aligned. */
	expect_success(
	    run_io(call(), client_.get(), DMIO_DISCARD, nullptr, {{dev_.get(), 1024, 256}}), call(),
	    1, "discard");
	EXPECT_TRUE(all_bytes_are(exported(1024 * DMIO_SECTOR_SIZE, 256 * DMIO_SECTOR_SIZE), 0));
	expect_success(
	    run_io(call(), client_.get(), DMIO_WRITE_ZEROES, nullptr, {{dev_.get(), 3001, 77}}),
	    call(), 1, "write-zeroes");
	EXPECT_TRUE(all_bytes_are(exported(3001 * DMIO_SECTOR_SIZE, 77 * DMIO_SECTOR_SIZE), 0));
	/* Around them the data is untouched. */
	EXPECT_TRUE(same_bytes(std::vector<uint8_t>(image_.begin() + 3000 * DMIO_SECTOR_SIZE,
						    image_.begin() + 3001 * DMIO_SECTOR_SIZE),
			       exported(3000 * DMIO_SECTOR_SIZE, DMIO_SECTOR_SIZE)));
	EXPECT_TRUE(same_bytes(std::vector<uint8_t>(image_.begin() + 3078 * DMIO_SECTOR_SIZE,
						    image_.begin() + 3079 * DMIO_SECTOR_SIZE),
			       exported(3078 * DMIO_SECTOR_SIZE, DMIO_SECTOR_SIZE)));
}

TEST_P(Nbd, ReadOnlyExportRefusesWrites)
{
	ASSERT_NO_FATAL_FAILURE(serve({"-r"}));
	EXPECT_NE(0u, dmio_dev_flags(dev_.get()) & DMIO_DEV_RDONLY);
	std::vector<uint8_t> data = pattern(8 * DMIO_SECTOR_SIZE, 41);
	Memory mem(MemKind::Vm, data.size(), 0);
	mem.fill(data);
	for (dmio_op op : {DMIO_WRITE, DMIO_DISCARD, DMIO_WRITE_ZEROES}) {
		IoOutcome o = run_io(call(), client_.get(), op, op == DMIO_WRITE ? &mem : nullptr,
				     {{dev_.get(), 16, 8}});
		EXPECT_EQ(-EROFS, o.ret) << "op " << op;
	}
	EXPECT_TRUE(same_bytes(image_, exported(0, kSize)));
	Memory back(MemKind::Vm, data.size(), 0);
	expect_success(run_io(call(), client_.get(), DMIO_READ, &back, {{dev_.get(), 16, 8}}),
		       call(), 1, "read");
	EXPECT_TRUE(same_bytes(std::vector<uint8_t>(image_.begin() + 16 * DMIO_SECTOR_SIZE,
						    image_.begin() + 24 * DMIO_SECTOR_SIZE),
			       back.contents()));
}

/* How many connections nbdkit's log filter saw. */
unsigned count_connections(const std::string &log)
{
	std::ifstream in(log);
	std::string line;
	unsigned n = 0;
	while (std::getline(in, line))
		if (line.find(" Connect ") != std::string::npos)
			n++;
	return n;
}

class NbdConcurrent : public Nbd
{
      protected:
	/* threads writers, each its own 64 KiB slice, rounds times; everything lands. */
	void many_writers(unsigned threads, unsigned rounds)
	{
		constexpr uint64_t kSlice = 128; /* sectors */
		std::vector<std::thread> workers;
		std::atomic<int> failures{0};
		for (unsigned t = 0; t < threads; t++) {
			workers.emplace_back([&, t] {
				for (unsigned r = 0; r < rounds; r++) {
					std::vector<uint8_t> data =
					    pattern(kSlice * DMIO_SECTOR_SIZE, t * 1000 + r);
					dmio_request req;
					memset(&req, 0, sizeof(req));
					req.op = DMIO_WRITE;
					req.mem.type = DMIO_MEM_VM;
					req.mem.ptr.vma = data.data();
					req.client = client_.get();
					dmio_region where = {dev_.get(), t * kSlice, kSlice};
					unsigned long bits = 0;
					if (dmio(&req, 1, &where, &bits) != 0 || bits != 0)
						failures++;
				}
			});
		}
		for (auto &w : workers)
			w.join();
		EXPECT_EQ(0, failures.load());
		for (unsigned t = 0; t < threads; t++)
			EXPECT_TRUE(same_bytes(
			    pattern(kSlice * DMIO_SECTOR_SIZE, t * 1000 + rounds - 1),
			    exported(t * kSlice * DMIO_SECTOR_SIZE, kSlice * DMIO_SECTOR_SIZE)))
			    << "slice " << t;
	}
};

TEST_P(NbdConcurrent, ManyWritersLandOnAPoolOfConnections)
{
	std::string log = tmp_ / "nbdkit.log";
	/* 20 ms a write: writers that shared one connection would take 16 x 10 x 20 ms. */
	ASSERT_NO_FATAL_FAILURE(
	    serve({"--filter=log", "--filter=delay"}, {"logfile=" + log, "wdelay=20ms"}));
	auto t0 = std::chrono::steady_clock::now();
	many_writers(16, 10);
	auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
		      std::chrono::steady_clock::now() - t0)
		      .count();
	unsigned conns = count_connections(log);
	EXPECT_GT(conns, 1u) << "the writers shared one connection";
	EXPECT_LE(conns, 8u) << "more connections than the cap";
	EXPECT_LT(ms, 16 * 10 * 20) << "the writers did not run in parallel";
}

TEST_P(NbdConcurrent, WithoutMultiConnOneConnectionServesEveryone)
{
	std::string log = tmp_ / "nbdkit.log";
	ASSERT_NO_FATAL_FAILURE(serve({"--filter=log", "--filter=multi-conn"},
				      {"logfile=" + log, "multi-conn-mode=disable"}));
	many_writers(8, 5);
	EXPECT_EQ(1u, count_connections(log));
}

TEST_P(Nbd, AKilledServerFailsTheNextIoPromptly)
{
	ASSERT_NO_FATAL_FAILURE(serve());
	std::vector<uint8_t> data = pattern(8 * DMIO_SECTOR_SIZE, 51);
	Memory mem(MemKind::Vm, data.size(), 0);
	mem.fill(data);
	expect_success(run_io(call(), client_.get(), DMIO_WRITE, &mem, {{dev_.get(), 0, 8}}),
		       call(), 1, "write before");
	server_.stop(SIGKILL);
	for (dmio_op op : {DMIO_WRITE, DMIO_READ, DMIO_FLUSH}) {
		SCOPED_TRACE(op);
		auto t0 = std::chrono::steady_clock::now();
		IoOutcome o = run_io(call(), client_.get(), op, op == DMIO_FLUSH ? nullptr : &mem,
				     {{dev_.get(), 0, op == DMIO_FLUSH ? 0u : 8u}});
		auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
			      std::chrono::steady_clock::now() - t0)
			      .count();
		EXPECT_LT(ms, 2000) << "a dead server must not hang the call";
		if (is_async(call()))
			EXPECT_EQ(0, o.ret);
		else
			EXPECT_EQ(-EIO, o.ret);
		EXPECT_EQ(1ul, o.bits);
		ASSERT_EQ(1u, o.region_errors.size());
		EXPECT_LT(0, o.region_errors[0]) << "an errno";
		EXPECT_NE(kUnsetRegionError, o.region_errors[0]);
	}
}

/* ---- Asynchronous requests: many in flight --------------------------------------------------- */

/* Asynchronous dmio() calls in flight at once, each with its own memory and outcome. */
class Batch
{
      public:
	struct Op {
		Batch *batch = nullptr;
		dmio_op op = DMIO_READ;
		uint64_t sector = 0, count = 0;
		unsigned flags = 0;
		std::vector<uint8_t> buf;
		int region_error = kUnsetRegionError;
		unsigned long bits = 0;
		bool done = false;
		std::atomic<int> released{0};
		std::chrono::steady_clock::time_point when;
		std::vector<iovec> iov;
	};

	/*
	 * Submit op over dev (data: what a write writes; a read gets count sectors of 0xee), its
	 * memory one buffer, or (pieces > 1) an iovec of that many pieces of random lengths.
	 */
	Op &submit(dmio_client *client, dmio_dev *dev, dmio_op op, uint64_t sector, uint64_t count,
		   unsigned flags = 0, std::vector<uint8_t> data = {}, unsigned pieces = 1)
	{
		ops_.push_back(std::make_unique<Op>());
		Op &o = *ops_.back();
		o.batch = this;
		o.op = op;
		o.sector = sector;
		o.count = count;
		o.flags = flags;
		if (op == DMIO_WRITE)
			o.buf = std::move(data);
		else if (op == DMIO_READ)
			o.buf.assign(count * DMIO_SECTOR_SIZE, 0xee);
		dmio_request req;
		memset(&req, 0, sizeof(req));
		req.op = op;
		req.flags = flags;
		req.client = client;
		req.mem.type = DMIO_MEM_VM;
		req.mem.ptr.vma = o.buf.empty() ? nullptr : o.buf.data();
		if (pieces > 1 && o.buf.size() >= pieces) {
			/* Cut points from the data itself: random, and the same for a given data. */
			std::mt19937 rng((uint32_t)o.buf.size() * 31 + (uint32_t)sector);
			std::vector<size_t> cuts = {0, o.buf.size()};
			for (unsigned i = 1; i < pieces; i++)
				cuts.push_back(1 + rng() % (o.buf.size() - 1));
			std::sort(cuts.begin(), cuts.end());
			for (size_t i = 0; i + 1 < cuts.size(); i++)
				if (cuts[i + 1] > cuts[i])
					o.iov.push_back({o.buf.data() + cuts[i], cuts[i + 1] - cuts[i]});
			req.mem.type = DMIO_MEM_IOVEC;
			req.mem.ptr.iov.vec = o.iov.data();
			req.mem.ptr.iov.count = (unsigned)o.iov.size();
		}
		req.notify.fn = notify;
		req.notify.context = &o;
		req.notify.release = release;
		req.region_errors = &o.region_error;
		dmio_region where = {dev, sector, count};
		{
			std::lock_guard<std::mutex> g(lock_);
			submitted_++;
		}
		int r = dmio(&req, 1, &where, nullptr);
		EXPECT_EQ(0, r) << "dmio op " << op << " at " << sector;
		if (r != 0) {
			std::lock_guard<std::mutex> g(lock_);
			submitted_--;
		}
		return o;
	}
	/* Every submitted call was notified (and its memory released) within timeout. */
	bool wait_all(std::chrono::milliseconds timeout = completion_timeout())
	{
		std::unique_lock<std::mutex> g(lock_);
		return cond_.wait_for(g, timeout, [&] { return released_ == submitted_; });
	}
	unsigned finished() const
	{
		std::lock_guard<std::mutex> g(lock_);
		return notified_;
	}
	std::vector<std::unique_ptr<Op>> &ops()
	{
		return ops_;
	}

      private:
	static void notify(unsigned long error, void *context)
	{
		Op *o = static_cast<Op *>(context);
		std::lock_guard<std::mutex> g(o->batch->lock_);
		EXPECT_FALSE(o->done) << "notified twice";
		o->bits = error;
		o->done = true;
		o->when = std::chrono::steady_clock::now();
		o->batch->notified_++;
	}
	static void release(void *context)
	{
		Op *o = static_cast<Op *>(context);
		Batch *b = o->batch;
		std::lock_guard<std::mutex> g(b->lock_);
		o->released++;
		b->released_++;
		b->cond_.notify_all();
	}

	mutable std::mutex lock_;
	std::condition_variable cond_;
	unsigned submitted_ = 0, notified_ = 0, released_ = 0;
	std::vector<std::unique_ptr<Op>> ops_;
};

long ms_since(std::chrono::steady_clock::time_point t0)
{
	return std::chrono::duration_cast<std::chrono::milliseconds>(
		   std::chrono::steady_clock::now() - t0)
	    .count();
}

class NbdAio : public Nbd
{
};

TEST_P(NbdAio, ManyRequestsInFlightOnOneConnection)
{
	std::string log = tmp_ / "nbdkit.log";
	/* One connection, 50 ms a request: 32 requests one at a time would take 1.6 s. */
	ASSERT_NO_FATAL_FAILURE(serve({"--filter=log", "--filter=multi-conn", "--filter=delay"},
				      {"logfile=" + log, "multi-conn-mode=disable", "rdelay=50ms",
				       "wdelay=50ms"}));
	constexpr unsigned kRequests = 32;
	constexpr uint64_t kCount = 8; /* sectors */
	/* Two engine threads: a thread blocked per request would take 16 x 50 ms. */
	Client small;
	ASSERT_EQ(0, make_client(GetParam().engine, &small, 2));
	{
		Batch b;
		auto t0 = std::chrono::steady_clock::now();
		for (unsigned i = 0; i < kRequests; i++)
			b.submit(small.get(), dev_.get(), DMIO_READ, i * 100, kCount);
		ASSERT_TRUE(b.wait_all());
		long ms = ms_since(t0);
		EXPECT_LT(ms, 500 * (long)scale()) << "the reads did not overlap on the connection";
		for (unsigned i = 0; i < kRequests; i++) {
			auto &o = *b.ops()[i];
			EXPECT_EQ(0ul, o.bits) << "read " << i;
			EXPECT_TRUE(same_bytes(
			    std::vector<uint8_t>(image_.begin() + i * 100 * DMIO_SECTOR_SIZE,
						 image_.begin() + (i * 100 + kCount) * DMIO_SECTOR_SIZE),
			    o.buf))
			    << "read " << i;
		}
		RecordProperty("reads_ms", std::to_string(ms));
		std::cout << "32 reads of 50 ms each on one connection: " << ms << " ms\n";
	}
	{
		Batch b;
		auto t0 = std::chrono::steady_clock::now();
		for (unsigned i = 0; i < kRequests; i++)
			b.submit(small.get(), dev_.get(), DMIO_WRITE, i * 100 + 50, kCount,
				 i % 2 ? DMIO_REQ_FUA : 0,
				 pattern(kCount * DMIO_SECTOR_SIZE, 600 + i));
		ASSERT_TRUE(b.wait_all());
		long ms = ms_since(t0);
		EXPECT_LT(ms, 500 * (long)scale()) << "the writes did not overlap on the connection";
		for (unsigned i = 0; i < kRequests; i++) {
			EXPECT_EQ(0ul, b.ops()[i]->bits) << "write " << i;
			EXPECT_TRUE(same_bytes(pattern(kCount * DMIO_SECTOR_SIZE, 600 + i),
					       exported((i * 100 + 50) * DMIO_SECTOR_SIZE,
							kCount * DMIO_SECTOR_SIZE)))
			    << "write " << i;
		}
		std::cout << "32 writes of 50 ms each on one connection: " << ms << " ms\n";
	}
	EXPECT_EQ(1u, count_connections(log));
}

TEST_P(NbdAio, AServerKilledWithRequestsInFlightFailsThemAllPromptly)
{
	/* Every request sleeps 30 s in the server: they are all in flight when it dies. */
	ASSERT_NO_FATAL_FAILURE(serve({"--filter=delay"}, {"rdelay=30", "wdelay=30"}));
	constexpr unsigned kRequests = 16;
	Batch b;
	for (unsigned i = 0; i < kRequests; i++) {
		if (i % 2)
			/* Half of them into scattered memory: read through a copy. */
			b.submit(client_.get(), dev_.get(), DMIO_READ, i * 64, 16, 0, {},
				 i % 4 == 1 ? 5 : 1);
		else
			b.submit(client_.get(), dev_.get(), DMIO_WRITE, i * 64, 16, 0,
				 pattern(16 * DMIO_SECTOR_SIZE, 700 + i));
	}
	/* Let them reach the server (and busy_ns see them started). */
	usleep(200 * 1000);
	unsigned outstanding = 0;
	EXPECT_GT(dmio_dev_busy_ns(dev_.get(), &outstanding), 0u);
	EXPECT_EQ(kRequests, outstanding);
	EXPECT_EQ(0u, b.finished()) << "answered before the server did";
	auto killed = std::chrono::steady_clock::now();
	server_.stop(SIGKILL);
	ASSERT_TRUE(b.wait_all(std::chrono::milliseconds(5000 * scale())));
	long ms = ms_since(killed);
	EXPECT_LT(ms, 1000 * (long)scale()) << "the requests in flight did not fail promptly";
	std::cout << kRequests << " requests in flight failed " << ms << " ms after the kill\n";
	for (auto &o : b.ops()) {
		EXPECT_EQ(1ul, o->bits) << "op " << o->op << " at " << o->sector;
		EXPECT_LT(0, o->region_error);
		EXPECT_NE(kUnsetRegionError, o->region_error);
		if (o->op == DMIO_READ) {
			EXPECT_TRUE(all_bytes_are(o->buf, 0)) << "a failed read leaves zeroes";
		}
	}
	/* Later calls fail at once, asynchronous or not, every op. */
	Batch later;
	auto t0 = std::chrono::steady_clock::now();
	later.submit(client_.get(), dev_.get(), DMIO_READ, 0, 8);
	later.submit(client_.get(), dev_.get(), DMIO_WRITE, 0, 8, DMIO_REQ_FUA,
		     pattern(8 * DMIO_SECTOR_SIZE, 1));
	later.submit(client_.get(), dev_.get(), DMIO_FLUSH, 0, 0);
	later.submit(client_.get(), dev_.get(), DMIO_DISCARD, 0, 8);
	later.submit(client_.get(), dev_.get(), DMIO_WRITE_ZEROES, 0, 8);
	ASSERT_TRUE(later.wait_all());
	for (auto &o : later.ops()) {
		EXPECT_EQ(1ul, o->bits) << "op " << o->op;
		EXPECT_EQ(ENOTCONN, o->region_error) << "op " << o->op;
	}
	std::vector<uint8_t> buf(4096);
	dmio_request req;
	memset(&req, 0, sizeof(req));
	req.op = DMIO_READ;
	req.client = client_.get();
	req.mem.type = DMIO_MEM_VM;
	req.mem.ptr.vma = buf.data();
	dmio_region where = {dev_.get(), 0, 8};
	EXPECT_EQ(-EIO, dmio(&req, 1, &where, nullptr));
	EXPECT_LT(ms_since(t0), 500 * (long)scale()) << "a lost device must fail at once";
}

TEST_P(NbdAio, AbandonedRequestsMayAnswerLateAndTheCloseWaitsForThem)
{
	ASSERT_NO_FATAL_FAILURE(serve({"--filter=delay"}, {"rdelay=30", "wdelay=30"}));
	Batch b;
	for (unsigned i = 0; i < 8; i++)
		b.submit(client_.get(), dev_.get(), i % 2 ? DMIO_READ : DMIO_WRITE, i * 64, 16,
			 DMIO_REQ_ABANDONABLE, pattern(16 * DMIO_SECTOR_SIZE, 800 + i));
	usleep(100 * 1000);
	EXPECT_EQ(8u, dmio_dev_abandon(dev_.get(), ETIMEDOUT));
	/* Notified at once with the abandon's errno; their memory is the device's until it answers. */
	auto t0 = std::chrono::steady_clock::now();
	while (b.finished() < 8 && ms_since(t0) < 2000 * (long)scale())
		usleep(1000);
	ASSERT_EQ(8u, b.finished());
	for (auto &o : b.ops()) {
		EXPECT_EQ(ETIMEDOUT, o->region_error);
		EXPECT_EQ(0, o->released.load()) << "released while the device still has it";
	}
	EXPECT_EQ(8u, dmio_dev_abandoned(dev_.get()));
	/* The close waits for the late answers; the server dies, and they come. */
	dmio_dev_close(dev_.release());
	server_.stop(SIGKILL);
	ASSERT_TRUE(b.wait_all(std::chrono::milliseconds(5000 * scale())));
	for (auto &o : b.ops())
		EXPECT_EQ(1, o->released.load());
}

/* Which connections (nbdkit's log filter's connection=N) carried a command named what. */
std::set<std::string> connections_used(const std::string &log, const std::string &what)
{
	std::ifstream in(log);
	std::string line;
	std::set<std::string> used;
	while (std::getline(in, line)) {
		size_t at = line.find("connection=");
		if (at == std::string::npos || line.find(" " + what + " id=") == std::string::npos)
			continue;
		used.insert(line.substr(at, line.find(' ', at) - at));
	}
	return used;
}

TEST_P(NbdAio, MultiConnSpreadsRequestsOverTheConnections)
{
	std::string log = tmp_ / "nbdkit.log";
	ASSERT_NO_FATAL_FAILURE(
	    serve({"--filter=log", "--filter=delay"}, {"logfile=" + log, "rdelay=50ms"}));
	Batch b;
	for (unsigned i = 0; i < 32; i++)
		b.submit(client_.get(), dev_.get(), DMIO_READ, i * 100, 8);
	ASSERT_TRUE(b.wait_all());
	for (auto &o : b.ops())
		EXPECT_EQ(0ul, o->bits);
	dev_.reset(); /* the log is complete once the connections are closed */
	unsigned opened = count_connections(log);
	std::set<std::string> used = connections_used(log, "Read");
	EXPECT_GT(opened, 1u) << "multi-conn, but one connection";
	EXPECT_LE(opened, 8u);
	EXPECT_EQ(opened, used.size()) << "some connections carried no read";
}

/* What a device's submit answers: the errors, in order, and the threads they came from. */
struct RawAnswers {
	std::mutex lock;
	std::condition_variable cond;
	std::vector<int> errs;
	std::set<std::thread::id> threads;

	static void done(void *opaque, int err)
	{
		RawAnswers *a = static_cast<RawAnswers *>(opaque);
		std::lock_guard<std::mutex> g(a->lock);
		a->errs.push_back(err);
		a->threads.insert(std::this_thread::get_id());
		a->cond.notify_all();
	}
	bool wait(size_t n)
	{
		std::unique_lock<std::mutex> g(lock);
		return cond.wait_for(g, completion_timeout(), [&] { return errs.size() >= n; });
	}
	size_t count()
	{
		std::lock_guard<std::mutex> g(lock);
		return errs.size();
	}
};

/* An iovec of pieces cutting buf at the given offsets. */
std::vector<iovec> cut(std::vector<uint8_t> &buf, std::vector<size_t> at)
{
	std::vector<iovec> v;
	size_t prev = 0;
	at.push_back(buf.size());
	for (size_t a : at) {
		v.push_back({buf.data() + prev, a - prev});
		prev = a;
	}
	return v;
}

TEST_P(NbdAio, TheDevicesSubmitSplitsScattersAndRefuses)
{
	ASSERT_NO_FATAL_FAILURE(serve({"--filter=nozero", "--filter=blocksize-policy"},
				      {"blocksize-minimum=512", "blocksize-preferred=4096",
				       "blocksize-maximum=65536", "blocksize-error-policy=error"}));
	std::vector<uint8_t> data = pattern(1024 * 1024 + 3 * DMIO_SECTOR_SIZE, 61);
	std::vector<iovec> wv = cut(data, {1, 700, 65536, 65537, 300000, 1000000});
	RawAnswers a;
	ASSERT_EQ(0, dmio_test_dev_submit(dev_.get(), DMIO_WRITE, wv.data(), wv.size(), 4096,
					  data.size(), DMIO_REQ_FUA, RawAnswers::done, &a));
	ASSERT_TRUE(a.wait(1));
	EXPECT_EQ(0, a.errs[0]);
	EXPECT_TRUE(same_bytes(data, exported(4096, data.size())));
	std::vector<uint8_t> back(data.size(), 0xee);
	std::vector<iovec> rv = cut(back, {4096, 4097, 131072, 500001});
	ASSERT_EQ(0, dmio_test_dev_submit(dev_.get(), DMIO_READ, rv.data(), rv.size(), 4096,
					  back.size(), 0, RawAnswers::done, &a));
	ASSERT_EQ(0, dmio_test_dev_submit(dev_.get(), DMIO_FLUSH, nullptr, 0, 0, 0, 0,
					  RawAnswers::done, &a));
	ASSERT_TRUE(a.wait(3));
	EXPECT_EQ(0, a.errs[1]);
	EXPECT_EQ(0, a.errs[2]);
	EXPECT_TRUE(same_bytes(data, back));
	/* Answered from the device's own thread, never the submitter's. */
	EXPECT_EQ(0u, a.threads.count(std::this_thread::get_id()));
	/* What the server lacks is refused at once, and never answered. */
	EXPECT_EQ(-EOPNOTSUPP, dmio_test_dev_submit(dev_.get(), DMIO_WRITE_ZEROES, nullptr, 0, 0,
						    4096, 0, RawAnswers::done, &a));
	usleep(50 * 1000);
	EXPECT_EQ(3u, a.count());
}

TEST_P(NbdAio, TheCloseEndsWhatADirectCallerHasInFlight)
{
	ASSERT_NO_FATAL_FAILURE(serve({"--filter=delay"}, {"rdelay=30", "wdelay=30"}));
	std::vector<std::vector<uint8_t>> bufs;
	for (unsigned i = 0; i < 16; i++)
		bufs.push_back(pattern(4096, 900 + i));
	std::vector<iovec> iov;
	for (auto &b : bufs)
		iov.push_back({b.data(), b.size()});
	RawAnswers a;
	for (unsigned i = 0; i < 16; i++)
		ASSERT_EQ(0, dmio_test_dev_submit(dev_.get(), i % 2 ? DMIO_READ : DMIO_WRITE,
						  &iov[i], 1, i * 8192, 4096, 0, RawAnswers::done,
						  &a));
	usleep(100 * 1000);
	EXPECT_EQ(0u, a.count()) << "answered before the server did";
	auto t0 = std::chrono::steady_clock::now();
	dmio_dev_close(dev_.release());
	EXPECT_LT(ms_since(t0), 1000 * (long)scale()) << "the close waited for the server";
	/* Every one answered before the close returned. */
	ASSERT_EQ(16u, a.count());
	for (int err : a.errs)
		EXPECT_EQ(-ENOTCONN, err);
}

TEST_P(NbdAio, ConcurrentMixedRequestsLandIntact)
{
	/* The server refuses (EINVAL) data requests of more than 64 KiB: they must be split. */
	ASSERT_NO_FATAL_FAILURE(serve({"--filter=blocksize-policy"},
				      {"blocksize-minimum=512", "blocksize-preferred=4096",
				       "blocksize-maximum=65536", "blocksize-error-policy=error"}));
	constexpr unsigned kThreads = 4, kLanes = 4, kRounds = 12;
	constexpr uint64_t kLane = kSize / DMIO_SECTOR_SIZE / (kThreads * kLanes); /* sectors */
	std::vector<uint8_t> model = image_;
	std::atomic<int> bad{0};
	std::vector<std::thread> threads;
	for (unsigned t = 0; t < kThreads; t++) {
		threads.emplace_back([&, t] {
			std::mt19937 rng(1000 + t);
			for (unsigned round = 0; round < kRounds; round++) {
				/* One request per lane at once, every lane its own range. */
				Batch b;
				std::vector<std::vector<uint8_t>> data(kLanes);
				for (unsigned l = 0; l < kLanes; l++) {
					uint64_t lane = (t * kLanes + l) * kLane;
					uint64_t count = 1 + rng() % 600; /* up to 300 KiB */
					uint64_t sector = lane + rng() % (kLane - count);
					unsigned kind = rng() % 8;
					/* Scattered memory: copies through the commands' buffers. */
					unsigned pieces = rng() % 2 ? 1 : 2 + rng() % 12;
					size_t off = sector * DMIO_SECTOR_SIZE;
					size_t len = count * DMIO_SECTOR_SIZE;
					if (kind < 4) {
						data[l] = pattern(len, rng());
						b.submit(client_.get(), dev_.get(), DMIO_WRITE,
							 sector, count, kind == 0 ? DMIO_REQ_FUA : 0,
							 data[l], pieces);
						memcpy(&model[off], data[l].data(), len);
					} else if (kind == 4) {
						b.submit(client_.get(), dev_.get(),
							 DMIO_WRITE_ZEROES, sector, count);
						memset(&model[off], 0, len);
					} else {
						b.submit(client_.get(), dev_.get(), DMIO_READ,
							 sector, count, 0, {}, pieces);
					}
				}
				if (!b.wait_all()) {
					bad++;
					return;
				}
				for (auto &o : b.ops()) {
					if (o->bits != 0)
						bad++;
					if (o->op == DMIO_READ &&
					    memcmp(o->buf.data(),
						   &model[o->sector * DMIO_SECTOR_SIZE],
						   o->buf.size()) != 0)
						bad++;
				}
			}
		});
	}
	for (auto &t : threads)
		t.join();
	EXPECT_EQ(0, bad.load());
	EXPECT_TRUE(same_bytes(model, exported(0, kSize)));
	/* And read back whole through the device: 8 MiB in 64 KiB commands. */
	Batch b;
	b.submit(client_.get(), dev_.get(), DMIO_READ, 0, kSize / DMIO_SECTOR_SIZE);
	ASSERT_TRUE(b.wait_all());
	EXPECT_EQ(0ul, b.ops()[0]->bits);
	EXPECT_TRUE(same_bytes(model, b.ops()[0]->buf));
}

INSTANTIATE_TEST_SUITE_P(EnginesSyncAsync, Nbd,
			 ::testing::Values(NbdParam{Engine::Threads, false},
					   NbdParam{Engine::Threads, true},
					   NbdParam{Engine::IoUring, false},
					   NbdParam{Engine::IoUring, true}),
			 [](const ::testing::TestParamInfo<NbdParam> &info) {
				 return std::string(engine_name(info.param.engine)) +
					(info.param.async ? "_async" : "_sync");
			 });
INSTANTIATE_TEST_SUITE_P(Engines, NbdConcurrent,
			 ::testing::Values(NbdParam{Engine::Threads, false},
					   NbdParam{Engine::IoUring, false}),
			 [](const ::testing::TestParamInfo<NbdParam> &info) {
				 return std::string(engine_name(info.param.engine));
			 });

INSTANTIATE_TEST_SUITE_P(Engines, NbdAio,
			 ::testing::Values(NbdParam{Engine::Threads, true},
					   NbdParam{Engine::IoUring, true}),
			 [](const ::testing::TestParamInfo<NbdParam> &info) {
				 return std::string(engine_name(info.param.engine));
			 });

class NbdOpen : public DmioTest
{
};

TEST_F(NbdOpen, BadUrisAndMissingServersGiveAnErrno)
{
	Dev dev;
	/* No server behind the socket. */
	int r = open_dev("nbd+unix:///?socket=" + (tmp_ / "nothing.sock"), 0, &dev);
	EXPECT_TRUE(r == -ENOENT || r == -ECONNREFUSED) << r;
	EXPECT_EQ(nullptr, dev.get());
	/* Nothing listens on the port (loopback only). */
	r = open_dev("nbd://127.0.0.1:1/", 0, &dev);
	EXPECT_EQ(-ECONNREFUSED, r);
	/* Not a URI libnbd can parse: a unix socket URI with no socket. */
	r = open_dev("nbd+unix:///export", 0, &dev);
	EXPECT_LT(r, 0);
	EXPECT_NE(-ENOTSUP, r);
	r = open_dev("nbd://[::1", 0, &dev);
	EXPECT_LT(r, 0);
	EXPECT_EQ(nullptr, dev.get());
}

TEST(NbdRedact, SecretsOfAUriAreNeverShown)
{
	struct {
		const char *in, *out;
	} cases[] = {
	    {"nbd+unix:///?socket=/run/x.sock", "nbd+unix:///?socket=/run/x.sock"},
	    {"nbds://alice:hunter2@host:10809/disk?tls-psk-file=/etc/k.psk",
	     "nbds://***@host:10809/disk?tls-psk-file=***"},
	    {"nbds://host/e?tls-username=bob&password=s3cret&x=1",
	     "nbds://host/e?tls-username=bob&password=***&x=1"},
	    {"nbd://h/a@b", "nbd://h/a@b"},
	    {"nbds+unix://u@/e?socket=/s&tls-psk-file=/k#f",
	     "nbds+unix://***@/e?socket=/s&tls-psk-file=***#f"},
	};
	for (const auto &c : cases) {
		char *got = dmio_nbd_redact_uri(c.in);
		EXPECT_STREQ(c.out, got) << c.in;
		free(got);
	}
}

} // namespace
