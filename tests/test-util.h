/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared fixtures of the libdmio GoogleTest suites: temporary directories, tmpfs mounts and loop
 * devices that clean up after themselves (even when the test crashes: mounts live in a private
 * mount namespace, loop devices are auto-clearing), memory descriptors of every kind with guard
 * bytes around the data, and a completion that counts notify calls.
 *
 * Everything here checks the library from the outside, with plain POSIX calls.
 */
#ifndef DMIO_TEST_UTIL_H
#define DMIO_TEST_UTIL_H

#include <dmio.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <ostream>
#include <signal.h>
#include <sys/types.h>

#include <string>
#include <thread>
#include <vector>

namespace dmio_test
{

/*
 * DMIO_TEST_SCALE (an integer >= 1, set by `make check-valgrind`): big workloads are divided by
 * it (never below their stated floor) and timeouts multiplied by it.
 */
unsigned scale();
/* How long to wait for one asynchronous completion before calling it lost. */
std::chrono::milliseconds completion_timeout();

/* ---- Bytes --------------------------------------------------------------------------------- */

/* Pseudo-random bytes: a misplaced or shifted copy never matches by accident. */
std::vector<uint8_t> pattern(size_t len, uint32_t seed);
::testing::AssertionResult same_bytes(const std::vector<uint8_t> &expected,
				      const std::vector<uint8_t> &actual);
::testing::AssertionResult all_bytes_are(const std::vector<uint8_t> &bytes, uint8_t value);

/* ---- Files and devices, through plain POSIX calls ------------------------------------------ */

/* Create or replace path with exactly these contents (fsync'ed). */
void write_file(const std::string &path, const std::vector<uint8_t> &contents);
/* Create or replace path as a sparse file of size bytes. */
void create_sparse(const std::string &path, uint64_t size);
/* pread len bytes at offset through a fresh descriptor (a file or a block device). */
std::vector<uint8_t> read_at(const std::string &path, uint64_t offset, size_t len);
/* pwrite data at offset through a fresh descriptor, then fsync. */
void write_at(const std::string &path, uint64_t offset, const std::vector<uint8_t> &data);
/* st_blocks of a file. */
uint64_t allocated_blocks(const std::string &path);
/*
 * Fill the filesystem holding dir to the last byte with dir/filler.  A loop device over a file
 * there then fails every write with ENOSPC: with some room left, the kernel's loop driver takes a
 * short write to its backing file as a complete one when its requests run concurrently, and a
 * direct write "succeeds" with half its data missing (seen on 6.18).
 */
void fill_filesystem(const std::string &dir);

/* ---- Resources that clean up after themselves --------------------------------------------- */

/* A directory made with mkdtemp under $TMPDIR (or /tmp), removed with its contents. */
class TempDir
{
      public:
	TempDir();
	~TempDir();
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
	const std::string &path() const
	{
		return path_;
	}
	std::string operator/(const std::string &name) const
	{
		return path_ + "/" + name;
	}

      private:
	std::string path_;
};

/* A filesystem mounted for the duration of a test (lazily unmounted by the destructor). */
class Mount
{
      public:
	Mount() = default;
	~Mount();
	Mount(const Mount &) = delete;
	Mount &operator=(const Mount &) = delete;
	/* mkdir dir and mount fstype there with options; 0 or an errno. */
	int mount(const std::string &dir, const std::string &fstype, const std::string &options);

      private:
	std::string dir_;
};

/*
 * A loop device over a file, configured with LO_FLAGS_AUTOCLEAR and held open by this object, so
 * it is detached when the object goes away or the process dies, whichever comes first.
 */
class LoopDevice
{
      public:
	LoopDevice() = default;
	~LoopDevice();
	LoopDevice(const LoopDevice &) = delete;
	LoopDevice &operator=(const LoopDevice &) = delete;
	/* 0 or an errno.  block_size 0 keeps the default (512). */
	int attach(const std::string &backing, bool read_only = false, unsigned block_size = 0);
	const std::string &path() const
	{
		return path_;
	}
	/* /sys/block/loopN/queue/<name> as a number (0 when absent). */
	uint64_t queue_attribute(const std::string &name) const;

