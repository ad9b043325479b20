"""The C backend: the same contract as ``numpy_backend``, computed by the kernels in csrc/.

This module is the only place that hands pointers to C. Before each call it checks what the
kernel assumes: float32/float64 of one dtype, element-aligned strides, shapes that fit int64.
Outputs are allocated here by numpy; C only writes into them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad._kernels import ffi, lib  # raises ImportError when the extension was not built
from ._common import broadcast_shape

name = "c"

_CTYPE: dict[np.dtype, str] = {np.dtype(np.float32): "float *", np.dtype(np.float64): "double *"}
_SUFFIX: dict[np.dtype, str] = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_FUNCS: dict[tuple[str, np.dtype], Any] = {}  # cffi functions

_UNARY = {
    "neg": lib.MG_NEG, "exp": lib.MG_EXP, "log": lib.MG_LOG, "sqrt": lib.MG_SQRT,
    "tanh": lib.MG_TANH, "sigmoid": lib.MG_SIGMOID, "relu": lib.MG_RELU,
    "softplus": lib.MG_SOFTPLUS, "abs": lib.MG_ABS, "pow_scalar": lib.MG_POW_SCALAR,
    "clip": lib.MG_CLIP, "copy": lib.MG_COPY,
}  # fmt: skip
_BINARY = {
    "add": lib.MG_ADD, "sub": lib.MG_SUB, "mul": lib.MG_MUL, "div": lib.MG_DIV,
    "maximum": lib.MG_MAXIMUM, "minimum": lib.MG_MINIMUM, "eq": lib.MG_EQ,
    "relu_bwd": lib.MG_RELU_BWD, "sigmoid_bwd": lib.MG_SIGMOID_BWD,
    "tanh_bwd": lib.MG_TANH_BWD, "abs_bwd": lib.MG_ABS_BWD,
    "softplus_bwd": lib.MG_SOFTPLUS_BWD, "sqrt_bwd": lib.MG_SQRT_BWD,
    "pow_bwd": lib.MG_POW_BWD, "clip_bwd": lib.MG_CLIP_BWD,
}  # fmt: skip
_ACT = {"none": lib.MG_ACT_NONE, "relu": lib.MG_ACT_RELU, "sigmoid": lib.MG_ACT_SIGMOID,
        "tanh": lib.MG_ACT_TANH}  # fmt: skip
_INT64_MAX = 2**63 - 1

UNARY_OPS = tuple(_UNARY)
BINARY_OPS = tuple(_BINARY)


def _kernel(base: str, dtype: np.dtype):
    """lib.<base>_f32 or lib.<base>_f64, refusing anything that is not float32/float64."""
    key = (base, dtype)
    fn = _FUNCS.get(key)
    if fn is None:
        if dtype not in _SUFFIX:
            raise TypeError(f"the C kernels take float32 or float64 arrays, got {dtype}")
        fn = _FUNCS[key] = getattr(lib, f"{base}_{_SUFFIX[dtype]}")
    return fn


_BUFFER: dict[np.dtype, str] = {np.dtype(np.float32): "float[]", np.dtype(np.float64): "double[]"}


def _ptr(a: np.ndarray):
    """Pointer to a's first element. The caller keeps `a` alive for the duration of the call.

    Contiguous arrays go through ffi.from_buffer (a fraction of a microsecond). A column-major
    array (a transposed weight, `dy.T`) is a.T row-major, with the same first element. Other
    strided views, which the buffer protocol refuses, go through their data address, which
    costs ~2 us (numpy builds the __array_interface__ dict)."""
    flags = a.flags
    if flags.c_contiguous:
        return ffi.from_buffer(_BUFFER[a.dtype], a)
    if flags.f_contiguous:
        return ffi.from_buffer(_BUFFER[a.dtype], a.T)
    return ffi.cast(_CTYPE[a.dtype], a.__array_interface__["data"][0])


# the per-call fast paths look their flat kernels up by dtype alone; the kernels take untyped
# pointers, so a dtype being a key here is what admits an array to them
_FLAT_UNARY = {dt: _kernel("mg_unary_flat", dt) for dt in _SUFFIX}
_FLAT_BINARY = {dt: _kernel("mg_binary_flat", dt) for dt in _SUFFIX}
_from_buffer = ffi.from_buffer
_empty = np.empty


def _usable(a: np.ndarray) -> np.ndarray:
    """a itself when C can walk it by element strides, else a contiguous copy.

    numpy's `aligned` flag says the data pointer and every stride are multiples of the
    element's alignment, which for float32/float64 is its size."""
    if a.flags.aligned and a.dtype.alignment == a.itemsize:
        return a
    return np.array(a, order="C")  # a fresh array: aligned (ascontiguousarray keeps a misaligned one)


