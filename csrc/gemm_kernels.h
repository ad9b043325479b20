/* GEMM body for one dtype, BLIS/GotoBLAS style. gemm.c includes this file once per dtype after
 * defining:
 *   T, SFX(name)               element type and name suffix (as in the other *_impl.h files)
 *   MR, NR                     register tile of the micro-kernel (rows of C x columns of C)
 *   KC, MC, NC                 cache blocks: a KC x NR sliver of packed B stays in L1, an MC x KC
 *                              block of packed A stays in L2, a KC x NC panel of packed B in L3
 *   MG_GEMM_SIMD               1 if the vector macros below are defined (AVX2 + FMA), else 0:
 *   VT, VL, VLOAD, VLOADU, VSTOREU, VBCAST, VFMA, VMUL, VSET1, VZERO
 *
 * Structure (outer to inner), for the block of C a thread owns:
 *   jc: NC columns of C   -> pc: KC of the k dimension -> pack that KC x NC panel of op(B)
 *   ic: MC rows of C      -> pack that MC x KC block of op(A)
 *   jr: NR columns, ir: MR rows -> micro-kernel: MR x NR tile += A sliver @ B sliver over kc.
 * Packing lays each MR-row (NR-column) sliver out contiguously in the order the micro-kernel reads
 * it, so the kernel does unit-stride aligned loads only; transposes are absorbed by packing. */

/* ---- packing ---- */

/* Pack rows [0, mc) x cols [0, kc) of op(A) into MR-row slivers, zero-padding the last one.
 * `a` points at op(A)[0][0] of the block. Sliver layout: for p in kc: MR values. */
static MG_NOINLINE void SFX(gemm_pack_a)(int trans, int64_t mc, int64_t kc, const T *restrict a, int64_t lda,
                             T *restrict dst) {
    for (int64_t i = 0; i < mc; i += MR) {
        int64_t mr = mc - i < MR ? mc - i : MR;
        if (!trans) {
            /* op(A) = A: row i + r of the block is a + (i + r) * lda; read MR rows in lockstep. */
            const T *restrict src = a + i * lda;
            if (mr == MR) {
#if MG_GEMM_SIMD
                SFX(gemm_pack_an_full)(kc, src, lda, dst);
#else
                for (int64_t p = 0; p < kc; p++)
                    for (int r = 0; r < MR; r++) dst[p * MR + r] = src[r * lda + p];
#endif
            } else {
                /* zero the whole row, then copy: a fill of the MR - mr tail compiled to a
                 * `rep stos` per row, 24% of this function's time in a VAE step (perf) */
                for (int64_t p = 0; p < kc; p++) {
                    for (int r = 0; r < MR; r++) dst[p * MR + r] = 0;
                    for (int r = 0; r < mr; r++) dst[p * MR + r] = src[r * lda + p];
                }
            }
        } else {
            /* op(A) = A^T: A is k x m, so the MR values for one p are contiguous in A: a
             * constant-size memcpy, which compiles to two vector moves */
            const T *restrict src = a + i;
            if (mr == MR) {
                for (int64_t p = 0; p < kc; p++) memcpy(dst + p * MR, src + p * lda, MR * sizeof(T));
            } else {
                for (int64_t p = 0; p < kc; p++) {
                    for (int r = 0; r < MR; r++) dst[p * MR + r] = 0;
                    for (int r = 0; r < mr; r++) dst[p * MR + r] = src[p * lda + r];
                }
            }
        }
        dst += kc * MR;
    }
}

/* Packed B slivers start SFX(gemm_bstride)(kc) elements apart: kc * NR values and MG_BPAD bytes
 * (one cache line; a multiple of 64 keeps the slivers aligned) of padding. Without the pad, with
 * AVX2 (NR values = one 64-byte line) slivers are kc lines apart, and for kc a multiple of 64
 * (the dW GEMMs' k = 128) every sliver's row lands in the same L1 set: the row-by-row B packing
 * below, which writes one line to each sliver per row of B, then ran at ~0.6x copy speed
 * (NOTES AB). */
#ifndef MG_BPAD
#define MG_BPAD 64
#endif
#if MG_BPAD % 64 != 0
#error "MG_BPAD must be a multiple of 64 bytes: packed slivers are stored with aligned vector stores"
#endif
static inline int64_t SFX(gemm_bstride)(int64_t kc) { return kc * NR + MG_BPAD / (int64_t)sizeof(T); }

/* Pack rows [0, kc) x cols [0, nc) of op(B) into NR-column slivers, zero-padding the last one.
 * `b` points at op(B)[0][0] of the block. Sliver layout: for p in kc: NR values; slivers
 * SFX(gemm_bstride)(kc) apart. */
