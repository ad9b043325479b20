/* GEMM: C = alpha * op(A) @ op(B) + beta * C, row-major (API in minigrad.h).
 *
 * The algorithm (packing, cache blocking, register-blocked micro-kernel, threads) is written once
 * in gemm_kernels.h and instantiated here per dtype. With AVX2 + FMA available at compile time
 * (-march=native on x86-64) the micro-kernels are 6x16 (float) and 6x8 (double) tiles of ymm
 * accumulators, plus 4-row tiles three vectors wide (4x24 / 4x12) for C just wider than one
 * sliver; otherwise (MINIGRAD_PORTABLE=1, ARM, ...) a portable C micro-kernel is used. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "minigrad.h"
#include "typedefs.h" /* <omp.h> too, with OpenMP */

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MG_GEMM_SIMD 1
#else
#define MG_GEMM_SIMD 0
#endif

/* Below MG_SMALL_MNK multiply-adds with n <= MG_SMALL_N, the direct loop wins: packing two
 * operands and allocating a buffer costs more than the arithmetic. */
#define MG_SMALL_N 64
#ifndef MG_SMALL_MNK
#define MG_SMALL_MNK (16 * 16 * 16)
#endif
/* Threads only above this many FLOPs: an OpenMP fork/join costs a few microseconds, which is
 * ~100k FLOPs of one core's time. */
#define MG_GEMM_PAR_FLOPS 200000.0

/* Barrier among the GEMM's threads; nothing to wait for when running alone. */
#ifdef _OPENMP
#define MG_BARRIER(nth)                                                                            \
    do {                                                                                           \
        if ((nth) > 1) {                                                                           \
            _Pragma("omp barrier")                                                                 \
        }                                                                                          \
    } while (0)
#else
#define MG_BARRIER(nth) ((void)(nth))
#endif

/* Packing routines and the micro-kernel are kept out of line (MG_NOINLINE, typedefs.h): they are
 * large loops where a call costs nothing, and separate functions give the register allocator the
 * kernel alone (and show up separately in a profile). */

/* Packing buffers: 64-byte aligned (cache line, and the micro-kernel uses aligned vector loads),
 * allocated per call and per thread, freed before returning: nothing crosses into Python. Plain
 * malloc + manual alignment keeps this C99 (no posix_memalign / aligned_alloc needed). */
static void *mg_gemm_alloc(size_t bytes) {
    unsigned char *raw = (unsigned char *)malloc(bytes + 64 + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t p = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)p)[-1] = raw;
    return (void *)p;
}
static void mg_gemm_free(void *p) {
    if (p) free(((void **)p)[-1]);
}

#if MG_GEMM_SIMD
/* Keep loaded B vectors in registers: without this GCC folds each B load into every FMA that uses
 * it (memory-operand FMAs), which triples the loads per k step of a 3-vector-wide tile and makes
 * the loop load bound. An empty asm that "modifies" the values forces them into registers. */
#define MG_IN_REGS(x, y, z) __asm__("" : "+x"(x), "+x"(y), "+x"(z))
#define MG_IN_REGS2(x, y) __asm__("" : "+x"(x), "+x"(y))

/* Packing helpers with in-register transposes: the transposed-B and plain-A packings gather one
 * element from each of NR (MR) rows per k step; done with scalar loads that was ~11% of the time
 * on (128x784)@(784x400)^T. Loading 8 consecutive k from each row and transposing 8x8 in
 * registers turns it into wide loads and stores.
 *
 * mg_load_tr8x8_ps: rows [0, rows) (rows 6 or 8, a constant after inlining) x 8 k of src (row
 * stride ld) -> c[j] = the rows' values at k = j (lanes past `rows` hold junk). Each 128-bit load
 * fills one lane: 4 k of row i low, of row i + 4 high. The transpose then needs only in-lane
 * shuffles, 16 of them, where loading whole rows needs 24, of which 8 cross lanes; in a C
 * harness packing 784x400 from L3 that is 45 -> 40 us (gcc -O3 -march=native, NOTES AI). */
