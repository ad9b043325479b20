"""Every differentiable op: a Function with forward and backward, both through the backend.

Gradients come back in the output's (broadcast) shape; ``autograd.unbroadcast`` folds them to
each input's shape. Shape-only ops (reshape, transpose, broadcast_to, indexing, concatenate,
stack) move data with numpy views and copies; all arithmetic goes through ``backend.current()``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from . import backend
from .backend._common import broadcast_shape
from . import tensor as _tensor_module
from .autograd import REGISTRY, Function
from .tensor import Tensor, _axes

be = backend.current  # the active backend module, looked up per call


# ---------------------------------------------------------------- binary elementwise
# be().binary raises the ValueError for shapes that do not broadcast (backend/_common.py)
class Add(Function):
    """a + b;  da = g, db = g"""

    op = "add"

    @staticmethod
    def forward(ctx, a, b):
        return be().binary("add", a, b)

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    """a - b;  da = g, db = -g"""

    op = "sub"

    @staticmethod
    def forward(ctx, a, b):
        return be().binary("sub", a, b)

    @staticmethod
    def backward(ctx, g):
        return g, (be().unary("neg", g) if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """a * b;  da = g b, db = g a"""

    op = "mul"
    saved_reads = (1, 0)  # b for da, a for db

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return be().binary("mul", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        da = be().binary("mul", g, b) if ctx.needs_input_grad[0] else None
        db = be().binary("mul", g, a) if ctx.needs_input_grad[1] else None
        return da, db


class Div(Function):
    """a / b;  da = g / b, db = -g a / b^2 = -(g / b) * out"""

    op = "div"

    @staticmethod
    def forward(ctx, a, b):
        out = be().binary("div", a, b)
        ctx.save_for_backward(b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        b, out = ctx.saved
        g_over_b = be().binary("div", g, b)
        db = be().unary("neg", be().binary("mul", g_over_b, out)) if ctx.needs_input_grad[1] else None
        return g_over_b, db


# ---------------------------------------------------------------- unary elementwise
class Neg(Function):
    """-x;  dx = -g"""

    op = "neg"

    @staticmethod
    def forward(ctx, x):
        return be().unary("neg", x)

    @staticmethod
    def backward(ctx, g):
        return be().unary("neg", g)


class PowScalar(Function):
    """x ** p for a constant p;  dx = g p x^(p-1)"""

    op = "pow"

    @staticmethod
    def forward(ctx, x, p):
        ctx.save_for_backward(x)
        return be().unary("pow_scalar", x, p)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return be().binary("pow_bwd", g, x, ctx.params["p"])


class Exp(Function):
    """e^x;  dx = g e^x = g y"""

    op = "exp"

    @staticmethod
    def forward(ctx, x):
        y = be().unary("exp", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return be().binary("mul", g, ctx.saved[0])


class Log(Function):
    """ln x;  dx = g / x"""

    op = "log"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return be().unary("log", x)

    @staticmethod
    def backward(ctx, g):
        return be().binary("div", g, ctx.saved[0])


class Sqrt(Function):
    """sqrt(x);  dx = g / (2 y)"""

    op = "sqrt"

    @staticmethod
    def forward(ctx, x):
        y = be().unary("sqrt", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return be().binary("sqrt_bwd", g, ctx.saved[0])


class Tanh(Function):
    """tanh x;  dx = g (1 - y^2)"""

    op = "tanh"

    @staticmethod
    def forward(ctx, x):
        y = be().unary("tanh", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return be().binary("tanh_bwd", g, ctx.saved[0])


class Sigmoid(Function):
    """1 / (1 + e^-x);  dx = g y (1 - y)"""

    op = "sigmoid"

    @staticmethod
    def forward(ctx, x):
        y = be().unary("sigmoid", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return be().binary("sigmoid_bwd", g, ctx.saved[0])


class Relu(Function):
    """max(x, 0);  dx = g [x > 0]"""

    op = "relu"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return be().unary("relu", x)

    @staticmethod
    def backward(ctx, g):
        return be().binary("relu_bwd", g, ctx.saved[0])


class Softplus(Function):
    """ln(1 + e^x), computed as max(x, 0) + ln(1 + e^-|x|);  dx = g sigmoid(x)"""

    op = "softplus"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return be().unary("softplus", x)

    @staticmethod
    def backward(ctx, g):
        return be().binary("softplus_bwd", g, ctx.saved[0])


class Abs(Function):
    """|x|;  dx = g sign(x)  (0 at x = 0)"""

    op = "abs"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return be().unary("abs", x)

    @staticmethod
    def backward(ctx, g):
        return be().binary("abs_bwd", g, ctx.saved[0])


class Clip(Function):
    """min(max(x, lo), hi);  dx = g [lo <= x <= hi]"""

    op = "clip"

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        return be().unary("clip", x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        return be().binary("clip_bwd", g, ctx.saved[0], ctx.params["lo"], ctx.params["hi"])


class Cast(Function):
    """x converted to another float dtype;  dx = g converted back"""

    op = "cast"

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.save_for_backward(x.dtype)
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.saved[0])


class Where(Function):
    """cond ? a : b (cond a constant boolean array);  da = g [cond], db = g [not cond]"""

    op = "where"

    @staticmethod
    def forward(ctx, a, b, cond):
        broadcast_shape("where", a.shape, b.shape)
        try:
            np.broadcast_shapes(cond.shape, a.shape, b.shape)
        except ValueError:
            raise ValueError(
                f"where: condition shape {cond.shape} does not broadcast with {a.shape} and {b.shape}"
            ) from None
        return be().where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        cond = ctx.params["cond"]
        zero = np.zeros((), dtype=g.dtype)
        da = be().where(cond, g, zero) if ctx.needs_input_grad[0] else None
        db = be().where(cond, zero, g) if ctx.needs_input_grad[1] else None
        return da, db


# ---------------------------------------------------------------- matmul
class MatMul(Function):
    """a @ b for 2-D or batched (N-d) operands;  da = g @ b^T, db = a^T @ g"""

    op = "matmul"
    saved_reads = (1, 0)  # b for da, a for db

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(
                f"matmul: operands must be at least 2-D, got shapes {a.shape} and {b.shape}; "
                "reshape a vector to (1, n) or (n, 1)"
            )
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} do not match "
                f"(inner dims {a.shape[-1]} != {b.shape[-2]})"
            )
        if a.shape[:-2] != b.shape[:-2]:  # equal batch dims (none, for 2-D) need no check
            try:
                np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
            except ValueError:
                raise ValueError(f"matmul: batch dims of {a.shape} and {b.shape} do not broadcast") from None
        ctx.save_for_backward(a, b)
        return be().matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        da = be().matmul(g, np.swapaxes(b, -1, -2)) if ctx.needs_input_grad[0] else None
        db = be().matmul(np.swapaxes(a, -1, -2), g) if ctx.needs_input_grad[1] else None
        return da, db


# ---------------------------------------------------------------- reductions
def _keepdims_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    """sum of x over axes;  dx = g broadcast back over the summed axes"""

    op = "sum"

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.save_for_backward(x.shape)
        return be().reduce("sum", x, axes, keepdims)

    @staticmethod
    def backward(ctx, g):
        (shape,) = ctx.saved
        return np.broadcast_to(g.reshape(_keepdims_shape(shape, ctx.params["axes"])), shape)


class Mean(Function):
    """mean of x over axes = sum / n;  dx = g / n broadcast back"""

    op = "mean"

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        n = int(np.prod([x.shape[a] for a in axes]))
        ctx.save_for_backward(x.shape, n)
        total = be().reduce("sum", x, axes, keepdims)
        return be().binary("div", total, np.asarray(n, dtype=x.dtype))

    @staticmethod
    def backward(ctx, g):
        shape, n = ctx.saved
        g = be().binary("div", g, np.asarray(n, dtype=g.dtype))
        return np.broadcast_to(g.reshape(_keepdims_shape(shape, ctx.params["axes"])), shape)


class Max(Function):
    """max of x over axes;  dx = g split evenly among the elements equal to the max"""

    op = "max"

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        out = be().reduce("max", x, axes, True)
        ctx.save_for_backward(x, out)
        return out if keepdims else out.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved
        axes = ctx.params["axes"]
        mask = be().binary("eq", x, out)
        if np.isnan(out).any():  # a NaN maximum (NaN != NaN): its gradient goes to the NaNs, as in PyTorch
            mask = np.where(np.isnan(out), np.isnan(x), mask).astype(x.dtype)
        count = be().reduce("sum", mask, axes, True)
        share = be().binary("div", g.reshape(out.shape), count)
        return be().binary("mul", mask, share)


class LogSumExp(Function):
    """log(sum(exp(x))) over axes, computed as m + log(sum(exp(x - m))) with m = max(x);
    dx = g exp(x - out)"""

    op = "logsumexp"

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        b = be()
        m = b.reduce("max", x, axes, True)
        m = np.where(np.isfinite(m), m, 0).astype(x.dtype)  # all -inf rows stay -inf, not NaN
        s = b.reduce("sum", b.unary("exp", b.binary("sub", x, m)), axes, True)
        out = b.binary("add", b.unary("log", s), m)
        ctx.save_for_backward(x, out)
        return out if keepdims else out.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved
        b = be()
        return b.binary("mul", g.reshape(out.shape), b.unary("exp", b.binary("sub", x, out)))


# ---------------------------------------------------------------- shape and indexing
class Reshape(Function):
    """x viewed with a new shape;  dx = g reshaped back"""

    op = "reshape"

    @staticmethod
    def forward(ctx, x, shape):
        ctx.save_for_backward(x.shape)
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.saved[0])


class Transpose(Function):
    """x with its dims permuted;  dx = g with the inverse permutation"""

    op = "transpose"

    @staticmethod
    def forward(ctx, x, perm):
        return x.transpose(perm)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(np.argsort(ctx.params["perm"]))


class BroadcastTo(Function):
    """x repeated along broadcast dims;  dx = g summed over them (by unbroadcast)"""

    op = "broadcast_to"

    @staticmethod
    def forward(ctx, x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        return g


class Index(Function):
    """x[key] (slices, ints, integer or bool arrays);  dx = g scattered back, summing repeats"""

    op = "index"

    @staticmethod
    def forward(ctx, x, key):
        ctx.save_for_backward(x.shape, x.dtype)
        try:
            return x[key]
        except IndexError as exc:
            raise IndexError(f"index: {exc} (tensor shape {x.shape})") from None

    @staticmethod
    def backward(ctx, g):
        shape, dtype = ctx.saved
        dx = np.zeros(shape, dtype=dtype)
        np.add.at(dx, ctx.params["key"], g)
        return dx


class Concatenate(Function):
    """tensors joined along an existing axis;  each input gets its slice of g"""

    op = "concatenate"

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.save_for_backward(np.cumsum([x.shape[axis] for x in xs])[:-1])
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(np.split(g, ctx.saved[0], axis=ctx.params["axis"]))


class Stack(Function):
    """tensors joined along a new axis;  each input gets its slice of g"""

    op = "stack"

    @staticmethod
    def forward(ctx, *xs, axis):
        return np.stack(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        axis = ctx.params["axis"]
        return tuple(np.take(g, i, axis=axis) for i in range(g.shape[axis]))


# ---------------------------------------------------------------- fused NN ops
class Linear(Function):
    """act(x W^T + b), x (..., in), W (out, in), b (out,), act in none | relu | sigmoid | tanh.
    One GEMM and one fused bias+activation pass forward; backward (one backend call):
    dpre = g act'(y), dx = dpre W, dW = dpre^T x, db = sum over rows of dpre"""

    op = "linear"
    saved_reads = (1, 0, None)  # x for dW, W for dx, y (act') for all

    @staticmethod
    def forward(ctx, x, w, *bias, act):
        if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[1]:
            raise ValueError(
                f"linear: input shape {x.shape} does not match weight shape {w.shape} "
                f"(expected input (..., {w.shape[-1] if w.ndim else '?'}))"
            )
        if bias and bias[0].shape != (w.shape[0],):
            raise ValueError(f"linear: bias shape {bias[0].shape}, expected ({w.shape[0]},)")
        flat = x.ndim == 2  # the usual case: no reshape either way (each costs ~0.25 us)
        x2 = x if flat else x.reshape(math.prod(x.shape[:-1]), x.shape[-1])  # not -1: in may be 0
        y = be().linear(x2, w, bias[0] if bias else None, act)
        ctx.save_for_backward(x2, w, y)
        return y if flat else y.reshape(x.shape[:-1] + (w.shape[0],))

    @staticmethod
    def backward(ctx, g):
        x2, w, y = ctx.saved
        need = ctx.needs_input_grad
        has_bias = len(need) > 2
        if g.shape != y.shape:  # input of more than 2 dims: rows flattened as in forward
            g = g.reshape(y.shape)
        dx, dw, dbias = be().linear_backward(
            g, x2, w, y, ctx.params["act"], need[0], need[1], has_bias and need[2]
        )
        if dx is not None and dx.shape != ctx.inputs[0].data.shape:
            dx = dx.reshape(ctx.inputs[0].data.shape)
        return (dx, dw, dbias) if has_bias else (dx, dw)