static MG_NOINLINE void SFX(gemm_pack_b)(int trans, int64_t kc, int64_t nc, const T *restrict b, int64_t ldb,
                             T *restrict dst) {
    if (!trans) {
        /* op(B) = B (k x n): walk B row by row (sequential reads, which is what the hardware
         * prefetchers stream best from L3) and scatter each row's NR-wide pieces to the slivers.
         * Walking one sliver at a time instead reads 64 bytes per row with a row-sized stride,
         * and packing took ~10% of the time on (128x400)@(400x784). */
        int64_t nfull = nc / NR, rem = nc - nfull * NR, ss = SFX(gemm_bstride)(kc);
        for (int64_t p = 0; p < kc; p++) {
            const T *restrict src = b + p * ldb;
            T *restrict d = dst + p * NR;
            for (int64_t s = 0; s < nfull; s++)
                for (int c = 0; c < NR; c++) d[s * ss + c] = src[s * NR + c];
            if (rem) {
                T *restrict de = d + nfull * ss;
                for (int c = 0; c < NR; c++) de[c] = 0; /* whole row: see the B^T edge below */
                for (int c = 0; c < rem; c++) de[c] = src[nfull * NR + c];
            }
        }
        return;
    }
    for (int64_t j = 0; j < nc; j += NR) {
        int64_t nr = nc - j < NR ? nc - j : NR;
        /* op(B) = B^T (B is n x k): column j + c of op(B) is row j + c of B, contiguous in p. */
        const T *restrict src = b + j * ldb;
        if (nr == NR) {
#if MG_GEMM_SIMD
            SFX(gemm_pack_bt_full)(kc, src, ldb, dst);
#else
            for (int64_t p = 0; p < kc; p++)
                for (int c = 0; c < NR; c++) dst[p * NR + c] = src[c * ldb + p];
#endif
        } else {
            /* zero the whole row first: a constant-length fill compiles to two vector stores,
             * while the fill of the NR - nr tail became a `rep stos` (~70% of this packing,
             * n = 20, perf annotate) */
            for (int64_t p = 0; p < kc; p++) {
                for (int c = 0; c < NR; c++) dst[p * NR + c] = 0;
                for (int c = 0; c < nr; c++) dst[p * NR + c] = src[c * ldb + p];
            }
        }
        dst += SFX(gemm_bstride)(kc);
    }
}

/* ---- micro-kernel: c[MR x NR] = alpha * (ap @ bp) + beta * c, beta == 0 never reads c ---- */

#if MG_GEMM_SIMD
#ifndef MG_PF_A
#define MG_PF_A 16
#endif
/* Two vectors per row of the tile (NR = 2 * VL): MR * 2 accumulators + 2 B vectors + 1 broadcast
 * A value = 15 of the 16 ymm registers for MR = 6. Per k step: 2 loads, MR broadcasts, 2 * MR FMAs,
 * enough independent accumulators (12) to cover the FMA latency x throughput (4 cycles x 2 pipes). */
/* A is read at ap[p * sp + r * sr]: (sp, sr) = (MR, 1) for a packed sliver; when A is used in
 * place (see gemm_thread) the strides of the original matrix. */
static inline __attribute__((always_inline)) void SFX(gemm_ukernel_body)(
    int64_t kc, const T *restrict ap, int64_t sp, int64_t sr, const T *restrict bp, T *restrict c,
    int64_t ldc, T alpha, T beta) {
    VT c00 = VZERO(), c01 = VZERO(), c10 = VZERO(), c11 = VZERO(), c20 = VZERO(), c21 = VZERO();
    VT c30 = VZERO(), c31 = VZERO(), c40 = VZERO(), c41 = VZERO(), c50 = VZERO(), c51 = VZERO();
#define MG_STEP(P)                                                                                 \
    do {                                                                                           \
        VT b0 = VLOAD(bp + (P) * NR), b1 = VLOAD(bp + (P) * NR + VL), av;                          \
        av = VBCAST(ap + (P) * sp + 0 * sr); c00 = VFMA(av, b0, c00); c01 = VFMA(av, b1, c01);          \
        av = VBCAST(ap + (P) * sp + 1 * sr); c10 = VFMA(av, b0, c10); c11 = VFMA(av, b1, c11);          \
        av = VBCAST(ap + (P) * sp + 2 * sr); c20 = VFMA(av, b0, c20); c21 = VFMA(av, b1, c21);          \
        av = VBCAST(ap + (P) * sp + 3 * sr); c30 = VFMA(av, b0, c30); c31 = VFMA(av, b1, c31);          \
        av = VBCAST(ap + (P) * sp + 4 * sr); c40 = VFMA(av, b0, c40); c41 = VFMA(av, b1, c41);          \
        av = VBCAST(ap + (P) * sp + 5 * sr); c50 = VFMA(av, b0, c50); c51 = VFMA(av, b1, c51);          \
    } while (0)
    /* C's tile is touched only after the k loop: start pulling its lines into L1 now so the final
     * loads / stores (RFO) do not stall. */
#if MG_PF_A > 0
    for (int r = 0; r < MR; r++) {
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + NR - 1), _MM_HINT_T0);
    }
#endif
    int64_t p = 0;
    /* unrolled by 4 so the loop overhead (add, cmp, branch) is amortized over 48 FMAs */
    for (; p + 4 <= kc; p += 4) {
        /* A's sliver streams from L2: ask for the line ~4 steps of 4 ahead */
#if MG_PF_A > 0
        _mm_prefetch((const char *)(ap + MG_PF_A * sp), _MM_HINT_T0);
#endif
        MG_STEP(0); MG_STEP(1); MG_STEP(2); MG_STEP(3);
        ap += 4 * sp;
        bp += 4 * NR;
    }
    for (; p < kc; p++) {
        MG_STEP(0);
        ap += sp;
        bp += NR;
    }
