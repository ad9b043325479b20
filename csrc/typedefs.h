/* Type-generic helpers for the *_impl.h kernel bodies, which are compiled once per dtype.
 * Before including a body, a kernel file defines T (float or double) and SFX(name). */
#ifndef MG_TYPEDEFS_H
#define MG_TYPEDEFS_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "fastmath.h"

#define MG_PARALLEL_MIN 32768 /* below this many elements a thread team costs more than it saves */

#ifdef _OPENMP
#include <omp.h>
static inline int64_t mg_threads(void) { return omp_get_max_threads(); }
#else
static inline int64_t mg_threads(void) { return 1; }
#endif
/* Start of piece c of n elements cut into nth pieces: a multiple of 16 elements, so the pieces
 * of a 64-byte-aligned array start on cache lines; the last piece ends at n. */
#define MG_PIECE(n, c, nth) ((c) == (nth) ? (n) : (((n) * (c) / (nth)) & ~(int64_t)15))
#define MG_MAX_DIMS 64

/* out[j] = sum of x[r * rs + j] over rows r < rows, j < cols (groups of eight rows in T, the groups
 * in double), the same for any thread count (reduce_impl.h): reductions over the batch and the
 * fused Linear bias gradient */
void mg_colsum_f32(int64_t rows, int64_t cols, int64_t rs, const float *x, float *out);
void mg_colsum_f64(int64_t rows, int64_t cols, int64_t rs, const double *x, double *out);

/* Keep a function out of line, e.g. a loop that MG_FOR would otherwise copy into both of its
 * branches. */
#if defined(__GNUC__)
#define MG_NOINLINE __attribute__((noinline))
#else
#define MG_NOINLINE
#endif

/* for (int64_t VAR = 0; VAR < N; VAR++) BODY, split over threads only when BIG is true and more
 * than one thread is allowed. Small work never enters a parallel region: even `omp parallel
 * if (0)`, or a team of one, makes libgomp set up a team, about a microsecond -- more than a
 * 10-element op itself. */
#define MG_FOR(VAR, N, BIG, ...)                                                  \
    do {                                                                          \
        if ((BIG) && mg_threads() > 1) {                                          \
            _Pragma("omp parallel for schedule(static)")                          \
            for (int64_t VAR = 0; VAR < (N); VAR++) __VA_ARGS__                   \
        } else {                                                                  \
            for (int64_t VAR = 0; VAR < (N); VAR++) __VA_ARGS__                   \
        }                                                                         \
    } while (0)

#endif
