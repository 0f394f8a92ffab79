/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fault-injecting device kind, for tests only (this API is not exported from libdmio.so):
 * dmio_dev_open("fault:PATH") opens the regular file or block device PATH and passes every
 * operation through to it, unless a rule for PATH says otherwise: fail it with an errno, delay
 * it, or hang it until the test releases it.  Rules are set at run time through this API or
 * through the control file PATH.fault (see libdmio(3), "Fault-injecting devices"), so that shell
 * tests and a running daemon can use it too.  Opening a fault: path needs FUSEMIRROR_TEST_DEVICES=1
 * in the environment (else -EPERM): it is kept out of the way of users.
 *
 * Rules are matched per target, the PATH after "fault:" exactly as written.  Reads are
 * DMIO_FAULT_READ; writes, write-zeroes and discards are DMIO_FAULT_WRITE; flushes (and the flush
 * after a FUA write without RWF_DSYNC) are DMIO_FAULT_FLUSH and match any range.  The first rule
 * in order of addition (API rules before the control file's) that matches and fires decides.
 * Thread-safe.
 */
#ifndef DMIO_DEV_FAULT_H
#define DMIO_DEV_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DMIO_FAULT_READ	 (1u << 0)
#define DMIO_FAULT_WRITE (1u << 1)
#define DMIO_FAULT_FLUSH (1u << 2)
#define DMIO_FAULT_ALL	 (DMIO_FAULT_READ | DMIO_FAULT_WRITE | DMIO_FAULT_FLUSH)

enum dmio_fault_action {
	DMIO_FAULT_FAIL,  /* the operation fails with -error and never reaches the device */
	DMIO_FAULT_DELAY, /* the operation waits delay_us, then reaches the device */
	DMIO_FAULT_HANG,  /* the operation is held, its buffer untouched, until released */
};

struct dmio_fault_rule {
	unsigned int ops; /* DMIO_FAULT_READ | DMIO_FAULT_WRITE | DMIO_FAULT_FLUSH, not 0 */
	uint64_t
	    offset; /* bytes: the rule matches operations that overlap [offset, offset+length) */
	uint64_t length; /* 0: to the end of the device */
	enum dmio_fault_action action;
	int error;	   /* DMIO_FAULT_FAIL: a positive errno */
	uint64_t delay_us; /* DMIO_FAULT_DELAY */
	uint64_t times;	   /* fire this many times, then never again; 0: no limit */
	uint32_t
	    rate_ppm;  /* fire for this many matching operations in a million (seeded); 0: all */
	uint64_t seed; /* the rate's random sequence: the same seed fires on the same matches */
};

/*
 * Add a rule for target (the path after "fault:"), whether or not a device is open on it yet.
 * Returns the rule's id (> 0), or -EINVAL for a bad target or rule.
 */
int dmio_fault_add(const char *target, const struct dmio_fault_rule *rule);

/* How many times rule id has fired so far; 0 for an unknown or removed id. */
uint64_t dmio_fault_fired(int id);

/*
 * Remove every rule added through this API for target (NULL: every target).  Operations already
 * held stay held: release them with dmio_fault_release().
 */
void dmio_fault_clear(const char *target);

/* How many operations on target are held by a hang rule now. */
unsigned int dmio_fault_held(const char *target);

/*
 * Release every operation held on target: with error 0 each one then reaches the device and
 * completes as the device says; with a positive errno each one fails with it, its buffer still
 * untouched.  Returns how many were released.
 */
unsigned int dmio_fault_release(const char *target, int error);

#ifdef __cplusplus
}
#endif

#endif /* DMIO_DEV_FAULT_H */
