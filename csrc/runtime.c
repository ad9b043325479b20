/* Thread settings and build information: the only global state in the C side. */
#include "minigrad.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef MG_BUILD_FLAGS
#define MG_BUILD_FLAGS "unknown"
#endif

int mg_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int mg_get_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void mg_set_num_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

const char *mg_build_flags(void) { return MG_BUILD_FLAGS; }
