/* Body of the fused kernels for one dtype T; included by fused.c. Each reads and writes its
 * arrays once, where the unfused graph would make several passes and temporaries. */

static inline T SFX(act)(int act, T v) {
    switch (act) {
    case MG_ACT_RELU: return v < 0 ? (T)0 : v;
    case MG_ACT_SIGMOID: return SFX(mg_sigmoid)(v);
    case MG_ACT_TANH: return M(tanh)(v);
    default: return v;
    }
}

/* act'(pre) written in terms of the output y */
static inline T SFX(act_grad)(int act, T y) {
    switch (act) {
    case MG_ACT_RELU: return y > 0 ? (T)1 : (T)0;
    case MG_ACT_SIGMOID: return y * ((T)1 - y);
    case MG_ACT_TANH: return (T)1 - y * y;
    default: return (T)1;
    }
}

void SFX(mg_bias_act)(int act, int64_t m, int64_t n, T *y, const T *bias) {
    MG_FOR(i, m, m * n >= MG_PARALLEL_MIN, {
        T *restrict row = y + i * n;
        if (act == MG_ACT_RELU) {
            for (int64_t j = 0; j < n; j++) {
                T v = row[j] + bias[j];
                row[j] = v < 0 ? (T)0 : v;
            }
        } else if (act == MG_ACT_NONE) {
            for (int64_t j = 0; j < n; j++) row[j] += bias[j];
        } else {
            for (int64_t j = 0; j < n; j++) row[j] = SFX(act)(act, row[j] + bias[j]);
        }
    });
}

void SFX(mg_bias_act_bwd)(int act, int64_t m, int64_t n, const T *g, const T *y, T *dpre,
                          T *dbias) {
    /* act none: dpre would be g itself, so nothing is written (dpre may be NULL) */
    if (act != MG_ACT_NONE) {
        MG_FOR(i, m, m * n >= MG_PARALLEL_MIN, {
            const T *restrict gr = g + i * n, *restrict yr = y + i * n;
            T *restrict dr = dpre + i * n;
            switch (act) { /* one loop per activation, so each vectorizes */
            case MG_ACT_RELU:
                for (int64_t j = 0; j < n; j++) dr[j] = yr[j] > 0 ? gr[j] : (T)0;
                break;
            case MG_ACT_SIGMOID:
                for (int64_t j = 0; j < n; j++) dr[j] = gr[j] * (yr[j] * ((T)1 - yr[j]));
                break;
            default:
                for (int64_t j = 0; j < n; j++) dr[j] = gr[j] * SFX(act_grad)(act, yr[j]);
            }
        });
    }
    if (dbias) SFX(mg_colsum)(m, n, n, act == MG_ACT_NONE ? g : dpre, dbias);
}

/* Sum of n values (a tile) in double, eight independent lanes (so it vectorizes). */
static inline double SFX(tile_sum)(const T *v, int64_t n) {
    double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) lanes[k] += (double)v[i + k];
    for (; i < n; i++) lanes[0] += (double)v[i];
    return ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
}

/* One tile of BCE-with-logits terms: max(v, 0) - v t + log(1 + exp(-|v|)), which never
 * exponentiates a positive number; the _grad version also writes sigmoid(v) - t from the same
 * exp. Out of line: MG_FOR copies its body (threaded and serial), and with these loops inlined
 * into it the no-gradient version ran 131 -> 139-146 us (128x784, 1 thread).
 * Two passes over the tile (exp into `tile`, then the rest): as one loop, each vector's chain
 * (exp, a divide, the log1p polynomial; ~65 instructions) was too long for the core to overlap
 * more than about two vectors, and the loop ran latency bound at ~40 cycles per 8 floats. Split,
 * 128x784 at 1 thread: forward 132 -> 106 us, forward + gradient 155-164 -> 119 (NOTES AA). */
static inline T SFX(bce_term)(T v, T t, T e) {
    return (v > 0 ? v : (T)0) - v * t + SFX(mg_log1p_e)(e);
}

static MG_NOINLINE void SFX(bce_tile)(int64_t len, const T *restrict xs, const T *restrict ts,
                                      T *restrict tile) {
    for (int64_t j = 0; j < len; j++) tile[j] = SFX(mg_exp_nabs)(xs[j]);
    for (int64_t j = 0; j < len; j++) tile[j] = SFX(bce_term)(xs[j], ts[j], tile[j]);
}