#undef MG_STEP
    VT va = VSET1(alpha);
#define MG_ROW(R, X0, X1)                                                                          \
    do {                                                                                           \
        T *restrict cr = c + (R) * ldc;                                                            \
        if (beta == 0) {                                                                           \
            VSTOREU(cr, VMUL(va, X0)); VSTOREU(cr + VL, VMUL(va, X1));                             \
        } else if (beta == 1) {                                                                    \
            VSTOREU(cr, VFMA(va, X0, VLOADU(cr))); VSTOREU(cr + VL, VFMA(va, X1, VLOADU(cr + VL))); \
        } else {                                                                                   \
            VT vb = VSET1(beta);                                                                   \
            VSTOREU(cr, VFMA(va, X0, VMUL(vb, VLOADU(cr))));                                       \
            VSTOREU(cr + VL, VFMA(va, X1, VMUL(vb, VLOADU(cr + VL))));                             \
        }                                                                                          \
    } while (0)
    MG_ROW(0, c00, c01); MG_ROW(1, c10, c11); MG_ROW(2, c20, c21);
    MG_ROW(3, c30, c31); MG_ROW(4, c40, c41); MG_ROW(5, c50, c51);
#undef MG_ROW
}

/* packed A: constant strides, so the body compiles to fixed-offset broadcasts */
static MG_NOINLINE void SFX(gemm_ukernel)(int64_t kc, const T *restrict ap, const T *restrict bp,
                                          T *restrict c, int64_t ldc, T alpha, T beta) {
    SFX(gemm_ukernel_body)(kc, ap, MR, 1, bp, c, ldc, alpha, beta);
}

/* A in place, any strides */
static MG_NOINLINE void SFX(gemm_ukernel_s)(int64_t kc, const T *restrict ap, int64_t sp,
                                            int64_t sr, const T *restrict bp, T *restrict c,
                                            int64_t ldc, T alpha, T beta) {
    SFX(gemm_ukernel_body)(kc, ap, sp, sr, bp, c, ldc, alpha, beta);
}

/* Edge tiles (mr < MR rows and/or nr <= VL columns): the same scheme with only the accumulators
 * that hold real output, so e.g. the 2-row remainder of m = 128 costs 1/3 of a full tile and an
 * n = 28 matrix needs 16 + 16 columns of FMAs, with 8 + 8 in the edge tile. The body is
 * specialized by constant (rows, vectors) arguments; after full unrolling the accumulators live
 * in registers. Writes the raw product into tmp (row stride NR); the caller merges it into C with
 * alpha / beta. */