def _check_reduction(reduction: str) -> None:
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")


class BCEWithLogits(Function):
    """l = max(x, 0) - x t + log(1 + e^-|x|)  (= -t log s(x) - (1-t) log(1 - s(x)), stable);
    dx = g (sigmoid(x) - t), dt = -g x. When x needs a gradient, the forward kernel also writes
    sigmoid(x) - t from the same exp, so backward only scales it by g."""

    op = "bce_with_logits"

    @staticmethod
    def forward(ctx, x, t, reduction):
        if x.shape != t.shape:
            raise ValueError(f"binary_cross_entropy_with_logits: logits shape {x.shape} != target shape {t.shape}")
        if not (ctx.needs_input_grad and ctx.needs_input_grad[0]):
            ctx.save_for_backward(x, None)
            return be().bce_with_logits(x, t, reduction)
        loss, dsig = be().bce_with_logits(x, t, reduction, with_grad=True)
        ctx.save_for_backward(x, dsig)
        return loss

    @staticmethod
    def backward(ctx, g):
        x, dsig = ctx.saved
        if ctx.params["reduction"] == "mean":
            g = np.asarray(g / max(x.size, 1), dtype=x.dtype)
        b = be()
        dx = b.binary("mul", dsig, g) if dsig is not None else None
        dt = b.unary("neg", b.binary("mul", x, g)) if ctx.needs_input_grad[1] else None
        return dx, dt


