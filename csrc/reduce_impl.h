/* Body of the reduction kernel for one dtype T; included by reduce.c.
 *
 * The caller permutes axes so the kept dims come first and the reduced dims last, and coalesces
 * adjacent dims. Each output element walks its reduced block; sums accumulate in double with four
 * partial sums on unit-stride runs. When the innermost kept dim is unit-stride and the reduced
 * ones are not (a column sum), whole rows are accumulated instead, which keeps the reads
 * sequential (mg_colsum: groups of eight rows added in T, the groups in double). */

static void SFX(unravel)(int nd, const int64_t *shape, const int64_t *strides, int64_t r,
                         int64_t *off) {
    *off = 0;
    for (int d = nd - 1; d >= 0; d--) {
        int64_t i = r % shape[d];
        r /= shape[d];
        *off += i * strides[d];
    }
}

/* Reduce one block: `nred` dims (shape, strides) starting at x. */
static double SFX(block_sum)(int nred, const int64_t *shape, const int64_t *xs, const T *x) {
    int64_t n = shape[nred - 1], s = xs[nred - 1], rows = 1;
    for (int d = 0; d < nred - 1; d++) rows *= shape[d];
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t off;
        SFX(unravel)(nred - 1, shape, xs, r, &off);
        const T *p = x + off;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int64_t i = 0;
        if (s == 1) {
            for (; i + 4 <= n; i += 4) {
                s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3];
            }
        }
        for (; i < n; i++) s0 += p[i * s];
        total += (s0 + s1) + (s2 + s3);
    }
    return total;
}

static T SFX(block_max)(int nred, const int64_t *shape, const int64_t *xs, const T *x) {
    int64_t n = shape[nred - 1], s = xs[nred - 1], rows = 1;
    for (int d = 0; d < nred - 1; d++) rows *= shape[d];
    T best = -INFINITY;
    for (int64_t r = 0; r < rows; r++) {
        int64_t off;
        SFX(unravel)(nred - 1, shape, xs, r, &off);
        const T *p = x + off;
        for (int64_t i = 0; i < n; i++) {
            T v = p[i * s];
            if (v > best || v != v) best = v;
            if (best != best) return best; /* NaN wins, as np.max */
        }
    }
    return best;
}

/* acc[0..w) = sums of rows [r0, r1) of x (row stride rs): whole rows at a time, so x is read
 * sequentially and the adds vectorize. Eight rows are added in T (a fixed tree), and each group's
 * sum goes into the double sums: one conversion and one pass over acc per eight rows, which bound
 * the loop (summing every row in double, four rows per pass, took 12 us on 128x784, now 8; NOTES
 * AN). The error is that of the eight-value trees, a few ulp of each group's magnitude, where
 * numpy's float32 sum over an axis rounds at every row (4096 rows of U[0, 1): 6e-8 relative
 * against numpy's 2.8e-6). */
static void SFX(colsum_rows)(int64_t r0, int64_t r1, int64_t w, int64_t rs, const T *x,
                             double *restrict acc) {
    for (int64_t j = 0; j < w; j++) acc[j] = 0;
    int64_t r = r0;
    for (; r + 8 <= r1; r += 8) {
        const T *restrict q0 = x + r * rs, *restrict q1 = q0 + rs, *restrict q2 = q1 + rs,
                *restrict q3 = q2 + rs, *restrict q4 = q3 + rs, *restrict q5 = q4 + rs,
                *restrict q6 = q5 + rs, *restrict q7 = q6 + rs;
        for (int64_t j = 0; j < w; j++)
            acc[j] += (double)(((q0[j] + q1[j]) + (q2[j] + q3[j])) +
                               ((q4[j] + q5[j]) + (q6[j] + q7[j])));
    }
    for (; r < r1; r++) {
        const T *restrict p = x + r * rs;
        for (int64_t j = 0; j < w; j++) acc[j] += p[j];
    }
}

/* Column sums of a row-major block: out[j] = sum over rows of x[r * rs + j]. Columns are cut into
 * blocks of MG_COLSUM_COLS (4 KB of double sums, which stay in L1 while rows stream past; 2048
 * columns were 15-20% slower on 8 x 1M). With 8 or more blocks, or at most 32 rows, each block
 * is one task over all rows, summed on the stack. Otherwise the rows are also cut into chunks,
 * so that threads have work when the columns are few: each (chunk, block) task sums into its own
 * row of a scratch buffer, and the chunks are then added in chunk order. Chunk sizes depend on
 * the shape only, so the result does not depend on the thread count. Without memory for the
 * scratch, each block is one task over all rows. Also the bias gradient of the fused Linear
 * backward (fused_impl.h), declared in typedefs.h. */
