/* Branch-free float32 exp and log1p-of-exp that the compiler can vectorize (libm's expf and
 * log1pf are scalar calls unless -ffast-math, which we refuse because it breaks NaN handling).
 * Accuracy: a few ulp over the ranges used, checked against numpy in tests. The float64
 * variants call libm: they are not on the hot path of a float32 training step. */
#ifndef MG_FASTMATH_H
#define MG_FASTMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x for float32: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n by exponent bits */
static inline float mg_expf(float x) {
    const float hi = 88.3762626647949f, lo = -87.3365447504f;
    float xc = x > hi ? hi : (x < lo ? lo : x);
    float n = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    y = x > hi ? INFINITY : y;
    y = x < lo ? 0.0f : y;
    return x != x ? x : y;
}

/* log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3] (odd series in s) */
static inline float mg_log1p_unit(float e) {
    float s = e / (2.0f + e), s2 = s * s;
    float p = 1.0f / 15.0f;
    p = p * s2 + 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p;
}

static inline float mg_softplus_nabs_f32(float v) { return mg_log1p_unit(mg_expf(-fabsf(v))); }
static inline double mg_softplus_nabs_f64(double v) { return log1p(exp(-fabs(v))); }

/* sigmoid(v) from e = exp(-|v|), so no exponent of a positive number */
static inline float mg_sigmoid_fast_f32(float v) {
    float e = mg_expf(-fabsf(v));
    float r = 1.0f / (1.0f + e);
    return v >= 0 ? r : e * r;
}
static inline double mg_sigmoid_fast_f64(double v) {
    double e = exp(-fabs(v));
    double r = 1.0 / (1.0 + e);
    return v >= 0 ? r : e * r;
}
#endif