class GaussianKL(Function):
    """KL(N(mu, e^logvar) || N(0, I)) per row (summed over the last dim):
    -1/2 sum(1 + logvar - mu^2 - e^logvar);  dmu = g mu, dlogvar = g (e^logvar - 1) / 2.
    reduction 'sum' / 'mean' then adds up the rows (in float64) in the same node, as
    bce_with_logits does: every row's gradient is the one upstream value (over the row count)."""

    op = "gaussian_kl"

    @staticmethod
    def forward(ctx, mu, logvar, reduction="none"):
        if mu.shape != logvar.shape or mu.ndim < 1:
            raise ValueError(f"gaussian_kl: mu shape {mu.shape} and logvar shape {logvar.shape} must match (at least 1-D)")
        ctx.save_for_backward(mu, logvar)
        per_row = be().gaussian_kl(mu, logvar)
        if reduction == "none":
            return per_row
        total = per_row.sum(dtype=np.float64)
        if reduction == "mean":  # the mean of no rows is NaN, as mean() gives
            total = total / per_row.size if per_row.size else np.nan
        return np.asarray(total, dtype=mu.dtype)

    @staticmethod
    def backward(ctx, g):
        mu, logvar = ctx.saved
        if ctx.params.get("reduction", "none") == "mean":
            g = np.asarray(g / max(math.prod(mu.shape[:-1]), 1), dtype=mu.dtype)
        return be().gaussian_kl_backward(mu, logvar, g)


