/*
 * The rectifier family's CPU kernels (torchff/kernels/rectifier.py registers them as the CPU
 * implementations of its torchff:: ops): contiguous float32 (_f32) and float64 (_f64) arrays.
 * Plain C, no Python or torch headers; module.c makes them Python functions.
 *
 * Every loop is branch-free, so that compilers vectorize it (with -fno-trapping-math, which
 * changes no value), and computes exactly what the op's composite computes:
 *   leaky_mask:      out = x * (x > 0 ? 1 : a)        mask = x > 0  (false for nan)
 *   leaky_backward:  out = g * (mask ? 1 : a)
 *   abs_sign:        out = |x|                        sign = (x > 0) - (x < 0)  (0 at 0, nan)
 *   times_small:     out = g * (T) small              (an int8 sign or a 0/1 mask)
 *   step:            out = x != x ? x : (x >= 0)      inside = |x| <= 1  (false for nan)
 *   prelu:           out = x * (x > 0 ? 1 : w_c)      mask = x > 0
 *   prelu_backward:  gi = g * (x > 0 ? 1 : w_c)       gw_c += (x > 0 ? 0 : x * g)
 * with c the channel of an element: x is viewed as (outer, C, inner), c = (i / inner) % C.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "torchff_api.h"
#include "torchff_kernels.h"
#include "torchff_parallel.h"

/* Two outputs from one input: one loop per output over a block small enough to stay in L1
   vectorizes better than one loop writing both arrays of different element sizes. */
#define TORCHFF_BLOCK 2048
/* independent partial sums of the PReLU weight's gradient, so that the sum vectorizes */
#define TORCHFF_LANES 16
/* the most channels one PReLU weight is spread over in its backward (prelu_lanes) */
#define TORCHFF_MAX_LANES 64

/* For one PReLU weight over n elements: the largest power of two up to TORCHFF_MAX_LANES that
   divides n (1 for none), the equal channels the backward views them as: its channel loop
   vectorizes the weight's gradient sum, where a single running sum cannot. */
static inline int64_t prelu_lanes(int64_t n) {
    for (int64_t lanes = TORCHFF_MAX_LANES; lanes > 1; lanes /= 2)
        if (n % lanes == 0) return lanes;
    return 1;
}

#define TORCHFF_MIN(a, b) ((a) < (b) ? (a) : (b))

