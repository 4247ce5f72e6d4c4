/*
 * The elementwise losses (torch.ops.torchff.bce_with_logits / bce_with_logits_backward /
 * regression / regression_backward) for contiguous CPU float32 and float64 arrays. Plain C, no
 * Python or torch headers (torchff/kernels/losses.py calls these through torchff.kernels._c).
 *
 * Every array has the broadcast shape of the op's arguments (the caller expands and makes them
 * contiguous), except an optional argument (weight, pos_weight, spread), which may be NULL, and
 * the upstream gradient, which may be one element (a reduced loss: g_full = 0). The exported
 * functions take the whole arrays (n elements) and split them over threads (torchff_parallel.h);
 * each chunk's worker covers the elements [begin, end).
 *
 * Forward: with an output array, the loss elements; with out = NULL, their sum (per chunk:
 * blocks of 256 summed in 16 vector lanes, added in double, TORCHFF_SUM; the chunks' sums added
 * in chunk order) times `scale` (1/n for a mean), written to total[0].
 * Backward: the upstream gradient times `scale` (1/n for a mean) times the derivatives.
 *
 * BCE with logits, e = exp(-|z|), L = log1p(e), lw = 1 + (pw - 1) y:
 *   loss    = w [(1 - y) max(z, 0) + pw y max(-z, 0) + lw L]     (every term >= 0 for y in [0, 1])
 *   dl/dz   = w [lw s - pw y],        s = sigmoid(z) = z >= 0 ? 1 / (1 + e) : e / (1 + e)
 *   dl/dy   = w [(pw - 1)(max(-z, 0) + L) - z]
 * Regression on the residual d = x - y, computed per element from x and y (kind 0 MSE, 1 L1,
 * 2 Gaussian NLL, 3 Laplace NLL), with the spread a = weight (0, 1), var (2) or scale (3),
 * v = max(a, eps) for 2 and 3:
 *   0: w d^2                      dl/dd = 2 w d          dl/dw = d^2
 *   1: w |d|                      dl/dd = w sgn(d)       dl/dw = |d|
 *   2: (log v + d^2 / v + c) / 2  dl/dd = d / v          dl/dvar = (1/v - (d/v)^2) / 2
 *   3: log b + |d| / b + c        dl/dd = sgn(d) / b     dl/dscale = (1 - |d|/b) / b
 * sgn is torch.sign: 0 at 0, nan at nan (TORCHFF_SGN).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "torchff_api.h"
#include "torchff_kernels.h"
#include "torchff_math.h"
#include "torchff_parallel.h"

/* torch.sign: -1, 0, 1, and nan for nan */
#define TORCHFF_SGN(T, d) ((d) != (d) ? (d) : (T)(((d) > (T)0) - ((d) < (T)0)))

/* *OUT = the sum of EXPR (an expression of i) for i in [B, E), in double: each block of 256
   elements is summed in 16 lanes of T (16 terms per lane: vector adds, no conversions in the
   loop), the lanes added in double, and the blocks and the tail added in double. The result
   does not depend on the vector width. */
#define TORCHFF_SUM(T, OUT, B, E, EXPR)                                                            \
    do {                                                                                           \
        double total_ = 0;                                                                         \
        int64_t i0_ = (B);                                                                         \
        for (; i0_ + 256 <= (E); i0_ += 256) {                                                     \
            T acc_[16] = {0};                                                                      \
            for (int64_t k_ = 0; k_ < 256; k_ += 16)                                               \
                for (int j_ = 0; j_ < 16; ++j_) {                                                  \
                    const int64_t i = i0_ + k_ + j_;                                               \
                    acc_[j_] += (EXPR);                                                            \
                }                                                                                  \
            double s_ = 0;                                                                         \
            for (int j_ = 0; j_ < 16; ++j_) s_ += (double)acc_[j_];                                \
            total_ += s_;                                                                          \
        }                                                                                          \
        for (int64_t i = i0_; i < (E); ++i) total_ += (double)(EXPR);                              \
        *(OUT) = total_;                                                                           \
    } while (0)