static MG_NOINLINE void SFX(bce_tile_grad)(int64_t len, const T *restrict xs,
                                           const T *restrict ts, T *restrict tile,
                                           T *restrict ds) {
    for (int64_t j = 0; j < len; j++) tile[j] = SFX(mg_exp_nabs)(xs[j]);
    for (int64_t j = 0; j < len; j++) {
        T v = xs[j], e = tile[j];
        ds[j] = SFX(mg_sigmoid_e)(v, e) - ts[j];
        tile[j] = SFX(bce_term)(v, ts[j], e);
    }
}

double SFX(mg_bce_logits)(int64_t n, const T *x, const T *t, T *out, T *dsig) {
    /* Fixed-size chunks summed in order: the total does not depend on the thread count or on
     * which thread finishes first, so a seeded training run repeats bit for bit. */
    enum { CHUNK = 4096, TILE = 256 };
    int64_t nchunks = (n + CHUNK - 1) / CHUNK;
    double partial_stack[64];
    double *partial = nchunks <= 64 ? partial_stack : (double *)malloc(sizeof(double) * nchunks);
    if (!partial) { /* out of memory for 8 bytes per 4096 elements: every output says so */
        for (int64_t i = 0; out && i < n; i++) out[i] = (T)NAN;
        for (int64_t i = 0; dsig && i < n; i++) dsig[i] = (T)NAN;
        return NAN;
    }
    MG_FOR(c, nchunks, n >= MG_PARALLEL_MIN, {
        int64_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        double acc = 0.0;
        T tile[TILE];
        for (int64_t s = c * CHUNK; s < end; s += TILE) {
            int64_t len = end - s < TILE ? end - s : TILE;
            if (dsig)
                SFX(bce_tile_grad)(len, x + s, t + s, tile, dsig + s);
            else
                SFX(bce_tile)(len, x + s, t + s, tile);
            if (out)
                for (int64_t j = 0; j < len; j++) out[s + j] = tile[j];
            acc += SFX(tile_sum)(tile, len);
        }
        partial[c] = acc;
    });
    double total = 0.0;
    for (int64_t c = 0; c < nchunks; c++) total += partial[c];
    if (partial != partial_stack) free(partial);
    return total;
}

void SFX(mg_gaussian_kl)(int64_t m, int64_t n, const T *mu, const T *logvar, T *out) {
    /* the terms of a row in tiles (a loop the compiler vectorizes, for float the exp included),
     * then their sum in order in double (a reduction it may not reorder) */
    enum { TILE = 256 };
    T tile[TILE];
    for (int64_t i = 0; i < m; i++) {
        double acc = 0.0;
        for (int64_t j0 = 0; j0 < n; j0 += TILE) {
            int64_t len = n - j0 < TILE ? n - j0 : TILE;
            const T *restrict u = mu + i * n + j0, *restrict lv = logvar + i * n + j0;
            for (int64_t j = 0; j < len; j++) tile[j] = (T)1 + lv[j] - u[j] * u[j] - SFX(mg_exp)(lv[j]);
            for (int64_t j = 0; j < len; j++) acc += (double)tile[j];
        }
        out[i] = (T)(-0.5 * acc);
    }
}

void SFX(mg_gaussian_kl_bwd)(int64_t m, int64_t n, const T *mu, const T *logvar, const T *g,
                             int64_t gs, T *dmu, T *dlogvar) {
    for (int64_t i = 0; i < m; i++) {
        T gi = g[i * gs];
        for (int64_t j = 0; j < n; j++) {
            int64_t k = i * n + j;
            dmu[k] = gi * mu[k];
            dlogvar[k] = gi * (T)0.5 * (SFX(mg_exp)(logvar[k]) - (T)1);
        }
    }
}

/* The Linear layer in one call each way (x m x k, w n x k, y m x n, all contiguous). */
void SFX(mg_linear)(int act, int64_t m, int64_t n, int64_t k, const T *x, const T *w,
                    const T *bias, T *y) {
    SFX(mg_gemm)(0, 1, m, n, k, (T)1, x, k, w, k, (T)0, y, n);
    if (bias) {
        SFX(mg_bias_act)(act, m, n, y, bias);
    } else if (act != MG_ACT_NONE) {
        MG_FOR(i, m * n, m * n >= MG_PARALLEL_MIN, { y[i] = SFX(act)(act, y[i]); });
    }
}

