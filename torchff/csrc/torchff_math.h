/*
 * Math helpers the C kernels share (static inline: each file gets its own copy to inline).
 *
 * torchff_expf: exp(x) for float32, branch-free so that the loops calling it vectorize.
 * x is held in [-104, 89] (exp(-104) rounds to 0); x = k ln2 + r with k = round(x log2(e)),
 * r = x - k ln2 in two parts (Cody-Waite: k ln2_hi is exact), |r| <= ln2/2; e^r by its Taylor
 * polynomial to degree 7 (truncation below 1e-8 relative); 2^k applied as two exponent-field
 * factors so that results down to the smallest subnormal are exact scalings. nan stays nan,
 * +inf (and anything above 89) overflows to inf, -inf gives 0.
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

#endif
