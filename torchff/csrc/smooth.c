/*
 * Softplus forward (torch.ops.torchff.softplus) for contiguous CPU float32 and float64 arrays.
 * Plain C, no Python or torch headers (torchff/kernels/smooth.py calls it through
 * torchff.kernels._c). The backward needs no kernel of ours: torch's softplus_backward is one
 * vectorized pass already.
 *
 * torch's formula, with beta and threshold rounded to T as torch rounds them, t = x * beta:
 *   out = t > threshold ? x : log1p(exp(t)) / beta
 * float64: exactly that, with libm's exp and log1p.
 * float32: log1p(exp(t)) = max(t, 0) + log1p(e), e = exp(-|t|) in (0, 1], by the branch-free
 * torchff_expf / torchff_log1p_unit_f32 (torchff_math.h), so that the loop vectorizes (torch's
 * CPU log1p is a scalar libm call per element). Where e < 2^-24, log1p(e) rounds to e, which is
 * used as it is: the subnormal tail (t down to -103.9) keeps every bit. Where exp(t) overflows
 * float32 (t > 88.7228317, reachable only with threshold above that), the value is inf / beta,
 * as torch's. nan stays nan.
 */
#include <math.h>
#include <stdint.h>

#include "torchff_api.h"
#include "torchff_kernels.h"
#include "torchff_math.h"
#include "torchff_parallel.h"

/* the largest float32 t with exp(t) finite */
#define TORCHFF_EXPF_MAX_ARG 88.72283172607421875f

static TORCHFF_TARGETS void softplus_range_f32(const float *x, float *out, double beta,
                                               double threshold, int64_t n) {
    const float b = (float)beta, th = (float)threshold;
    for (int64_t i = 0; i < n; ++i) {
        const float v = x[i], t = v * b;
        const float e = torchff_exp_neg_f32(fabsf(t));
        const float l = e < 0x1p-24f ? e : torchff_log1p_unit_f32(e);
        const float y = (t > TORCHFF_EXPF_MAX_ARG ? INFINITY : (t > 0.0f ? t : 0.0f) + l) / b;
        out[i] = t > th ? v : y;
    }
}

static TORCHFF_TARGETS void softplus_range_f64(const double *x, double *out, double beta,
                                               double threshold, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const double v = x[i], t = v * beta;
        out[i] = t > threshold ? v : log1p(exp(t)) / beta;
    }
}

#define TORCHFF_SOFTPLUS(T, SUFFIX)                                                                \
    TORCHFF_EXPORT void torchff_softplus_##SUFFIX(const T *x, T *out, double beta,                \
                                                  double threshold, int64_t n) {                  \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n), n, 1,                                             \
                           softplus_range_##SUFFIX(x + begin, out + begin, beta, threshold,        \
                                                   end - begin));                                  \
    }

TORCHFF_SOFTPLUS(float, f32)
TORCHFF_SOFTPLUS(double, f64)
