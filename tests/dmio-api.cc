/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The API's edges: opening devices (and the errors of dmio_dev_open), what the device probes
 * report for files and loop devices, clients and their options, dmio_get/dmio_put, and every
 * argument error of dmio() and the seed calls: each returns -EINVAL (or -EROFS), touches no
 * device and never calls the notify fn.
 */
#include "test-util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>

using namespace dmio_test;

namespace
{

/* ---- Paths: dmio_path_* ------------------------------------------------------------------ */

std::string take(char *s)
{
	std::string out = s != nullptr ? s : "(null)";

	free(s);
	return out;
}

TEST(Paths, WhatIsAUri)
{
	for (const char *uri :
	     {"nbd://h/e", "nbds://h", "nbd+unix:///e?socket=/s", "nbds+unix:///?socket=/s",
	      "nbd+vsock://2/e", "nbds+vsock://3:10809"})
		EXPECT_TRUE(dmio_path_is_uri(uri)) << uri;
	for (const char *path :
	     {"/srv/a.img", "./nbd://h/e", "NBD://h/e", "nbd:/h", "nbdx://h/e", "", "http://h/e"})
		EXPECT_FALSE(dmio_path_is_uri(path)) << path;
	EXPECT_FALSE(dmio_path_is_uri(nullptr));
}

TEST(Paths, UriProblems)
{
	for (const char *ok : {"nbd://h/e", "nbd://127.0.0.1:10810/", "nbd://[::1]/e",
			       "nbds://alice@h/e?tls-psk-file=/k", "nbd+unix:///e?socket=/s",
			       "nbd+vsock://2/e", "/not/a/uri", "relative"})
		EXPECT_EQ(nullptr, dmio_path_uri_problem(ok)) << ok;
	struct {
		const char *uri, *problem;
	} bad[] = {
	    {"nbd:///e", "names no host"},
	    {"nbd://h:x/e", "is not a well-formed URI"},
	    {"nbd://h/%zz", "is not a well-formed URI"},
	    {"nbd://h/a b", "contains a blank or a control character"},
	    {"nbd://h/a\x01", "contains a blank or a control character"},
	    {"nbd://h/e?socket=/s", "has a socket= parameter, which only a unix URI "
				    "(nbd+unix://) takes"},
	    {"nbd+unix:///e", "names no socket: a unix URI is nbd+unix:///EXPORT?socket=PATH"},
	    {"nbd+unix:///e?socket=", "names no socket: a unix URI is "
				      "nbd+unix:///EXPORT?socket=PATH"},
	    {"nbd+unix://h/e?socket=/s", "names a host: a unix URI is "
					 "nbd+unix:///EXPORT?socket=PATH"},
	    {"nbd+vsock://host/e", "names a vsock host that is not a number (a CID)"},
	};
	for (const auto &b : bad) {
		const char *got = dmio_path_uri_problem(b.uri);

		EXPECT_STREQ(b.problem, got != nullptr ? got : "(null)") << b.uri;
	}
}

TEST(Paths, DisplayRedactsSecretsOnly)
{
	EXPECT_EQ("/srv/a:b@c?password=x", take(dmio_path_display("/srv/a:b@c?password=x")));
	EXPECT_EQ("nbds://***@h/e?tls-psk-file=***&password=***",
		  take(dmio_path_display("nbds://alice:pw@h/e?tls-psk-file=/k&password=pw")));
	EXPECT_EQ("nbd+unix:///e?socket=/s", take(dmio_path_display("nbd+unix:///e?socket=/s")));
	EXPECT_EQ(nullptr, dmio_path_display(nullptr));
}

TEST(Paths, NormalizeGivesOneSpellingPerExport)
{
	EXPECT_EQ("nbd://host/", take(dmio_path_normalize("nbd://HOST")));
	EXPECT_EQ("nbd://host/", take(dmio_path_normalize("nbd://host:10809/")));
	EXPECT_EQ("nbd://host:10810/e", take(dmio_path_normalize("nbd://Host:10810/e")));
	EXPECT_EQ("nbds://host/e", take(dmio_path_normalize("nbds://host:10809/e")));
	EXPECT_EQ("nbd://[::1]/e", take(dmio_path_normalize("nbd://[::1]:10809/e")));
	EXPECT_EQ("nbd+unix:///e?socket=/s", take(dmio_path_normalize("nbd+unix:///e?socket=/s")));
	// Only the TCP schemes have 10809 as their default port.
	EXPECT_EQ("nbd+vsock://2:10809/e", take(dmio_path_normalize("nbd+vsock://2:10809/e")));
	// Files and malformed URIs as they are.
	EXPECT_EQ("/srv//a.img", take(dmio_path_normalize("/srv//a.img")));
	EXPECT_EQ("nbd:///e", take(dmio_path_normalize("nbd:///e")));
	EXPECT_EQ(nullptr, dmio_path_normalize(nullptr));
}

/* ---- Devices ------------------------------------------------------------------------------ */

class Devices : public DmioTest
{
};

TEST_F(Devices, OpenErrors)
{
	dmio_dev *dev = reinterpret_cast<dmio_dev *>(0x1);
	EXPECT_EQ(-ENOENT, dmio_dev_open((tmp_ / "missing").c_str(), 0, &dev));
	EXPECT_EQ(-ENOENT, dmio_dev_open((tmp_ / "missing").c_str(), DMIO_DEV_RDONLY, &dev));
	EXPECT_EQ(-EISDIR, dmio_dev_open(tmp_.path().c_str(), 0, &dev)) << "a directory";
	EXPECT_EQ(-EISDIR, dmio_dev_open(tmp_.path().c_str(), DMIO_DEV_RDONLY, &dev))
	    << "a directory, read-only";
	EXPECT_EQ(-EINVAL, dmio_dev_open("/dev/null", 0, &dev)) << "a character device";
	/* A fifo: refused, and without waiting for a writer (one shows up after 2 s to unblock). */
	std::string fifo = tmp_ / "fifo";
	ASSERT_EQ(0, mkfifo(fifo.c_str(), 0600));
	std::atomic<bool> opened{false};
	std::thread unblocker([&] {
		for (int i = 0; i < 200 && !opened; i++)
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
		if (!opened) {
			int fd = open(fifo.c_str(), O_RDWR | O_CLOEXEC);
			std::this_thread::sleep_for(std::chrono::milliseconds(100));
			close(fd);
		}
	});
	auto start = std::chrono::steady_clock::now();
	EXPECT_EQ(-EINVAL, dmio_dev_open(fifo.c_str(), DMIO_DEV_RDONLY, &dev)) << "a fifo";
	EXPECT_EQ(-EINVAL, dmio_dev_open(fifo.c_str(), 0, &dev)) << "a fifo";
	opened = true;
	unblocker.join();
	EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500))
	    << "dmio_dev_open blocked on a fifo";

	std::string path = tmp_ / "file.img";
	create_sparse(path, 1024 * 1024);
	EXPECT_EQ(-EINVAL, dmio_dev_open(path.c_str(), 1u << 3, &dev)) << "an unknown flag";
	EXPECT_EQ(-EINVAL, dmio_dev_open(path.c_str(), 1u << 31, &dev)) << "an unknown flag";
	/* The header promises nothing for *out on failure but a usable value: NULL or untouched. */
	EXPECT_TRUE(dev == nullptr || dev == reinterpret_cast<dmio_dev *>(0x1));
	dmio_dev_close(nullptr);
}

