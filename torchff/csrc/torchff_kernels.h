/*
 * The entry points of the C library: every function module.c makes a Python function of
 * (torchff._kernels.<name>, called by the op modules of torchff/kernels/). Each kernel is built
 * for float32 (suffix f32, T = float) and float64 (f64, T = double); its arrays are contiguous,
 * its last argument the element (or row) count. The C files that define them include this
 * header, so the compiler checks each definition against its declaration here.
 */
#ifndef TORCHFF_KERNELS_H
#define TORCHFF_KERNELS_H

#include <stdint.h>

#define TORCHFF_DECLARE_KERNELS(T, SUFFIX)                                                         \
    /* rectifier.c */                                                                              \
    void torchff_leaky_mask_##SUFFIX(const T *x, T *out, uint8_t *mask, double a, int64_t n);     \
    void torchff_leaky_backward_##SUFFIX(const T *g, const uint8_t *mask, T *out, double a,       \
                                         int64_t n);                                               \
    void torchff_abs_sign_##SUFFIX(const T *x, T *out, int8_t *sign, int64_t n);                  \
    void torchff_times_small_##SUFFIX(const T *g, const int8_t *small, T *out, int64_t n);        \
    void torchff_step_##SUFFIX(const T *x, T *out, int64_t n);                                    \
    void torchff_step_inside_##SUFFIX(const T *x, T *out, uint8_t *inside, int64_t n);            \
    void torchff_prelu_##SUFFIX(const T *x, const T *w, T *out, uint8_t *mask, int64_t C,         \
                                int64_t inner, int64_t n);                                         \
    void torchff_prelu_backward_mask_##SUFFIX(const T *g, const uint8_t *mask, const T *w, T *gi, \
                                              int64_t C, int64_t inner, int64_t n);                \
    int64_t torchff_prelu_backward_##SUFFIX(const T *g, const T *x, const T *w, T *gi, T *gw,     \
                                            int64_t C, int64_t inner, int64_t n);                  \
    /* maxout.c */                                                                                 \
    void torchff_maxout_##SUFFIX(T *out, uint8_t *index, const T *x, int64_t k, int64_t inner,    \
                                 int64_t n);                                                       \
    void torchff_maxout_backward_##SUFFIX(const T *grad, const uint8_t *index, T *grad_in,        \
                                          int64_t k, int64_t inner, int64_t n);                    \
    /* cross_entropy.c */                                                                          \
    int64_t torchff_ce_rows_##SUFFIX(const T *z, const int64_t *t, const T *w, const T *scale,    \
                                     int64_t scale_step, double alpha, T *g, T *loss, T *total,   \
                                     double total_div, int64_t C, int64_t ignore_index,           \
                                     double eps, int64_t rows);                                    \
    double torchff_ce_weight_sum_##SUFFIX(const int64_t *t, const T *w, int64_t C,                \
                                          int64_t ignore_index, int64_t rows);                     \
    void torchff_ce_probs_##SUFFIX(const T *z, const T *t, const T *w, T *lp, T *loss, int64_t C, \
                                   double eps, int64_t rows);                                      \
    void torchff_ce_probs_backward_##SUFFIX(const T *go, int64_t go_step, double alpha,           \
                                            const T *lp, const T *t, const T *w, T *gz, T *gt,    \
                                            int64_t C, double eps, int64_t rows);                  \
    /* smooth.c */                                                                                 \
    void torchff_softplus_##SUFFIX(const T *x, T *out, double beta, double threshold, int64_t n); \
    /* losses.c */                                                                                 \
    void torchff_bce_with_logits_##SUFFIX(T *out, T *total, const T *z, const T *y, const T *w,   \
                                          const T *pw, double scale, int64_t n);                   \
    void torchff_bce_with_logits_backward_##SUFFIX(T *gz, T *gy, const T *g, int64_t g_full,      \
                                                   double scale, const T *z, const T *y,          \
                                                   const T *w, const T *pw, int64_t n);            \
    void torchff_regression_##SUFFIX(T *loss, T *total, const T *x, const T *y, const T *a,       \
                                     int64_t kind, int64_t full, double eps, double scale,        \
                                     int64_t n);                                                   \
    void torchff_regression_backward_##SUFFIX(T *gd, T *ga, const T *g, int64_t g_full,           \
                                              double scale, const T *x, const T *y, const T *a,   \
                                              int64_t kind, double eps, int64_t n);

TORCHFF_DECLARE_KERNELS(float, f32)
TORCHFF_DECLARE_KERNELS(double, f64)

/* parallel.c, for the tests: the chunks of n items (torchff_parallel.h), and the OpenMP version */
int64_t torchff_split(int64_t n, int64_t align, int64_t work, int64_t *bounds);
int64_t torchff_openmp(void);

#endif
