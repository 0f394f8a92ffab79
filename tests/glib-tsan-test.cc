// SPDX-License-Identifier: GPL-2.0-or-later
// The glib synchronisation our code relies on, one case per primitive: a thread writes plain
// (non-atomic) data and another reads it, ordered by that primitive alone (the threads are
// joined only after the read).  In any build they check that the primitive works.  Under `make
// check-tsan` they check src/tsan/glib-tsan.c: without its wrapper for GMutex, GCond, GOnce or
// GThreadPool, TSan sees no ordering through glib and reports a race here, which fails the
// binary.  GRecMutex, GRWLock and GThread need no wrapper (glib builds them on pthreads, which
// TSan intercepts): their cases check that this stays true.

#include <glib.h>

#include <vector>

#include <gtest/gtest.h>

namespace
{

// What the writer thread hands over: plain fields, so that TSan checks every access.
struct Payload {
	long value = 0;
	bool ready = false;
};

constexpr long kValue = 0x5eed;

GThread *start(const char *name, GThreadFunc fn, gpointer data)
{
	GThread *thread = g_thread_new(name, fn, data);

	EXPECT_NE(thread, nullptr);
	return thread;
}

struct MutexCase {
	GMutex lock;
	Payload p;
};

gpointer mutex_writer(gpointer data)
{
	auto *c = static_cast<MutexCase *>(data);
	g_mutex_lock(&c->lock);
	c->p.value = kValue;
	c->p.ready = true;
	g_mutex_unlock(&c->lock);
	return nullptr;
}

TEST(GlibTsan, MutexLockUnlock)
{
	MutexCase c;
	g_mutex_init(&c.lock);
	GThread *writer = start("writer", mutex_writer, &c);
	long seen = 0;
	for (;;) {
		g_mutex_lock(&c.lock);
		bool ready = c.p.ready;
		if (ready)
			seen = c.p.value;
		g_mutex_unlock(&c.lock);
		if (ready)
			break;
		g_thread_yield();
	}
	EXPECT_EQ(kValue, seen);
	g_thread_join(writer);
	g_mutex_clear(&c.lock);
}

gpointer locker_writer(gpointer data)
{
	auto *c = static_cast<MutexCase *>(data);
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);
	c->p.value = kValue;
	c->p.ready = true;
	return nullptr;
}

TEST(GlibTsan, MutexTrylockAndLocker)
{
	MutexCase c;
	g_mutex_init(&c.lock);
	GThread *writer = start("writer", locker_writer, &c);
	long seen = 0;
	for (;;) {
		if (!g_mutex_trylock(&c.lock)) {
			g_thread_yield();
			continue;
		}
		bool ready = c.p.ready;
		if (ready)
			seen = c.p.value;
		g_mutex_unlock(&c.lock);
		if (ready)
			break;
		g_thread_yield();
	}
	EXPECT_EQ(kValue, seen);
	g_thread_join(writer);
	g_mutex_clear(&c.lock);
}

// A static GMutex, never initialised, as G_LOCK_DEFINE makes.
G_LOCK_DEFINE_STATIC(static_lock);
Payload static_payload;

gpointer static_writer(gpointer)
{
	G_LOCK(static_lock);
	static_payload.value = kValue;
	static_payload.ready = true;
	G_UNLOCK(static_lock);
	return nullptr;
}

TEST(GlibTsan, StaticMutex)
{
	GThread *writer = start("writer", static_writer, nullptr);
	long seen = 0;
	for (bool ready = false; !ready;) {
		G_LOCK(static_lock);
		ready = static_payload.ready;
		if (ready)
			seen = static_payload.value;
		G_UNLOCK(static_lock);
		g_thread_yield();
	}
	EXPECT_EQ(kValue, seen);
	g_thread_join(writer);
}

struct CondCase {
	GMutex lock;
	GCond cond;
	Payload p;
	bool use_until = false;
};

gpointer cond_writer(gpointer data)
{
	auto *c = static_cast<CondCase *>(data);
	g_mutex_lock(&c->lock);
	c->p.value = kValue;
	c->p.ready = true;
	g_cond_signal(&c->cond);
	g_mutex_unlock(&c->lock);
	return nullptr;
}

void cond_case(bool use_until)
{
	CondCase c;
	c.use_until = use_until;
	g_mutex_init(&c.lock);
	g_cond_init(&c.cond);
	GThread *writer = start("writer", cond_writer, &c);
	g_mutex_lock(&c.lock);
	while (!c.p.ready) {
		if (c.use_until)
			g_cond_wait_until(&c.cond, &c.lock,
					  g_get_monotonic_time() + G_TIME_SPAN_SECOND);
		else
			g_cond_wait(&c.cond, &c.lock);
	}
	long seen = c.p.value;
	g_mutex_unlock(&c.lock);
	EXPECT_EQ(kValue, seen);
	g_thread_join(writer);
	g_cond_clear(&c.cond);
	g_mutex_clear(&c.lock);
}

TEST(GlibTsan, CondWait)
{
	cond_case(false);
}

TEST(GlibTsan, CondWaitUntil)
{
	cond_case(true);
}

struct RecMutexCase {
	GRecMutex lock;
	Payload p;
};

gpointer rec_mutex_writer(gpointer data)
{
	auto *c = static_cast<RecMutexCase *>(data);
	g_rec_mutex_lock(&c->lock);
	g_rec_mutex_lock(&c->lock);
	c->p.value = kValue;
	g_rec_mutex_unlock(&c->lock);
	c->p.ready = true;
	g_rec_mutex_unlock(&c->lock);
	return nullptr;
}

