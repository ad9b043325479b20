/* Elementwise unary, binary and where kernels over N-d shapes (see elementwise_impl.h). */
#include <string.h>

#include "minigrad.h"
#include "typedefs.h"

#define T float
#define SFX(name) name##_f32
#define M(fn) fn##f
#include "elementwise_impl.h"
#undef T
#undef SFX
#undef M

#define T double
#define SFX(name) name##_f64
#define M(fn) fn
#include "elementwise_impl.h"
