/* Body of the elementwise kernels for one dtype T; included by elementwise.c.
 *
 * The output is contiguous. The N-d shape is walked as rows of its last dimension: each row is
 * one tight loop (unit-stride inputs take a separate loop the compiler vectorizes), and rows are
 * split over threads when the array is large. The Python layer coalesces dimensions first, so a
 * contiguous array arrives as a single row. */

/* Offsets of row r's first element for up to three operands (unravel the row index). */
static inline void SFX(row_offsets)(int ndim, const int64_t *shape, int64_t r, int nops,
                                    const int64_t *const *strides, int64_t *off) {
    for (int o = 0; o < nops; o++) off[o] = 0;
    for (int d = ndim - 2; d >= 0; d--) {
        int64_t i = r % shape[d];
        r /= shape[d];
        for (int o = 0; o < nops; o++) off[o] += i * strides[o][d];
    }
}

/* Applies EXPR (of v) along one row; both unit-stride and strided input. */
#define MG_ROW1(EXPR)                                                              \
    do {                                                                           \
        if (xs == 1) {                                                             \
            for (int64_t i = 0; i < n; i++) { T v = x[i]; o[i] = (EXPR); }         \
        } else {                                                                   \
            for (int64_t i = 0; i < n; i++) { T v = x[i * xs]; o[i] = (EXPR); }    \
        }                                                                          \
    } while (0)

static void SFX(unary_row)(int op, int64_t n, const T *restrict x, int64_t xs, T *restrict o,
                           T p, T q) {
    switch (op) {
    case MG_NEG: MG_ROW1(-v); break;
    case MG_EXP: MG_ROW1(SFX(mg_exp)(v)); break; /* float32: the vectorizable one (fastmath.h) */
    case MG_LOG: MG_ROW1(M(log)(v)); break;
    case MG_SQRT: MG_ROW1(M(sqrt)(v)); break;
    case MG_TANH: MG_ROW1(M(tanh)(v)); break;
    case MG_SIGMOID: MG_ROW1(SFX(mg_sigmoid)(v)); break;
    case MG_RELU: MG_ROW1(v < 0 ? (T)0 : v); break; /* NaN passes through, as np.maximum */
    case MG_SOFTPLUS: MG_ROW1((v > 0 ? v : (T)0) + M(log1p)(M(exp)(-M(fabs)(v)))); break;
    case MG_ABS: MG_ROW1(M(fabs)(v)); break;
    case MG_POW_SCALAR:
        if (p == (T)2) MG_ROW1(v * v);
        else if (p == (T)0.5) MG_ROW1(M(sqrt)(v)); /* as numpy: sqrt(-inf) is NaN, pow gives inf */
        else MG_ROW1(M(pow)(v, p));
        break;
    case MG_CLIP: MG_ROW1(v < p ? p : (v > q ? q : v)); break;
    default: MG_ROW1(v); break; /* MG_COPY */
    }
}

#define MG_ROW2(EXPR)                                                                    \
    do {                                                                                 \
        if (as == 1 && bs == 1) {                                                        \
            for (int64_t i = 0; i < n; i++) { T u = a[i], v = b[i]; o[i] = (EXPR); }     \
        } else if (as == 1 && bs == 0) {                                                 \
            const T v = b[0];                                                            \
            for (int64_t i = 0; i < n; i++) { T u = a[i]; o[i] = (EXPR); }               \
        } else if (as == 0 && bs == 1) {                                                 \
            const T u = a[0];                                                            \
            for (int64_t i = 0; i < n; i++) { T v = b[i]; o[i] = (EXPR); }               \
        } else {                                                                         \
            for (int64_t i = 0; i < n; i++) {                                            \
                T u = a[i * as], v = b[i * bs];                                          \
                o[i] = (EXPR);                                                           \
            }                                                                            \
        }                                                                                \
    } while (0)