# ---------------------------------------------------------------- functional forms
def _tensors(xs: Any, what: str) -> tuple[Tensor, ...]:
    if isinstance(xs, Tensor):  # tuple(t) would split it into its rows
        raise TypeError(f"{what}: takes a sequence of tensors, got one Tensor; pass [t] or (t,)")
    xs = tuple(xs)
    if not xs:
        raise ValueError(f"{what}: needs at least one tensor")
    if not all(isinstance(x, Tensor) for x in xs):
        raise TypeError(f"{what}: every item must be a Tensor")
    return xs


def concatenate(tensors: Any, axis: int = 0) -> Tensor:
    xs = _tensors(tensors, "concatenate")
    (ax,) = _axes(axis, xs[0].ndim, "concatenate")
    for x in xs:
        if x.ndim != xs[0].ndim or any(x.shape[i] != xs[0].shape[i] for i in range(x.ndim) if i != ax):
            raise ValueError(f"concatenate: shapes {[x.shape for x in xs]} differ outside axis {ax}")
    return Concatenate.apply(*xs, axis=ax)


cat = concatenate


def stack(tensors: Any, axis: int = 0) -> Tensor:
    xs = _tensors(tensors, "stack")
    if any(x.shape != xs[0].shape for x in xs):
        raise ValueError(f"stack: all shapes must be equal, got {[x.shape for x in xs]}")
    (ax,) = _axes(axis, xs[0].ndim + 1, "stack")
    return Stack.apply(*xs, axis=ax)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Elementwise cond ? a : b. cond is a boolean array-like (or Tensor, read as != 0)."""
    if isinstance(cond, Tensor):
        cond = cond.data != 0
    cond = np.array(cond)  # a copy: backward reads it later, the caller may change theirs
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be boolean, got {cond.dtype}")
    like = a if isinstance(a, Tensor) else b
    if not isinstance(like, Tensor):
        raise TypeError("where: a or b must be a Tensor")
    from .tensor import _lift

    return Where.apply(_lift(a, like), _lift(b, like), cond=cond)


# Called unbound (Tensor.exp(x), not x.exp()) so a non-Tensor argument still gets apply's TypeError.
def exp(x: Tensor) -> Tensor:
    """e^x elementwise."""
    return Tensor.exp(x)


def log(x: Tensor) -> Tensor:
    """Natural logarithm elementwise."""
    return Tensor.log(x)


def sqrt(x: Tensor) -> Tensor:
    """Square root elementwise."""
    return Tensor.sqrt(x)


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent elementwise."""
    return Tensor.tanh(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x) elementwise."""
    return Tensor.sigmoid(x)


def relu(x: Tensor) -> Tensor:
    """max(x, 0) elementwise."""
    return Tensor.relu(x)


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) elementwise."""
    return Tensor.softplus(x)


def abs(x: Tensor) -> Tensor:
    """|x| elementwise."""
    return Tensor.abs(x)


def clip(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    return x.clip(min, max)


def logsumexp(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    return x.logsumexp(axis, keepdims)


for _op in list(REGISTRY.values()):  # every op defined above keeps its state in ctx.saved only
    if _op.__module__ == __name__:
        _op.shares_unrecorded_node = True
_tensor_module._OPS = sys.modules[__name__]  # Tensor's operators call the ops defined here