      private:
	int holder_ = -1;
	std::string path_;
};

/* An errno that means "this machine does not let the test do that" (not root, no loop devices). */
bool environment_refuses(int err);

/*
 * Mount, or attach a loop device, or skip the test when the machine does not allow it; any other
 * failure fails the test.  Use in a test body or SetUp().
 */
#define DMIO_REQUIRE(expr, what)                                                                   \
	do {                                                                                       \
		int dmio_require_err_ = (expr);                                                    \
		if (dmio_require_err_ != 0 && ::dmio_test::environment_refuses(dmio_require_err_)) \
			GTEST_SKIP() << (what) << ": " << strerror(dmio_require_err_);             \
		ASSERT_EQ(0, dmio_require_err_) << (what) << ": " << strerror(dmio_require_err_);  \
	} while (0)

#define DMIO_REQUIRE_TMPFS(mnt, dir, size)                                                         \
	DMIO_REQUIRE((mnt).mount((dir), "tmpfs", std::string("size=") + (size)),                   \
		     "mount -t tmpfs " + std::string(dir))
#define DMIO_REQUIRE_LOOP(loop, ...)                                                               \
	DMIO_REQUIRE((loop).attach(__VA_ARGS__), std::string("attach a loop device"))

/* ---- Library handles --------------------------------------------------------------------- */

struct DevCloser {
	void operator()(dmio_dev *dev) const
	{
		dmio_dev_close(dev);
	}
};
using Dev = std::unique_ptr<dmio_dev, DevCloser>;

struct ClientDestroyer {
	void operator()(dmio_client *client) const
	{
		dmio_client_destroy(client);
	}
};
using Client = std::unique_ptr<dmio_client, ClientDestroyer>;

/* dmio_dev_open into a Dev; returns its result. */
int open_dev(const std::string &path, unsigned int flags, Dev *out);

enum class Engine { Threads, IoUring };
const char *engine_name(Engine engine);
inline void PrintTo(Engine engine, std::ostream *os)
{
	*os << engine_name(engine);
}
/*
 * dmio_client_create on that engine; returns its result (-ENOTSUP: not built in).  With
 * DMIO_TEST_NO_IO_URING set (check-valgrind sets it) the io_uring engine is not tried: -ENOTSUP.
 */
int make_client(Engine engine, Client *out, unsigned threads = 0, unsigned reserved_pages = 0);
/* Why an io_uring client could not be had, for GTEST_SKIP. */
const char *io_uring_skip_reason();

#define DMIO_REQUIRE_CLIENT(engine, client)                                                        \
	do {                                                                                       \
		int dmio_client_err_ = ::dmio_test::make_client((engine), &(client));              \
		if (dmio_client_err_ == -ENOTSUP)                                                  \
			GTEST_SKIP() << ::dmio_test::io_uring_skip_reason();                       \
		ASSERT_EQ(0, dmio_client_err_) << "dmio_client_create";                            \
	} while (0)

/* ---- Memory descriptors -------------------------------------------------------------------- */

enum class MemKind { PageList, Bvec, Vm, Iovec };
const char *mem_kind_name(MemKind kind);

/*
 * size bytes of caller memory in one of the four shapes, surrounded by guard bytes that a read
 * must not touch.
 *   PageList: separately allocated pages; the data starts `twist` bytes into the first page
 *             (twist 0 means the default, 1234; kPageAligned means 0).  Use page_offset().
 *   Bvec:     twist 0: pieces of 1024+2048 bytes splitting one page, then a whole page, repeated;
 *             twist 1: odd lengths and offsets (100+1000 and 1500+2000 in one page, a whole page,
 *             519 bytes at offset 7).
 *   Vm:       one buffer, `twist` bytes past a page boundary.
 *   Iovec:    twist 0: 1024, 8192, 512, 3072-byte pieces; twist 1: 700, 5000, 3, 1333, 8192.
 */
constexpr unsigned kPageAligned = DMIO_PAGE_SIZE;

class Memory
{
      public:
	Memory(MemKind kind, size_t size, unsigned twist = 0);
	~Memory();
	Memory(const Memory &) = delete;
	Memory &operator=(const Memory &) = delete;

	MemKind kind() const
	{
		return kind_;
	}
	size_t size() const
	{
		return size_;
	}
	/* The descriptor for dmio(). */
	dmio_memory desc();
	dmio_page_list *page_list()
	{
		return pl_.data();
	}
	unsigned page_offset() const
	{
		return page_offset_;
	}
	dmio_bvec *bvec()
	{
		return bvec_.data();
	}
	void *vm()
	{
		return vm_;
	}

	void fill(const std::vector<uint8_t> &data);
	void fill_byte(uint8_t value);
	std::vector<uint8_t> contents() const;
	/* The bytes around the data still hold the guard value. */
	::testing::AssertionResult guards_intact() const;