TEST_F(Devices, RegularFile)
{
	std::string path = tmp_ / "file.img";
	create_sparse(path, 1024 * 1024 + 100); /* the partial trailing sector is not counted */
	for (unsigned flags : {0u, (unsigned)DMIO_DEV_RDONLY, (unsigned)DMIO_DEV_DIRECT,
			       (unsigned)(DMIO_DEV_RDONLY | DMIO_DEV_DIRECT)}) {
		SCOPED_TRACE("flags " + std::to_string(flags));
		Dev dev;
		ASSERT_EQ(0, open_dev(path, flags, &dev));
		EXPECT_EQ(2048u, dmio_dev_sectors(dev.get()));
		EXPECT_EQ(512u, dmio_dev_logical_block_size(dev.get()));
		EXPECT_FALSE(dmio_dev_is_block(dev.get()));
		EXPECT_STREQ(path.c_str(), dmio_dev_path(dev.get()));
		EXPECT_EQ(flags, dmio_dev_flags(dev.get()));
	}
	/* The path is the device's own copy. */
	std::string copy = path;
	Dev dev;
	ASSERT_EQ(0, open_dev(copy, 0, &dev));
	copy.assign(copy.size(), 'x');
	EXPECT_STREQ(path.c_str(), dmio_dev_path(dev.get()));

	create_sparse(tmp_ / "empty.img", 0);
	Dev empty;
	ASSERT_EQ(0, open_dev(tmp_ / "empty.img", 0, &empty));
	EXPECT_EQ(0u, dmio_dev_sectors(empty.get()));
}

TEST_F(Devices, LoopDevices)
{
	std::string backing = tmp_ / "loop.img";
	create_sparse(backing, 4 * 1024 * 1024);
	LoopDevice loop;
	DMIO_REQUIRE_LOOP(loop, backing);
	Dev dev;
	ASSERT_EQ(0, open_dev(loop.path(), 0, &dev));
	EXPECT_TRUE(dmio_dev_is_block(dev.get()));
	EXPECT_EQ(8192u, dmio_dev_sectors(dev.get()));
	EXPECT_EQ(512u, dmio_dev_logical_block_size(dev.get()));
	EXPECT_STREQ(loop.path().c_str(), dmio_dev_path(dev.get()));

	std::string backing4k = tmp_ / "loop4k.img";
	create_sparse(backing4k, 6 * 1024 * 1024);
	LoopDevice loop4k;
	DMIO_REQUIRE_LOOP(loop4k, backing4k, false, 4096);
	Dev dev4k;
	ASSERT_EQ(0, open_dev(loop4k.path(), DMIO_DEV_RDONLY, &dev4k));
	EXPECT_TRUE(dmio_dev_is_block(dev4k.get()));
	EXPECT_EQ(12288u, dmio_dev_sectors(dev4k.get()));
	EXPECT_EQ(4096u, dmio_dev_logical_block_size(dev4k.get()));
	EXPECT_EQ((unsigned)DMIO_DEV_RDONLY, dmio_dev_flags(dev4k.get()));
}