/* EXPN(a) = exp(-a) for a >= 0, LOG1PU(u) = log1p(u) for u in [0, 1]. Each loop body is an
   always-inline function whose flags (weight given, gradient full, ...) are constants at its
   call sites, so that every variant is a straight loop the compiler vectorizes. */
#define TORCHFF_INLINE static inline __attribute__((always_inline))
#define TORCHFF_LOSSES(T, SUFFIX, EXPN, LOG1PU, LOG, FABS)                                         \
    TORCHFF_INLINE T bce_elem_##SUFFIX(const T zv, const T yv, const T wv, const T p) {            \
        const T L = LOG1PU(EXPN(FABS(zv)));                                                        \
        const T rp = zv > (T)0 ? zv : (T)0, rn = zv < (T)0 ? -zv : (T)0;                           \
        return wv * (((T)1 - yv) * rp + p * yv * rn + ((T)1 + (p - (T)1) * yv) * L);               \
    }                                                                                              \
    TORCHFF_INLINE void bce_fwd_##SUFFIX(T *out, double *partial, const T *z, const T *y,          \
                                         const T *w, const T *pw, int64_t b, int64_t e,            \
                                         const int has_w, const int has_pw) {                      \
        if (out) {                                                                                 \
            for (int64_t i = b; i < e; ++i)                                                        \
                out[i] = bce_elem_##SUFFIX(z[i], y[i], has_w ? w[i] : (T)1, has_pw ? pw[i] : (T)1); \
        } else {                                                                                   \
            TORCHFF_SUM(T, partial, b, e,                                                             \
                        bce_elem_##SUFFIX(z[i], y[i], has_w ? w[i] : (T)1, has_pw ? pw[i] : (T)1)); \
        }                                                                                          \
    }                                                                                              \
    /* out: the loss elements, or NULL for their sum in *partial */                                \
    static TORCHFF_TARGETS void bce_range_##SUFFIX(T *out, double *partial, const T *z,        \
                                                      const T *y, const T *w, const T *pw,         \
                                                      int64_t begin, int64_t end) {                \
        switch ((w ? 2 : 0) | (pw ? 1 : 0)) {                                                      \
        case 0: bce_fwd_##SUFFIX(out, partial, z, y, w, pw, begin, end, 0, 0); break;              \
        case 1: bce_fwd_##SUFFIX(out, partial, z, y, w, pw, begin, end, 0, 1); break;              \
        case 2: bce_fwd_##SUFFIX(out, partial, z, y, w, pw, begin, end, 1, 0); break;              \
        default: bce_fwd_##SUFFIX(out, partial, z, y, w, pw, begin, end, 1, 1);                    \
        }                                                                                          \
    }                                                                                              \
    TORCHFF_INLINE void bce_dz_##SUFFIX(T *gz, const T *g, const T sc, const T *z, const T *y,     \
                                        const T *w, const T *pw, int64_t b, int64_t e,             \
                                        const int g_full, const int has_w, const int has_pw) {     \
        const T g0 = g[0] * sc;                                                                    \
        for (int64_t i = b; i < e; ++i) {                                                          \
            const T zv = z[i], yv = y[i], p = has_pw ? pw[i] : (T)1;                               \
            const T gw = (g_full ? g[i] * sc : g0) * (has_w ? w[i] : (T)1);                        \
            const T ex = EXPN(FABS(zv)), r = (T)1 / ((T)1 + ex);                                   \
            const T s = zv >= (T)0 ? r : ex * r;                                                   \
            gz[i] = gw * (has_pw ? ((T)1 + (p - (T)1) * yv) * s - p * yv : s - yv);                \
        }                                                                                          \
    }                                                                                              \
    TORCHFF_INLINE void bce_dy_##SUFFIX(T *gy, const T *g, const T sc, const T *z, const T *w,     \
                                        const T *pw, int64_t b, int64_t e, const int g_full) {     \
        const T g0 = g[0] * sc;                                                                    \
        for (int64_t i = b; i < e; ++i) {                                                          \
            const T zv = z[i], p = pw ? pw[i] : (T)1;                                              \
            const T gw = (g_full ? g[i] * sc : g0) * (w ? w[i] : (T)1);                            \
            const T rn = zv < (T)0 ? -zv : (T)0;                                                   \
            gy[i] = gw * (pw ? (p - (T)1) * (rn + LOG1PU(EXPN(FABS(zv)))) - zv : -zv);             \
        }                                                                                          \
    }                                                                                              \
    /* gz / gy: NULL when not wanted */                                                            \
    static TORCHFF_TARGETS void bce_backward_range_##SUFFIX(                                    \
        T *gz, T *gy, const T *g, int64_t g_full, double scale, const T *z, const T *y,            \
        const T *w, const T *pw, int64_t begin, int64_t end) {                                     \
        const T sc = (T)scale;                                                                     \
        if (gz) {                                                                                  \
            switch ((g_full ? 4 : 0) | (w ? 2 : 0) | (pw ? 1 : 0)) {                               \
            case 0: bce_dz_##SUFFIX(gz, g, sc, z, y, w, pw, begin, end, 0, 0, 0); break;           \
            case 1: bce_dz_##SUFFIX(gz, g, sc, z, y, w, pw, begin, end, 0, 0, 1); break;           \
            case 2: bce_dz_##SUFFIX(gz, g, sc, z, y, w, pw, begin, end, 0, 1, 0); break;           \
            case 3: bce_dz_##SUFFIX(gz, g, sc, z, y, w, pw, begin, end, 0, 1, 1); break;           \
            case 4: bce_dz_##SUFFIX(gz, g, sc, z, y, w, pw, begin, end, 1, 0, 0); break;           \
            case 5: bce_dz_##SUFFIX(gz, g, sc, z, y, w, pw, begin, end, 1, 0, 1); break;           \
            case 6: bce_dz_##SUFFIX(gz, g, sc, z, y, w, pw, begin, end, 1, 1, 0); break;           \
            default: bce_dz_##SUFFIX(gz, g, sc, z, y, w, pw, begin, end, 1, 1, 1);                 \
            }                                                                                      \
        }                                                                                          \
        if (gy) bce_dy_##SUFFIX(gy, g, sc, z, w, pw, begin, end, (int)g_full);                     \
    }                                                                                              \
    TORCHFF_INLINE T reg_elem_##SUFFIX(const T d, const T av, const T ep, const T c,               \
                                       const int kind, const int has_a) {                          \
        if (kind <= 1) {                                                                           \
            const T e = kind == 0 ? d * d : FABS(d);                                               \
            return has_a ? av * e : e;                                                             \
        }                                                                                          \
        const T v = av < ep ? ep : av; /* nan stays nan */                                         \
        return kind == 2 ? (T)0.5 * (LOG(v) + d * d / v + c) : LOG(v) + FABS(d) / v + c;           \
    }                                                                                              \
    TORCHFF_INLINE void reg_fwd_##SUFFIX(T *loss, double *partial, const T *x, const T *y,         \
                                         const T *a, const T ep, const T c, int64_t b, int64_t e,  \
                                         const int kind, const int has_a) {                        \
        if (loss) {                                                                                \
            for (int64_t i = b; i < e; ++i)                                                        \
                loss[i] = reg_elem_##SUFFIX(x[i] - y[i], has_a ? a[i] : (T)1, ep, c, kind, has_a); \
        } else {                                                                                   \
            TORCHFF_SUM(T, partial, b, e,                                                             \
                        reg_elem_##SUFFIX(x[i] - y[i], has_a ? a[i] : (T)1, ep, c, kind, has_a));  \
        }                                                                                          \
    }                                                                                              \
    /* loss: the loss elements, or NULL for their sum in *partial */                               \
    static TORCHFF_TARGETS void regression_range_##SUFFIX(T *loss, double *partial, const T *x, const T *y, \
                                                 const T *a, int64_t kind, int64_t full,          \
                                                 double eps, int64_t begin, int64_t end) {         \
        const T ep = (T)eps;                                                                       \
        switch (kind) {                                                                            \
        case 0:                                                                                    \
            if (a) reg_fwd_##SUFFIX(loss, partial, x, y, a, ep, (T)0, begin, end, 0, 1);           \
            else reg_fwd_##SUFFIX(loss, partial, x, y, a, ep, (T)0, begin, end, 0, 0);             \
            break;                                                                                 \
        case 1:                                                                                    \
            if (a) reg_fwd_##SUFFIX(loss, partial, x, y, a, ep, (T)0, begin, end, 1, 1);           \
            else reg_fwd_##SUFFIX(loss, partial, x, y, a, ep, (T)0, begin, end, 1, 0);             \
            break;                                                                                 \
        case 2: /* + log(2 pi) */                                                                  \
            reg_fwd_##SUFFIX(loss, partial, x, y, a, ep, full ? (T)1.8378770664093453 : (T)0,      \
                             begin, end, 2, 1);                                                    \
            break;                                                                                 \
        default: /* + log 2 */                                                                     \
            reg_fwd_##SUFFIX(loss, partial, x, y, a, ep, full ? (T)0.69314718055994531 : (T)0,     \
                             begin, end, 3, 1);                                                    \
        }                                                                                          \
    }                                                                                              \
    TORCHFF_INLINE void reg_bwd_##SUFFIX(T *gd, T *ga, const T *g, const T sc, const T *x,         \
                                         const T *y, const T *a, const T ep, int64_t b, int64_t e, \
                                         const int kind, const int g_full, const int has_a,        \
                                         const int has_ga) {                                       \
        const T g0 = g[0] * sc;                                                                    \
        for (int64_t i = b; i < e; ++i) {                                                          \
            const T gv = g_full ? g[i] * sc : g0, dv = x[i] - y[i];                                \
            if (kind <= 1) {                                                                       \
                const T s = kind == 0 ? (T)2 * dv : TORCHFF_SGN(T, dv);                            \
                gd[i] = has_a ? gv * a[i] * s : gv * s;                                            \
                if (has_ga) ga[i] = gv * (kind == 0 ? dv * dv : FABS(dv));                         \
            } else {                                                                               \
                const T v = a[i] < ep ? ep : a[i];                                                 \
                if (kind == 2) {                                                                   \
                    const T q = dv / v;                                                            \
                    gd[i] = gv * q;                                                                \
                    if (has_ga) ga[i] = gv * ((T)0.5 * ((T)1 / v - q * q));                        \
                } else {                                                                           \
                    gd[i] = gv * (TORCHFF_SGN(T, dv) / v);                                         \
                    if (has_ga) ga[i] = gv * (((T)1 - FABS(dv) / v) / v);                          \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    /* gd (the gradient with respect to d) is always written; ga (the spread's) when not NULL */   \
    static TORCHFF_TARGETS void regression_backward_range_##SUFFIX(                                         \
        T *gd, T *ga, const T *g, int64_t g_full, double scale, const T *x, const T *y,            \
        const T *a, int64_t kind, double eps, int64_t begin, int64_t end) {                        \
        const T ep = (T)eps, sc = (T)scale;                                                        \
        const int c = (g_full ? 4 : 0) | (a ? 2 : 0) | (ga ? 1 : 0);                               \
        switch (kind * 8 + c) {                                                                    \
        TORCHFF_REG_BWD_CASES(SUFFIX, 0)                                                           \
        TORCHFF_REG_BWD_CASES(SUFFIX, 1)                                                           \
        TORCHFF_REG_BWD_SPREAD(SUFFIX, 2)                                                          \
        TORCHFF_REG_BWD_SPREAD(SUFFIX, 3)                                                          \
        }                                                                                          \
    }                                                                                              \
    /* the exported entry points: the whole arrays, split over threads (torchff_parallel.h) */    \
    TORCHFF_EXPORT void torchff_bce_with_logits_##SUFFIX(T *out, T *total, const T *z, const T *y, \
                                                         const T *w, const T *pw, double scale,   \
                                                         int64_t n) {                             \
        const int chunks = torchff_chunks(n, n);                                                   \
        double partial[chunks];                                                                    \
        for (int k = 0; k < chunks; ++k) partial[k] = 0.0;                                         \
        TORCHFF_FOR_CHUNKS(chunks, n, 1,                                                           \
                           bce_range_##SUFFIX(out, partial + chunk, z, y, w, pw, begin, end));     \
        if (!out) TORCHFF_FINISH(T, total, partial, chunks, scale);                                \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_bce_with_logits_backward_##SUFFIX(                                 \
        T *gz, T *gy, const T *g, int64_t g_full, double scale, const T *z, const T *y,            \
        const T *w, const T *pw, int64_t n) {                                                      \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n), n, 1,                                             \
                           bce_backward_range_##SUFFIX(gz, gy, g, g_full, scale, z, y, w, pw,      \
                                                       begin, end));                               \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_regression_##SUFFIX(T *loss, T *total, const T *x, const T *y,    \
                                                    const T *a, int64_t kind, int64_t full,       \
                                                    double eps, double scale, int64_t n) {        \
        const int chunks = torchff_chunks(n, n);                                                   \
        double partial[chunks];                                                                    \
        for (int k = 0; k < chunks; ++k) partial[k] = 0.0;                                         \
        TORCHFF_FOR_CHUNKS(chunks, n, 1,                                                           \
                           regression_range_##SUFFIX(loss, partial + chunk, x, y, a, kind, full,   \
                                                     eps, begin, end));                            \
        if (!loss) TORCHFF_FINISH(T, total, partial, chunks, scale);                               \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_regression_backward_##SUFFIX(                                      \
        T *gd, T *ga, const T *g, int64_t g_full, double scale, const T *x, const T *y,            \
        const T *a, int64_t kind, double eps, int64_t n) {                                         \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n), n, 1,                                             \
                           regression_backward_range_##SUFFIX(gd, ga, g, g_full, scale, x, y, a,   \
                                                              kind, eps, begin, end));             \
    }

