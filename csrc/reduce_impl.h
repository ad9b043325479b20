/* Body of the reduction kernel for one dtype T; included by reduce.c.
 *
 * The caller permutes axes so the kept dims come first and the reduced dims last, and coalesces
 * adjacent dims. Each output element walks its reduced block; sums accumulate in double with four
 * partial sums on unit-stride runs. When the innermost kept dim is unit-stride and the reduced
 * ones are not (a column sum), whole rows are accumulated instead, which keeps the reads
 * sequential. */

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
