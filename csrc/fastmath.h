/* Branch-free float32 exp and log1p-of-exp that the compiler can vectorize (libm's expf and
 * log1pf are scalar calls unless -ffast-math, which we refuse because it breaks NaN handling).
 * Accuracy: exp within 1 ulp of the correctly rounded result (NOTES AK), log1p of exp a few
 * ulp over the range used, both checked against numpy in tests. The float64
 * variants call libm: they are not on the hot path of a float32 training step. Also the one
 * libm-based sigmoid that the elementwise op and the fused activation share. */
#ifndef MG_FASTMATH_H
#define MG_FASTMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x for float32: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n by exponent
 * bits. With full_range (a constant after inlining) 2^n is applied as two powers of two, so
 * n = 128 (x up to ln(FLT_MAX) = 88.72) stays finite and n down to -150 gives libm's subnormal
 * results (one rounding, in the second product) instead of 0; within 1 ulp of the correctly
 * rounded e^x over every float, as libm's expf (NOTES AK). Without it one scale suffices for
 * [-87.34, 88.37] and saves the multiply, which the BCE loop (exponents <= 0 only, tiny ones
 * flushed to 0 there) measured at 10-15%. */
static inline float mg_expf_impl(float x, const int full_range) {
    const float hi = full_range ? 88.7228391117f : 88.3762626647949f;
    const float lo = full_range ? -103.972077083992f : -87.3365447504f;
    float xc = x > hi ? hi : (x >= lo ? x : lo); /* NaN -> lo: no NaN reaches the int casts */
    float n = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    /* e^r = 1 + r + r^2 (c0 + c1 r + ... + c5 r^5), the polynomial in Estrin's pairs so its
     * three halves run in parallel (a Horner chain is latency-bound here) */
    float r2 = r * r, r4 = r2 * r2;
    float p01 = 5.0000001201e-1f + 1.6666665459e-1f * r;
    float p23 = 4.1665795894e-2f + 8.3334519073e-3f * r;
    float p45 = 1.3981999507e-3f + 1.9875691500e-4f * r;
    float p = p01 + p23 * r2 + p45 * r4;
    p = p * r2 + r + 1.0f;
    float y;
    if (full_range) {
        int32_t n1 = (int32_t)n / 2, n2 = (int32_t)n - n1;
        int32_t bits1 = (n1 + 127) << 23, bits2 = (n2 + 127) << 23;
        float s1, s2;
        memcpy(&s1, &bits1, sizeof s1);
        memcpy(&s2, &bits2, sizeof s2);
        y = p * s1 * s2; /* (p * s1) is exact and normal; only the product with s2 rounds */
    } else {
        int32_t bits = ((int32_t)n + 127) << 23;
        float scale;
        memcpy(&scale, &bits, sizeof scale);
        y = p * scale;
    }
    y = x > hi ? INFINITY : y;
    y = x < lo ? 0.0f : y;
    return x != x ? x : y;
}

/* for x <= 88.37 (above that +inf, although e^x is finite up to 88.72): BCE's exp(-|v|) */
static inline float mg_expf(float x) { return mg_expf_impl(x, 0); }

/* log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3] (odd series in s) */
static inline float mg_log1p_unit(float e) {
    float s = e / (2.0f + e), s2 = s * s, s4 = s2 * s2, s8 = s4 * s4;
    /* 1 + s2/3 + s4/5 + ... + s14/15, Estrin's pairs as in mg_expf; the next term, s16/17 <= 1e-9, is below float precision */
    float p01 = 1.0f + s2 * (1.0f / 3.0f);
    float p23 = 1.0f / 5.0f + s2 * (1.0f / 7.0f);
    float p45 = 1.0f / 9.0f + s2 * (1.0f / 11.0f);
    float p67 = 1.0f / 13.0f + s2 * (1.0f / 15.0f);
    float p = (p01 + p23 * s4) + (p45 + p67 * s4) * s8;
    return 2.0f * s * p;
}

/* e^x by dtype over the whole range: the vectorizable polynomial for float, libm for double */
static inline float mg_exp_f32(float x) { return mg_expf_impl(x, 1); }
static inline double mg_exp_f64(double x) { return exp(x); }

/* sigmoid(x) with libm's exp, never of a positive number: the elementwise op and the fused
 * activation */
static inline float mg_sigmoid_f32(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}
static inline double mg_sigmoid_f64(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* e = exp(-|v|) in (0, 1]: softplus(-|v|) and sigmoid(v) both follow from it without ever
 * exponentiating a positive number */
static inline float mg_exp_nabs_f32(float v) { return mg_expf(-fabsf(v)); }
static inline double mg_exp_nabs_f64(double v) { return exp(-fabs(v)); }
static inline float mg_log1p_e_f32(float e) { return mg_log1p_unit(e); }
static inline double mg_log1p_e_f64(double e) { return log1p(e); }
static inline float mg_sigmoid_e_f32(float v, float e) {
    float r = 1.0f / (1.0f + e);
    return v >= 0 ? r : e * r;
}
static inline double mg_sigmoid_e_f64(double v, double e) {
    double r = 1.0 / (1.0 + e);
    return v >= 0 ? r : e * r;
}

#endif
