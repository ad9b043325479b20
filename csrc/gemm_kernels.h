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
                for (int64_t p = 0; p < kc; p++)
                    for (int r = 0; r < MR; r++) dst[p * MR + r] = src[r * lda + p];
            } else {
                for (int64_t p = 0; p < kc; p++) {
                    int r = 0;
                    for (; r < mr; r++) dst[p * MR + r] = src[r * lda + p];
                    for (; r < MR; r++) dst[p * MR + r] = 0;
                }
            }
        } else {
            /* op(A) = A^T: A is k x m, so the MR values for one p are contiguous in A. */
            const T *restrict src = a + i;
            if (mr == MR) {
                for (int64_t p = 0; p < kc; p++)
                    for (int r = 0; r < MR; r++) dst[p * MR + r] = src[p * lda + r];
            } else {
                for (int64_t p = 0; p < kc; p++) {
                    int r = 0;
                    for (; r < mr; r++) dst[p * MR + r] = src[p * lda + r];
                    for (; r < MR; r++) dst[p * MR + r] = 0;
                }
            }
        }
        dst += kc * MR;
    }
}

/* Pack rows [0, kc) x cols [0, nc) of op(B) into NR-column slivers, zero-padding the last one.
 * `b` points at op(B)[0][0] of the block. Sliver layout: for p in kc: NR values. */
static MG_NOINLINE void SFX(gemm_pack_b)(int trans, int64_t kc, int64_t nc, const T *restrict b, int64_t ldb,
                             T *restrict dst) {
    for (int64_t j = 0; j < nc; j += NR) {
        int64_t nr = nc - j < NR ? nc - j : NR;
        if (!trans) {
            /* op(B) = B (k x n): the NR values for one p are contiguous. */
            const T *restrict src = b + j;
            if (nr == NR) {
                for (int64_t p = 0; p < kc; p++)
                    for (int c = 0; c < NR; c++) dst[p * NR + c] = src[p * ldb + c];
            } else {
                for (int64_t p = 0; p < kc; p++) {
                    int c = 0;
                    for (; c < nr; c++) dst[p * NR + c] = src[p * ldb + c];
                    for (; c < NR; c++) dst[p * NR + c] = 0;
                }
            }
        } else {
            /* op(B) = B^T (B is n x k): column j + c of op(B) is row j + c of B, contiguous in p. */
            const T *restrict src = b + j * ldb;
            if (nr == NR) {
                for (int64_t p = 0; p < kc; p++)
                    for (int c = 0; c < NR; c++) dst[p * NR + c] = src[c * ldb + p];
            } else {
                for (int64_t p = 0; p < kc; p++) {
                    int c = 0;
                    for (; c < nr; c++) dst[p * NR + c] = src[c * ldb + p];
                    for (; c < NR; c++) dst[p * NR + c] = 0;
                }
            }
        }
        dst += kc * NR;
    }
}

/* ---- micro-kernel: c[MR x NR] = alpha * (ap @ bp) + beta * c, beta == 0 never reads c ---- */

#if MG_GEMM_SIMD
/* Two vectors per row of the tile (NR = 2 * VL): MR * 2 accumulators + 2 B vectors + 1 broadcast
 * A value = 15 of the 16 ymm registers for MR = 6. Per k step: 2 loads, MR broadcasts, 2 * MR FMAs,
 * enough independent accumulators (12) to cover the FMA latency x throughput (4 cycles x 2 pipes). */
