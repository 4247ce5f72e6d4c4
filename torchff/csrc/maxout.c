/*
 * Maxout (torch.ops.torchff.maxout / maxout_backward): the group maximum and its uint8 winner
 * index in one pass, and the backward that scatters the output gradient onto the winners, for
 * contiguous CPU float32 and float64 arrays. Plain C, no Python or torch headers
 * (torchff/kernels/maxout.py calls these through torchff.kernels._c).
 *
 * Layout: the input is (rows, k, inner) (rows = the dims before the maxout dim times the units,
 * k = pieces, inner = the dims after it); the output and the index are (rows, inner). The
 * exported functions take the whole arrays and split the n output elements over threads
 * (torchff_parallel.h); each chunk's worker handles the output elements [start, start + n) of
 * that (rows, inner) flattening, where start = out - out0 (its output-shaped pointers offset
 * to the chunk, the input-shaped one the base).
 *
 * Winner: the first maximal piece; in a group holding a nan, the first nan (torch.max's rule):
 *   take_j = (v_j > best) | (v_j != v_j & best == best)
 * which is false for every piece after a nan has been taken, and for ties.
 * Every loop is branch-free (selects), so that compilers vectorize it.
 */
#include <stdint.h>

#include "torchff_api.h"
#include "torchff_kernels.h"
#include "torchff_parallel.h"

/* groups per block on the inner == 1 path: the outputs being updated stay in L1 */
#define TORCHFF_MAXOUT_BLOCK 1024

#define TORCHFF_MAXOUT(T, SUFFIX)                                                                  \
    static inline void torchff_maxout_seg_##SUFFIX(const T *x, T *out, uint8_t *index, int64_t k,         \
                                            int64_t stride, int64_t i0, int64_t i1) {              \
        /* one row of the (rows, k, inner) input; pieces `stride` apart, outputs i0 .. i1 - 1 */   \
        for (int64_t i = i0; i < i1; ++i) {                                                        \
            out[i] = x[i];                                                                         \
            index[i] = 0;                                                                          \
        }                                                                                          \
        for (int64_t j = 1; j < k; ++j) {                                                          \
            const T *xj = x + j * stride;                                                          \
            const uint8_t jj = (uint8_t)j;                                                         \
            for (int64_t i = i0; i < i1; ++i) {                                                    \
                const T v = xj[i], best = out[i];                                                  \
                const int take = (v > best) | ((v != v) & (best == best));                         \
                out[i] = take ? v : best;                                                          \
                index[i] = take ? jj : index[i];                                                   \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    static TORCHFF_TARGETS void maxout_range_##SUFFIX(T *out, uint8_t *index, const T *x, const T *out0,    \
                                             int64_t k, int64_t inner, int64_t n) {                \
        const int64_t start = out - out0, end = start + n;                                         \
        T *o = out - start;                                                                        \
        uint8_t *ix = index - start;                                                               \
        if (inner == 1) { /* groups of k consecutive pieces */                                     \
            for (int64_t b = start; b < end; b += TORCHFF_MAXOUT_BLOCK) {                          \
                const int64_t e = b + TORCHFF_MAXOUT_BLOCK < end ? b + TORCHFF_MAXOUT_BLOCK : end; \
                for (int64_t g = b; g < e; ++g) {                                                  \
                    o[g] = x[g * k];                                                               \
                    ix[g] = 0;                                                                     \
                }                                                                                  \
                for (int64_t j = 1; j < k; ++j) {                                                  \
                    const uint8_t jj = (uint8_t)j;                                                 \
                    for (int64_t g = b; g < e; ++g) {                                              \
                        const T v = x[g * k + j], best = o[g];                                     \
                        const int take = (v > best) | ((v != v) & (best == best));                 \
                        o[g] = take ? v : best;                                                    \
                        ix[g] = take ? jj : ix[g];                                                 \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t m = start; m < end;) { /* row by row, contiguous along inner */              \
            const int64_t r = m / inner, i0 = m - r * inner;                                       \
            const int64_t i1 = inner < i0 + (end - m) ? inner : i0 + (end - m);                    \
            torchff_maxout_seg_##SUFFIX(x + r * k * inner, o + r * inner, ix + r * inner, k,       \
                                        inner, i0, i1);                                            \
            m += i1 - i0;                                                                          \
        }                                                                                          \
    }                                                                                              \
    static TORCHFF_TARGETS void maxout_backward_range_##SUFFIX(const T *grad, const uint8_t *index,         \
                                                      T *grad_in, const T *grad0, int64_t k,       \
                                                      int64_t inner, int64_t n) {                  \
        /* grad_in (rows, k, inner) = grad where the piece is the winner, 0 elsewhere */           \
        const int64_t start = grad - grad0, end = start + n;                                       \
        const T *g = grad - start;                                                                 \
        const uint8_t *ix = index - start;                                                         \
        if (inner == 1) {                                                                          \
            for (int64_t e = start; e < end; ++e) {                                                \
                const T v = g[e];                                                                  \
                const int64_t w = ix[e];                                                           \
                T *dst = grad_in + e * k;                                                          \
                for (int64_t j = 0; j < k; ++j) dst[j] = j == w ? v : (T)0;                        \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t m = start; m < end;) {                                                        \
            const int64_t r = m / inner, i0 = m - r * inner;                                       \
            const int64_t i1 = inner < i0 + (end - m) ? inner : i0 + (end - m);                    \
            const T *gr = g + r * inner;                                                           \
            const uint8_t *xr = ix + r * inner;                                                    \
            for (int64_t j = 0; j < k; ++j) {                                                      \
                T *dst = grad_in + (r * k + j) * inner;                                            \
                const uint8_t jj = (uint8_t)j;                                                     \
                for (int64_t i = i0; i < i1; ++i) dst[i] = xr[i] == jj ? gr[i] : (T)0;             \
            }                                                                                      \
            m += i1 - i0;                                                                          \
        }                                                                                          \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_maxout_##SUFFIX(T *out, uint8_t *index, const T *x, int64_t k,    \
                                                int64_t inner, int64_t n) {                       \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n * k), n, 1,                                         \
                           maxout_range_##SUFFIX(out + begin, index + begin, x, out, k, inner,     \
                                                 end - begin));                                    \
    }                                                                                              \
    TORCHFF_EXPORT void torchff_maxout_backward_##SUFFIX(const T *grad, const uint8_t *index,     \
                                                         T *grad_in, int64_t k, int64_t inner,    \
                                                         int64_t n) {                             \
        TORCHFF_FOR_CHUNKS(torchff_chunks(n, n * k), n, 1,                                         \
                           maxout_backward_range_##SUFFIX(grad + begin, index + begin, grad_in,    \
                                                          grad, k, inner, end - begin));           \
    }

TORCHFF_MAXOUT(float, f32)
TORCHFF_MAXOUT(double, f64)