#define MG_COLSUM_COLS 512
void SFX(mg_colsum)(int64_t rows, int64_t cols, int64_t rs, const T *x, T *out) {
    if (rows == 0) { /* an empty batch: every sum is 0 */
        for (int64_t j = 0; j < cols; j++) out[j] = 0;
        return;
    }
    if (cols == 0) return;
    int64_t width = cols < MG_COLSUM_COLS ? cols : MG_COLSUM_COLS;
    int64_t nblk = (cols + width - 1) / width;
    /* at most 64 chunks of at least 32 rows: the scratch is at most 64 x 7 x 512 doubles */
    int64_t maxch = nblk >= 8 ? 1 : 64;
    int64_t chunk = (rows + maxch - 1) / maxch;
    if (chunk < 32) chunk = 32;
    int64_t nch = (rows + chunk - 1) / chunk;
    int big = rows * cols >= MG_PARALLEL_MIN;
    /* scratch: one row of width doubles per chunk, for every column block */
    double *part = nch == 1 ? NULL
                            : (double *)malloc((size_t)nch * (size_t)nblk * (size_t)width * sizeof(double));
    if (!part) {
        MG_FOR(blk, nblk, big && nblk > 1, {
            double acc[MG_COLSUM_COLS];
            int64_t j0 = blk * width, w = cols - j0 < width ? cols - j0 : width;
            SFX(colsum_rows)(0, rows, w, rs, x + j0, acc);
            for (int64_t j = 0; j < w; j++) out[j0 + j] = (T)acc[j];
        });
        return;
    }
    MG_FOR(task, nch * nblk, big, {
        int64_t ch = task / nblk, blk = task % nblk;
        int64_t j0 = blk * width, w = cols - j0 < width ? cols - j0 : width;
        int64_t r0 = ch * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
        SFX(colsum_rows)(r0, r1, w, rs, x + j0, part + (size_t)task * (size_t)width);
    });
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t j0 = blk * width, w = cols - j0 < width ? cols - j0 : width;
        double *restrict total = part + (size_t)blk * (size_t)width;
        for (int64_t ch = 1; ch < nch; ch++) {
            const double *restrict add = part + (size_t)(ch * nblk + blk) * (size_t)width;
            for (int64_t j = 0; j < w; j++) total[j] += add[j];
        }
        for (int64_t j = 0; j < w; j++) out[j0 + j] = (T)total[j];
    }
    free(part);
}

void SFX(mg_reduce)(int op, int ndim, int nred, const int64_t *shape, const T *x,
                    const int64_t *xs, T *out) {
    int nkeep = ndim - nred;
    int64_t nout = 1, nin = 1;
    for (int d = 0; d < nkeep; d++) nout *= shape[d];
    for (int d = nkeep; d < ndim; d++) nin *= shape[d];
    if (nout == 0) return;
    if (nin == 0 || nred == 0) {
        if (nred == 0 && nin != 0) { /* nothing to reduce: a strided copy */
            for (int64_t r = 0; r < nout; r++) {
                int64_t off;
                SFX(unravel)(nkeep, shape, xs, r, &off);
                out[r] = x[off];
            }
            return;
        }
        for (int64_t r = 0; r < nout; r++) out[r] = op == MG_SUM ? (T)0 : (T)-INFINITY;
        return;
    }
    /* A 2-D column sum (after coalescing, any sum over leading axes of a contiguous array) */
    if (op == MG_SUM && nkeep == 1 && nred == 1 && xs[0] == 1 && xs[1] != 1 && shape[0] >= 8) {
        SFX(mg_colsum)(shape[1], shape[0], xs[1], x, out);
        return;
    }
    /* Column sum: the last kept dim is unit-stride in x; accumulate rows of it. */
    if (op == MG_SUM && nkeep >= 1 && xs[nkeep - 1] == 1 && xs[ndim - 1] != 1 &&
        shape[nkeep - 1] >= 8) {
        int64_t inner = shape[nkeep - 1], outer = nout / inner;
        MG_FOR(r, outer * ((inner + 63) / 64), nin * nout >= MG_PARALLEL_MIN, {
            int64_t ro = r / ((inner + 63) / 64), j0 = (r % ((inner + 63) / 64)) * 64;
            int64_t jn = inner - j0 < 64 ? inner - j0 : 64;
            double acc[64] = {0};
            int64_t base;
            SFX(unravel)(nkeep - 1, shape, xs, ro, &base);
            for (int64_t q = 0; q < nin; q++) {
                int64_t off = q * xs[nkeep]; /* one reduced dim (after coalescing, the usual
                                              * case) needs no divisions to find a row */
                if (nred > 1) SFX(unravel)(nred, shape + nkeep, xs + nkeep, q, &off);
                const T *p = x + base + off + j0;
                for (int64_t j = 0; j < jn; j++) acc[j] += p[j];
            }
            for (int64_t j = 0; j < jn; j++) out[ro * inner + j0 + j] = (T)acc[j];
        });
        return;
    }
    MG_FOR(r, nout, nin * nout >= MG_PARALLEL_MIN && nout > 1, {
        int64_t off;
        SFX(unravel)(nkeep, shape, xs, r, &off);
        if (op == MG_SUM) out[r] = (T)SFX(block_sum)(nred, shape + nkeep, xs + nkeep, x + off);
        else out[r] = SFX(block_max)(nred, shape + nkeep, xs + nkeep, x + off);
    });
}