static void SFX(binary_row)(int op, int64_t n, const T *restrict a, int64_t as,
                            const T *restrict b, int64_t bs, T *restrict o, T p, T q) {
    switch (op) {
    case MG_ADD: MG_ROW2(u + v); break;
    case MG_SUB: MG_ROW2(u - v); break;
    case MG_MUL: MG_ROW2(u * v); break;
    case MG_DIV: MG_ROW2(u / v); break;
    /* NaN in either operand propagates, as np.maximum / np.minimum */
    case MG_MAXIMUM: MG_ROW2((u != u || u > v) ? u : v); break;
    case MG_MINIMUM: MG_ROW2((u != u || u < v) ? u : v); break;
    case MG_EQ: MG_ROW2(u == v ? (T)1 : (T)0); break;
    case MG_RELU_BWD: MG_ROW2(v > 0 ? u : (v != v ? v : (T)0)); break;
    case MG_SIGMOID_BWD: MG_ROW2(u * v * ((T)1 - v)); break;
    case MG_TANH_BWD: MG_ROW2(u * ((T)1 - v * v)); break;
    case MG_ABS_BWD: MG_ROW2(v > 0 ? u : (v < 0 ? -u : (v != v ? v : (T)0))); break;
    case MG_SOFTPLUS_BWD: MG_ROW2(u * SFX(mg_sigmoid)(v)); break;
    case MG_SQRT_BWD: MG_ROW2(u * (T)0.5 / v); break;
    case MG_POW_BWD:
        if (p == (T)0) MG_ROW2(((void)u, (void)v, (T)0)); /* x ** 0 is constant, even at x = 0 */
        else if (p == (T)2) MG_ROW2(u * (T)2 * v);
        else if (p - (T)1 == (T)0.5) MG_ROW2(u * p * M(sqrt)(v)); /* as numpy's x ** 0.5 (forward too) */
        else MG_ROW2(u * p * M(pow)(v, p - (T)1));
        break;
    case MG_CLIP_BWD: MG_ROW2((v >= p && v <= q) ? u : (v != v ? v : (T)0)); break;
    default: MG_ROW2(((void)v, u)); break;
    }
    (void)q;
}

void SFX(mg_unary)(int op, int ndim, const int64_t *shape, const T *x, const int64_t *xs,
                   T *out, double p, double q) {
    if (ndim == 0) { SFX(unary_row)(op, 1, x, 1, out, (T)p, (T)q); return; }
    int64_t n = shape[ndim - 1], rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
    if (n == 0 || rows == 0) return;
    const int64_t *const strides[1] = {xs};
    if (rows == 1 && n >= 2 * MG_PARALLEL_MIN) {
        /* one long row: one even piece per thread (starting on 64-byte multiples); with one
         * thread MG_FOR starts no team */
        int64_t nth = mg_threads();
        MG_FOR(c, nth, 1, {
            int64_t s = MG_PIECE(n, c, nth), len = MG_PIECE(n, c + 1, nth) - s;
            SFX(unary_row)(op, len, x + s * xs[ndim - 1], xs[ndim - 1], out + s, (T)p, (T)q);
        });
        return;
    }
    MG_FOR(r, rows, rows * n >= MG_PARALLEL_MIN && rows > 1, {
        int64_t off[1];
        SFX(row_offsets)(ndim, shape, r, 1, strides, off);
        SFX(unary_row)(op, n, x + off[0], xs[ndim - 1], out + r * n, (T)p, (T)q);
    });
}

