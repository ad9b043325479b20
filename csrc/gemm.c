/* GEMM: C = alpha * op(A) @ op(B) + beta * C (row-major). A plain reference implementation:
 * loops ordered so the innermost runs over contiguous memory. */
#include "minigrad.h"
#include "typedefs.h"

const char *mg_gemm_path(void) { return "reference"; }

#define GEMM_BODY(T)                                                                       \
    for (int64_t i = 0; i < m; i++) {                                                      \
        T *restrict crow = c + i * ldc;                                                    \
        if (beta == 0) for (int64_t j = 0; j < n; j++) crow[j] = 0;                        \
        else if (beta != 1) for (int64_t j = 0; j < n; j++) crow[j] *= beta;               \
        if (k == 0 || alpha == 0) continue;                                                \
        if (!trans_b) {                                                                    \
            for (int64_t p = 0; p < k; p++) {                                              \
                T av = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);                \
                const T *restrict brow = b + p * ldb;                                      \
                for (int64_t j = 0; j < n; j++) crow[j] += av * brow[j];                   \
            }                                                                              \
        } else {                                                                           \
            for (int64_t j = 0; j < n; j++) {                                              \
                const T *restrict bcol = b + j * ldb;                                      \
                T acc = 0;                                                                 \
                for (int64_t p = 0; p < k; p++)                                            \
                    acc += (trans_a ? a[p * lda + i] : a[i * lda + p]) * bcol[p];          \
                crow[j] += alpha * acc;                                                    \
            }                                                                              \
        }                                                                                  \
    }

void mg_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                 int64_t ldc) {
    #pragma omp parallel for schedule(static) if (m * n * k >= 1 << 18)
    GEMM_BODY(float)
}

void mg_gemm_f64(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                 const double *a, int64_t lda, const double *b, int64_t ldb, double beta,
                 double *c, int64_t ldc) {
    #pragma omp parallel for schedule(static) if (m * n * k >= 1 << 18)
    GEMM_BODY(double)
}