static MG_NOINLINE void SFX(gemm_ukernel)(int64_t kc, const T *restrict ap, const T *restrict bp, T *restrict c,
                              int64_t ldc, T alpha, T beta) {
    VT c00 = VZERO(), c01 = VZERO(), c10 = VZERO(), c11 = VZERO(), c20 = VZERO(), c21 = VZERO();
    VT c30 = VZERO(), c31 = VZERO(), c40 = VZERO(), c41 = VZERO(), c50 = VZERO(), c51 = VZERO();
#define MG_STEP(P)                                                                                 \
    do {                                                                                           \
        VT b0 = VLOAD(bp + (P) * NR), b1 = VLOAD(bp + (P) * NR + VL), av;                          \
        av = VBCAST(ap + (P) * MR + 0); c00 = VFMA(av, b0, c00); c01 = VFMA(av, b1, c01);          \
        av = VBCAST(ap + (P) * MR + 1); c10 = VFMA(av, b0, c10); c11 = VFMA(av, b1, c11);          \
        av = VBCAST(ap + (P) * MR + 2); c20 = VFMA(av, b0, c20); c21 = VFMA(av, b1, c21);          \
        av = VBCAST(ap + (P) * MR + 3); c30 = VFMA(av, b0, c30); c31 = VFMA(av, b1, c31);          \
        av = VBCAST(ap + (P) * MR + 4); c40 = VFMA(av, b0, c40); c41 = VFMA(av, b1, c41);          \
        av = VBCAST(ap + (P) * MR + 5); c50 = VFMA(av, b0, c50); c51 = VFMA(av, b1, c51);          \
    } while (0)
    int64_t p = 0;
    /* unrolled by 4 so the loop overhead (add, cmp, branch) is amortized over 48 FMAs */
    for (; p + 4 <= kc; p += 4) {
        MG_STEP(0); MG_STEP(1); MG_STEP(2); MG_STEP(3);
        ap += 4 * MR;
        bp += 4 * NR;
    }
    for (; p < kc; p++) {
        MG_STEP(0);
        ap += MR;
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
#else
/* Portable kernel: a small accumulator tile the compiler keeps in registers and vectorizes over
 * the NR columns with whatever SIMD the target has (SSE2 / NEON). */
static MG_NOINLINE void SFX(gemm_ukernel)(int64_t kc, const T *restrict ap, const T *restrict bp, T *restrict c,
                              int64_t ldc, T alpha, T beta) {
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

/* ---- driver for one thread's block of C (m x n), with its own packing buffers ---- */

static void SFX(gemm_block)(int ta, int tb, int64_t m, int64_t n, int64_t k, T alpha,
                            const T *restrict a, int64_t lda, const T *restrict b, int64_t ldb,
                            T beta, T *restrict c, int64_t ldc, int64_t kcb, int64_t mcb,
                            T *restrict abuf, T *restrict bbuf) {
    for (int64_t jc = 0; jc < n; jc += NC) {
        int64_t nc = n - jc < NC ? n - jc : NC;
        for (int64_t pc = 0; pc < k; pc += kcb) {
            int64_t kc = k - pc < kcb ? k - pc : kcb;
            /* op(B)[pc][jc] */
            const T *bsrc = tb ? b + jc * ldb + pc : b + pc * ldb + jc;
            SFX(gemm_pack_b)(tb, kc, nc, bsrc, ldb, bbuf);
            /* the first k block applies the caller's beta, later ones accumulate */
            T beta_k = pc == 0 ? beta : (T)1;
            for (int64_t ic = 0; ic < m; ic += mcb) {
                int64_t mc = m - ic < mcb ? m - ic : mcb;
                const T *asrc = ta ? a + pc * lda + ic : a + ic * lda + pc;
                SFX(gemm_pack_a)(ta, mc, kc, asrc, lda, abuf);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    int64_t nr = nc - jr < NR ? nc - jr : NR;
                    const T *bp = bbuf + jr * kc;
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        int64_t mr = mc - ir < MR ? mc - ir : MR;
                        const T *ap = abuf + ir * kc;
                        T *cp = c + (ic + ir) * ldc + jc + jr;
                        if (mr == MR && nr == NR) {
                            SFX(gemm_ukernel)(kc, ap, bp, cp, ldc, alpha, beta_k);
                        } else {
                            /* edge tile: compute the full padded tile into a scratch tile, then
                             * merge only the valid mr x nr part into C */
                            T tmp[MR * NR];
                            SFX(gemm_ukernel)(kc, ap, bp, tmp, NR, (T)1, (T)0);
                            for (int64_t i = 0; i < mr; i++) {
                                T *restrict cr = cp + i * ldc;
                                if (beta_k == 0)
                                    for (int64_t j = 0; j < nr; j++) cr[j] = alpha * tmp[i * NR + j];
                                else
                                    for (int64_t j = 0; j < nr; j++)
                                        cr[j] = alpha * tmp[i * NR + j] + beta_k * cr[j];
                            }
                        }
                    }
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
            for (int64_t p = 0; p < k; p++) {
                T av = ta ? a[p * lda + i] : a[i * lda + p];
                if (tb)
                    for (int64_t j = 0; j < nj; j++) acc[j] += av * b[(j0 + j) * ldb + p];
                else
                    for (int64_t j = 0; j < nj; j++) acc[j] += av * b[p * ldb + j0 + j];
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
    int64_t mblocks = (m + MC - 1) / MC;
    int64_t mcb = SFX(gemm_round_up)((m + mblocks - 1) / mblocks, MR);

    /* Threads: split C along its larger dimension in whole micro-tiles, one contiguous block per
     * thread, each with its own packing buffers (no barriers). The smaller operand is packed by
     * every thread, which costs little next to the arithmetic at these sizes. */
    int nt = 1;
#ifdef _OPENMP
    double flops = 2.0 * (double)m * (double)n * (double)k;
    if (flops >= MG_GEMM_PAR_FLOPS) {
        nt = omp_get_max_threads();
        int64_t units = n >= m ? (n + NR - 1) / NR : (m + MR - 1) / MR;
        if (nt > units) nt = (int)units;
        /* at least ~MG_GEMM_PAR_FLOPS of work per thread */
        if (flops / nt < MG_GEMM_PAR_FLOPS / 2) nt = (int)(flops / (MG_GEMM_PAR_FLOPS / 2));
        if (nt < 1) nt = 1;
    }
#endif
    int split_n = n >= m;
    int64_t unit = split_n ? NR : MR, total = split_n ? n : m;
    int64_t units = (total + unit - 1) / unit;

#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int t = 0, nth = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        int64_t u0 = units * t / nth, u1 = units * (t + 1) / nth;
        int64_t lo = u0 * unit, hi = u1 * unit < total ? u1 * unit : total;
        if (lo < hi) {
            int64_t mm = split_n ? m : hi - lo, nn = split_n ? hi - lo : n;
            int64_t ncmax = nn < NC ? nn : NC;
            /* B part starts 64-byte aligned: the micro-kernel loads packed B with aligned loads */
            size_t asz = (size_t)SFX(gemm_round_up)(mcb * kcb, 64 / sizeof(T)),
                   bsz = (size_t)(SFX(gemm_round_up)(ncmax, NR) * kcb);
            T *buf = (T *)mg_gemm_alloc((asz + bsz) * sizeof(T));
            if (buf) {
                const T *at = a, *bt = b;
                T *ct = c;
                if (split_n) {
                    bt = tb ? b + lo * ldb : b + lo;
                    ct = c + lo;
                } else {
                    at = ta ? a + lo : a + lo * lda;
                    ct = c + lo * ldc;
                }
                SFX(gemm_block)(ta, tb, mm, nn, k, alpha, at, lda, bt, ldb, beta, ct, ldc, kcb,
                                mcb, buf, buf + asz);
                mg_gemm_free(buf);
            } else {
                /* out of memory for the packing buffers: still compute the right answer */
                if (split_n)
                    SFX(gemm_small)(ta, tb, m, nn, k, alpha, a, lda, tb ? b + lo * ldb : b + lo,
                                    ldb, beta, c + lo, ldc);
                else
                    SFX(gemm_small)(ta, tb, mm, n, k, alpha, ta ? a + lo : a + lo * lda, lda, b,
                                    ldb, beta, c + lo * ldc, ldc);
            }
        }
    }
}
