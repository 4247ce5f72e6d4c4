/*
 * Splitting a kernel's work over threads, in C: OpenMP, which shares torch's own thread pool.
 *
 * torch's CPU wheels run their kernels on OpenMP (libgomp.so.1, shipped in torch/lib). The C
 * library is built with -fopenmp and loaded after torch, so the dynamic loader resolves its
 * libgomp.so.1 to the one torch loaded: torchff's kernels and torch's use one team of threads,
 * sized by torch.set_num_threads (omp_set_num_threads on the calling thread). A second pool of
 * our own would compete with torch's threads, which spin for a while after each torch kernel.
 * Without OpenMP (a compiler without it) every kernel runs on the calling thread.
 *
 *   const int chunks = torchff_chunks(n, work);
 *   TORCHFF_FOR_CHUNKS(chunks, n, align, { ... chunk, begin, end ... });
 *
 * splits [0, n) items (elements or rows) into `chunks` ranges [begin, end), every boundary but
 * the last a multiple of `align`, one per thread, chunk = 0, 1, ...; a range may be empty. One
 * chunk (fewer than 2 * TORCHFF_MIN_CHUNK elements of `work`, one thread, or already inside a
 * parallel region) runs on the calling thread. A caller that reduces declares `chunks` slots
 * (zeroed) and adds them in chunk order after the loop: the result does not depend on which
 * thread ran which chunk.
 */
#ifndef TORCHFF_PARALLEL_H
#define TORCHFF_PARALLEL_H

#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* elements per thread below which a kernel stays on the calling thread */
#define TORCHFF_MIN_CHUNK 65536

static inline int torchff_chunks(int64_t n, int64_t work) {
#ifdef _OPENMP
    if (n < 2 || work < 2 * TORCHFF_MIN_CHUNK || omp_in_parallel()) return 1;
    const int64_t most = work / TORCHFF_MIN_CHUNK;
    int64_t t = omp_get_max_threads();
    if (t > most) t = most;
    if (t > n) t = n;
    return t < 1 ? 1 : (int)t;
#else
    (void)n;
    (void)work;
    return 1;
#endif
}

/* [begin, end) of chunk k of `chunks` over n items, aligned to `align` */
static inline void torchff_range(int64_t n, int64_t align, int chunks, int k, int64_t *begin, int64_t *end) {
    int64_t per = (n + chunks - 1) / chunks;
    per = (per + align - 1) / align * align;
    const int64_t b = per * k;
    *begin = b < n ? b : n;
    *end = b + per < n ? b + per : n;
}

#ifdef _OPENMP
#define TORCHFF_OMP_PARALLEL _Pragma("omp parallel for schedule(static, 1) num_threads(chunks_)")
#else
#define TORCHFF_OMP_PARALLEL
#endif

#define TORCHFF_FOR_CHUNKS(CHUNKS, N, ALIGN, BODY)                                                 \
    do {                                                                                           \
        const int chunks_ = (CHUNKS);                                                              \
        const int64_t n_ = (N), align_ = (ALIGN);                                                  \
        if (chunks_ <= 1) {                                                                        \
            const int chunk = 0;                                                                   \
            const int64_t begin = 0, end = n_;                                                     \
            (void)chunk;                                                                           \
            BODY;                                                                                  \
        } else {                                                                                   \
            TORCHFF_OMP_PARALLEL                                                                   \
            for (int chunk = 0; chunk < chunks_; ++chunk) {                                        \
                int64_t begin, end;                                                                \
                torchff_range(n_, align_, chunks_, chunk, &begin, &end);                           \
                BODY;                                                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#endif
