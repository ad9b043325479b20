/* Fused NN kernels and optimizer updates (see fused_impl.h). */
#include "minigrad.h"
#include "typedefs.h" /* <omp.h> too, with OpenMP */

#define T float
#define SFX(name) name##_f32
#define M(fn) fn##f
#include "fused_impl.h"
#undef T
#undef SFX
#undef M

#define T double
#define SFX(name) name##_f64
#define M(fn) fn
#include "fused_impl.h"
