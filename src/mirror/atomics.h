/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * C11 atomics for the mirror's headers, also when a C++ test includes them: before C++23,
 * <stdatomic.h> gives C++ nothing, so name the types as C++23 does (std::atomic<T> has the size
 * and alignment of _Atomic T).
 */
#ifndef FUSEMIRROR_ATOMICS_H
#define FUSEMIRROR_ATOMICS_H

#ifdef __cplusplus
/* Templates need C++ linkage, also when the includer wrapped us in extern "C". */
extern "C++" {
#include <atomic>
using atomic_bool = std::atomic<bool>;
using atomic_int = std::atomic<int>;
using atomic_uint = std::atomic<unsigned int>;
using atomic_long = std::atomic<long>;
using atomic_ulong = std::atomic<unsigned long>;
using atomic_llong = std::atomic<long long>;
using atomic_ullong = std::atomic<unsigned long long>;
}
#else
#include <stdatomic.h>
#endif

#endif /* FUSEMIRROR_ATOMICS_H */