void SFX(mg_binary)(int op, int ndim, const int64_t *shape, const T *a, const int64_t *as,
                    const T *b, const int64_t *bs, T *out, double p, double q) {
    if (ndim == 0) { SFX(binary_row)(op, 1, a, 1, b, 1, out, (T)p, (T)q); return; }
    int64_t n = shape[ndim - 1], rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
    if (n == 0 || rows == 0) return;
    int64_t as1 = as[ndim - 1], bs1 = bs[ndim - 1];
    if (rows == 1 && n >= 2 * MG_PARALLEL_MIN) { /* one long row: as in mg_unary */
        int64_t nth = mg_threads();
        MG_FOR(c, nth, 1, {
            int64_t s = MG_PIECE(n, c, nth), len = MG_PIECE(n, c + 1, nth) - s;
            SFX(binary_row)(op, len, a + s * as1, as1, b + s * bs1, bs1, out + s, (T)p, (T)q);
        });
        return;
    }
    const int64_t *const strides[2] = {as, bs};
    MG_FOR(r, rows, rows * n >= MG_PARALLEL_MIN && rows > 1, {
        int64_t off[2];
        SFX(row_offsets)(ndim, shape, r, 2, strides, off);
        SFX(binary_row)(op, n, a + off[0], as1, b + off[1], bs1, out + r * n, (T)p, (T)q);
    });
}

/* The flat entries take any contiguous buffer Python hands them, and numpy can make contiguous
 * arrays that are not aligned to their element size (a view at an odd byte offset). Reading a T
 * through such a pointer is undefined behaviour, and faults on some CPUs: those buffers go one
 * element at a time through aligned copies. Tensors never hold one (they copy at creation). */
#define MG_MISALIGNED(ptr) ((uintptr_t)(ptr) % sizeof(T) != 0)

void SFX(mg_unary_flat)(int op, int64_t n, const void *x, void *out, double p, double q) {
    if (MG_MISALIGNED(x) || MG_MISALIGNED(out)) {
        for (int64_t i = 0; i < n; i++) {
            T v, r;
            memcpy(&v, (const char *)x + i * (int64_t)sizeof(T), sizeof(T));
            SFX(unary_row)(op, 1, &v, 1, &r, (T)p, (T)q);
            memcpy((char *)out + i * (int64_t)sizeof(T), &r, sizeof(T));
        }
        return;
    }
    int64_t one = 1;
    SFX(mg_unary)(op, 1, &n, (const T *)x, &one, (T *)out, p, q);
}

void SFX(mg_binary_flat)(int op, int64_t n, const void *a, int64_t as, const void *b, int64_t bs,
                         void *out, double p, double q) {
    if (MG_MISALIGNED(a) || MG_MISALIGNED(b) || MG_MISALIGNED(out)) {
        for (int64_t i = 0; i < n; i++) {
            T u, v, r;
            memcpy(&u, (const char *)a + i * as * (int64_t)sizeof(T), sizeof(T));
            memcpy(&v, (const char *)b + i * bs * (int64_t)sizeof(T), sizeof(T));
            SFX(binary_row)(op, 1, &u, 1, &v, 1, &r, (T)p, (T)q);
            memcpy((char *)out + i * (int64_t)sizeof(T), &r, sizeof(T));
        }
        return;
    }
    SFX(mg_binary)(op, 1, &n, (const T *)a, &as, (const T *)b, &bs, (T *)out, p, q);
}
#undef MG_MISALIGNED

void SFX(mg_where)(int ndim, const int64_t *shape, const uint8_t *cond, const int64_t *cs,
                   const T *a, const int64_t *as, const T *b, const int64_t *bs, T *out) {
    if (ndim == 0) { out[0] = cond[0] ? a[0] : b[0]; return; }
    int64_t n = shape[ndim - 1], rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
    if (n == 0 || rows == 0) return;
    const int64_t *const strides[3] = {cs, as, bs};
    int64_t cs1 = cs[ndim - 1], as1 = as[ndim - 1], bs1 = bs[ndim - 1];
    MG_FOR(r, rows, rows * n >= MG_PARALLEL_MIN && rows > 1, {
        int64_t off[3];
        SFX(row_offsets)(ndim, shape, r, 3, strides, off);
        const uint8_t *c = cond + off[0];
        const T *x = a + off[1], *y = b + off[2];
        T *o = out + r * n;
        for (int64_t i = 0; i < n; i++) o[i] = c[i * cs1] ? x[i * as1] : y[i * bs1];
    });
}

#undef MG_ROW1
#undef MG_ROW2