/* ---- Exclusive opens --------------------------------------------------------------------- */

/* A plain descriptor, closed when it goes out of scope. */
struct Fd {
	int fd;
	explicit Fd(int f) : fd(f)
	{
	}
	~Fd()
	{
		if (fd >= 0)
			close(fd);
	}
};

/*
 * Another process that takes a classic (process-owned) fcntl write lock on path, then waits for
 * a byte on a pipe or its end.  Only async-signal-safe calls after fork: the test has threads.
 */
class LockingChild
{
      public:
	explicit LockingChild(const std::string &path)
	{
		int ready[2], go[2];

		if (pipe(ready) < 0 || pipe(go) < 0)
			return;
		pid_ = fork();
		if (pid_ == 0) {
			struct flock lock = {};
			char c = 'x';

			/* Our end of go must be the parent's only: its close is the signal. */
			close(ready[0]);
			close(go[1]);

			lock.l_type = F_WRLCK;
			lock.l_whence = SEEK_SET;
			int fd = open(path.c_str(), O_RDWR);
			if (fd < 0 || fcntl(fd, F_SETLK, &lock) < 0)
				c = 'e';
			if (write(ready[1], &c, 1) != 1)
				_exit(1);
			(void)!read(go[0], &c, 1);
			_exit(0);
		}
		close(ready[1]);
		close(go[0]);
		go_ = go[1];
		char c = 0;
		locked_ = read(ready[0], &c, 1) == 1 && c == 'x';
		close(ready[0]);
	}
	~LockingChild()
	{
		stop();
	}
	bool locked() const
	{
		return locked_;
	}
	void stop()
	{
		if (go_ >= 0)
			close(go_);
		go_ = -1;
		if (pid_ > 0)
			waitpid(pid_, nullptr, 0);
		pid_ = -1;
	}

      private:
	pid_t pid_ = -1;
	int go_ = -1;
	bool locked_ = false;
};

TEST_F(Devices, ExclusiveFile)
{
	std::string path = tmp_ / "claimed.img";
	create_sparse(path, 1024 * 1024);

	Dev first;
	ASSERT_EQ(0, open_dev(path, DMIO_DEV_EXCLUSIVE, &first));
	EXPECT_EQ((unsigned)DMIO_DEV_EXCLUSIVE, dmio_dev_flags(first.get()));
	/* A second exclusive open is refused, also in the same process and read-only. */
	Dev second;
	EXPECT_EQ(-EBUSY, open_dev(path, DMIO_DEV_EXCLUSIVE, &second));
	EXPECT_EQ(nullptr, second.get());
	EXPECT_EQ(-EBUSY, open_dev(path, DMIO_DEV_EXCLUSIVE | DMIO_DEV_RDONLY, &second));
	/* Through a hard link: the same file. */
	std::string link_path = tmp_ / "link.img";
	ASSERT_EQ(0, link(path.c_str(), link_path.c_str())) << strerror(errno);
	EXPECT_EQ(-EBUSY, open_dev(link_path, DMIO_DEV_EXCLUSIVE, &second));
	/* The lock is advisory: plain opens work as before. */
	Dev plain;
	EXPECT_EQ(0, open_dev(path, 0, &plain));
	plain.reset();
	/* Closing another descriptor of the file does not drop the lock (unlike a POSIX lock). */
	EXPECT_EQ(-EBUSY, open_dev(path, DMIO_DEV_EXCLUSIVE, &second));
	/* Other programs see it as a write lock over the whole file. */
	{
		Fd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
		ASSERT_GE(fd.fd, 0);
		struct flock lock = {};
		lock.l_type = F_RDLCK;
		lock.l_whence = SEEK_SET;
		lock.l_start = 1 << 30; /* past the end too */
		lock.l_len = 1;
		ASSERT_EQ(0, fcntl(fd.fd, F_OFD_GETLK, &lock)) << strerror(errno);
		EXPECT_EQ(F_WRLCK, lock.l_type);
	}
	/* Closing releases it. */
	first.reset();
	EXPECT_EQ(0, open_dev(path, DMIO_DEV_EXCLUSIVE, &second));
	second.reset();

	/* Read-only exclusive opens share a read lock, which keeps writers out. */
	Dev reader1, reader2, writer;
	ASSERT_EQ(0, open_dev(path, DMIO_DEV_EXCLUSIVE | DMIO_DEV_RDONLY, &reader1));
	EXPECT_EQ(0, open_dev(path, DMIO_DEV_EXCLUSIVE | DMIO_DEV_RDONLY, &reader2));
	EXPECT_EQ(-EBUSY, open_dev(path, DMIO_DEV_EXCLUSIVE, &writer));
	reader1.reset();
	reader2.reset();
	EXPECT_EQ(0, open_dev(path, DMIO_DEV_EXCLUSIVE, &writer));
}

