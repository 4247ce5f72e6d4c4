/*
 * Softmax cross-entropy rows for contiguous CPU float32 / float64 arrays of shape (rows, C),
 * called by torchff/kernels/cross_entropy.py once per array: the exported functions split the
 * rows over threads (torchff_parallel.h) and run a worker per chunk of rows.
 *
 * Class-index targets (torchff_ce_rows_*): per row n with target y, class weights w (all ones
 * when absent, W = sum_c w_c), label smoothing eps and s = sum_c exp(z_c - m), m = max_c z_c:
 *   loss_n = (1-eps) w_y ((m - z_y) + log s) + (eps/C) (sum_c w_c (m - z_c) + W log s)
 *   g_n,c  = scale_n ((a_n p_c - (eps/C) w_c) - b_n [c == y]),   p = exp(z - m) / s,
 *            a_n = (1-eps) w_y + (eps/C) W,  b_n = (1-eps) w_y;
 * rows whose target is ignore_index get loss 0 and gradient 0. The max is subtracted before
 * anything is summed, so the loss is exact for logits of any size. Three passes over a row that
 * stays in cache: the max; exp(z - m) into g and its sum; the gradient in place in g. g may be z
 * itself (the gradient then overwrites the logits). With `total`, also writes the sum of the loss
 * rows (in double, each chunk's sum added in chunk order) over total_div there: the reduced
 * loss; `loss` (the rows) may then be NULL. Returns -1, or the first row over all chunks whose
 * target is neither a class index nor ignore_index (the total, and that chunk's loss and
 * gradient rows from it on, are left unwritten).
 *
 * Probability targets (torchff_ce_probs_*): t' = (1-eps) t + eps/C,
 *   logp = (z - m) - log s,  loss_n = -sum_c w_c t'_c logp_c;
 * and its backward (torchff_ce_probs_backward_*), with g_n the upstream gradient of row n:
 *   dz = g_n (S_n exp(logp) - w t'),  S_n = sum_c w_c t'_c;   dt = -g_n (1-eps) w logp.
 *
 * float32 uses a branch-free exp (Cody-Waite reduction, degree-7 polynomial, within 2 ulp of
 * expf, denormal results kept) so that the loops vectorize; float64 uses libm's exp.
 * Row reductions use 8 independent accumulators, which vectorize without reassociating.
 */
#include <math.h>
#include <stdint.h>

#include "torchff_api.h"
#include "torchff_kernels.h"
#include "torchff_math.h"
#include "torchff_parallel.h"

#define LANES 8

static inline double ff_exp(double x) { return exp(x); }