#define TORCHFF_KERNELS(T, SUFFIX, FABS)                                                           \
    static TORCHFF_TARGETS void leaky_mask_range_##SUFFIX(const T *x, T *out, uint8_t *mask, double a,     \
                                                 int64_t n) {                                     \
        const T slope = (T)a;                                                                      \
        for (int64_t b = 0; b < n; b += TORCHFF_BLOCK) {                                           \
            const int64_t e = TORCHFF_MIN(b + TORCHFF_BLOCK, n);                                   \
            for (int64_t i = b; i < e; ++i) out[i] = x[i] * (x[i] > (T)0 ? (T)1 : slope);         \
            for (int64_t i = b; i < e; ++i) mask[i] = (uint8_t)(x[i] > (T)0);                      \
        }                                                                                          \
    }                                                                                              \
    static TORCHFF_TARGETS void leaky_backward_range_##SUFFIX(const T *g, const uint8_t *mask, T *out,     \
                                                     double a, int64_t n) {                       \
        const T slope = (T)a;                                                                      \
        for (int64_t i = 0; i < n; ++i) out[i] = g[i] * (mask[i] ? (T)1 : slope);                  \
    }                                                                                              \
    static TORCHFF_TARGETS void abs_sign_range_##SUFFIX(const T *x, T *out, int8_t *sign, int64_t n) {     \
        for (int64_t i = 0; i < n; ++i) {                                                          \
            const T v = x[i];                                                                      \
            out[i] = FABS(v);                                                                      \
            sign[i] = (int8_t)((v > (T)0) - (v < (T)0));                                           \
        }                                                                                          \
    }                                                                                              \
    static TORCHFF_TARGETS void times_small_range_##SUFFIX(const T *g, const int8_t *small, T *out,        \
                                                  int64_t n) {                                    \
        for (int64_t i = 0; i < n; ++i) out[i] = g[i] * (T)small[i];                               \
    }                                                                                              \
    static TORCHFF_TARGETS void step_range_##SUFFIX(const T *x, T *out, int64_t n) {                       \
        for (int64_t i = 0; i < n; ++i) out[i] = x[i] != x[i] ? x[i] : (T)(x[i] >= (T)0);         \
    }                                                                                              \
    static TORCHFF_TARGETS void step_inside_range_##SUFFIX(const T *x, T *out, uint8_t *inside,            \
                                                  int64_t n) {                                    \
        for (int64_t b = 0; b < n; b += TORCHFF_BLOCK) {                                           \
            const int64_t e = TORCHFF_MIN(b + TORCHFF_BLOCK, n);                                   \
            for (int64_t i = b; i < e; ++i) out[i] = x[i] != x[i] ? x[i] : (T)(x[i] >= (T)0);     \
            for (int64_t i = b; i < e; ++i) inside[i] = (uint8_t)(FABS(x[i]) <= (T)1);             \
        }                                                                                          \
    }                                                                                              \
    /* elements [b, e) of one channel's span, slope w */                                           \
    static inline void prelu_span_##SUFFIX(const T *x, T *out, uint8_t *mask, T w, int64_t b,     \
                                           int64_t e) {                                           \
        for (int64_t s = b; s < e; s += TORCHFF_BLOCK) {                                           \
            const int64_t t = TORCHFF_MIN(s + TORCHFF_BLOCK, e);                                   \
            for (int64_t i = s; i < t; ++i) out[i] = x[i] * (x[i] > (T)0 ? (T)1 : w);             \
            if (mask)                                                                              \
                for (int64_t i = s; i < t; ++i) mask[i] = (uint8_t)(x[i] > (T)0);                  \
        }                                                                                          \
    }                                                                                              \
    /* elements [begin, end) of x viewed as (outer, C, inner); mask may be NULL. With inner == 1  \
       and C > 1, begin and end are multiples of C (whole rows). */                               \
    static TORCHFF_TARGETS void prelu_range_##SUFFIX(const T *x, const T *w, T *out, uint8_t *mask,        \
                                            int64_t C, int64_t inner, int64_t begin,              \
                                            int64_t end) {                                        \
        if (inner == 1 && C > 1) {                                                                 \
            for (int64_t r = begin; r < end; r += C) {                                             \
                for (int64_t c = 0; c < C; ++c) out[r + c] = x[r + c] * (x[r + c] > (T)0 ? (T)1 : w[c]); \
                if (mask)                                                                          \
                    for (int64_t c = 0; c < C; ++c) mask[r + c] = (uint8_t)(x[r + c] > (T)0);      \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t i = begin; i < end;) {                                                        \
            const int64_t row = i / inner, stop = TORCHFF_MIN(end, (row + 1) * inner);             \
            prelu_span_##SUFFIX(x, out, mask, w[row % C], i, stop);                                \
            i = stop;                                                                              \
        }                                                                                          \
    }                                                                                              \
    /* sum over [b, e) of (x > 0 ? 0 : x * g), in double */                                        \
    static inline double prelu_wsum_##SUFFIX(const T *g, const T *x, int64_t b, int64_t e) {      \
        double acc[TORCHFF_LANES] = {0};                                                           \
        int64_t i = b;                                                                             \
        for (; i + TORCHFF_LANES <= e; i += TORCHFF_LANES)                                         \
            for (int k = 0; k < TORCHFF_LANES; ++k) {                                              \
                const double t = (double)(x[i + k] * g[i + k]);                                    \
                acc[k] += x[i + k] > (T)0 ? 0.0 : t;                                               \
            }                                                                                      \
        double s = 0.0;                                                                            \
        for (; i < e; ++i) s += x[i] > (T)0 ? 0.0 : (double)(x[i] * g[i]);                         \
        for (int k = 0; k < TORCHFF_LANES; ++k) s += acc[k];                                       \
        return s;                                                                                  \
    }                                                                                              \
    /* PReLU's backward from the input x over elements [begin, end): gi (may be NULL) and the     \
       range's partial sums of the weight's gradient, partial[c] (may be NULL; C doubles, set     \
       here). With inner == 1 and C > 1, begin and end are multiples of C. */                     \
    static TORCHFF_TARGETS void prelu_backward_range_##SUFFIX(const T *g, const T *x, const T *w, T *gi,   \
                                                     double *partial, int64_t C, int64_t inner,   \
                                                     int64_t begin, int64_t end) {                \
        if (partial)                                                                               \
            for (int64_t c = 0; c < C; ++c) partial[c] = 0.0;                                      \
        if (inner == 1 && C > 1) {                                                                 \
            for (int64_t r = begin; r < end; r += C) {                                             \
                if (gi)                                                                            \
                    for (int64_t c = 0; c < C; ++c)                                                \
                        gi[r + c] = g[r + c] * (x[r + c] > (T)0 ? (T)1 : w[c]);                    \
                if (partial)                                                                       \
                    for (int64_t c = 0; c < C; ++c) {                                              \
                        const double t = (double)(x[r + c] * g[r + c]);                            \
                        partial[c] += x[r + c] > (T)0 ? 0.0 : t;                                   \
                    }                                                                              \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t i = begin; i < end;) {                                                        \
            const int64_t row = i / inner, stop = TORCHFF_MIN(end, (row + 1) * inner);             \
            const T wc = w[row % C];                                                               \
            for (int64_t s = i; s < stop; s += TORCHFF_BLOCK) {                                    \
                const int64_t t = TORCHFF_MIN(s + TORCHFF_BLOCK, stop);                            \
                if (gi)                                                                            \
                    for (int64_t k = s; k < t; ++k) gi[k] = g[k] * (x[k] > (T)0 ? (T)1 : wc);      \
                if (partial) partial[row % C] += prelu_wsum_##SUFFIX(g, x, s, t);                  \
            }                                                                                      \
            i = stop;                                                                              \
        }                                                                                          \
    }                                                                                              \
    /* the input's gradient from the mask x > 0 (the weight needs none) */                        \
    static TORCHFF_TARGETS void prelu_backward_mask_range_##SUFFIX(const T *g, const uint8_t *mask,        \
                                                          const T *w, T *gi, int64_t C,           \
                                                          int64_t inner, int64_t begin,           \
                                                          int64_t end) {                          \
        if (inner == 1 && C > 1) {                                                                 \
            for (int64_t r = begin; r < end; r += C)                                               \
                for (int64_t c = 0; c < C; ++c) gi[r + c] = g[r + c] * (mask[r + c] ? (T)1 : w[c]); \
            return;                                                                                \
        }                                                                                          \
        for (int64_t i = begin; i < end;) {                                                        \
            const int64_t row = i / inner, stop = TORCHFF_MIN(end, (row + 1) * inner);             \
            const T wc = w[row % C];                                                               \
            for (int64_t k = i; k < stop; ++k) gi[k] = g[k] * (mask[k] ? (T)1 : wc);               \
            i = stop;                                                                              \
        }                                                                                          \
    }                                                                                              \
    /* the exported entry points: the whole array, split over threads (torchff_parallel.h) */     \
    TORCHFF_EXPORT void torchff_leaky_mask_##SUFFIX(const T *x, T *out, uint8_t *mask, double a,  \
                                                    int64_t n) {                                  \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n), n, 1,                                             \
                           leaky_mask_range_##SUFFIX(x + begin, out + begin, mask + begin, a,      \
                                                     end - begin));                                \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_leaky_backward_##SUFFIX(const T *g, const uint8_t *mask, T *out,  \
                                                        double a, int64_t n) {                    \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n), n, 1,                                             \
                           leaky_backward_range_##SUFFIX(g + begin, mask + begin, out + begin, a,  \
                                                         end - begin));                            \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_abs_sign_##SUFFIX(const T *x, T *out, int8_t *sign, int64_t n) {  \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n), n, 1,                                             \
                           abs_sign_range_##SUFFIX(x + begin, out + begin, sign + begin,           \
                                                   end - begin));                                  \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_times_small_##SUFFIX(const T *g, const int8_t *small, T *out,     \
                                                     int64_t n) {                                 \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n), n, 1,                                             \
                           times_small_range_##SUFFIX(g + begin, small + begin, out + begin,       \
                                                      end - begin));                               \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_step_##SUFFIX(const T *x, T *out, int64_t n) {                    \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n), n, 1,                                             \
                           step_range_##SUFFIX(x + begin, out + begin, end - begin));              \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_step_inside_##SUFFIX(const T *x, T *out, uint8_t *inside,         \
                                                     int64_t n) {                                 \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n), n, 1,                                             \
                           step_inside_range_##SUFFIX(x + begin, out + begin, inside + begin,      \
                                                      end - begin));                               \
    }                                                                                              \
    /* x viewed as (outer, C, inner), n elements; chunks of whole rows when inner == 1, C > 1 */  \
    TORCHFF_EXPORT void torchff_prelu_##SUFFIX(const T *x, const T *w, T *out, uint8_t *mask,     \
                                               int64_t C, int64_t inner, int64_t n) {             \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n), n, inner == 1 && C > 1 ? C : 1,                   \
                           prelu_range_##SUFFIX(x, w, out, mask, C, inner, begin, end));           \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_prelu_backward_mask_##SUFFIX(const T *g, const uint8_t *mask,     \
                                                             const T *w, T *gi, int64_t C,        \
                                                             int64_t inner, int64_t n) {          \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n), n, inner == 1 && C > 1 ? C : 1,                   \
                           prelu_backward_mask_range_##SUFFIX(g, mask, w, gi, C, inner, begin,     \
                                                              end));                               \
    }                                                                                              \
    /* gi (may be NULL) and, in gw (C values, may be NULL), the weight's gradient: summed in    \
       double per chunk, the chunks' sums added in chunk order, rounded to T once. One weight     \
       over n elements is taken as `lanes` equal channels of one element each (prelu_lanes),      \
       whose loop vectorizes, the lanes' sums added last. Returns 0, or -1 when there is no       \
       memory for the partial sums (nothing written) */                                           \
    TORCHFF_EXPORT int64_t torchff_prelu_backward_##SUFFIX(const T *g, const T *x, const T *w,    \
                                                           T *gi, T *gw, int64_t C,               \
                                                           int64_t inner, int64_t n) {            \
        T lane_w[TORCHFF_MAX_LANES];                                                               \
        const int64_t lanes = C == 1 ? prelu_lanes(n) : 1;                                         \
        if (lanes > 1) {                                                                           \
            for (int64_t c = 0; c < lanes; ++c) lane_w[c] = w[0];                                  \
            w = lane_w;                                                                            \
            C = lanes;                                                                             \
            inner = 1;                                                                             \
        }                                                                                          \
        const int chunks = torchff_chunks(n, n);                                                   \
        double local[4 * TORCHFF_MAX_LANES], *sums = NULL;                                         \
        if (gw) {                                                                                  \
            sums = (int64_t)chunks * C <= 4 * TORCHFF_MAX_LANES                                    \
                       ? local                                                                     \
                       : (double *)malloc(sizeof(double) * (size_t)(chunks * C));                  \
            if (!sums) return -1;                                                                  \
        }                                                                                          \
        double *const part = sums;                                                                 \
        TORCHFF_FOR_CHUNKS(chunks, n, inner == 1 && C > 1 ? C : 1,                                 \
                           prelu_backward_range_##SUFFIX(g, x, w, gi, part ? part + chunk * C : 0, \
                                                         C, inner, begin, end));                   \
        if (sums) {                                                                                \
            double all = 0.0;                                                                      \
            for (int64_t c = 0; c < C; ++c) {                                                      \
                double s = 0.0;                                                                    \
                for (int k = 0; k < chunks; ++k) s += sums[k * C + c];                             \
                if (lanes > 1)                                                                     \
                    all += s;                                                                      \
                else                                                                               \
                    gw[c] = (T)s;                                                                  \
            }                                                                                      \
            if (lanes > 1) gw[0] = (T)all;                                                         \
            if (sums != local) free(sums);                                                         \
        }                                                                                          \
        return 0;                                                                                  \
    }

TORCHFF_KERNELS(float, f32, fabsf)
TORCHFF_KERNELS(double, f64, fabs)
