/*
 * torchff_split: the chunks torchff_parallel.h makes of n items, for the tests
 * (tests/test_native.py): writes the chunk count + 1 boundaries (0, ..., n) to `bounds`, which
 * holds room for omp_get_max_threads() + 1 entries, and returns the chunk count.
 */
#include <stdint.h>

#include "torchff_api.h"
#include "torchff_kernels.h"
#include "torchff_parallel.h"

TORCHFF_EXPORT int64_t torchff_split(int64_t n, int64_t align, int64_t work, int64_t *bounds) {
    const int chunks = torchff_chunks(n, work);
    bounds[0] = 0;
    for (int k = 0; k < chunks; ++k) {
        int64_t begin, end;
        torchff_range(n, align, chunks, k, &begin, &end);
        bounds[k + 1] = end;
    }
    if (chunks == 1) bounds[1] = n;
    return chunks;
}

/* _OPENMP (the OpenMP version the library was built with), or 0 without OpenMP */
TORCHFF_EXPORT int64_t torchff_openmp(void) {
#ifdef _OPENMP
    return _OPENMP;
#else
    return 0;
#endif
}
