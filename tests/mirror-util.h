/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared fixture of the mirror-layer suites (mirror-test.cc, xattr-test.cc): a struct
 * mirror_config built by hand over sparse leg files in the test's temporary directory, the mirror
 * opened with mirror_open(), synchronous wrappers around the asynchronous calls that check `done`
 * runs exactly once, an event recorder, tmpfs mounts that go away with the test, and a GLib log
 * writer that keeps the mirror's log lines for the tests to inspect instead of printing them
 * (MIRROR_TEST_VERBOSE=1 prints them too).
 *
 * Built on test-util.h (temporary directories, tmpfs mounts in a private mount namespace, the
 * per-test watchdog, byte patterns).
 */
#ifndef FUSEMIRROR_MIRROR_UTIL_H
#define FUSEMIRROR_MIRROR_UTIL_H

#include "test-util.h"

#include "config/config.h"
#include "mirror/mirror.h"
/* mirror-internal.h (its leg_state() hides enum leg_state in C++): wait for the corrections. */
extern "C" void readfix_drain(struct mirror *m);
#include "mirror/superblock.h"

#include <fcntl.h>
#include <glib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mirror_test
{

using dmio_test::pattern;
using dmio_test::read_at;
using dmio_test::same_bytes;

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * 1024;

/* ---- Log capture ---------------------------------------------------------------------------- */

struct LogLine {
	GLogLevelFlags level;
	std::string message;			   /* MESSAGE: "<Event>: <text>" for events */
	std::map<std::string, std::string> fields; /* every other field */

	/* The event name the message starts with ("LegFailed" of "LegFailed: leg 1 ..."). */
	bool is_event(const std::string &event) const
	{
		return message.compare(0, event.size() + 2, event + ": ") == 0;
	}
	/* The value of a field, "" when absent. */
	std::string field(const std::string &key) const
	{
		auto it = fields.find(key);
		return it == fields.end() ? "" : it->second;
	}
};

class LogCapture
{
      public:
	static LogCapture &get()
	{
		static LogCapture capture;
		return capture;
	}
	/* Install the writer once per process (before the first mirror logs anything). */
	static void install()
	{
		static std::once_flag once;
		std::call_once(once, [] { g_log_set_writer_func(writer, nullptr, nullptr); });
	}
	void clear()
	{
		std::lock_guard<std::mutex> g(lock_);
		lines_.clear();
	}
	std::vector<LogLine> lines()
	{
		std::lock_guard<std::mutex> g(lock_);
		return lines_;
	}
	/* Lines of the event whose message contains every one of needles. */
	size_t count(const std::string &event, const std::vector<std::string> &needles = {})
	{
		size_t n = 0;
		for (const LogLine &l : lines()) {
			if (!l.is_event(event))
				continue;
			bool all = true;
			for (const std::string &s : needles)
				all = all && l.message.find(s) != std::string::npos;
			n += all;
		}
		return n;
	}
	size_t count_level(GLogLevelFlags level)
	{
		size_t n = 0;
		for (const LogLine &l : lines())
			n += (l.level & level) != 0;
		return n;
	}
	std::string dump()
	{
		std::string s;
		for (const LogLine &l : lines()) {
			s += "  " + l.message;
			for (const auto &f : l.fields)
				s += " [" + f.first + "=" + f.second + "]";
			s += "\n";
		}
		return s;
	}

      private:
	static GLogWriterOutput writer(GLogLevelFlags level, const GLogField *fields, gsize n,
				       gpointer user_data)
	{
		LogLine line{level, "", {}};
		for (gsize i = 0; i < n; i++) {
			std::string value = fields[i].length < 0
						? std::string((const char *)fields[i].value)
						: std::string((const char *)fields[i].value,
							      (size_t)fields[i].length);
			if (strcmp(fields[i].key, "MESSAGE") == 0)
				line.message = value;
			else if (fields[i].length < 0)
				line.fields[fields[i].key] = value;
		}
		{
			LogCapture &c = get();
			std::lock_guard<std::mutex> g(c.lock_);
			c.lines_.push_back(line);
		}
		const char *verbose = getenv("MIRROR_TEST_VERBOSE");
		if ((level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) ||
		    (verbose != nullptr && *verbose != '\0' && strcmp(verbose, "0") != 0))
			return g_log_writer_default(level, fields, n, user_data);
		return G_LOG_WRITER_HANDLED;
	}

	std::mutex lock_;
	std::vector<LogLine> lines_;
};

/* ---- One asynchronous call ------------------------------------------------------------------ */

class Request
{
      public:
	static void done(void *opaque, ssize_t result)
	{
		auto *r = static_cast<Request *>(opaque);
		std::lock_guard<std::mutex> g(r->lock_);
		r->calls_++;
		r->result_ = result;
		r->thread_ = std::this_thread::get_id();
		r->cond_.notify_all();
	}
	/* Wait for the first call; false on timeout. */
	bool wait(std::chrono::milliseconds timeout = dmio_test::completion_timeout())
	{
		std::unique_lock<std::mutex> g(lock_);
		return cond_.wait_for(g, timeout, [this] { return calls_ > 0; });
	}
	int calls() const
	{
		std::lock_guard<std::mutex> g(lock_);
		return calls_;
	}
	ssize_t result() const
	{
		std::lock_guard<std::mutex> g(lock_);
		return result_;
	}
	std::thread::id thread() const
	{
		std::lock_guard<std::mutex> g(lock_);
		return thread_;
	}
	std::string what;

      private:
	mutable std::mutex lock_;
	std::condition_variable cond_;
	int calls_ = 0;
	ssize_t result_ = 0;
	std::thread::id thread_;
};

/* ---- Events --------------------------------------------------------------------------------- */

struct Event {
	std::string name;
	GLogLevelFlags level;
	int leg;
	std::string message;
};

/* ---- The fixture ---------------------------------------------------------------------------- */

struct LegSpec {
	std::string name;
	std::string path;
	bool write_mostly = false;
};

/* Result returned by the synchronous wrappers when done never came. */
constexpr ssize_t kLost = std::numeric_limits<ssize_t>::min();

class MirrorTest : public dmio_test::DmioTest
{
      protected:
	void SetUp() override
	{
		DmioTest::SetUp();
		LogCapture::install();
		LogCapture::get().clear();
	}

	void TearDown() override
	{
		close_mirror();
		/* Every request got exactly one done, also counting late ones that mirror_close
		 * waited. */
		for (const auto &r : requests_)
			EXPECT_EQ(1, r->calls()) << "done calls of " << r->what;
		mounts_.clear(); /* unmount after the legs are closed */
		EXPECT_EQ(0u, LogCapture::get().count_level(G_LOG_LEVEL_CRITICAL))
		    << "critical messages were logged:\n"
		    << LogCapture::get().dump();
		DmioTest::TearDown();
	}

	void close_mirror()
	{
		mirror_close(m_);
		m_ = nullptr;
	}

	/* A sparse leg file of size bytes in dir (default: the test's temp dir), added to legs_. */
	std::string add_leg(const std::string &name, uint64_t size, const std::string &dir = "",
			    bool write_mostly = false)
	{
		std::string path = (dir.empty() ? tmp_.path() : dir) + "/" + name + ".img";
		dmio_test::create_sparse(path, size);
		legs_.push_back({name, path, write_mostly});
		return path;
	}

	/* A mirror_config over legs_, policy_ and name_, built by hand; the fixture owns it. */
	const mirror_config *config()
	{
		leg_configs_.clear();
		for (const LegSpec &l : legs_) {
			leg_config lc;
			memset(&lc, 0, sizeof(lc));
			lc.name = const_cast<char *>(l.name.c_str());
			lc.path = const_cast<char *>(l.path.c_str());
			lc.write_mostly = l.write_mostly;
			lc.io_timeout_ms = -1; /* the mirror's */
			lc.reconnect_delay_ms = -1;
			lc.reconnect_max = -1;
			leg_configs_.push_back(lc);
		}
		memset(&config_, 0, sizeof(config_));
		config_.file = const_cast<char *>("<test>");
		config_.name = const_cast<char *>(name_.c_str());
		config_.read_policy = policy_;
		config_.engine = DMIO_ENGINE_THREADS;
		config_.threads = threads_;
		config_.cache = CACHE_NONE;
		config_.metadata = metadata_;
		config_.resync_rate_min = resync_rate_min_;
		config_.resync_rate_max = 0;
		config_.io_timeout_ms = io_timeout_ms_;
		config_.max_read_errors = max_read_errors_;
		config_.reconnect_delay_ms = reconnect_delay_ms_;
		config_.reconnect_max = reconnect_max_;
		config_.num_legs = (unsigned)leg_configs_.size();
		config_.legs = leg_configs_.empty() ? nullptr : leg_configs_.data();
		return &config_;
	}

	/* mirror_open on config(); on success m_ is the mirror and events are recorded. */
	int open_mirror(GError **error)
	{
		close_mirror();
		mirror *m = reinterpret_cast<mirror *>(0x1);
		int r = mirror_open(config(), on_event, this, &m, error);
		if (r == 0) {
			m_ = m;
		} else {
			EXPECT_EQ(nullptr, m) << "mirror_open failed but set *out";
		}
		return r;
	}

	/* Use as ASSERT_NO_FATAL_FAILURE(open_ok()). */
	void open_ok()
	{
		GError *error = nullptr;
		int r = open_mirror(&error);
		ASSERT_EQ(0, r) << "mirror_open: " << (error ? error->message : "(no message)");
		ASSERT_EQ(nullptr, error);
		ASSERT_NE(nullptr, m_);
	}

	/*
	 * metadata = internal: write fresh superblocks and clear bitmaps on every leg of legs_, as
	 * fusemirrorctl create --assume-clean does (region_size bytes of data per bitmap bit; the
	 * data area is the smallest leg less the 1 MiB data offset), and open with superblocks.
	 */
	void format_legs(uint64_t region_size = 64 * KiB)
	{
		std::vector<dmio_dev *> devs;
		uint64_t smallest = UINT64_MAX;
		for (const LegSpec &l : legs_) {
			dmio_dev *dev = nullptr;
			ASSERT_EQ(0, dmio_dev_open(l.path.c_str(), 0, &dev)) << l.path;
			devs.push_back(dev);
			smallest = std::min(smallest, dmio_dev_sectors(dev) << DMIO_SECTOR_SHIFT);
		}
		ASSERT_GT(smallest, (uint64_t)SB_DATA_OFFSET);
		superblock sb;
		memset(&sb, 0, sizeof(sb));
		sb.version = SB_VERSION;
		uuid_generate_random_v4(sb.array_uuid);
		sb.num_legs = (uint32_t)legs_.size();
		sb.data_offset = SB_DATA_OFFSET;
		sb.data_size = (smallest - SB_DATA_OFFSET) / 4096 * 4096;
		sb.region_size = region_size;
		sb.events = 1;
		sb.events_cleared = 1;
		sb.flags = SB_FLAG_CLEAN;
		sb.bitmap_offset = SB_BITMAP_OFFSET;
		sb.bitmap_bytes = ((sb.data_size + region_size - 1) / region_size + 7) / 8;
		g_strlcpy(sb.name, name_.c_str(), sizeof(sb.name));
		for (size_t i = 0; i < legs_.size(); i++) {
			uuid_generate_random_v4(sb.roles[i].uuid);
			sb.roles[i].role = SB_ROLE_IN_SYNC;
		}
		std::vector<uint8_t> zeroes(SB_DATA_OFFSET - SB_BITMAP_OFFSET, 0);
		for (size_t i = 0; i < legs_.size(); i++) {
			superblock leg = sb;
			memcpy(leg.leg_uuid, sb.roles[i].uuid, 16);
			leg.leg_index = (uint32_t)i;
			leg.recovery_offset = SB_RECOVERY_DONE;
			dmio_region where = {devs[i], SB_BITMAP_OFFSET >> DMIO_SECTOR_SHIFT,
					     zeroes.size() >> DMIO_SECTOR_SHIFT};
			EXPECT_EQ(0, dmio_sync_vm(1, &where, DMIO_WRITE, zeroes.data(), nullptr));
			EXPECT_EQ(0, superblock_write(devs[i], &leg)) << legs_[i].path;
			dmio_dev_close(devs[i]);
		}
		metadata_ = METADATA_INTERNAL;
	}

	/* The superblock on leg i now, read from the leg itself. */
	superblock read_superblock(unsigned i)
	{
		superblock sb;
		memset(&sb, 0, sizeof(sb));
		dmio_dev *dev = nullptr;
		if (dmio_dev_open(legs_[i].path.c_str(), DMIO_DEV_RDONLY, &dev) != 0) {
			ADD_FAILURE() << "cannot open " << legs_[i].path;
			return sb;
		}
		std::vector<uint8_t> buf(SB_SIZE);
		EXPECT_EQ(0, superblock_read_raw(dev, buf.data()));
		char *why = nullptr;
		EXPECT_EQ(SB_ERROR_NONE, superblock_decode(buf.data(), &sb, &why))
		    << legs_[i].path << ": " << (why ? why : "");
		g_free(why);
		dmio_dev_close(dev);
		return sb;
	}

	/* Wait until no resync runs (true), or give up after the timeout (false). */
	bool wait_resync(std::chrono::milliseconds timeout = std::chrono::seconds(30))
	{
		auto deadline = std::chrono::steady_clock::now() + timeout;
		for (;;) {
			resync_status rs;
			mirror_resync_status(m_, &rs);
			if (!rs.active)
				return true;
			if (std::chrono::steady_clock::now() > deadline)
				return false;
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
		}
	}

	/* The data areas of legs i and j hold the same bytes (metadata = internal). */
	::testing::AssertionResult data_areas_equal(unsigned i, unsigned j, uint64_t size)
	{
		std::vector<uint8_t> a = read_at(legs_[i].path, SB_DATA_OFFSET, size);
		std::vector<uint8_t> b = read_at(legs_[j].path, SB_DATA_OFFSET, size);
		for (uint64_t k = 0; k < size; k++)
			if (a[k] != b[k])
				return ::testing::AssertionFailure()
				       << "legs " << i << " and " << j
				       << " differ from data offset " << k;
		return ::testing::AssertionSuccess();
	}

	/* A fresh tmpfs; use with DMIO_REQUIRE_TMPFS(new_mount(), dir, size) in a test body. */
	dmio_test::Mount &new_mount()
	{
		mounts_.push_back(std::make_unique<dmio_test::Mount>());
		return *mounts_.back();
	}

	/* Fill the filesystem holding dir until it has no space left. */
	static void fill_filesystem(const std::string &dir)
	{
		std::string path = dir + "/filler";
		int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
		std::vector<char> chunk(64 * KiB, 'f');
		off_t off = 0;
		for (size_t len : {(size_t)(64 * KiB), (size_t)4096, (size_t)1}) {
			for (;;) {
				ssize_t n = pwrite(fd, chunk.data(), len, off);
				if (n <= 0) {
					ASSERT_EQ(ENOSPC, errno) << path;
					break;
				}
				off += n;
			}
		}
		close(fd);
	}

	/* ---- Requests ---- */

	Request *new_request(const std::string &what)
	{
		std::lock_guard<std::mutex> g(requests_lock_);
		requests_.push_back(std::make_unique<Request>());
		requests_.back()->what = what;
		return requests_.back().get();
	}

	/* Wait for r and check it was called once; its result or kLost. */
	ssize_t finish(Request *r)
	{
		if (!r->wait()) {
			ADD_FAILURE() << r->what << ": done was not called within the timeout";
			return kLost;
		}
		EXPECT_EQ(1, r->calls()) << "done calls of " << r->what;
		/*
		 * A read error's correction (a read's, or a read-modify-write's) runs after the
		 * answer: let the tests see its outcome.
		 */
		if (m_ != nullptr)
			readfix_drain(m_);
		return r->result();
	}

	ssize_t write(const void *buf, size_t len, uint64_t offset, unsigned flags = 0)
	{
		Request *r =
		    new_request("write " + std::to_string(len) + " at " + std::to_string(offset));
		mirror_write(m_, buf, len, offset, flags, Request::done, r);
		return finish(r);
	}
	ssize_t write(const std::vector<uint8_t> &data, uint64_t offset, unsigned flags = 0)
	{
		return write(data.data(), data.size(), offset, flags);
	}
	ssize_t read(void *buf, size_t len, uint64_t offset)
	{
		Request *r =
		    new_request("read " + std::to_string(len) + " at " + std::to_string(offset));
		mirror_read(m_, buf, len, offset, Request::done, r);
		return finish(r);
	}
	/* Read len bytes; *result gets the result. */
	std::vector<uint8_t> read(size_t len, uint64_t offset, ssize_t *result = nullptr)
	{
		std::vector<uint8_t> v(len, 0xee);
		ssize_t r = read(v.data(), len, offset);
		if (result != nullptr)
			*result = r;
		else
			EXPECT_EQ((ssize_t)len, r) << "read " << len << " at " << offset;
		return v;
	}
	ssize_t flush()
	{
		Request *r = new_request("flush");
		mirror_flush(m_, Request::done, r);
		return finish(r);
	}
	ssize_t discard(uint64_t offset, uint64_t len)
	{
		Request *r =
		    new_request("discard " + std::to_string(len) + " at " + std::to_string(offset));
		mirror_discard(m_, offset, len, Request::done, r);
		return finish(r);
	}
	ssize_t write_zeroes(uint64_t offset, uint64_t len, unsigned flags = 0)
	{
		Request *r = new_request("write-zeroes " + std::to_string(len) + " at " +
					 std::to_string(offset));
		mirror_write_zeroes(m_, offset, len, flags, Request::done, r);
		return finish(r);
	}

	/* ---- Status ---- */

	leg_status leg(unsigned i)
	{
		leg_status st;
		memset(&st, 0, sizeof(st));
		mirror_leg_status(m_, i, &st);
		return st;
	}
	leg_state state_of(unsigned i)
	{
		return leg(i).state;
	}

	/* ---- Events ---- */

	static void on_event(void *opaque, struct mirror *m, const char *event,
			     GLogLevelFlags level, int leg, const char *message)
	{
		auto *t = static_cast<MirrorTest *>(opaque);
		std::lock_guard<std::mutex> g(t->events_lock_);
		t->events_.push_back({event, level, leg, message ? message : ""});
	}
	std::vector<Event> events()
	{
		std::lock_guard<std::mutex> g(events_lock_);
		return events_;
	}
	size_t count_events(const std::string &name, int leg)
	{
		size_t n = 0;
		for (const Event &e : events())
			n += e.name == name && e.leg == leg;
		return n;
	}
	std::string dump_events()
	{
		std::string s;
		for (const Event &e : events())
			s += "  " + e.name + " leg " + std::to_string(e.leg) + ": " + e.message +
			     "\n";
		return s;
	}

	std::string name_ = "testmirror";
	read_policy policy_ = READ_POLICY_LEAST_PENDING;
	metadata_mode metadata_ = METADATA_NONE;
	uint64_t resync_rate_min_ = 0;
	unsigned max_read_errors_ = 20; /* fusemirror.conf(5)'s default */
	/* Reconnect of NBD legs: the default delay, and never (0) unless a test asks. */
	unsigned reconnect_delay_ms_ = 0;
	unsigned reconnect_max_ = 0;
	unsigned threads_ = 0; /* engine threads; 0 = libdmio's default */
	unsigned io_timeout_ms_ = 0; /* the legs' io-timeout; 0 = none */
	std::vector<LegSpec> legs_;
	mirror *m_ = nullptr;

      private:
	mirror_config config_;
	std::vector<leg_config> leg_configs_;
	std::vector<std::unique_ptr<dmio_test::Mount>> mounts_;
	std::mutex requests_lock_;
	std::deque<std::unique_ptr<Request>> requests_;
	std::mutex events_lock_;
	std::vector<Event> events_;
};

/* ---- Files ---------------------------------------------------------------------------------- */

inline uint64_t file_size(const std::string &path)
{
	struct stat st;
	if (stat(path.c_str(), &st) != 0) {
		ADD_FAILURE() << "stat " << path << ": " << strerror(errno);
		return 0;
	}
	return (uint64_t)st.st_size;
}

inline void truncate_file(const std::string &path, uint64_t size)
{
	/* Through a descriptor of our own: the mirror's stays open on the same file. */
	int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
	ASSERT_EQ(0, ftruncate(fd, (off_t)size)) << path << ": " << strerror(errno);
	close(fd);
}

/* Descriptors open in this process. */
inline int open_fds()
{
	int n = 0;
	GDir *dir = g_dir_open("/proc/self/fd", 0, nullptr);
	if (dir == nullptr)
		return -1;
	while (g_dir_read_name(dir) != nullptr)
		n++;
	g_dir_close(dir);
	return n;
}

} // namespace mirror_test

#endif /* FUSEMIRROR_MIRROR_UTIL_H */