def _carray(a: np.ndarray) -> np.ndarray:
    """a, or a copy of it (same shape, 0-d included), C-contiguous and aligned: what a kernel
    taking a plain pointer needs."""
    flags = a.flags
    return a if flags.c_contiguous and flags.aligned else np.array(a, order="C")


def _check_size(shape: tuple[int, ...]) -> None:
    n = 1
    for s in shape:
        n *= s
    if n > _INT64_MAX:
        raise OverflowError(f"shape {shape} has more elements than a 64-bit index can count")


def _coalesce(shape: tuple[int, ...], strides_list: list[list[int]]):
    """Drop size-1 dims and merge neighbours that are contiguous in every operand."""
    dims = [i for i, s in enumerate(shape) if s != 1]
    out_shape: list[int] = []
    out_strides: list[list[int]] = [[] for _ in strides_list]
    for i in dims:
        if out_shape and all(st[-1] == shape[i] * src[i] for st, src in zip(out_strides, strides_list)):
            out_shape[-1] *= shape[i]
            for st, src in zip(out_strides, strides_list):
                st[-1] = src[i]
        else:
            out_shape.append(shape[i])
            for st, src in zip(out_strides, strides_list):
                st.append(src[i])
    return out_shape, out_strides


def _broadcast_strides(a: np.ndarray, shape: tuple[int, ...]) -> list[int]:
    """Element strides of `a` read as `shape`: 0 along broadcast dims."""
    pad = len(shape) - a.ndim
    strides = [0] * pad
    for dim, (n, s) in enumerate(zip(a.shape, a.strides)):
        strides.append(0 if n == 1 and shape[pad + dim] != 1 else s // a.itemsize)
    return strides


def _i64(values: list[int]):
    return ffi.new("int64_t[]", values) if values else ffi.NULL


_ONE = ffi.new("int64_t[]", [1])  # a unit stride, shared by all calls (C only reads it)


def unary(op: str, x: np.ndarray, p: float = 0.0, q: float = 0.0) -> np.ndarray:
    out = _empty(x.shape, x.dtype)
    flat = _FLAT_UNARY.get(x.dtype)
    if flat is not None:  # the common case: one flat loop, no shape arrays
        try:
            px = _from_buffer(x)  # ValueError unless x is C-contiguous
        except ValueError:
            pass
        else:
            flat(_UNARY[op], x.size, px, _from_buffer(out), p, q)
            return out
    kernel = _kernel("mg_unary", x.dtype)  # raises for anything but float32/float64
    x = _usable(x)
    if x.size == 0:
        return out
    shape, (xs,) = _coalesce(x.shape, [[s // x.itemsize for s in x.strides]])
    kernel(
        _UNARY[op], len(shape), _i64(shape), _ptr(x), _i64(xs), _ptr(out), p, q
    )
    return out


def binary(op: str, a: np.ndarray, b: np.ndarray, p: float = 0.0, q: float = 0.0) -> np.ndarray:
    dtype = a.dtype
    flat = _FLAT_BINARY.get(dtype)
    if flat is not None and b.dtype is dtype:
        # same shape, or one side a single value: one flat loop, no shape/stride arrays
        shape = a.shape
        if shape == b.shape:
            as_ = bs = 1
        elif b.size == 1 and b.ndim <= a.ndim:
            as_, bs = 1, (1 if a.size == 1 else 0)
        elif a.size == 1 and a.ndim <= b.ndim:
            shape, as_, bs = b.shape, 0, 1
        else:
            as_ = -1
        if as_ >= 0:
            try:  # from_buffer raises ValueError unless the array is C-contiguous
                pa, pb = _from_buffer(a), _from_buffer(b)
            except ValueError:
                pass
            else:
                out = _empty(shape, dtype)
                flat(_BINARY[op], out.size, pa, as_, pb, bs, _from_buffer(out), p, q)
                return out
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: operands must share a dtype, got {a.dtype} and {b.dtype}")
    a, b = _usable(a), _usable(b)
    shape = broadcast_shape(op, a.shape, b.shape)
    _check_size(shape)
    out = np.empty(shape, dtype=a.dtype)
    if out.size == 0:
        return out
    cshape, (as_, bs) = _coalesce(shape, [_broadcast_strides(a, shape), _broadcast_strides(b, shape)])
    _kernel("mg_binary", a.dtype)(
        _BINARY[op], len(cshape), _i64(cshape), _ptr(a), _i64(as_), _ptr(b), _i64(bs), _ptr(out),
        p, q,
    )  # fmt: skip
    return out


def where(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cond = _usable(np.asarray(cond, dtype=np.bool_))
    a, b = _usable(a), _usable(b)
    shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    out = np.empty(shape, dtype=a.dtype)
    if out.size == 0:
        return out
    strides = [_broadcast_strides(cond, shape), _broadcast_strides(a, shape), _broadcast_strides(b, shape)]
    cshape, (cs, as_, bs) = _coalesce(shape, strides)
    cptr = ffi.cast("uint8_t *", cond.__array_interface__["data"][0])
    _kernel("mg_where", a.dtype)(
        len(cshape), _i64(cshape), cptr, _i64(cs), _ptr(a), _i64(as_), _ptr(b), _i64(bs), _ptr(out)
    )
    return out


def reduce(op: str, x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    flags = x.flags
    plain = flags.c_contiguous and flags.aligned and x.size  # C may read it as a flat array
    # a full reduction: one flat run. (The leading-axes path below covers it too, with cols = 1,
    # but its extra Python costs 0.7 us per call: a.sum() 5.1 -> 5.9 us.)
    if plain and len(axes) == x.ndim:
        out = np.empty((), dtype=x.dtype)
        _kernel("mg_reduce", x.dtype)(
            lib.MG_SUM if op == "sum" else lib.MG_MAX, 1, 1, _i64([x.size]), _ptr(x), _ONE, _ptr(out)
        )
        return out.reshape((1,) * x.ndim) if keepdims else out
    nax = len(axes)
    if plain and nax and axes == tuple(range(nax)):
        # leading axes of a contiguous array (a sum over the batch): the kernel's column sum of
        # the 2-D (rows, cols) view, with no coalescing in Python
        out = np.empty(x.shape[nax:], dtype=x.dtype)
        cols = out.size
        dims = ffi.new("int64_t[4]", [cols, x.size // cols, 1, cols])  # shape, then strides
        _kernel("mg_reduce", x.dtype)(
            lib.MG_SUM if op == "sum" else lib.MG_MAX, 2, 1, dims, _ptr(x), dims + 2, _ptr(out)
        )
        return out.reshape((1,) * nax + out.shape) if keepdims else out
    x = _usable(x)
    keep = [d for d in range(x.ndim) if d not in axes]
    out_shape = tuple(x.shape[d] for d in keep)
    out = np.empty(out_shape, dtype=x.dtype)
    if out.size:
        estrides = [s // x.itemsize for s in x.strides]
        kshape, (ks,) = _coalesce(out_shape, [[estrides[d] for d in keep]])
        rshape, (rs,) = _coalesce(tuple(x.shape[d] for d in axes), [[estrides[d] for d in axes]])
        if x.size == 0:
            rshape, rs = [0], [1]
        _kernel("mg_reduce", x.dtype)(
            lib.MG_SUM if op == "sum" else lib.MG_MAX, len(kshape) + len(rshape), len(rshape),
            _i64(kshape + rshape), _ptr(x), _i64(ks + rs), _ptr(out),
        )  # fmt: skip
    if keepdims:
        out = out.reshape([1 if d in axes else n for d, n in enumerate(x.shape)])
    return out


def _gemm_operand(a: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(array, trans, ld): read a 2-D operand in place when it is row- or column-major."""
    rows, cols = a.shape
    item = a.itemsize
    s0, s1 = a.strides
    if (cols <= 1 or s1 == item) and (rows <= 1 or (s0 % item == 0 and s0 // item >= cols)):
        return a, 0, s0 // item if rows > 1 else max(cols, 1)
    if (rows <= 1 or s0 == item) and (cols <= 1 or (s1 % item == 0 and s1 // item >= rows)):
        return a, 1, s1 // item if cols > 1 else max(rows, 1)
    a = np.ascontiguousarray(a)
    return a, 0, max(cols, 1)


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, beta: float = 0.0) -> np.ndarray:
    """out = a @ b (+ beta * out) for 2-D a (m, k) and b (k, n); transposed views are not copied."""
    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=a.dtype)
    a, ta, lda = _gemm_operand(a)
    b, tb, ldb = _gemm_operand(b)
    _kernel("mg_gemm", a.dtype)(
        ta, tb, m, n, k, 1.0, _ptr(a), lda, _ptr(b), ldb, beta, _ptr(out), max(out.strides[0] // out.itemsize, 1)
    )
    return out


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b with numpy's batching rules for N-d operands (both at least 2-D)."""
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: operands must share a dtype, got {a.dtype} and {b.dtype}")
    a, b = _usable(a), _usable(b)
    if a.ndim == 2 and b.ndim == 2:
        return gemm(a, b)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    out = np.empty(batch + (a.shape[-2], b.shape[-1]), dtype=a.dtype)
    for idx in np.ndindex(*batch):
        gemm(a[idx], b[idx], out=out[idx])
    return out


def _linear_args(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, *outs: np.ndarray) -> tuple[int, int, int]:
    """(m, n, k) of a Linear layer, x (m, k) and w (n, k), after checking what the kernels assume
    of it: 2-D operands of one dtype, a bias of shape (n,) or None, and the output-shaped arrays
    in `outs` (g, y) of shape (m, n)."""
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"linear: input shape {x.shape} does not match weight shape {w.shape}")
    m, k = x.shape
    n = w.shape[0]
    dtype = x.dtype
    if w.dtype != dtype:
        _linear_mismatch(dtype, w, w.shape)
    if bias is not None and (bias.dtype != dtype or bias.shape != (n,)):
        _linear_mismatch(dtype, bias, (n,))
    for a in outs:  # plain loop and tests: this runs twice per Linear layer and step
        if a.dtype != dtype or a.shape != (m, n):
            _linear_mismatch(dtype, a, (m, n))
    return m, n, k


def _linear_mismatch(dtype: np.dtype, a: np.ndarray, shape: tuple[int, ...]):
    if a.dtype != dtype:
        raise TypeError(f"linear: operands must share a dtype, got {dtype} and {a.dtype}")
    raise ValueError(f"linear: got an array of shape {a.shape} where {shape} was expected")


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, act: str = "none") -> np.ndarray:
    """act(x @ w.T + b) for x (m, k), w (n, k), b (n,) or None: the GEMM and a fused bias +
    activation pass in one C call."""
    kernel = _kernel("mg_linear", x.dtype)
    m, n, k = _linear_args(x, w, b)
    buf = _BUFFER[x.dtype]
    y = _empty((m, n), x.dtype)
    kernel(_ACT[act], m, n, k, _from_buffer(buf, _carray(x)), _from_buffer(buf, _carray(w)),
           _from_buffer(buf, _carray(b)) if b is not None else ffi.NULL, _from_buffer(buf, y))  # fmt: skip
    return y


def linear_backward(g, x, w, y, act, need_x, need_w, need_bias):
    """(dx, dw, dbias) of y = act(x @ w.T + b) from g = dL/dy, each None unless asked for:
    dpre = g act'(y), dx = dpre @ w, dw = dpre.T @ x, dbias = column sums of dpre; one C call."""
    kernel = _kernel("mg_linear_bwd", x.dtype)
    m, n, k = _linear_args(x, w, None, g, y)
    if not (need_x or need_w or need_bias):
        return None, None, None
    dtype = x.dtype
    dx = _empty((m, k), dtype) if need_x else None
    dw = _empty((n, k), dtype) if need_w else None
    dbias = _empty(n, dtype) if need_bias else None
    dpre = _empty((m, n), dtype) if act != "none" else None
    buf, fb, null = _BUFFER[dtype], _from_buffer, ffi.NULL
    kernel(_ACT[act], m, n, k, fb(buf, _carray(g)), fb(buf, _carray(y)), fb(buf, _carray(x)),
           fb(buf, _carray(w)), null if dpre is None else fb(buf, dpre),
           null if dbias is None else fb(buf, dbias), null if dx is None else fb(buf, dx),
           null if dw is None else fb(buf, dw))  # fmt: skip
    return dx, dw, dbias


def bce_with_logits(x: np.ndarray, t: np.ndarray, reduction: str, with_grad: bool = False):
    """The loss; with_grad: (loss, sigmoid(x) - t), both from one pass over x and t."""
    x, t = _carray(x), _carray(t)
    out = np.empty_like(x) if reduction == "none" else None
    dsig = np.empty_like(x) if with_grad else None
    total = _kernel("mg_bce_logits", x.dtype)(
        x.size, _ptr(x), _ptr(t), _ptr(out) if out is not None else ffi.NULL,
        _ptr(dsig) if dsig is not None else ffi.NULL,
    )  # fmt: skip
    if out is None:
        if reduction == "mean":
            total = total / x.size if x.size else float("nan")  # a mean of nothing, as in numpy
        out = np.asarray(total, dtype=x.dtype)
    return (out, dsig) if with_grad else out


def gaussian_kl(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    mu, logvar = _carray(mu), _carray(logvar)
    n = mu.shape[-1] if mu.ndim else 1
    out = np.empty(mu.shape[:-1], dtype=mu.dtype)
    _kernel("mg_gaussian_kl", mu.dtype)(out.size, n, _ptr(mu), _ptr(logvar), _ptr(out))
    return out


def gaussian_kl_backward(
    mu: np.ndarray, logvar: np.ndarray, g: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(dmu, dlogvar) from g, the gradient of each row's KL: one value per row, or a single value
    that every row shares (a summed KL), which the kernel reads with stride 0."""
    mu, logvar = _carray(mu), _carray(logvar)
    rows = mu.shape[:-1]
    if g.size == 1 and g.ndim <= len(rows):
        g, gs = _carray(g), 0
    else:
        g, gs = _carray(np.broadcast_to(g, rows)), 1
    dmu, dlv = np.empty_like(mu), np.empty_like(mu)
    _kernel("mg_gaussian_kl_bwd", mu.dtype)(
        math.prod(rows), mu.shape[-1], _ptr(mu), _ptr(logvar), _ptr(g), gs,
        _ptr(dmu), _ptr(dlv),
    )  # fmt: skip
    return dmu, dlv


def _update_buffers(index: int | None, p: np.ndarray, g: np.ndarray, *state: np.ndarray) -> list:
    """Pointers to p, g and each state array for an in-place update kernel, after checking what it
    assumes: p and its state float32/float64, of one shape and dtype, contiguous, aligned and
    writable; g of p's shape and dtype (copied if it is not contiguous and aligned). `index` names
    the parameter in the error. Runs for every parameter at every step: the checks are a few
    compares, the messages are built only on failure."""
    shape, dtype = p.shape, p.dtype
    buf = _BUFFER.get(dtype)
    if buf is None or g.shape != shape or g.dtype != dtype or not p.flags.carray:
        _refuse_update(index, p, g, state)
    ptrs = [_from_buffer(buf, p), _from_buffer(buf, _carray(g))]
    for a in state:
        if a.shape != shape or a.dtype != dtype or not a.flags.carray:  # carray: C-contiguous, aligned, writable
            _refuse_update(index, p, g, state)
        ptrs.append(_from_buffer(buf, a))
    return ptrs


def _refuse_update(index: int | None, p: np.ndarray, g: np.ndarray, state: tuple[np.ndarray, ...]):
    """Raise the error _update_buffers found, naming the first problem."""
    what = "parameter" if index is None else f"parameter {index}"
    shape, dtype = p.shape, p.dtype
    if dtype not in _BUFFER:
        raise TypeError(f"{what}: the C kernels take float32 or float64 arrays, got {dtype}")
    for a in state:
        if a.shape != shape:
            raise ValueError(f"{what}: optimizer state has shape {a.shape}, the parameter has shape {shape}")
    if any(a.dtype != dtype or not a.flags.carray for a in (p, *state)):
        raise ValueError(f"{what}: parameters and optimizer state must be contiguous, writable arrays of one dtype")
    raise ValueError(f"{what}: gradient has shape {g.shape} {g.dtype}, the parameter has shape {shape} {dtype}")


_POINTERS: dict[np.dtype, str] = {np.dtype(np.float32): "float *[]", np.dtype(np.float64): "double *[]"}


def adam_step(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay) -> None:
    """One Adam update of every parameter (lists of arrays; steps: each one's step count, from
    1), in one C call per dtype. Every buffer is checked before anything is updated."""
    # per dtype: sizes, steps, then pointers to p, g, m, v
    groups: dict[np.dtype, tuple[list, ...]] = {}
    for i, (p, g, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        pp, pg, pm, pv = _update_buffers(i, p, g, m, v)
        group = groups.get(p.dtype)
        if group is None:
            group = groups[p.dtype] = ([], [], [], [], [], [])
        group[0].append(p.size)
        group[1].append(steps[i])
        group[2].append(pp)
        group[3].append(pg)
        group[4].append(pm)
        group[5].append(pv)
    for dtype, (sizes, counts, *pointers) in groups.items():
        ptrs = _POINTERS[dtype]
        _kernel("mg_adam", dtype)(
            len(sizes), ffi.new("int64_t[]", sizes), ffi.new("int64_t[]", counts),
            *(ffi.new(ptrs, column) for column in pointers), lr, beta1, beta2, eps, weight_decay,
        )  # fmt: skip


def sgd_step(params, grads, bufs, first_steps, lr, momentum, dampening, weight_decay, nesterov) -> None:
    """One SGD update of every parameter (lists of arrays; first_steps: whether each momentum
    buffer starts now). Every buffer is checked before anything is updated."""
    calls = [(_kernel("mg_sgd", p.dtype), p.size, *_update_buffers(i, p, g, buf), int(first))
             for i, (p, g, buf, first) in enumerate(zip(params, grads, bufs, first_steps))]  # fmt: skip
    for kernel, size, pp, pg, pb, first in calls:
        kernel(size, pp, pg, pb, lr, momentum, dampening, weight_decay, int(nesterov), first)


def info() -> dict:
    return {
        "compile_flags": ffi.string(lib.mg_build_flags()).decode(),
        "openmp": bool(lib.mg_openmp_enabled()),
        "num_threads": lib.mg_get_num_threads(),
        "gemm_kernel": ffi.string(lib.mg_gemm_path()).decode(),
    }


def set_num_threads(n: int) -> None:
    lib.mg_set_num_threads(n)
