/* GEMM: C = alpha * op(A) @ op(B) + beta * C, row-major (API in minigrad.h).
 *
 * The algorithm (packing, cache blocking, register-blocked micro-kernel, threads) is written once
 * in gemm_kernels.h and instantiated here per dtype. With AVX2 + FMA available at compile time
 * (-march=native on x86-64) the micro-kernels are 6x16 (float) and 6x8 (double) tiles of ymm
 * accumulators; otherwise (MINIGRAD_PORTABLE=1, ARM, ...) a portable C micro-kernel is used. */
#include <stdint.h>
#include <stdlib.h>

#include "minigrad.h"
#include "typedefs.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MG_GEMM_SIMD 1
#else
#define MG_GEMM_SIMD 0
#endif

/* Below MG_SMALL_MNK multiply-adds with n <= MG_SMALL_N, the direct loop wins: packing two
 * operands and allocating a buffer costs more than the arithmetic. */
#define MG_SMALL_N 64
#define MG_SMALL_MNK (16 * 16 * 16)
/* Threads only above this many FLOPs: an OpenMP fork/join costs a few microseconds, which is
 * ~100k FLOPs of one core's time. */
#define MG_GEMM_PAR_FLOPS 400000.0

/* Packing routines and the micro-kernel are kept out of line: they are large loops where a call
 * costs nothing, and separate functions give the register allocator the kernel alone (and show up
 * separately in a profile). */
#if defined(__GNUC__)
#define MG_NOINLINE __attribute__((noinline))
#else
#define MG_NOINLINE
#endif

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
#define VSET1 _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#else
#define MR 4
#define NR 8
#endif
#define KC 256
#define MC 144
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
#undef VSET1
#undef VZERO
#undef KC
#undef MC
#undef NC

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
#define VSET1 _mm256_set1_pd
#define VZERO _mm256_setzero_pd
#else
#define MR 4
#define NR 4
#endif
#define KC 256
#define MC 72
#define NC 4080
#include "gemm_kernels.h"

const char *mg_gemm_path(void) {
#if MG_GEMM_SIMD
    return "avx2-fma 6x16 f32 / 6x8 f64";
#else
    return "generic 4x8 f32 / 4x4 f64";
#endif
}