#define TORCHFF_CE(T, SUFFIX, EXP, LOG)                                                            \
    static inline T ce_rowmax_##SUFFIX(const T *z, int64_t C) {                                   \
        T acc[LANES];                                                                              \
        for (int l = 0; l < LANES; ++l) acc[l] = -INFINITY;                                        \
        int64_t c = 0;                                                                             \
        for (; c + LANES <= C; c += LANES)                                                         \
            for (int l = 0; l < LANES; ++l) acc[l] = z[c + l] > acc[l] ? z[c + l] : acc[l];        \
        T m = -INFINITY;                                                                           \
        for (; c < C; ++c) m = z[c] > m ? z[c] : m;                                                \
        for (int l = 0; l < LANES; ++l) m = acc[l] > m ? acc[l] : m;                               \
        return m;                                                                                  \
    }                                                                                              \
    /* e = exp(z - m) written to e (which may be z); returns sum e */                              \
    static inline T ce_expsum_##SUFFIX(const T *z, T *e, T m, int64_t C) {                        \
        T acc[LANES] = {0};                                                                        \
        int64_t c = 0;                                                                             \
        for (; c + LANES <= C; c += LANES)                                                         \
            for (int l = 0; l < LANES; ++l) {                                                      \
                const T v = EXP(z[c + l] - m);                                                     \
                e[c + l] = v;                                                                      \
                acc[l] += v;                                                                       \
            }                                                                                      \
        T s = 0;                                                                                   \
        for (; c < C; ++c) {                                                                       \
            const T v = EXP(z[c] - m);                                                             \
            e[c] = v;                                                                              \
            s += v;                                                                                \
        }                                                                                          \
        for (int l = 0; l < LANES; ++l) s += acc[l];                                               \
        return s;                                                                                  \
    }                                                                                              \
    /* sum_c w_c (m - z_c), w_c = 1 without weights */                                             \
    static inline T ce_smooth_##SUFFIX(const T *z, const T *w, T m, int64_t C) {                  \
        T acc[LANES] = {0};                                                                        \
        int64_t c = 0;                                                                             \
        if (w) {                                                                                   \
            for (; c + LANES <= C; c += LANES)                                                     \
                for (int l = 0; l < LANES; ++l) acc[l] += w[c + l] * (m - z[c + l]);               \
        } else {                                                                                   \
            for (; c + LANES <= C; c += LANES)                                                     \
                for (int l = 0; l < LANES; ++l) acc[l] += m - z[c + l];                            \
        }                                                                                          \
        T s = 0;                                                                                   \
        for (; c < C; ++c) s += (w ? w[c] : (T)1) * (m - z[c]);                                    \
        for (int l = 0; l < LANES; ++l) s += acc[l];                                               \
        return s;                                                                                  \
    }                                                                                              \
    TORCHFF_EXPORT double torchff_ce_weight_sum_##SUFFIX(const int64_t *t, const T *w, int64_t C, \
                                                         int64_t ignore_index, int64_t rows) {    \
        double total = 0;                                                                          \
        for (int64_t n = 0; n < rows; ++n) {                                                       \
            const int64_t y = t[n];                                                                \
            if (y != ignore_index && y >= 0 && y < C) total += w ? (double)w[y] : 1.0;             \
        }                                                                                          \
        return total;                                                                              \
    }                                                                                              \
    /* rows [begin, end); the sum of their loss rows in *partial; -1 or the first bad row */       \
    static TORCHFF_TARGETS int64_t ce_rows_range_##SUFFIX(                                         \
        const T *z, const int64_t *t, const T *w, const T *scale, int64_t scale_step, double alpha, \
        T *g, T *loss, double *partial, int64_t C, int64_t ignore_index, double eps_,              \
        int64_t begin, int64_t end) {                                                              \
        const T eps = (T)eps_, ceps = (T)(eps_ / (double)C);                                       \
        T W = (T)C;                                                                                \
        if (w && eps_ > 0) {                                                                       \
            W = 0;                                                                                 \
            for (int64_t c = 0; c < C; ++c) W += w[c];                                             \
        }                                                                                          \
        double acc = 0; /* the loss rows' sum, in row order */                                     \
        for (int64_t n = begin; n < end; ++n) {                                                    \
            const int64_t y = t[n];                                                                \
            const T *zr = z + n * C;                                                               \
            T *gr = g ? g + n * C : 0;                                                             \
            if (y == ignore_index) {                                                               \
                if (loss) loss[n] = 0;                                                             \
                if (gr)                                                                            \
                    for (int64_t c = 0; c < C; ++c) gr[c] = 0;                                     \
                continue;                                                                          \
            }                                                                                      \
            if (y < 0 || y >= C) return n;                                                         \
            const T wy = w ? w[y] : (T)1;                                                          \
            const T m = ce_rowmax_##SUFFIX(zr, C);                                                 \
            const T zy = zr[y];                                                                    \
            const T smooth = eps_ > 0 ? ce_smooth_##SUFFIX(zr, w, m, C) : (T)0;                    \
            T s;                                                                                   \
            if (gr) {                                                                              \
                s = ce_expsum_##SUFFIX(zr, gr, m, C);                                              \
            } else {                                                                               \
                s = 0;                                                                             \
                for (int64_t c = 0; c < C; ++c) s += EXP(zr[c] - m);                               \
            }                                                                                      \
            const T ls = LOG(s);                                                                   \
            const T b = ((T)1 - eps) * wy;                                                         \
            T l = b * ((m - zy) + ls);                                                             \
            if (eps_ > 0) l += ceps * (smooth + W * ls);                                           \
            if (loss) loss[n] = l;                                                                 \
            acc += (double)l;                                                                      \
            if (!gr) continue;                                                                     \
            const T sc = (T)alpha * (scale ? scale[n * scale_step] : (T)1);                        \
            const T k = sc * (b + ceps * W) / s;                                                   \
            if (eps_ > 0 && w) {                                                                   \
                const T cw = sc * ceps;                                                            \
                for (int64_t c = 0; c < C; ++c) gr[c] = k * gr[c] - cw * w[c];                     \
            } else if (eps_ > 0) {                                                                 \
                const T cw = sc * ceps;                                                            \
                for (int64_t c = 0; c < C; ++c) gr[c] = k * gr[c] - cw;                            \
            } else {                                                                               \
                for (int64_t c = 0; c < C; ++c) gr[c] = k * gr[c];                                 \
            }                                                                                      \
            gr[y] -= sc * b;                                                                       \
        }                                                                                          \
        *partial = acc;                                                                            \
        return -1;                                                                                 \
    }                                                                                              \
    /* with `total`, total[0] = (the chunks' loss sums, in chunk order) / total_div; returns -1,  \
       or the first bad row over all chunks (the total then unwritten) */                         \
    TORCHFF_EXPORT int64_t torchff_ce_rows_##SUFFIX(                                               \
        const T *z, const int64_t *t, const T *w, const T *scale, int64_t scale_step, double alpha, \
        T *g, T *loss, T *total, double total_div, int64_t C, int64_t ignore_index, double eps_,    \
        int64_t rows) {                                                                            \
        const int chunks = torchff_chunks(rows, rows * C);                                         \
        int64_t bad[chunks];                                                                       \
        double partial[chunks];                                                                    \
        for (int k = 0; k < chunks; ++k) partial[k] = 0.0;                                         \
        TORCHFF_FOR_CHUNKS(chunks, rows, 1,                                                        \
                           bad[chunk] = ce_rows_range_##SUFFIX(z, t, w, scale, scale_step, alpha,  \
                                                               g, loss, partial + chunk, C,        \
                                                               ignore_index, eps_, begin, end));   \
        for (int k = 0; k < chunks; ++k)                                                           \
            if (bad[k] >= 0) return bad[k];                                                        \
        if (total) {                                                                               \
            double acc = 0;                                                                        \
            for (int k = 0; k < chunks; ++k) acc += partial[k];                                    \
            *total = (T)(acc / total_div);                                                         \
        }                                                                                          \
        return -1;                                                                                 \
    }                                                                                              \
    static TORCHFF_TARGETS void ce_probs_range_##SUFFIX(const T *z, const T *t, const T *w, T *lp, \
                                                        T *loss, int64_t C, double eps_,          \
                                                        int64_t rows) {                           \
        const T keep = (T)(1.0 - eps_), ceps = (T)(eps_ / (double)C);                              \
        for (int64_t n = 0; n < rows; ++n) {                                                       \
            const T *zr = z + n * C, *tr = t + n * C;                                              \
            T *lr = lp + n * C;                                                                    \
            const T m = ce_rowmax_##SUFFIX(zr, C);                                                 \
            const T ls = LOG(ce_expsum_##SUFFIX(zr, lr, m, C));                                   \
            T acc[LANES] = {0};                                                                    \
            int64_t c = 0;                                                                         \
            for (; c + LANES <= C; c += LANES)                                                     \
                for (int l = 0; l < LANES; ++l) {                                                  \
                    const T v = (zr[c + l] - m) - ls;                                              \
                    lr[c + l] = v;                                                                 \
                    acc[l] += (w ? w[c + l] : (T)1) * (keep * tr[c + l] + ceps) * v;               \
                }                                                                                  \
            T total = 0;                                                                           \
            for (; c < C; ++c) {                                                                   \
                const T v = (zr[c] - m) - ls;                                                      \
                lr[c] = v;                                                                         \
                total += (w ? w[c] : (T)1) * (keep * tr[c] + ceps) * v;                            \
            }                                                                                      \
            for (int l = 0; l < LANES; ++l) total += acc[l];                                       \
            loss[n] = -total;                                                                      \
        }                                                                                          \
    }                                                                                              \
    static TORCHFF_TARGETS void ce_probs_backward_range_##SUFFIX(                                  \
        const T *go, int64_t go_step, double alpha, const T *lp, const T *t, const T *w, T *gz,    \
        T *gt, int64_t C, double eps_, int64_t rows) {                                             \
        const T keep = (T)(1.0 - eps_), ceps = (T)(eps_ / (double)C);                              \
        for (int64_t n = 0; n < rows; ++n) {                                                       \
            const T gn = (T)alpha * go[n * go_step];                                               \
            const T *lr = lp + n * C, *tr = t + n * C;                                             \
            if (gz) {                                                                              \
                T acc[LANES] = {0};                                                                \
                int64_t c = 0;                                                                     \
                for (; c + LANES <= C; c += LANES)                                                 \
                    for (int l = 0; l < LANES; ++l)                                                \
                        acc[l] += (w ? w[c + l] : (T)1) * (keep * tr[c + l] + ceps);               \
                T S = 0;                                                                           \
                for (; c < C; ++c) S += (w ? w[c] : (T)1) * (keep * tr[c] + ceps);                 \
                for (int l = 0; l < LANES; ++l) S += acc[l];                                       \
                T *out = gz + n * C;                                                               \
                const T gS = gn * S;                                                               \
                if (w) {                                                                           \
                    for (c = 0; c < C; ++c)                                                        \
                        out[c] = gS * EXP(lr[c]) - gn * w[c] * (keep * tr[c] + ceps);              \
                } else {                                                                           \
                    for (c = 0; c < C; ++c) out[c] = gS * EXP(lr[c]) - gn * (keep * tr[c] + ceps); \
                }                                                                                  \
            }                                                                                      \
            if (gt) {                                                                              \
                T *out = gt + n * C;                                                               \
                const T f = -gn * keep;                                                            \
                if (w) {                                                                           \
                    for (int64_t c = 0; c < C; ++c) out[c] = f * w[c] * lr[c];                     \
                } else {                                                                           \
                    for (int64_t c = 0; c < C; ++c) out[c] = f * lr[c];                            \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_ce_probs_##SUFFIX(const T *z, const T *t, const T *w, T *lp,       \
                                                  T *loss, int64_t C, double eps_, int64_t rows) { \
        TORCHFF_FOR_CHUNKS(torchff_chunks(rows, rows * C), rows, 1,                                \
                           ce_probs_range_##SUFFIX(z + begin * C, t + begin * C, w, lp + begin * C, \
                                                   loss + begin, C, eps_, end - begin));           \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_ce_probs_backward_##SUFFIX(                                        \
        const T *go, int64_t go_step, double alpha, const T *lp, const T *t, const T *w, T *gz,    \
        T *gt, int64_t C, double eps_, int64_t rows) {                                             \
        TORCHFF_FOR_CHUNKS(torchff_chunks(rows, rows * C), rows, 1,                                \
                           ce_probs_backward_range_##SUFFIX(                                       \
                               go + begin * go_step, go_step, alpha, lp + begin * C,               \
                               t + begin * C, w, gz ? gz + begin * C : gz, gt ? gt + begin * C : gt, \
                               C, eps_, end - begin));                                             \
    }

TORCHFF_CE(float, f32, torchff_expf, logf)
TORCHFF_CE(double, f64, ff_exp, log)