static inline __attribute__((always_inline)) void mg_load_tr8x8_ps(const float *src, int64_t ld,
                                                                   const int rows, __m256 c[8]) {
    __m256 a[4], b[4];
    for (int i = 0; i < 4; i++) {
        a[i] = _mm256_castps128_ps256(_mm_loadu_ps(src + i * ld));
        b[i] = _mm256_castps128_ps256(_mm_loadu_ps(src + i * ld + 4));
        if (i + 4 < rows) {
            a[i] = _mm256_insertf128_ps(a[i], _mm_loadu_ps(src + (i + 4) * ld), 1);
            b[i] = _mm256_insertf128_ps(b[i], _mm_loadu_ps(src + (i + 4) * ld + 4), 1);
        }
    }
    __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
    __m256 t2 = _mm256_unpacklo_ps(a[2], a[3]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
    __m256 u0 = _mm256_unpacklo_ps(b[0], b[1]), u1 = _mm256_unpackhi_ps(b[0], b[1]);
    __m256 u2 = _mm256_unpacklo_ps(b[2], b[3]), u3 = _mm256_unpackhi_ps(b[2], b[3]);
    c[0] = _mm256_shuffle_ps(t0, t2, 0x44); c[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    c[2] = _mm256_shuffle_ps(t1, t3, 0x44); c[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
    c[4] = _mm256_shuffle_ps(u0, u2, 0x44); c[5] = _mm256_shuffle_ps(u0, u2, 0xEE);
    c[6] = _mm256_shuffle_ps(u1, u3, 0x44); c[7] = _mm256_shuffle_ps(u1, u3, 0xEE);
}

/* 16 rows of B (n x k storage) -> sliver dst[p][16]; dst is 64-byte aligned */
static MG_NOINLINE void gemm_pack_bt_full_f32(int64_t kc, const float *restrict src, int64_t ldb,
                                              float *restrict dst) {
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        for (int h = 0; h < 2; h++) {
            __m256 r[8];
#ifndef MG_NO_PACK_PF
            /* 16 row streams are more than the hardware prefetcher follows well: fetch each
             * row's data 64 floats (4 lines) ahead, once per line (every other step) */
            if (!(p & 8))
                for (int i = 0; i < 8; i++)
                    _mm_prefetch((const char *)(src + (8 * h + i) * ldb + p + 64), _MM_HINT_T0);
#endif
            mg_load_tr8x8_ps(src + 8 * h * ldb + p, ldb, 8, r);
            for (int j = 0; j < 8; j++) _mm256_store_ps(dst + (p + j) * 16 + 8 * h, r[j]);
        }
    }
    for (; p < kc; p++)
        for (int c = 0; c < 16; c++) dst[p * 16 + c] = src[c * ldb + p];
}

/* 6 rows of A (m x k storage) -> sliver dst[p][6]. Each transposed column is stored as 8 floats
 * (6 + 2 junk) in increasing p, so the junk is overwritten by the next store; the 8th column of
 * each group is stored as exactly 6. */
static MG_NOINLINE void gemm_pack_an_full_f32(int64_t kc, const float *restrict src, int64_t lda,
                                              float *restrict dst) {
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        __m256 r[8];
        mg_load_tr8x8_ps(src + p, lda, 6, r);
        for (int j = 0; j < 7; j++) _mm256_storeu_ps(dst + (p + j) * 6, r[j]);
        /* the last column: exactly 6 floats, so nothing spills into the next sliver (which
         * another thread may be packing at the same time) */
        _mm_storeu_ps(dst + (p + 7) * 6, _mm256_castps256_ps128(r[7]));
        _mm_storel_pi((__m64 *)(dst + (p + 7) * 6 + 4), _mm256_extractf128_ps(r[7], 1));
    }
    for (; p < kc; p++)
        for (int r = 0; r < 6; r++) dst[p * 6 + r] = src[r * lda + p];
}
#endif

/* ---- float32 ---- */
#define T float
#define SFX(name) name##_f32
#if MG_GEMM_SIMD
#define MR 6
#define NR 16
#define VT __m256
#define VL 8
#define VLOAD _mm256_load_ps
#define VLOADU _mm256_loadu_ps
#define VSTOREU _mm256_storeu_ps
#define VBCAST _mm256_broadcast_ss
#define VFMA _mm256_fmadd_ps
#define VMUL _mm256_mul_ps
#define VADD _mm256_add_ps
#define VSET1 _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#else
#define MR 4
#define NR 8
#endif
/* cache blocks (Zen 3: 32 KB L1d, 512 KB L2 per core): a 16 x KC f32 B sliver is 16 KB (half of
 * L1), a 144 x 256 A block 144 KB (under a third of L2), a KC x NC B panel 4 MB (L3). */
#ifndef MG_KC_F32
#define MG_KC_F32 384
#endif
#ifndef MG_MC_F32
#define MG_MC_F32 144
#endif
#define KC MG_KC_F32
#define MC MG_MC_F32
#define NC 4080
#include "gemm_kernels.h"
#undef T
#undef SFX
#undef MR
#undef NR
#undef VT
#undef VL
#undef VLOAD
#undef VLOADU
#undef VSTOREU
#undef VBCAST
#undef VFMA
#undef VMUL
#undef VADD
#undef VSET1
#undef VZERO
#undef KC
#undef MC
#undef NC

#if MG_GEMM_SIMD
/* 4 rows x 4 k of src (row stride ld) -> c[j] = the 4 rows' values at k = j; as
 * mg_load_tr8x8_ps, each 128-bit load fills one lane (2 k of row i low, of row i + 2 high), so the
 * transpose is 4 in-lane unpacks instead of 4 unpacks and 4 lane-crossing permutes */
static inline __attribute__((always_inline)) void mg_load_tr4x4_pd(const double *src, int64_t ld,
                                                                   __m256d c[4]) {
    __m256d a[2], b[2];
    for (int i = 0; i < 2; i++) {
        a[i] = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(src + i * ld)),
                                    _mm_loadu_pd(src + (i + 2) * ld), 1);
        b[i] = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(src + i * ld + 2)),
                                    _mm_loadu_pd(src + (i + 2) * ld + 2), 1);
    }
    c[0] = _mm256_unpacklo_pd(a[0], a[1]); c[1] = _mm256_unpackhi_pd(a[0], a[1]);
    c[2] = _mm256_unpacklo_pd(b[0], b[1]); c[3] = _mm256_unpackhi_pd(b[0], b[1]);
}

