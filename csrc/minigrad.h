/* minigrad C kernel API.
 *
 * This header is the whole boundary between Python and C: build.py feeds it to cffi's cdef, and
 * every kernel file includes it. Rules:
 *   - sizes and strides are int64_t, strides count elements (not bytes);
 *   - C never allocates memory that Python frees: every output buffer is allocated by numpy and
 *     passed in, contiguous (row-major) unless a stride argument says otherwise;
 *   - the Python layer validates shapes, dtypes and contiguity before calling in.
 * Every kernel comes in float32 (_f32) and float64 (_f64).
 */
#ifndef MINIGRAD_H
#define MINIGRAD_H

#include <stdint.h>

/* ---- runtime ---- */
int mg_openmp_enabled(void);
int mg_get_num_threads(void);
void mg_set_num_threads(int n);
const char *mg_build_flags(void);
const char *mg_gemm_path(void);          /* which GEMM micro-kernel was compiled in */

/* ---- GEMM: C = alpha * op(A) @ op(B) + beta * C, row-major ----
 * op(A) is m x k: A is stored m x k (trans_a = 0, row stride lda) or k x m (trans_a = 1).
 * op(B) is k x n: B is stored k x n (trans_b = 0, row stride ldb) or n x k (trans_b = 1).
 * C is m x n with row stride ldc. beta == 0 overwrites C (NaN in C is not propagated). */
void mg_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                 int64_t ldc);
void mg_gemm_f64(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                 const double *a, int64_t lda, const double *b, int64_t ldb, double beta,
                 double *c, int64_t ldc);

/* ---- elementwise over N-d shapes ----
 * Inputs are read through (shape, strides) so broadcast operands have stride 0; the output is
 * contiguous with `shape`. p and q are scalar parameters for the ops that take them. */
enum mg_unary_op {
    MG_NEG, MG_EXP, MG_LOG, MG_SQRT, MG_TANH, MG_SIGMOID, MG_RELU, MG_SOFTPLUS, MG_ABS,
    MG_POW_SCALAR, /* x ** p */
    MG_CLIP,       /* min(max(x, p), q) */
    MG_COPY
};
enum mg_binary_op {
    MG_ADD, MG_SUB, MG_MUL, MG_DIV, MG_MAXIMUM, MG_MINIMUM,
    MG_EQ,           /* 1 where a == b else 0 */
    /* gradient helpers: a is the incoming gradient g, b the saved input x or output y */
    MG_RELU_BWD,     /* g * (x > 0) */
    MG_SIGMOID_BWD,  /* g * y * (1 - y) */
    MG_TANH_BWD,     /* g * (1 - y * y) */
    MG_ABS_BWD,      /* g * sign(x) */
    MG_SOFTPLUS_BWD, /* g * sigmoid(x) */
    MG_SQRT_BWD,     /* g * 0.5 / y */
    MG_POW_BWD,      /* g * p * x ** (p - 1) */
    MG_CLIP_BWD      /* g * (p <= x <= q) */
};
void mg_unary_f32(int op, int ndim, const int64_t *shape, const float *x, const int64_t *xs,
                  float *out, double p, double q);
void mg_unary_f64(int op, int ndim, const int64_t *shape, const double *x, const int64_t *xs,
                  double *out, double p, double q);
void mg_binary_f32(int op, int ndim, const int64_t *shape, const float *a, const int64_t *as,
                   const float *b, const int64_t *bs, float *out, double p, double q);
void mg_binary_f64(int op, int ndim, const int64_t *shape, const double *a, const int64_t *as,
                   const double *b, const int64_t *bs, double *out, double p, double q);
/* The same ops over n contiguous elements: the per-call fast path (no shape/stride arrays).
 * as / bs are 1 (contiguous) or 0 (a single broadcast value). The pointers are untyped so
 * Python can pass ffi.from_buffer(array) without a type string (cheaper per call); the caller
 * has checked that every array holds the suffix's type. */
void mg_unary_flat_f32(int op, int64_t n, const void *x, void *out, double p, double q);
void mg_unary_flat_f64(int op, int64_t n, const void *x, void *out, double p, double q);
void mg_binary_flat_f32(int op, int64_t n, const void *a, int64_t as, const void *b, int64_t bs,
                        void *out, double p, double q);
void mg_binary_flat_f64(int op, int64_t n, const void *a, int64_t as, const void *b, int64_t bs,
                        void *out, double p, double q);
/* out = cond ? a : b, cond read as bytes (numpy bool) */
void mg_where_f32(int ndim, const int64_t *shape, const uint8_t *cond, const int64_t *cs,
                  const float *a, const int64_t *as, const float *b, const int64_t *bs,
                  float *out);
void mg_where_f64(int ndim, const int64_t *shape, const uint8_t *cond, const int64_t *cs,
                  const double *a, const int64_t *as, const double *b, const int64_t *bs,
                  double *out);

/* ---- reductions ----
 * x has `ndim` dims read through (shape, strides); the last `nred` dims are reduced (the caller
 * permutes axes so that is true). out is contiguous with the first ndim - nred dims. */
enum mg_reduce_op { MG_SUM, MG_MAX };
void mg_reduce_f32(int op, int ndim, int nred, const int64_t *shape, const float *x,
                   const int64_t *xs, float *out);