void SFX(mg_linear_bwd)(int act, int64_t m, int64_t n, int64_t k, const T *g, const T *y,
                        const T *x, const T *w, T *dpre, T *dbias, T *dx, T *dw) {
    if (!dbias && !dx && !dw) return;
    SFX(mg_bias_act_bwd)(act, m, n, g, y, dpre, dbias);
    const T *d = act == MG_ACT_NONE ? g : dpre;
    if (dx) SFX(mg_gemm)(0, 0, m, k, n, (T)1, d, n, w, k, (T)0, dx, k);  /* dpre @ w */
    if (dw) SFX(mg_gemm)(1, 0, n, k, m, (T)1, d, n, x, k, (T)0, dw, k);  /* dpre^T @ x */
}

/* Adam over elements [a, b) of tensor t, with its own bias corrections (its own step count) */
static void SFX(adam_run)(int64_t t, int64_t a, int64_t b, const int64_t *steps, T *const *p,
                          const T *const *g, T *const *m, T *const *v, double lr, double beta1,
                          double beta2, double eps, double weight_decay) {
    /* 1 - beta in double, then rounded: in float32, 1 - (float)0.999 is 0.00099998713, 1.3e-5
     * off, which moved Adam's first step by 6.6e-6 of lr */
    const T b1 = (T)beta1, b2 = (T)beta2, c1 = (T)(1.0 - beta1), c2 = (T)(1.0 - beta2);
    const T e = (T)eps, wd = (T)weight_decay;
    const double bc1 = 1.0 - pow(beta1, (double)steps[t]), bc2 = 1.0 - pow(beta2, (double)steps[t]);
    const T step_size = (T)(lr / bc1), inv_sqrt_bc2 = (T)(1.0 / sqrt(bc2));
    T *restrict pt = p[t], *restrict mt = m[t], *restrict vt = v[t];
    const T *restrict gt = g[t];
    for (int64_t i = a; i < b; i++) {
        T gi = gt[i] + wd * pt[i];
        T mi = b1 * mt[i] + c1 * gi;
        T vi = b2 * vt[i] + c2 * gi * gi;
        mt[i] = mi;
        vt[i] = vi;
        pt[i] -= step_size * mi / (M(sqrt)(vi) * inv_sqrt_bc2 + e);
    }
}

void SFX(mg_adam)(int64_t count, const int64_t *sizes, const int64_t *steps, T *const *p,
                  const T *const *g, T *const *m, T *const *v, double lr, double beta1,
                  double beta2, double eps, double weight_decay) {
#ifdef _OPENMP
    int64_t total = 0;
    for (int64_t t = 0; t < count; t++) total += sizes[t];
    if (total >= MG_PARALLEL_MIN && mg_threads() > 1) {
        /* one team for all tensors. They are updated one after another, as separate calls
         * would, so parameters whose data overlap are updated in a fixed order, never at once:
         * a large tensor is split over the threads, a small one runs on thread 0. */
#pragma omp parallel
        {
            int64_t th = omp_get_thread_num(), nth = omp_get_num_threads();
            for (int64_t t = 0; t < count; t++) {
                int64_t n = sizes[t];
                if (n >= MG_PARALLEL_MIN) /* n * nth fits int64: n is an array's size */
                    SFX(adam_run)(t, n * th / nth, n * (th + 1) / nth, steps, p, g, m, v, lr,
                                  beta1, beta2, eps, weight_decay);
                else if (th == 0)
                    SFX(adam_run)(t, 0, n, steps, p, g, m, v, lr, beta1, beta2, eps,
                                  weight_decay);
#pragma omp barrier
            }
        }
        return;
    }
#endif
    for (int64_t t = 0; t < count; t++)
        SFX(adam_run)(t, 0, sizes[t], steps, p, g, m, v, lr, beta1, beta2, eps, weight_decay);
}

void SFX(mg_sgd)(int64_t n, T *p, const T *g, T *buf, double lr, double momentum,
                 double dampening, double weight_decay, int nesterov, int first_step) {
    const T mom = (T)momentum, undamped = (T)(1.0 - dampening), wd = (T)weight_decay, l = (T)lr;
    MG_FOR(i, n, n >= MG_PARALLEL_MIN, {
        T d = g[i] + wd * p[i];
        if (mom != 0) {
            T b = first_step ? d : mom * buf[i] + undamped * d;
            buf[i] = b;
            d = nesterov ? d + mom * b : b;
        }
        p[i] -= l * d;
    });
}