/* 8 rows of B (n x k storage) -> sliver dst[p][8]; dst is 64-byte aligned */
static MG_NOINLINE void gemm_pack_bt_full_f64(int64_t kc, const double *restrict src, int64_t ldb,
                                              double *restrict dst) {
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        for (int h = 0; h < 2; h++) {
            __m256d r[4];
            mg_load_tr4x4_pd(src + 4 * h * ldb + p, ldb, r);
            for (int j = 0; j < 4; j++) _mm256_store_pd(dst + (p + j) * 8 + 4 * h, r[j]);
        }
    }
    for (; p < kc; p++)
        for (int c = 0; c < 8; c++) dst[p * 8 + c] = src[c * ldb + p];
}

/* 6 rows of A (m x k storage) -> sliver dst[p][6]: rows 0-3 by a 4x4 transpose, rows 4-5 by
 * unpacking pairs into 128-bit halves. */
static MG_NOINLINE void gemm_pack_an_full_f64(int64_t kc, const double *restrict src, int64_t lda,
                                              double *restrict dst) {
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        __m256d r[4];
        mg_load_tr4x4_pd(src + p, lda, r);
        __m256d r4 = _mm256_loadu_pd(src + 4 * lda + p), r5 = _mm256_loadu_pd(src + 5 * lda + p);
        __m256d lo = _mm256_unpacklo_pd(r4, r5), hi = _mm256_unpackhi_pd(r4, r5);
        for (int j = 0; j < 4; j++) _mm256_storeu_pd(dst + (p + j) * 6, r[j]);
        _mm_storeu_pd(dst + (p + 0) * 6 + 4, _mm256_castpd256_pd128(lo));
        _mm_storeu_pd(dst + (p + 1) * 6 + 4, _mm256_castpd256_pd128(hi));
        _mm_storeu_pd(dst + (p + 2) * 6 + 4, _mm256_extractf128_pd(lo, 1));
        _mm_storeu_pd(dst + (p + 3) * 6 + 4, _mm256_extractf128_pd(hi, 1));
    }
    for (; p < kc; p++)
        for (int r = 0; r < 6; r++) dst[p * 6 + r] = src[r * lda + p];
}
#endif

/* ---- float64 ---- */
#define T double
#define SFX(name) name##_f64
#if MG_GEMM_SIMD
#define MR 6
#define NR 8
#define VT __m256d
#define VL 4
#define VLOAD _mm256_load_pd
#define VLOADU _mm256_loadu_pd
#define VSTOREU _mm256_storeu_pd
#define VBCAST _mm256_broadcast_sd
#define VFMA _mm256_fmadd_pd
#define VMUL _mm256_mul_pd
#define VADD _mm256_add_pd
#define VSET1 _mm256_set1_pd
#define VZERO _mm256_setzero_pd
#else
#define MR 4
#define NR 4
#endif
/* f64: an 8 x KC B sliver is 16 KB, a 72 x 256 A block 144 KB */
#ifndef MG_KC_F64
#define MG_KC_F64 256
#endif
#ifndef MG_MC_F64
#define MG_MC_F64 72
#endif
#define KC MG_KC_F64
#define MC MG_MC_F64
#define NC 4080
#include "gemm_kernels.h"

const char *mg_gemm_path(void) {
#if MG_GEMM_SIMD
    return "avx2-fma 6x16 f32 / 6x8 f64, narrow C 4x24 / 4x12";
#else
    return "generic 4x8 f32 / 4x4 f64";
#endif
}