void mg_reduce_f64(int op, int ndim, int nred, const int64_t *shape, const double *x,
                   const int64_t *xs, double *out);

/* ---- fused NN kernels (contiguous buffers) ---- */
enum mg_activation { MG_ACT_NONE, MG_ACT_RELU, MG_ACT_SIGMOID, MG_ACT_TANH };
/* y[i, j] = act(y[i, j] + bias[j]) in place; y is m x n */
void mg_bias_act_f32(int act, int64_t m, int64_t n, float *y, const float *bias);
void mg_bias_act_f64(int act, int64_t m, int64_t n, double *y, const double *bias);
/* dpre = g * act'(y) (y is the activation output); dbias[j] = sum_i dpre[i, j] (dbias may be NULL).
 * With act none, dpre is g itself: nothing is written to dpre, which may be NULL. */
void mg_bias_act_bwd_f32(int act, int64_t m, int64_t n, const float *g, const float *y,
                         float *dpre, float *dbias);
void mg_bias_act_bwd_f64(int act, int64_t m, int64_t n, const double *g, const double *y,
                         double *dpre, double *dbias);
/* Linear layer, x m x k, w n x k (PyTorch's layout), bias n (or NULL), y m x n, all contiguous:
 * y = act(x @ w^T + bias), one GEMM and one fused pass. */
void mg_linear_f32(int act, int64_t m, int64_t n, int64_t k, const float *x, const float *w,
                   const float *bias, float *y);
void mg_linear_f64(int act, int64_t m, int64_t n, int64_t k, const double *x, const double *w,
                   const double *bias, double *y);
/* its backward from g = dL/dy: dpre = g * act'(y) (into dpre, unused with act none), dbias =
 * column sums of dpre, dx = dpre @ w (m x k), dw = dpre^T @ x (n x k); NULL outputs are skipped
 * (dpre must be given when act is not none and any output is) */
void mg_linear_bwd_f32(int act, int64_t m, int64_t n, int64_t k, const float *g, const float *y,
                       const float *x, const float *w, float *dpre, float *dbias, float *dx,
                       float *dw);
void mg_linear_bwd_f64(int act, int64_t m, int64_t n, int64_t k, const double *g,
                       const double *y, const double *x, const double *w, double *dpre,
                       double *dbias, double *dx, double *dw);
/* l = max(x, 0) - x * t + log1p(exp(-|x|)). If out != NULL, writes each l; returns the sum.
 * If dsig != NULL, also writes dl/dx = sigmoid(x) - t (from the same exp), so the backward pass
 * only scales it by the incoming gradient. */
double mg_bce_logits_f32(int64_t n, const float *x, const float *t, float *out, float *dsig);
double mg_bce_logits_f64(int64_t n, const double *x, const double *t, double *out, double *dsig);
/* KL(N(mu, exp(logvar)) || N(0, 1)) summed over each row of an m x n block:
 * out[i] = -0.5 * sum_j (1 + logvar - mu^2 - exp(logvar)) */
void mg_gaussian_kl_f32(int64_t m, int64_t n, const float *mu, const float *logvar, float *out);
void mg_gaussian_kl_f64(int64_t m, int64_t n, const double *mu, const double *logvar,
                        double *out);
/* dmu = g[i] * mu, dlogvar = g[i] * 0.5 * (exp(logvar) - 1); g is read with stride gs */
void mg_gaussian_kl_bwd_f32(int64_t m, int64_t n, const float *mu, const float *logvar,
                            const float *g, int64_t gs, float *dmu, float *dlogvar);
void mg_gaussian_kl_bwd_f64(int64_t m, int64_t n, const double *mu, const double *logvar,
                            const double *g, int64_t gs, double *dmu, double *dlogvar);

/* ---- optimizers, in place over contiguous buffers ---- */
/* Adam (Kingma & Ba) with PyTorch's conventions, over `count` tensors in one pass: tensor t has
 * sizes[t] elements at p[t], g[t], m[t], v[t] and its own step count steps[t] (from 1);
 * weight_decay is L2 (added to g). The tensors are updated in order (one thread team; a large
 * tensor is split over its threads), so tensors whose memory overlaps are never updated at once. */
void mg_adam_f32(int64_t count, const int64_t *sizes, const int64_t *steps, float *const *p,
                 const float *const *g, float *const *m, float *const *v, double lr, double beta1,
                 double beta2, double eps, double weight_decay);
void mg_adam_f64(int64_t count, const int64_t *sizes, const int64_t *steps, double *const *p,
                 const double *const *g, double *const *m, double *const *v, double lr,
                 double beta1, double beta2, double eps, double weight_decay);
/* SGD with momentum as PyTorch, one tensor of n elements: buf = momentum * buf + (1 - dampening)
 * * g (buf = g on the first step), g' = g + momentum * buf if nesterov else buf; p -= lr * g' */
void mg_sgd_f32(int64_t n, float *p, const float *g, float *buf, double lr, double momentum,
                double dampening, double weight_decay, int nesterov, int first_step);
void mg_sgd_f64(int64_t n, double *p, const double *g, double *buf, double lr, double momentum,
                double dampening, double weight_decay, int nesterov, int first_step);

#endif