TEST(GlibTsan, RecMutex)
{
	RecMutexCase c;
	g_rec_mutex_init(&c.lock);
	GThread *writer = start("writer", rec_mutex_writer, &c);
	long seen = 0;
	for (bool ready = false; !ready;) {
		if (!g_rec_mutex_trylock(&c.lock)) {
			g_thread_yield();
			continue;
		}
		g_rec_mutex_lock(&c.lock);
		ready = c.p.ready;
		if (ready)
			seen = c.p.value;
		g_rec_mutex_unlock(&c.lock);
		g_rec_mutex_unlock(&c.lock);
		g_thread_yield();
	}
	EXPECT_EQ(kValue, seen);
	g_thread_join(writer);
	g_rec_mutex_clear(&c.lock);
}

struct RWLockCase {
	GRWLock lock;
	Payload p;
	long seen[2] = {0, 0};
};

gpointer rw_lock_writer(gpointer data)
{
	auto *c = static_cast<RWLockCase *>(data);
	while (!g_rw_lock_writer_trylock(&c->lock))
		g_thread_yield();
	c->p.value = kValue;
	g_rw_lock_writer_unlock(&c->lock);
	g_rw_lock_writer_lock(&c->lock);
	c->p.ready = true;
	g_rw_lock_writer_unlock(&c->lock);
	return nullptr;
}

gpointer rw_lock_reader(gpointer data)
{
	auto *c = static_cast<RWLockCase *>(data);
	for (bool ready = false; !ready;) {
		g_rw_lock_reader_lock(&c->lock);
		ready = c->p.ready;
		if (ready)
			c->seen[1] = c->p.value;
		g_rw_lock_reader_unlock(&c->lock);
		g_thread_yield();
	}
	return nullptr;
}

TEST(GlibTsan, RWLock)
{
	RWLockCase c;
	g_rw_lock_init(&c.lock);
	GThread *writer = start("writer", rw_lock_writer, &c);
	GThread *reader = start("reader", rw_lock_reader, &c);
	for (bool ready = false; !ready;) {
		if (!g_rw_lock_reader_trylock(&c.lock)) {
			g_thread_yield();
			continue;
		}
		ready = c.p.ready;
		if (ready)
			c.seen[0] = c.p.value;
		g_rw_lock_reader_unlock(&c.lock);
		g_thread_yield();
	}
	g_thread_join(reader);
	EXPECT_EQ(kValue, c.seen[0]);
	EXPECT_EQ(kValue, c.seen[1]);
	g_thread_join(writer);
	g_rw_lock_clear(&c.lock);
}

// What the first caller of g_once_init_enter builds and every thread then reads, directly or
// after waiting in g_once_init_enter for the first to finish.
struct OnceCase {
	gsize once = 0;
	long value = 0;
	long seen[4] = {0, 0, 0, 0};
};

OnceCase once_case;

gpointer once_reader(gpointer data)
{
	auto i = GPOINTER_TO_INT(data);
	if (g_once_init_enter(&once_case.once)) {
		once_case.value = kValue;
		g_once_init_leave(&once_case.once, 1);
	}
	once_case.seen[i] = once_case.value;
	return nullptr;
}

TEST(GlibTsan, Once)
{
	std::vector<GThread *> threads;
	for (int i = 1; i < 4; i++)
		threads.push_back(start("once", once_reader, GINT_TO_POINTER(i)));
	once_reader(GINT_TO_POINTER(0));
	for (GThread *t : threads)
		g_thread_join(t);
	for (long seen : once_case.seen)
		EXPECT_EQ(kValue, seen);
}

// Tasks carry data written by the pushing thread; the workers write their results in them, read
// after g_thread_pool_free has waited for them.
struct Task {
	long input = 0;
	long output = 0;
};

struct PoolCase {
	long factor = 0;
};

void pool_task(gpointer data, gpointer user_data)
{
	auto *task = static_cast<Task *>(data);
	auto *c = static_cast<PoolCase *>(user_data);
	task->output = task->input * c->factor;
}

void pool_case(bool exclusive)
{
	PoolCase c;
	c.factor = 3;
	GThreadPool *pool = g_thread_pool_new(pool_task, &c, 4, exclusive, nullptr);
	ASSERT_NE(pool, nullptr);
	std::vector<Task> tasks(64);
	for (size_t i = 0; i < tasks.size(); i++) {
		tasks[i].input = (long)i;
		ASSERT_TRUE(g_thread_pool_push(pool, &tasks[i], nullptr));
	}
	g_thread_pool_free(pool, FALSE, TRUE);
	for (size_t i = 0; i < tasks.size(); i++)
		EXPECT_EQ(3 * (long)i, tasks[i].output) << "task " << i;
}

TEST(GlibTsan, ThreadPoolExclusive)
{
	pool_case(true);
}

TEST(GlibTsan, ThreadPoolShared)
{
	pool_case(false);
}

// No wrapper: g_thread_new and g_thread_join are pthread_create and pthread_join underneath.
gpointer join_writer(gpointer data)
{
	auto *p = static_cast<Payload *>(data);
	p->value = kValue;
	return p;
}

TEST(GlibTsan, ThreadNewJoin)
{
	Payload p;
	GThread *writer = start("writer", join_writer, &p);
	EXPECT_EQ(&p, g_thread_join(writer));
	EXPECT_EQ(kValue, p.value);
}

} // namespace
