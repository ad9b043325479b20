/* Type-generic helpers for the *_impl.h kernel bodies, which are compiled once per dtype.
 * Before including a body, a kernel file defines T (float or double) and SFX(name). */
#ifndef MG_TYPEDEFS_H
#define MG_TYPEDEFS_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "fastmath.h"

#define MG_PARALLEL_MIN 32768 /* below this many elements a thread team costs more than it saves */
#define MG_MAX_DIMS 64

#endif
