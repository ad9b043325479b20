/* Sum and max over the trailing dimensions of a strided N-d array (see reduce_impl.h). */
#include "minigrad.h"
#include "typedefs.h"

#define T float
#define SFX(name) name##_f32
#include "reduce_impl.h"
#undef T
#undef SFX

#define T double
#define SFX(name) name##_f64
#include "reduce_impl.h"
