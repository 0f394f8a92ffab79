/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * For tests/dmio-nbd.cc, which is C++ and cannot include dmio-internal.h: a device kind's
 * asynchronous submit op (struct dmio_dev_ops.submit), called directly, as the engines do.
 */
#include "config.h"

#include <errno.h>

#include "dmio/dmio-internal.h"

int dmio_test_dev_submit(struct dmio_dev *dev, int op, const struct iovec *iov,
			 unsigned int iovcnt, uint64_t offset, uint64_t len, unsigned int flags,
			 void (*done)(void *opaque, int err), void *opaque);

int dmio_test_dev_submit(struct dmio_dev *dev, int op, const struct iovec *iov,
			 unsigned int iovcnt, uint64_t offset, uint64_t len, unsigned int flags,
			 void (*done)(void *opaque, int err), void *opaque)
{
	if (dev->ops->submit == NULL)
		return -ENOSYS;
	return dev->ops->submit(dev, (enum dmio_op)op, iov, iovcnt, offset, len, flags, done,
				opaque);
}