      private:
	struct Span {
		uint8_t *p;
		size_t len;
	};
	uint8_t *alloc(size_t len);

	MemKind kind_;
	size_t size_;
	unsigned page_offset_ = 0;
	void *vm_ = nullptr;
	std::vector<Span> data_;
	std::vector<Span> guards_;
	std::vector<void *> allocations_;
	std::vector<dmio_page_list> pl_;
	std::vector<dmio_bvec> bvec_;
	std::vector<iovec> iov_;
};

/* ---- Completions ----------------------------------------------------------------------------- */

/* Counts the notify calls it receives and remembers the last error and calling thread. */
class Completion
{
      public:
	static void notify(unsigned long error, void *context);
	/* Wait until at least one call arrived; false on timeout. */
	bool wait(std::chrono::milliseconds timeout = completion_timeout());
	int calls() const;
	unsigned long error() const;
	std::thread::id thread() const;

      private:
	mutable std::mutex lock_;
	std::condition_variable cond_;
	int calls_ = 0;
	unsigned long error_ = 0;
	std::thread::id thread_;
};

/* ---- Issuing I/O in each calling style ---------------------------------------------------- */

enum class Call {
	SeedSync,  /* dmio_sync / dmio_sync_bvec / dmio_sync_vm, on the default client */
	SeedAsync, /* dmio_async / dmio_async_bvec / dmio_async_vm */
	DmioSync,  /* dmio() without notify */
	DmioAsync, /* dmio() with notify */
};
const char *call_name(Call call);
bool is_seed(Call call);
bool is_async(Call call);

struct IoOutcome {
	int ret = 0;		/* what the call returned */
	unsigned long bits = 0; /* *error_bits (sync) or the notify's error (async) */
	int notify_calls = 0;	/* async: calls seen once the first one arrived */
	bool notify_in_caller = false;
	std::vector<int> region_errors; /* dmio() only; filled with kUnsetRegionError first */
};
constexpr int kUnsetRegionError = 0x7777;

/*
 * Issue op over regions with mem in the given style (client NULL: the default client; seed calls
 * always use the default client) and wait for the outcome.  mem may be NULL for ops without data.
 */
IoOutcome run_io(Call call, dmio_client *client, dmio_op op, Memory *mem,
		 std::vector<dmio_region> regions, unsigned int flags = 0);

/* The checks every successful call must pass (non-fatal; `what` names the call in messages). */
void expect_success(const IoOutcome &o, Call call, size_t regions, const std::string &what);

/* ---- The base fixture ------------------------------------------------------------------------ */

/*
 * Every test gets a fresh temporary directory and a watchdog: a test that does not finish in
 * 120 s (times the scale) prints its name and exits the binary, which the driver reports as an
 * error, instead of hanging `make check`.
 */
class DmioTest : public ::testing::Test
{
      protected:
	void SetUp() override;
	void TearDown() override;
	TempDir tmp_;
};

/* DmioTest holding a reservation on the default client (dmio_get) for the seed calls. */
class DefaultClientTest : public DmioTest
{
      protected:
	static constexpr unsigned kReservedPages = 16;
	void SetUp() override;
	void TearDown() override;

      private:
	bool got_ = false;
};

template <class Param>
class DefaultClientParamTest : public DefaultClientTest, public ::testing::WithParamInterface<Param>
{
};

/* A name fit for a gtest parameter suffix. */
std::string sanitize_name(std::string name);

/* Whether nbdkit can be run (the NBD tests skip without it). */
bool have_nbdkit();

/*
 * An nbdkit in the foreground, a child of this process (and dying with it), serving on the
 * unix socket sock: a real NBD server for the tests of NBD legs.
 */
class NbdKit
{
      public:
	~NbdKit()
	{
		stop(SIGTERM);
	}
	/*
	 * args: nbdkit's filters, plugin and its parameters ({"file", path}, ...).  Returns once
	 * the server accepts connections (its socket exists a little before): 0, or an errno.
	 */
	int start(const std::string &sock, const std::vector<std::string> &args);
	/* A signal to the server (SIGSTOP, SIGCONT), if it runs. */
	void signal(int sig);
	/* End it with sig (after a SIGCONT, should it be stopped) and wait for it. */
	void stop(int sig);

      private:
	pid_t pid_ = -1;
};

} // namespace dmio_test

#endif /* DMIO_TEST_UTIL_H */
