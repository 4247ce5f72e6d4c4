/*
 * Math helpers the C kernels share (static inline: each file gets its own copy to inline).
 *
 * torchff_expf: exp(x) for float32, branch-free so that the loops calling it vectorize.
 * x is held in [-104, 89] (exp(-104) rounds to 0); x = k ln2 + r with k = round(x log2(e)),
 * r = x - k ln2 in two parts (Cody-Waite: k ln2_hi is exact), |r| <= ln2/2; e^r by its Taylor
 * polynomial to degree 7 (truncation below 1e-8 relative); 2^k applied as two exponent-field
 * factors so that results down to the smallest subnormal are exact scalings. nan stays nan,
 * +inf (and anything above 89) overflows to inf, -inf gives 0.
 *
 * torchff_exp_neg_f32(a) = exp(-a) for a >= 0 and torchff_log1p_unit_f32(u) = log(1 + u) for u
 * in [0, 1]: the pieces of log(1 + e^z) = max(z, 0) + log1p(e^-|z|) (BCE, softplus).
 */
#ifndef TORCHFF_MATH_H
#define TORCHFF_MATH_H

#include <math.h>
#include <stdint.h>

static inline float torchff_expf(float x) {
    const float xc = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);
    const float kf = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    const float r = (xc - kf * 0.693145751953125f) - kf * 1.428606765330187045e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t k = (int32_t)kf;
    const int32_t k1 = k / 2, k2 = k - k / 2;
    union { int32_t i; float f; } s1, s2;
    s1.i = (k1 + 127) << 23;
    s2.i = (k2 + 127) << 23;
    const float y = p * s1.f * s2.f;
    return x != x ? x : (x > 89.0f ? INFINITY : y);
}

/* exp(-a) for a >= 0 (or nan), float32, by torchff_expf */
static inline float torchff_exp_neg_f32(float a) { return torchff_expf(-a); }

/* log(1 + u) for u in [0, 1], float32: 2 atanh(s), s = u / (2 + u) in [0, 1/3], by its series
   to s^13 (truncation below 2e-8 relative; full relative accuracy for tiny u). */
static inline float torchff_log1p_unit_f32(float u) {
    const float s = u / (2.0f + u), s2 = s * s;
    float p = 2.0f / 13.0f;
    p = p * s2 + 2.0f / 11.0f;
    p = p * s2 + 2.0f / 9.0f;
    p = p * s2 + 2.0f / 7.0f;
    p = p * s2 + 2.0f / 5.0f;
    p = p * s2 + 2.0f / 3.0f;
    p = p * s2 + 2.0f;
    return s * p;
}

#endif