/* total[0] = scale * (the chunks' partial sums, added in chunk order) */
#define TORCHFF_FINISH(T, TOTAL, PARTIAL, CHUNKS, SCALE)                                           \
    do {                                                                                           \
        double s_ = 0.0;                                                                           \
        for (int k_ = 0; k_ < (CHUNKS); ++k_) s_ += (PARTIAL)[k_];                                 \
        (TOTAL)[0] = (T)(s_ * (SCALE));                                                            \
    } while (0)

#define TORCHFF_REG_BWD_CALL(SUFFIX, K, C)                                                         \
    case K * 8 + C:                                                                                \
        reg_bwd_##SUFFIX(gd, ga, g, sc, x, y, a, ep, begin, end, K, (C) >> 2 & 1, (C) >> 1 & 1,    \
                         (C) & 1);                                                                 \
        break;
/* MSE and L1: with or without a weight, its gradient or not */
#define TORCHFF_REG_BWD_CASES(SUFFIX, K)                                                           \
    TORCHFF_REG_BWD_CALL(SUFFIX, K, 0) TORCHFF_REG_BWD_CALL(SUFFIX, K, 2)                          \
    TORCHFF_REG_BWD_CALL(SUFFIX, K, 3) TORCHFF_REG_BWD_CALL(SUFFIX, K, 4)                          \
    TORCHFF_REG_BWD_CALL(SUFFIX, K, 6) TORCHFF_REG_BWD_CALL(SUFFIX, K, 7)
/* Gaussian and Laplace: the spread is always there */
#define TORCHFF_REG_BWD_SPREAD(SUFFIX, K)                                                          \
    TORCHFF_REG_BWD_CALL(SUFFIX, K, 2) TORCHFF_REG_BWD_CALL(SUFFIX, K, 3)                          \
    TORCHFF_REG_BWD_CALL(SUFFIX, K, 6) TORCHFF_REG_BWD_CALL(SUFFIX, K, 7)

static inline double torchff_exp_neg_f64(double a) { return exp(-a); }

TORCHFF_LOSSES(float, f32, torchff_exp_neg_f32, torchff_log1p_unit_f32, logf, fabsf)
TORCHFF_LOSSES(double, f64, torchff_exp_neg_f64, log1p, log, fabs)