TEST_F(Devices, ExclusiveFileAgainstAnotherProcess)
{
	std::string path = tmp_ / "locked.img";
	create_sparse(path, 1024 * 1024);
	Dev dev;
	{
		LockingChild child(path);
		ASSERT_TRUE(child.locked()) << "the child could not lock " << path;
		EXPECT_EQ(-EBUSY, open_dev(path, DMIO_DEV_EXCLUSIVE, &dev))
		    << "a POSIX lock of another process";
		EXPECT_EQ(0, open_dev(path, 0, &dev)) << "a plain open";
		dev.reset();
		child.stop(); /* its lock goes with it */
		EXPECT_EQ(0, open_dev(path, DMIO_DEV_EXCLUSIVE, &dev));
	}
	/* Held by us, another process cannot lock it. */
	LockingChild late(path);
	EXPECT_FALSE(late.locked()) << "another process locked a file held exclusively";
}

TEST_F(Devices, ExclusiveLoopDevice)
{
	std::string backing = tmp_ / "loop.img";
	create_sparse(backing, 4 * 1024 * 1024);
	LoopDevice loop;
	DMIO_REQUIRE_LOOP(loop, backing);
	Dev dev;
	{
		/* Another holder with O_EXCL (what mount, mkfs and md do). */
		Fd holder(open(loop.path().c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
		ASSERT_GE(holder.fd, 0) << strerror(errno);
		EXPECT_EQ(-EBUSY, open_dev(loop.path(), DMIO_DEV_EXCLUSIVE, &dev));
		EXPECT_EQ(-EBUSY,
			  open_dev(loop.path(), DMIO_DEV_EXCLUSIVE | DMIO_DEV_RDONLY, &dev));
		EXPECT_EQ(0, open_dev(loop.path(), 0, &dev)) << "a plain open";
		dev.reset();
	}
	ASSERT_EQ(0, open_dev(loop.path(), DMIO_DEV_EXCLUSIVE, &dev));
	EXPECT_EQ((unsigned)DMIO_DEV_EXCLUSIVE, dmio_dev_flags(dev.get()));
	/* Held: nothing else can claim it (so mkfs and mount fail), nor a second dmio open. */
	errno = 0;
	Fd refused(open(loop.path().c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
	EXPECT_EQ(-1, refused.fd);
	EXPECT_EQ(EBUSY, errno);
	Dev second;
	EXPECT_EQ(-EBUSY, open_dev(loop.path(), DMIO_DEV_EXCLUSIVE, &second));
	dev.reset();
	/* Closing releases it. */
	Fd after(open(loop.path().c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
	EXPECT_GE(after.fd, 0) << strerror(errno);
}

/* ---- Clients ------------------------------------------------------------------------------ */

class Clients : public DmioTest
{
};

TEST_F(Clients, CreateResizeDestroy)
{
	dmio_client *client = nullptr;
	ASSERT_EQ(0, dmio_client_create(nullptr, &client)) << "NULL options: the defaults";
	EXPECT_STREQ("threads", dmio_client_engine_name(client));
	EXPECT_EQ(0, dmio_client_resize(client, 100));
	EXPECT_EQ(0, dmio_client_resize(client, 3));
	EXPECT_EQ(0, dmio_client_resize(client, 0));
	EXPECT_EQ(0, dmio_client_resize(client, 10));
	dmio_client_destroy(client);
	dmio_client_destroy(nullptr);

	for (unsigned threads : {1u, 4u, 32u}) {
		Client c;
		ASSERT_EQ(0, make_client(Engine::Threads, &c, threads, 8)) << threads << " threads";
		EXPECT_STREQ("threads", dmio_client_engine_name(c.get()));
		/* The client works: a 3-region write with a single thread too. */
		std::vector<Dev> devs(3);
		std::vector<dmio_region> where;
		for (int i = 0; i < 3; i++) {
			std::string path =
			    tmp_ / ("c" + std::to_string(threads) + "_" + std::to_string(i));
			create_sparse(path, 64 * 1024);
			ASSERT_EQ(0, open_dev(path, 0, &devs[i]));
			where.push_back({devs[i].get(), (uint64_t)i, 8});
		}
		std::vector<uint8_t> data = pattern(4096, threads);
		Memory mem(MemKind::Vm, data.size());
		mem.fill(data);
		IoOutcome o = run_io(Call::DmioSync, c.get(), DMIO_WRITE, &mem, where);
		expect_success(o, Call::DmioSync, 3, "write");
		for (int i = 0; i < 3; i++)
			EXPECT_TRUE(same_bytes(data, read_at(dmio_dev_path(devs[i].get()),
							     i * DMIO_SECTOR_SIZE, 4096)));
	}
}

TEST_F(Clients, BadOptions)
{
	dmio_client_opts opts;
	memset(&opts, 0, sizeof(opts));
	opts.engine = static_cast<dmio_engine>(7);
	dmio_client *client = reinterpret_cast<dmio_client *>(0x1);
	EXPECT_EQ(-EINVAL, dmio_client_create(&opts, &client)) << "an unknown engine";
	EXPECT_TRUE(client == nullptr || client == reinterpret_cast<dmio_client *>(0x1));
}

TEST_F(Clients, IoUringEngine)
{
	Client c;
	int r = make_client(Engine::IoUring, &c, 0, 4);
	if (r == -ENOTSUP)
		GTEST_SKIP() << io_uring_skip_reason();
	ASSERT_EQ(0, r);
	EXPECT_STREQ("io_uring", dmio_client_engine_name(c.get()));
	EXPECT_EQ(0, dmio_client_resize(c.get(), 16));
	/* queue_depth is an io_uring option: a small queue still carries big requests. */
	dmio_client_opts opts;
	memset(&opts, 0, sizeof(opts));
	opts.engine = DMIO_ENGINE_IO_URING;
	opts.queue_depth = 4;
	dmio_client *small = nullptr;
	ASSERT_EQ(0, dmio_client_create(&opts, &small));
	Client small_client(small);
	std::vector<Dev> devs(8);
	std::vector<dmio_region> where;
	for (int i = 0; i < 8; i++) {
		std::string path = tmp_ / ("q" + std::to_string(i));
		create_sparse(path, 1024 * 1024);
		ASSERT_EQ(0, open_dev(path, 0, &devs[i]));
		where.push_back({devs[i].get(), 16, 256});
	}
	std::vector<uint8_t> data = pattern(256 * DMIO_SECTOR_SIZE, 4);
	Memory mem(MemKind::Bvec, data.size(), 1);
	mem.fill(data);
	IoOutcome o = run_io(Call::DmioAsync, small, DMIO_WRITE, &mem, where);
	expect_success(o, Call::DmioAsync, 8, "8 regions through a 4-entry queue");
	for (int i = 0; i < 8; i++)
		EXPECT_TRUE(same_bytes(data, read_at(dmio_dev_path(devs[i].get()),
						     16 * DMIO_SECTOR_SIZE, data.size())));
}

/* dmio_get / dmio_put: the default client appears, grows, is freed, and comes back. */
TEST_F(Clients, GetAndPut)
{
	std::string path = tmp_ / "getput.img";
	create_sparse(path, 1024 * 1024);
	Dev dev;
	ASSERT_EQ(0, open_dev(path, 0, &dev));
	for (int round = 0; round < 3; round++) {
		SCOPED_TRACE("round " + std::to_string(round));
		ASSERT_EQ(0, dmio_get(2));
		ASSERT_EQ(0, dmio_get(30));
		ASSERT_EQ(0, dmio_get(0));
		std::vector<uint8_t> data = pattern(8192, round);
		dmio_region where = {dev.get(), (uint64_t)round * 16, 16};
		unsigned long bits = ~0ul;
		EXPECT_EQ(0, dmio_sync_vm(1, &where, DMIO_WRITE, data.data(), &bits));
		EXPECT_EQ(0ul, bits);
		/* dmio() with client NULL is the same default client. */
		std::vector<uint8_t> back(8192, 0xaa);
		dmio_request req;
		memset(&req, 0, sizeof(req));
		req.op = DMIO_READ;
		req.mem.type = DMIO_MEM_VM;
		req.mem.ptr.vma = back.data();
		EXPECT_EQ(0, dmio(&req, 1, &where, &bits));
		EXPECT_TRUE(same_bytes(data, back));
		dmio_put(30);
		/* Still reserved: still usable. */
		EXPECT_EQ(0, dmio_sync_vm(1, &where, DMIO_READ, back.data(), &bits));
		dmio_put(0);
		dmio_put(2);
	}
}

/* ---- Argument errors ------------------------------------------------------------------------ */

/*
 * Every case runs against a file holding a known pattern and a Completion; at the end the file
 * must be unchanged and the notify fn never called.
 */
class ArgumentErrors : public DefaultClientParamTest<Engine>
{
      protected:
	void SetUp() override
	{
		DefaultClientParamTest<Engine>::SetUp();
		if (IsSkipped() || HasFatalFailure())
			return;
		DMIO_REQUIRE_CLIENT(GetParam(), client_);
		path_ = tmp_ / "target.img";
		image_ = pattern(kFileSize, 1);
		write_file(path_, image_);
		ASSERT_EQ(0, open_dev(path_, 0, &dev_));
		data_ = pattern(kFileSize, 2);
		mem_.reset(new Memory(MemKind::Vm, kFileSize));
		mem_->fill(data_);
	}
	void TearDown() override
	{
		if (dev_) {
			/* Late notifications would show up here. */
			std::this_thread::sleep_for(std::chrono::milliseconds(50));
			EXPECT_EQ(0, done_.calls()) << "notify was called for a refused request";
			EXPECT_TRUE(same_bytes(image_, read_at(path_, 0, kFileSize)))
			    << "a refused request changed the file";
		}
		DefaultClientParamTest<Engine>::TearDown();
	}
	/* A request on this test's client; sync unless async. */
	dmio_request request(dmio_op op, bool async)
	{
		dmio_request req;
		memset(&req, 0, sizeof(req));
		req.op = op;
		req.mem.type = DMIO_MEM_VM;
		req.mem.ptr.vma = mem_->vm();
		req.client = client_.get();
		if (async) {
			req.notify.fn = &Completion::notify;
			req.notify.context = &done_;
		}
		return req;
	}
	/* dmio() must refuse the request with expected, sync and async. */
	void expect_refused(int expected, dmio_request req, std::vector<dmio_region> where,
			    unsigned num_regions, const std::string &what)
	{
		SCOPED_TRACE(what);
		where.resize(std::max<size_t>(where.size(), 1));
		for (bool async : {false, true}) {
			dmio_request r = req;
			if (async) {
				r.notify.fn = &Completion::notify;
				r.notify.context = &done_;
			}
			unsigned long bits = 0x5a5a;
			EXPECT_EQ(expected,
				  dmio(&r, num_regions, where.data(), async ? nullptr : &bits))
			    << (async ? "async" : "sync");
		}
	}

	static constexpr uint64_t kFileSize = 64 * 1024;
	static constexpr uint64_t kSectors = kFileSize / DMIO_SECTOR_SIZE;
	Client client_;
	std::string path_;
	std::vector<uint8_t> image_, data_;
	Dev dev_;
	std::unique_ptr<Memory> mem_;
	Completion done_;
};

TEST_P(ArgumentErrors, RegionCounts)
{
	dmio_request req = request(DMIO_WRITE, false);
	std::vector<dmio_region> many(DMIO_MAX_REGIONS + 1, {dev_.get(), 0, 8});
	expect_refused(-EINVAL, req, many, 0, "no region");
	expect_refused(-EINVAL, req, many, DMIO_MAX_REGIONS + 1, "65 regions");
	expect_refused(-EINVAL, req, many, UINT_MAX, "UINT_MAX regions");
	expect_refused(-EINVAL, request(DMIO_READ, false), many, 2, "a read of two regions");
	expect_refused(-EINVAL, request(DMIO_READ, false), many, DMIO_MAX_REGIONS,
		       "a read of 64 regions");

	unsigned long bits = 0;
	EXPECT_EQ(-EINVAL, dmio_sync_vm(0, many.data(), DMIO_WRITE, mem_->vm(), &bits));
	EXPECT_EQ(-EINVAL, dmio_sync_vm(65, many.data(), DMIO_WRITE, mem_->vm(), &bits));
	EXPECT_EQ(-EINVAL, dmio_sync_vm(2, many.data(), DMIO_READ, mem_->vm(), &bits));
	EXPECT_EQ(-EINVAL, dmio_async_vm(0, many.data(), DMIO_WRITE, mem_->vm(),
					 &Completion::notify, &done_));
	EXPECT_EQ(-EINVAL, dmio_async_vm(65, many.data(), DMIO_WRITE, mem_->vm(),
					 &Completion::notify, &done_));
	EXPECT_EQ(-EINVAL, dmio_async_vm(2, many.data(), DMIO_READ, mem_->vm(), &Completion::notify,
					 &done_));
}

TEST_P(ArgumentErrors, NullBuffers)
{
	std::vector<dmio_region> where = {{dev_.get(), 0, 8}};
	for (dmio_op op : {DMIO_WRITE, DMIO_READ}) {
		SCOPED_TRACE(op == DMIO_WRITE ? "write" : "read");
		dmio_request req = request(op, false);
		req.mem.type = DMIO_MEM_PAGE_LIST;
		req.mem.ptr.pl = nullptr;
		expect_refused(-EINVAL, req, where, 1, "NULL page list");
		dmio_page_list no_page = {nullptr, nullptr};
		req.mem.ptr.pl = &no_page;
		expect_refused(-EINVAL, req, where, 1, "a page list entry without a page");
		req.mem.type = DMIO_MEM_BVEC;
		req.mem.ptr.bvec = nullptr;
		expect_refused(-EINVAL, req, where, 1, "NULL bvec array");
		req.mem.type = DMIO_MEM_VM;
		req.mem.ptr.vma = nullptr;
		expect_refused(-EINVAL, req, where, 1, "NULL vm buffer");
		req.mem.type = DMIO_MEM_IOVEC;
		req.mem.ptr.iov.vec = nullptr;
		req.mem.ptr.iov.count = 1;
		expect_refused(-EINVAL, req, where, 1, "NULL iovec array");

		unsigned long bits = 0;
		int rw = (int)op;
		EXPECT_EQ(-EINVAL, dmio_sync(1, where.data(), rw, nullptr, 0, &bits));
		EXPECT_EQ(-EINVAL,
			  dmio_async(1, where.data(), rw, nullptr, 0, &Completion::notify, &done_));
		EXPECT_EQ(-EINVAL, dmio_sync_bvec(1, where.data(), rw, nullptr, &bits));
		EXPECT_EQ(-EINVAL, dmio_async_bvec(1, where.data(), rw, nullptr,
						   &Completion::notify, &done_));
		EXPECT_EQ(-EINVAL, dmio_sync_vm(1, where.data(), rw, nullptr, &bits));
		EXPECT_EQ(-EINVAL,
			  dmio_async_vm(1, where.data(), rw, nullptr, &Completion::notify, &done_));
	}
}

/* Memory that does not cover the region is not a buffer for it. */
TEST_P(ArgumentErrors, MemoryShorterThanTheRegion)
{
	std::vector<dmio_region> where = {{dev_.get(), 0, 16}};
	std::vector<uint8_t> a(4096), b(2048);
	iovec iov[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
	dmio_request req = request(DMIO_WRITE, false);
	req.mem.type = DMIO_MEM_IOVEC;
	req.mem.ptr.iov.vec = iov;
	req.mem.ptr.iov.count = 2; /* 6 KiB for an 8 KiB region */
	expect_refused(-EINVAL, req, where, 1, "iovecs shorter than the region");
	Memory pl(MemKind::PageList, 4096, kPageAligned); /* one page for 8 KiB */
	req.mem = pl.desc();
	expect_refused(-EINVAL, req, where, 1, "a page list shorter than the region");
}

TEST_P(ArgumentErrors, BadRegions)
{
	dmio_request req = request(DMIO_WRITE, false);
	expect_refused(-EINVAL, req, {{nullptr, 0, 8}}, 1, "NULL device");
	expect_refused(-EINVAL, req, {{dev_.get(), 0, 8}, {nullptr, 0, 8}}, 2,
		       "NULL device in the second region");
	expect_refused(-EINVAL, req, {{dev_.get(), kSectors - 1, 2}}, 1, "one sector past the end");
	expect_refused(-EINVAL, req, {{dev_.get(), kSectors, 1}}, 1, "starting at the end");
	expect_refused(-EINVAL, req, {{dev_.get(), 0, 8}, {dev_.get(), kSectors - 4, 8}}, 2,
		       "the second region past the end");
	expect_refused(-EINVAL, req, {{dev_.get(), UINT64_MAX - 1, 4}}, 1,
		       "sector + count overflows");
	expect_refused(-EINVAL, req, {{dev_.get(), 4, UINT64_MAX - 1}}, 1,
		       "count + sector overflows");
	expect_refused(-EINVAL, req, {{dev_.get(), UINT64_MAX >> 9, 8}}, 1,
		       "the byte offset overflows");
	expect_refused(-EINVAL, request(DMIO_READ, false), {{dev_.get(), kSectors - 1, 2}}, 1,
		       "a read past the end");
	expect_refused(-EINVAL, request(DMIO_DISCARD, false), {{dev_.get(), kSectors - 1, 2}}, 1,
		       "a discard past the end");
	expect_refused(-EINVAL, request(DMIO_WRITE_ZEROES, false), {{dev_.get(), kSectors, 8}}, 1,
		       "write-zeroes past the end");

	dmio_region past = {dev_.get(), kSectors - 1, 2};
	unsigned long bits = 0;
	EXPECT_EQ(-EINVAL, dmio_sync_vm(1, &past, DMIO_WRITE, mem_->vm(), &bits));
	EXPECT_EQ(-EINVAL,
		  dmio_async_vm(1, &past, DMIO_WRITE, mem_->vm(), &Completion::notify, &done_));
	/* The last sector exactly is fine (and is the only thing written). */
	dmio_region last = {dev_.get(), kSectors - 1, 1};
	EXPECT_EQ(0, dmio_sync_vm(1, &last, DMIO_READ, mem_->vm(), &bits));
	EXPECT_EQ(0ul, bits);
}

TEST_P(ArgumentErrors, UnknownOpFlagAndOffset)
{
	std::vector<dmio_region> where = {{dev_.get(), 0, 8}};
	dmio_request req = request(DMIO_WRITE, false);
	req.op = static_cast<dmio_op>(5);
	expect_refused(-EINVAL, req, where, 1, "op 5");
	req.op = static_cast<dmio_op>(-1);
	expect_refused(-EINVAL, req, where, 1, "op -1");
	req = request(DMIO_WRITE, false);
	req.flags = 1u << 3; /* after DMIO_REQ_ABANDONABLE */
	expect_refused(-EINVAL, req, where, 1, "flag 1 << 2");
	req.flags = DMIO_REQ_FUA | (1u << 31);
	expect_refused(-EINVAL, req, where, 1, "FUA plus flag 1 << 31");
	req = request(DMIO_WRITE, false);
	req.mem.type = static_cast<dmio_mem_type>(9);
	expect_refused(-EINVAL, req, where, 1, "memory type 9");

	/* A page list offset must lie inside the first page. */
	Memory pl(MemKind::PageList, 8 * 4096, kPageAligned);
	req = request(DMIO_WRITE, false);
	req.mem = pl.desc();
	req.mem.offset = DMIO_PAGE_SIZE;
	expect_refused(-EINVAL, req, where, 1, "page-list offset == DMIO_PAGE_SIZE");
	req.mem.offset = UINT_MAX;
	expect_refused(-EINVAL, req, where, 1, "page-list offset UINT_MAX");
	unsigned long bits = 0;
	EXPECT_EQ(-EINVAL,
		  dmio_sync(1, where.data(), DMIO_WRITE, pl.page_list(), DMIO_PAGE_SIZE, &bits));
	EXPECT_EQ(-EINVAL, dmio_async(1, where.data(), DMIO_WRITE, pl.page_list(),
				      DMIO_PAGE_SIZE + 512, &Completion::notify, &done_));
	/* The seed's rw is DMIO_READ or DMIO_WRITE only. */
	EXPECT_EQ(-EINVAL, dmio_sync_vm(1, where.data(), DMIO_DISCARD, mem_->vm(), &bits));
	EXPECT_EQ(-EINVAL, dmio_sync_vm(1, where.data(), 7, mem_->vm(), &bits));
	EXPECT_EQ(-EINVAL,
		  dmio_async_vm(1, where.data(), -1, mem_->vm(), &Completion::notify, &done_));
}

TEST_P(ArgumentErrors, ReadOnlyDevice)
{
	Dev ro;
	ASSERT_EQ(0, open_dev(path_, DMIO_DEV_RDONLY, &ro));
	std::vector<dmio_region> where = {{ro.get(), 0, 8}};
	for (dmio_op op : {DMIO_WRITE, DMIO_DISCARD, DMIO_WRITE_ZEROES})
		expect_refused(-EROFS, request(op, false), where, 1,
			       "op " + std::to_string((int)op) + " on a read-only device");
	/* One read-only region among writable ones: nothing is issued on any. */
	expect_refused(-EROFS, request(DMIO_WRITE, false),
		       {{dev_.get(), 0, 8}, {ro.get(), 16, 8}, {dev_.get(), 32, 8}}, 3,
		       "a read-only device in the second region");
	unsigned long bits = 0;
	EXPECT_EQ(-EROFS, dmio_sync_vm(1, where.data(), DMIO_WRITE, mem_->vm(), &bits));
	EXPECT_EQ(-EROFS, dmio_async_vm(1, where.data(), DMIO_WRITE, mem_->vm(),
					&Completion::notify, &done_));

	/* Reading and flushing a read-only device is fine. */
	std::vector<uint8_t> back(4096, 0xaa);
	EXPECT_EQ(0, dmio_sync_vm(1, where.data(), DMIO_READ, back.data(), &bits));
	EXPECT_EQ(0ul, bits);
	EXPECT_TRUE(same_bytes(std::vector<uint8_t>(image_.begin(), image_.begin() + 4096), back));
	dmio_request flush = request(DMIO_FLUSH, false);
	dmio_region flush_where = {ro.get(), 0, 0};
	EXPECT_EQ(0, dmio(&flush, 1, &flush_where, &bits));
}

/* A DIRECT region must be aligned to the device's logical block size. */
TEST_P(ArgumentErrors, UnalignedDirectRegion)
{
	std::string backing = tmp_ / "loop4k.img";
	create_sparse(backing, 1024 * 1024);
	LoopDevice loop;
	DMIO_REQUIRE_LOOP(loop, backing, false, 4096);
	Dev direct;
	ASSERT_EQ(0, open_dev(loop.path(), DMIO_DEV_DIRECT, &direct));
	ASSERT_EQ(4096u, dmio_dev_logical_block_size(direct.get()));
	for (dmio_op op : {DMIO_WRITE, DMIO_READ}) {
		dmio_request req = request(op, false);
		expect_refused(-EINVAL, req, {{direct.get(), 1, 8}}, 1,
			       "sector 1 of 4096-byte blocks");
		expect_refused(-EINVAL, req, {{direct.get(), 8, 4}}, 1,
			       "count 4 of 4096-byte blocks");
		expect_refused(-EINVAL, req, {{direct.get(), 12, 8}}, 1, "sector 12");
	}
	expect_refused(-EINVAL, request(DMIO_WRITE, false),
		       {{dev_.get(), 0, 8}, {direct.get(), 4, 8}}, 2,
		       "an unaligned direct region after a good one");
	EXPECT_TRUE(all_bytes_are(read_at(backing, 0, 64 * 1024), 0))
	    << "the loop device was written";
	/* Aligned, it works. */
	unsigned long bits = ~0ul;
	dmio_region ok = {direct.get(), 8, 8};
	EXPECT_EQ(0, dmio_sync_vm(1, &ok, DMIO_READ, mem_->vm(), &bits));
	EXPECT_EQ(0ul, bits);
}

INSTANTIATE_TEST_SUITE_P(Engines, ArgumentErrors,
			 ::testing::Values(Engine::Threads, Engine::IoUring),
			 [](const ::testing::TestParamInfo<Engine> &info) {
				 return std::string(engine_name(info.param));
			 });

} // namespace