static inline __attribute__((always_inline)) void SFX(gemm_edge_body)(
    int64_t kc, const T *restrict ap, int64_t sp, int64_t sr, const T *restrict bp,
    T *restrict tmp, const int rows, const int nv) {
    /* named accumulators, not an array: GCC kept an array's elements in registers but still
     * stored every one to the stack on each iteration, which made this loop store-bound */
    VT x0 = VZERO(), x1 = VZERO(), x2 = VZERO(), x3 = VZERO(), x4 = VZERO(), x5 = VZERO();
    VT y0 = VZERO(), y1 = VZERO(), y2 = VZERO(), y3 = VZERO(), y4 = VZERO(), y5 = VZERO();
    int64_t p = 0;
    if (nv == 1) {
        /* one vector per row leaves only `rows` FMA chains, too few to hide the FMA latency:
         * even k steps accumulate in x, odd ones in y, summed at the end */
#define MG_E1(R)                                                                                   \
    if (rows > (R)) {                                                                              \
        x##R = VFMA(VBCAST(ap + p * sp + (R) * sr), b0, x##R);                                          \
        y##R = VFMA(VBCAST(ap + (p + 1) * sp + (R) * sr), b1, y##R);                                    \
    }
        for (; p + 2 <= kc; p += 2) {
            VT b0 = VLOAD(bp + p * NR), b1 = VLOAD(bp + (p + 1) * NR);
            MG_E1(0) MG_E1(1) MG_E1(2) MG_E1(3) MG_E1(4) MG_E1(5)
        }
#undef MG_E1
#define MG_E1(R)                                                                                   \
    if (rows > (R)) x##R = VFMA(VBCAST(ap + p * sp + (R) * sr), b0, x##R);
        for (; p < kc; p++) {
            VT b0 = VLOAD(bp + p * NR);
            MG_E1(0) MG_E1(1) MG_E1(2) MG_E1(3) MG_E1(4) MG_E1(5)
        }
#undef MG_E1
#define MG_S1(R)                                                                                   \
    if (rows > (R)) VSTOREU(tmp + (R) * NR, VADD(x##R, y##R));
        MG_S1(0) MG_S1(1) MG_S1(2) MG_S1(3) MG_S1(4) MG_S1(5)
#undef MG_S1
        return;
    }
#define MG_E2(R)                                                                                   \
    if (rows > (R)) {                                                                              \
        VT av = VBCAST(ap + p * sp + (R) * sr);                                                         \
        x##R = VFMA(av, b0, x##R);                                                                 \
        y##R = VFMA(av, b1, y##R);                                                                 \
    }
    if (rows <= 3) {
        /* 2 * rows FMA chains are too few as well (the 2-row remainder of m = 128 ran at ~0.64
         * of the full tile's rate per FLOP, perf): odd k steps go to the accumulators of
         * rows + 3, added at the end */
#define MG_E2O(R, S)                                                                               \
    if (rows > (R)) {                                                                              \
        VT av = VBCAST(ap + (p + 1) * sp + (R) * sr);                                              \
        x##S = VFMA(av, b0, x##S);                                                                 \
        y##S = VFMA(av, b1, y##S);                                                                 \
    }
        for (; p + 2 <= kc; p += 2) {
            VT b0 = VLOAD(bp + p * NR), b1 = VLOAD(bp + p * NR + VL);
            MG_IN_REGS2(b0, b1); /* else each FMA loads its B again: load bound */
            MG_E2(0) MG_E2(1) MG_E2(2)
            b0 = VLOAD(bp + (p + 1) * NR), b1 = VLOAD(bp + (p + 1) * NR + VL);
            MG_IN_REGS2(b0, b1);
            MG_E2O(0, 3) MG_E2O(1, 4) MG_E2O(2, 5)
        }
#undef MG_E2O
        x0 = VADD(x0, x3); y0 = VADD(y0, y3);
        x1 = VADD(x1, x4); y1 = VADD(y1, y4);
        x2 = VADD(x2, x5); y2 = VADD(y2, y5);
    }
    for (; p < kc; p++) {
        VT b0 = VLOAD(bp + p * NR), b1 = VLOAD(bp + p * NR + VL);
        MG_IN_REGS2(b0, b1);
        MG_E2(0) MG_E2(1) MG_E2(2) MG_E2(3) MG_E2(4) MG_E2(5)
    }
#undef MG_E2
#define MG_S2(R)                                                                                   \
    if (rows > (R)) {                                                                              \
        VSTOREU(tmp + (R) * NR, x##R);                                                             \
        VSTOREU(tmp + (R) * NR + VL, y##R);                                                        \
    }
    MG_S2(0) MG_S2(1) MG_S2(2) MG_S2(3) MG_S2(4) MG_S2(5)
#undef MG_S2
}

static MG_NOINLINE void SFX(gemm_ukernel_edge)(int64_t kc, const T *restrict ap, int64_t sp,
                                               int64_t sr, const T *restrict bp, T *restrict tmp,
                                               int mr, int nr) {
    int nv = nr > VL ? 2 : 1;
    switch (mr * 2 + nv - 1) {
#define MG_EDGE_CASE(R)                                                                            \
    case (R) * 2: SFX(gemm_edge_body)(kc, ap, sp, sr, bp, tmp, R, 1); break;                      \
    case (R) * 2 + 1: SFX(gemm_edge_body)(kc, ap, sp, sr, bp, tmp, R, 2); break;
        MG_EDGE_CASE(1) MG_EDGE_CASE(2) MG_EDGE_CASE(3) MG_EDGE_CASE(4) MG_EDGE_CASE(5)
        MG_EDGE_CASE(6)
#undef MG_EDGE_CASE
    default: break;
    }
}
/* C one full sliver plus at most one vector wide: the 4-row tiles below (AVX2 builds only) */
#define MG_NARROW3(n) ((n) > NR && (n) <= NR + VL)

/* Narrow C with NR < n <= NR + VL (n = 20 in float): one 4-row tile spans both column slivers,
 * 2 vectors from the full sliver and 1 from the edge sliver, so each A value is broadcast once for
 * all n columns. 4 x 3 = 12 accumulators + 3 B vectors + 1 broadcast = 16 ymm registers; per k
 * step 3 loads, 4 broadcasts, 12 FMAs. The 6x16 tile + 6-row edge tile it replaces issue the same
 * FMAs, but the edge half (6 FMAs against 7 loads per k step) is load bound and A is read twice.
 * A is read in place (sp, sr as in gemm_ukernel_body); `rows` (constant after inlining, 1..4) rows
 * and n2 = n - NR columns of the edge vector are written. Every row sums in the same order whatever
 * `rows` is, so a row's result does not depend on how the thread split cut the rows. */
static inline __attribute__((always_inline)) void SFX(gemm_w3_body)(
    int64_t kc, const T *restrict ap, int64_t sp, int64_t sr, const T *restrict bp0,
    const T *restrict bp1, T *restrict c, int64_t ldc, int n2, T alpha_in, T beta_in,
    const int rows) {
    /* alpha and beta wait in memory: left in a register, they took the one ymm the loop needs
     * and GCC spilled an accumulator instead (a store-load chain through the stack every k step,
     * which doubled the time) */
    volatile T scale[2] = {alpha_in, beta_in};
    VT c00 = VZERO(), c01 = VZERO(), c02 = VZERO(), c10 = VZERO(), c11 = VZERO(), c12 = VZERO();
    VT c20 = VZERO(), c21 = VZERO(), c22 = VZERO(), c30 = VZERO(), c31 = VZERO(), c32 = VZERO();
#define MG_FMA3(R)                                                                                 \
    if (rows > (R)) {                                                                              \
        VT av = VBCAST(ap + (R) * sr);                                                             \
        c##R##0 = VFMA(av, b0, c##R##0); c##R##1 = VFMA(av, b1, c##R##1);                          \
        c##R##2 = VFMA(av, b2, c##R##2);                                                           \
    }
    /* not unrolled: unrolled, GCC spilled an accumulator (12 + 3 + 1 registers leave no room to
     * load the next step's B early) */
    for (int64_t p = 0; p < kc; p++) {
        VT b0 = VLOAD(bp0), b1 = VLOAD(bp0 + VL), b2 = VLOAD(bp1);
        MG_IN_REGS(b0, b1, b2);
        MG_FMA3(0) MG_FMA3(1) MG_FMA3(2) MG_FMA3(3)
        ap += sp;
        bp0 += NR;
        bp1 += NR;
    }
#undef MG_FMA3
    T alpha = scale[0], beta = scale[1];
    VT va = VSET1(alpha);
    T tail[VL];
#define MG_ROW(R)                                                                                  \
    if (rows > (R)) {                                                                              \
        T *restrict cr = c + (R) * ldc;                                                            \
        if (beta == 0) {                                                                           \
            VSTOREU(cr, VMUL(va, c##R##0)); VSTOREU(cr + VL, VMUL(va, c##R##1));                   \
        } else {                                                                                   \
            VT vb = VSET1(beta);                                                                   \
            VSTOREU(cr, VFMA(va, c##R##0, VMUL(vb, VLOADU(cr))));                                  \
            VSTOREU(cr + VL, VFMA(va, c##R##1, VMUL(vb, VLOADU(cr + VL))));                        \
        }                                                                                          \
        VSTOREU(tail, VMUL(va, c##R##2));                                                          \
        for (int j = 0; j < n2; j++)                                                               \
            cr[NR + j] = beta == 0 ? tail[j] : tail[j] + beta * cr[NR + j];                        \
    }
    MG_ROW(0) MG_ROW(1) MG_ROW(2) MG_ROW(3)
#undef MG_ROW
}

/* Full 4-row tiles: the two layouts of A read in place get constant strides, so A is addressed
 * with immediate offsets. The 1..3 leftover rows of a block: generic strides. */
static MG_NOINLINE void SFX(gemm_ukernel_w3)(int64_t kc, const T *restrict ap, int64_t sp,
                                             int64_t sr, const T *restrict bp0,
                                             const T *restrict bp1, T *restrict c, int64_t ldc,
                                             int n2, T alpha, T beta, int rows) {
    switch (rows) {
    case 4:
        if (sp == 1)
            SFX(gemm_w3_body)(kc, ap, 1, sr, bp0, bp1, c, ldc, n2, alpha, beta, 4);
        else if (sr == 1)
            SFX(gemm_w3_body)(kc, ap, sp, 1, bp0, bp1, c, ldc, n2, alpha, beta, 4);
        else
            SFX(gemm_w3_body)(kc, ap, sp, sr, bp0, bp1, c, ldc, n2, alpha, beta, 4);
        break;
    case 3: SFX(gemm_w3_body)(kc, ap, sp, sr, bp0, bp1, c, ldc, n2, alpha, beta, 3); break;
    case 2: SFX(gemm_w3_body)(kc, ap, sp, sr, bp0, bp1, c, ldc, n2, alpha, beta, 2); break;
    case 1: SFX(gemm_w3_body)(kc, ap, sp, sr, bp0, bp1, c, ldc, n2, alpha, beta, 1); break;
    default: break;
    }
}
#else
/* Portable kernel: a small accumulator tile the compiler keeps in registers and vectorizes over
 * the NR columns with whatever SIMD the target has (SSE2 / NEON). */
static MG_NOINLINE void SFX(gemm_ukernel)(int64_t kc, const T *restrict ap, const T *restrict bp,
                                          T *restrict c, int64_t ldc, T alpha, T beta) {
    T acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = 0;
    for (int64_t p = 0; p < kc; p++) {
        for (int i = 0; i < MR; i++) {
            T av = ap[p * MR + i];
            for (int j = 0; j < NR; j++) acc[i][j] += av * bp[p * NR + j];
        }
    }
    for (int i = 0; i < MR; i++) {
        T *restrict cr = c + i * ldc;
        if (beta == 0)
            for (int j = 0; j < NR; j++) cr[j] = alpha * acc[i][j];
        else
            for (int j = 0; j < NR; j++) cr[j] = alpha * acc[i][j] + beta * cr[j];
    }
}
#endif

/* ---- macro-kernel: micro-tiles t0..t1 of C[mc x nc] over one A block and B panel ---- */

/* A is either packed (abuf = packed block, sp = 0 meaning "packed") or used in place (abuf points
 * at op(A)[ic][pc], element (r, p) at abuf[p * sp + r * sr]). */
/* Computes micro-tiles [t0, t1) of the mc x nc block, numbered sliver-major
 * (tile = sliver * row_tiles + row_tile), so a thread's share can end inside a sliver. */
static void SFX(gemm_macro)(int64_t mc, int64_t nc, int64_t kc, int64_t t0, int64_t t1, T alpha,
                            T beta, const T *restrict abuf, int64_t sp, int64_t sr,
                            const T *restrict bbuf, T *restrict c, int64_t ldc) {
    int packed = sp == 0;
    int64_t mt = (mc + MR - 1) / MR;
#if MG_GEMM_SIMD
    if (!packed && MG_NARROW3(nc) && t0 == 0 && t1 == 2 * mt) {
        /* the whole narrow block (gemm_thread hands it over whole): 4-row tiles across both
         * slivers */
        for (int64_t ir = 0; ir < mc; ir += 4)
            SFX(gemm_ukernel_w3)(kc, abuf + ir * sr, sp, sr, bbuf, bbuf + SFX(gemm_bstride)(kc), c + ir * ldc,
                                 ldc, (int)(nc - NR), alpha, beta, mc - ir < 4 ? (int)(mc - ir) : 4);
        return;
    }
#endif
    /* tile = sliver * mt + row_tile, followed by counting (one division here, not one per
     * tile: with a 64-bit idiv per tile this loop was 0.93% of a 1-thread VAE step, NOTES AF) */
    int64_t sliver = t0 / mt, row_tile = t0 % mt, bstride = SFX(gemm_bstride)(kc);
    for (int64_t tile = t0; tile < t1; tile++) {
        int64_t jr = sliver * NR, ir = row_tile * MR;
        int64_t nr = nc - jr < NR ? nc - jr : NR;
        const T *bp = bbuf + sliver * bstride;
        if (++row_tile == mt) {
            row_tile = 0;
            sliver++;
        }
        {
            int64_t mr = mc - ir < MR ? mc - ir : MR;
            const T *ap = packed ? abuf + ir * kc : abuf + ir * sr;
            T *cp = c + ir * ldc + jr;
            if (mr == MR && nr == NR) {
#if MG_GEMM_SIMD
                if (!packed)
                    SFX(gemm_ukernel_s)(kc, ap, sp, sr, bp, cp, ldc, alpha, beta);
                else
#endif
                    SFX(gemm_ukernel)(kc, ap, bp, cp, ldc, alpha, beta);
            } else {
                /* edge tile: compute into scratch (only the rows / vectors that hold output
                 * with AVX2; the full zero-padded tile otherwise), then merge the valid
                 * mr x nr part into C */
                T tmp[MR * NR];
#if MG_GEMM_SIMD
                if (packed)
                    SFX(gemm_ukernel_edge)(kc, ap, MR, 1, bp, tmp, (int)mr, (int)nr);
                else
                    SFX(gemm_ukernel_edge)(kc, ap, sp, sr, bp, tmp, (int)mr, (int)nr);
#else
                SFX(gemm_ukernel)(kc, ap, bp, tmp, NR, (T)1, (T)0);
#endif
                for (int64_t i = 0; i < mr; i++) {
                    T *restrict cr = cp + i * ldc;
                    if (beta == 0)
                        for (int64_t j = 0; j < nr; j++) cr[j] = alpha * tmp[i * NR + j];
                    else
                        for (int64_t j = 0; j < nr; j++)
                            cr[j] = alpha * tmp[i * NR + j] + beta * cr[j];
                }
            }
        }
    }
}

/* Direct triple loop for tiny problems, where packing and buffer allocation cost more than the
 * arithmetic. Innermost loop runs over contiguous memory where the layout allows. */
static void SFX(gemm_small)(int ta, int tb, int64_t m, int64_t n, int64_t k, T alpha,
                            const T *restrict a, int64_t lda, const T *restrict b, int64_t ldb,
                            T beta, T *restrict c, int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j0 = 0; j0 < n; j0 += MG_SMALL_N) {
            int64_t nj = n - j0 < MG_SMALL_N ? n - j0 : MG_SMALL_N;
            T *restrict cr = c + i * ldc + j0;
            T acc[MG_SMALL_N];
            for (int64_t j = 0; j < nj; j++) acc[j] = 0;
            if (tb) {
                /* op(B) column j is contiguous in p: dot products */
                for (int64_t j = 0; j < nj; j++) {
                    const T *restrict brow = b + (j0 + j) * ldb;
                    T s = 0;
                    if (ta)
                        for (int64_t p = 0; p < k; p++) s += a[p * lda + i] * brow[p];
                    else
                        for (int64_t p = 0; p < k; p++) s += a[i * lda + p] * brow[p];
                    acc[j] = s;
                }
            } else {
                /* rows of B are contiguous: axpy into the accumulator row (vectorizes) */
                for (int64_t p = 0; p < k; p++) {
                    T av = ta ? a[p * lda + i] : a[i * lda + p];
                    const T *restrict brow = b + p * ldb + j0;
                    for (int64_t j = 0; j < nj; j++) acc[j] += av * brow[j];
                }
            }
            if (beta == 0)
                for (int64_t j = 0; j < nj; j++) cr[j] = alpha * acc[j];
            else
                for (int64_t j = 0; j < nj; j++) cr[j] = alpha * acc[j] + beta * cr[j];
        }
    }
}

/* C = beta * C, with beta == 0 writing zeros (so NaN in C does not survive) */
static void SFX(gemm_scale_c)(int64_t m, int64_t n, T beta, T *restrict c, int64_t ldc) {
    if (beta == 1) return;
    for (int64_t i = 0; i < m; i++) {
        T *restrict cr = c + i * ldc;
        if (beta == 0)
            for (int64_t j = 0; j < n; j++) cr[j] = 0;
        else
            for (int64_t j = 0; j < n; j++) cr[j] *= beta;
    }
}

/* One thread's part of the whole GEMM (all threads run the same loops and meet at the same
 * barriers; with nth == 1 it is the serial algorithm, and MG_BARRIER skips the barriers).
 * With several threads the shared buffers are double-buffered (bbuf / abuf0 hold two copies, at
 * bbuf + bsz and abuf0 + asz): panel number q of B is packed into copy q & 1 (likewise block
 * number q of the shared A in the jr split). Packing copy q & 1 again at q + 2 is safe without a
 * barrier of its own, because every thread has passed a barrier during q + 1, which no thread
 * passes before all have finished reading q. So each block needs one barrier (packed data
 * complete), not two (complete, then no longer read); each barrier is a possible futex wake-up
 * with the short GOMP_SPINCOUNT minigrad sets. */
static void SFX(gemm_thread)(int t, int nth, int split_m, int ta, int tb, int64_t m, int64_t n,
                             int64_t k, T alpha, const T *a, int64_t lda, const T *b, int64_t ldb,
                             T beta, T *c, int64_t ldc, int64_t kcb, int64_t mcb, int64_t mblocks,
                             int priv_b, T *bbuf0, size_t bsz, T *abuf0, size_t asz) {
    /* Narrow C (n <= 2 NR: at most two column slivers): each element of A feeds at most two
     * micro-tiles, so packing A costs about as much as it saves (17% of the time for n = 20).
     * The AVX2 kernels then read A in place; their edge versions touch only the live rows, so
     * no zero padding is needed. */
    int direct_a = MG_GEMM_SIMD && n <= 2 * NR;
    int64_t sp = direct_a ? (ta ? lda : 1) : 0, sr = ta ? 1 : lda;
    int dbl = nth > 1; /* double-buffered shared blocks */
    int64_t bpanel = 0, ablock = 0;
    for (int64_t jc = 0; jc < n; jc += NC) {
        int64_t nc = n - jc < NC ? n - jc : NC;
        int64_t nsl = (nc + NR - 1) / NR;
        /* this thread's share of B's slivers; with a private B (narrow C in the ic split: at
         * most 2 slivers, cheaper to pack twice than to wait for each other) all of them */
        int64_t b0 = priv_b ? 0 : nsl * t / nth, b1 = priv_b ? nsl : nsl * (t + 1) / nth;
        for (int64_t pc = 0; pc < k; pc += kcb) {
            int64_t kc = k - pc < kcb ? k - pc : kcb;
            T *bbuf = bbuf0 + (priv_b ? (size_t)t * bsz : dbl ? (size_t)(bpanel & 1) * bsz : 0);
            bpanel++;
            /* the first k block applies the caller's beta, later ones accumulate */
            T beta_k = pc == 0 ? beta : (T)1;
            if (b0 < b1) {
                int64_t j0 = jc + b0 * NR, jn = (b1 * NR < nc ? b1 * NR : nc) - b0 * NR;
                const T *bsrc = tb ? b + j0 * ldb + pc : b + pc * ldb + j0;
                SFX(gemm_pack_b)(tb, kc, jn, bsrc, ldb, bbuf + b0 * SFX(gemm_bstride)(kc));
            }
            if (split_m) {
                /* B panel shared, A blocks private: wait for all of B */
                T *abuf = abuf0 + (size_t)t * asz;
                if (!priv_b) MG_BARRIER(nth);
                for (int64_t blk = t; blk < mblocks; blk += nth) {
                    int64_t ic = blk * mcb, mc = m - ic < mcb ? m - ic : mcb;
                    const T *asrc = ta ? a + pc * lda + ic : a + ic * lda + pc;
                    if (!direct_a) SFX(gemm_pack_a)(ta, mc, kc, asrc, lda, abuf);
                    SFX(gemm_macro)(mc, nc, kc, 0, nsl * ((mc + MR - 1) / MR), alpha, beta_k,
                                    direct_a ? asrc : abuf, sp,
                                    sr, bbuf, c + ic * ldc + jc, ldc);
                }
            } else {
                /* the A block is shared: wait until all of it (and of B) is packed */
                for (int64_t ic = 0; ic < m; ic += mcb) {
                    int64_t mc = m - ic < mcb ? m - ic : mcb;
                    int64_t msl = (mc + MR - 1) / MR;
                    int64_t a0 = msl * t / nth, a1 = msl * (t + 1) / nth;
                    if (direct_a) {
                        /* each thread reads only the B slivers it packed, nothing shared: no
                         * barriers */
                        const T *asrc = ta ? a + pc * lda + ic : a + ic * lda + pc;
                        SFX(gemm_macro)(mc, nc, kc, b0 * msl, b1 * msl, alpha, beta_k, asrc, sp,
                                        sr, bbuf,
                                        c + ic * ldc + jc, ldc);
                        continue;
                    }
                    T *abuf = abuf0 + (dbl ? (size_t)(ablock & 1) * asz : 0);
                    ablock++;
                    if (a0 < a1) {
                        int64_t i0 = ic + a0 * MR, in = (a1 * MR < mc ? a1 * MR : mc) - a0 * MR;
                        const T *asrc = ta ? a + pc * lda + i0 : a + i0 * lda + pc;
                        SFX(gemm_pack_a)(ta, in, kc, asrc, lda, abuf + a0 * MR * kc);
                    }
                    MG_BARRIER(nth);
                    /* B is complete too (packed before the barrier): split by micro-tiles,
                     * not whole slivers, so 25 slivers on 2 threads do not leave one thread
                     * a sliver more */
                    SFX(gemm_macro)(mc, nc, kc, nsl * msl * t / nth, nsl * msl * (t + 1) / nth,
                                    alpha, beta_k, abuf, 0, 0, bbuf,
                                    c + ic * ldc + jc, ldc);
                }
            }
        }
    }
}

static int64_t SFX(gemm_round_up)(int64_t x, int64_t r) { return (x + r - 1) / r * r; }

void SFX(mg_gemm)(int ta, int tb, int64_t m, int64_t n, int64_t k, T alpha, const T *a,
                  int64_t lda, const T *b, int64_t ldb, T beta, T *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0) {
        SFX(gemm_scale_c)(m, n, beta, c, ldc);
        return;
    }
    if (n <= MG_SMALL_N && m * n * k <= MG_SMALL_MNK) {
        SFX(gemm_small)(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* Balance the cache blocks: k = 784 with KC = 256 would leave a 16-deep last block whose
     * C-tile loads/stores are amortized over few FMAs; 4 blocks of 196 are better. */
    int64_t kblocks = (k + KC - 1) / KC;
    int64_t kcb = (k + kblocks - 1) / kblocks;
    int64_t m_units = (m + MR - 1) / MR, n_units = (n + NR - 1) / NR;

    int nt = 1;
#ifdef _OPENMP
    {
        /* Threads only when each gets enough work to pay for the fork/join and barriers. */
        double flops = 2.0 * (double)m * (double)n * (double)k;
        nt = omp_get_max_threads();
        if (flops / nt < MG_GEMM_PAR_FLOPS) nt = (int)(flops / MG_GEMM_PAR_FLOPS);
        if (nt < 1) nt = 1;
    }
#endif
    /* Two ways to share the work, both with one packed copy of each operand block (packing is
     * split among the threads too, then a barrier):
     *  - split the ic loop (each thread owns whole MC row blocks of C and packs its own A block;
     *    B's panel is shared): used when C has at least as many row tiles as column slivers.
     *    The number of row blocks is a multiple of nt so every thread gets the same share.
     *  - split the jr loop (C's columns; A block and B panel shared): used for short, wide C such
     *    as 128 x 400, which has a single MC block. Never for NR < n <= NR + VL, which
     *    gemm_macro computes with whole-block 4-row tiles (the same sums for any thread count). */
#if MG_GEMM_SIMD
    int narrow3 = MG_NARROW3(n);
#else
    int narrow3 = 0;
#endif
    int split_m = nt > 1 && (m_units >= n_units || narrow3);
    int64_t mblocks = (m + MC - 1) / MC;
    if (split_m) {
        mblocks = (mblocks + nt - 1) / nt * nt;
        if (mblocks > m_units) mblocks = m_units;
    }
    /* row blocks in whole micro-tiles: MR rows, or 4 for the narrow3 tiles of gemm_macro */
    int64_t mcb = SFX(gemm_round_up)((m + mblocks - 1) / mblocks, narrow3 ? 4 : MR);
    mblocks = (m + mcb - 1) / mcb;
    /* fewer row blocks than threads (m of a few rows, forced into the row split by narrow3): a
     * thread without a block would only pack B for nothing */
    if (split_m && mblocks < nt) nt = (int)mblocks;
    int64_t ncmax = n < NC ? n : NC;

    /* buffer: B panel(s) (shared), then A blocks: shared, or one per thread when split_m; each
     * part starts 64-byte aligned (the micro-kernel loads packed B with aligned loads). */
    size_t bsz = (size_t)SFX(gemm_round_up)((ncmax + NR - 1) / NR * SFX(gemm_bstride)(kcb), 64 / sizeof(T));
    size_t asz = (size_t)SFX(gemm_round_up)(mcb * kcb, 64 / sizeof(T));
    /* with threads, two copies of the shared B panel and (jr split) of the shared A block, see
     * gemm_thread */
    /* narrow C (A read in place) in the row split: each thread packs all of B for itself, one
     * copy per thread (see gemm_thread) */
    int priv_b = nt > 1 && split_m && MG_GEMM_SIMD && n <= 2 * NR;
    int nbbuf = priv_b ? nt : nt > 1 ? 2 : 1;
    int nabuf = split_m ? nt : nt > 1 ? 2 : 1;
    T *buf = (T *)mg_gemm_alloc((bsz * (size_t)nbbuf + asz * (size_t)nabuf) * sizeof(T));
    if (!buf) {
        /* out of memory for the packing buffers: still compute the right answer */
        SFX(gemm_small)(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    T *bbuf = buf, *abuf0 = buf + bsz * (size_t)nbbuf;

    if (nt == 1) {
        /* no parallel region at all: even a 1-thread team costs ~1 us to set up */
        SFX(gemm_thread)(0, 1, 0, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, kcb, mcb,
                         mblocks, 0, bbuf, bsz, abuf0, asz);
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
        SFX(gemm_thread)(omp_get_thread_num(), omp_get_num_threads(), split_m, ta, tb, m, n, k,
                         alpha, a, lda, b, ldb, beta, c, ldc, kcb, mcb, mblocks, priv_b, bbuf,
                         bsz, abuf0, asz);
#endif
    }
    mg_gemm_free(buf);
}
