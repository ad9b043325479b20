"""One table of op cases, keyed by the names in ``minigrad.autograd.REGISTRY``.

Each case is a hypothesis strategy that draws an ``Example``: the float64 input arrays, the
minigrad call on Tensors and the numpy reference on arrays. Values stay away from kinks and
poles (log/sqrt positive, relu/abs away from 0, max without ties, clip away from its bounds), so
the same example serves the forward test, the C-vs-numpy test and the float64 gradcheck.

Loaded by conftest.py (not imported by name from the test modules).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
import minigrad.nn.functional as F


@dataclass
class Example:
    arrays: tuple[np.ndarray, ...]  # float64 inputs; each becomes a Tensor
    call: Callable[..., mg.Tensor]  # minigrad, on Tensors
    reference: Callable[..., np.ndarray]  # numpy, on float64 arrays
    out_dtype: Any = None  # dtype of the result when the op changes it (cast)
    gradcheck_kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OpCase:
    name: str
    examples: st.SearchStrategy  # draws an Example

    def __repr__(self) -> str:
        return f"OpCase({self.name})"


# ---------------------------------------------------------------- building blocks
def shapes(min_dims: int = 0, max_dims: int = 3, max_side: int = 4) -> st.SearchStrategy:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


def _f32_inside(bound: float, toward: float) -> float:
    b = np.float32(bound)
    if (b < bound and toward > bound) or (b > bound and toward < bound):
        b = np.nextafter(b, np.float32(toward))
    return float(b)


def values(shape: tuple[int, ...], lo: float = -3.0, hi: float = 3.0) -> st.SearchStrategy:
    """Floats in [lo, hi] that float32 holds exactly, so both dtypes see the same values."""
    lo, hi = _f32_inside(lo, hi), _f32_inside(hi, lo)
    elements = st.floats(
        lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=32
    )
    return hnp.arrays(np.float64, shape, elements=elements)


@st.composite
def away_from_zero(draw, shape: tuple[int, ...], lo: float = 0.1, hi: float = 3.0) -> np.ndarray:
    """|x| in [lo, hi] with either sign: relu, abs, a divisor."""
    magnitude = draw(values(shape, lo, hi))
    negative = draw(hnp.arrays(np.bool_, shape))
    return np.where(negative, -magnitude, magnitude)


@st.composite
def distinct(draw, shape: tuple[int, ...]) -> np.ndarray:
    """Values at least 0.25 apart (exact in float32): max has no ties."""
    n = int(np.prod(shape))
    order = np.array(draw(st.permutations(range(n))), dtype=np.float64)
    offset = draw(st.sampled_from([-1.0, 0.0, 0.5, 2.0]))
    return ((order - n / 2) * 0.25 + offset).reshape(shape)


def away_from(x: np.ndarray, points: list[float], gap: float = 0.05) -> np.ndarray:
    """Push values within `gap` of any point out to point + gap (points are far apart)."""
    for p in points:
        x = np.where(np.abs(x - p) < gap, p + gap, x)
    return x


@st.composite
def axes_arg(draw, ndim: int) -> Any:
    """An axis argument as a user writes it: None, an int (maybe negative), or a tuple."""
    if ndim == 0:
        return draw(st.sampled_from([None, ()]))
    return draw(
        st.one_of(
            st.none(),
            st.integers(-ndim, ndim - 1),
            st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).map(tuple),
        )
    )


def _np_axes(axis: Any) -> Any:
    return axis if axis is None or isinstance(axis, int) else tuple(axis)


# ---------------------------------------------------------------- unary elementwise
def unary(name: str, call: Callable, reference: Callable, elements: Callable) -> OpCase:
    @st.composite
    def examples(draw):
        x = draw(elements(draw(shapes())))
        return Example((x,), call, reference)

    return OpCase(name, examples())


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_softplus(x):
    return np.log1p(np.exp(x))


@st.composite
def _pow_examples(draw):
    p = draw(st.sampled_from([2.0, 3.0, 0.5, -1.0, 1.5, -0.5, 1.0, 0.0]))
    x = draw(values(draw(shapes()), 0.2, 3.0))
    return Example((x,), lambda t: t**p, lambda a: np.power(a, p))


@st.composite
def _clip_examples(draw):
    lo, hi = draw(st.sampled_from([(-0.5, 0.5), (None, 0.3), (-0.2, None), (0.0, 1.0)]))
    points = [b for b in (lo, hi) if b is not None]
    x = away_from(draw(values(draw(shapes()), -2.0, 2.0)), points)
    low = -np.inf if lo is None else lo
    high = np.inf if hi is None else hi
    return Example((x,), lambda t: t.clip(lo, hi), lambda a: np.clip(a, low, high))


def _other_dtype(dtype: np.dtype) -> np.dtype:
    return mg.float32 if dtype == mg.float64 else mg.float64


@st.composite
def _cast_examples(draw):
    x = draw(values(draw(shapes())))
    return Example(
        (x,),
        lambda t: t.to(_other_dtype(t.dtype)),
        lambda a: a,
        out_dtype=_other_dtype,
        # through float32 the round trip loses digits: a wide step keeps the difference quotient exact enough
        gradcheck_kwargs={"eps": 1e-2, "atol": 1e-4},
    )


# ---------------------------------------------------------------- binary elementwise and where
def binary(name: str, call: Callable, reference: Callable, divisor: bool = False) -> OpCase:
    @st.composite
    def examples(draw):
        sa, sb = draw(
            hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)
        ).input_shapes
        a = draw(values(sa))
        b = draw(away_from_zero(sb, 0.5, 2.0) if divisor else values(sb))
        return Example((a, b), call, reference)

    return OpCase(name, examples())


@st.composite
def _where_examples(draw):
    sc, sa, sb = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3)
    ).input_shapes
    cond = draw(hnp.arrays(np.bool_, sc))
    a, b = draw(values(sa)), draw(values(sb))
    return Example((a, b), lambda x, y: mg.where(cond, x, y), lambda x, y: np.where(cond, x, y))


# ---------------------------------------------------------------- matmul
@st.composite
def _matmul_examples(draw):
    ba, bb = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=2)
    ).input_shapes
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    a, b = draw(values(ba + (m, k))), draw(values(bb + (k, n)))
    return Example((a, b), lambda x, y: x @ y, np.matmul)


# ---------------------------------------------------------------- reductions
def reduction(name: str, method: str, reference: Callable, elements: Callable) -> OpCase:
    @st.composite
    def examples(draw):
        shape = draw(shapes())
        x = draw(elements(shape))
        axis = draw(axes_arg(len(shape)))
        keepdims = draw(st.booleans())
        return Example(
            (x,),
            lambda t: getattr(t, method)(axis=axis, keepdims=keepdims),
            lambda a: reference(a, axis=_np_axes(axis), keepdims=keepdims),
        )

    return OpCase(name, examples())


def _np_logsumexp(a, axis, keepdims):
    m = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return out
    return np.squeeze(out, axis=tuple(range(a.ndim)) if axis is None else axis)


# ---------------------------------------------------------------- shape and indexing
@st.composite
def _reshape_examples(draw):
    shape = draw(shapes())
    n = int(np.prod(shape))
    target = draw(st.sampled_from([(-1,), shape[::-1], (1,) + shape, (n, 1), (1, -1), ()] if n == 1 else
                                  [(-1,), shape[::-1], (1,) + shape, (n, 1), (1, -1)]))  # fmt: skip
    x = draw(values(shape))
    return Example((x,), lambda t: t.reshape(target), lambda a: a.reshape(target))


@st.composite
def _transpose_examples(draw):
    shape = draw(shapes(min_dims=1))
    perm = tuple(draw(st.permutations(range(len(shape)))))
    x = draw(values(shape))
    return Example((x,), lambda t: t.permute(perm), lambda a: np.transpose(a, perm))


@st.composite
def _broadcast_to_examples(draw):
    target = draw(shapes(min_dims=0))
    keep = draw(st.integers(0, len(target)))  # the input has the last `keep` dims
    ones = draw(st.lists(st.booleans(), min_size=keep, max_size=keep))
    shape = tuple(1 if one else n for one, n in zip(ones, target[len(target) - keep :]))
    x = draw(values(shape))
    return Example((x,), lambda t: t.broadcast_to(target), lambda a: np.broadcast_to(a, target))


@st.composite
def _index_key(draw, shape: tuple[int, ...]) -> Any:
    kind = draw(st.sampled_from(["basic", "array", "mask"]))
    if kind == "mask":
        return draw(hnp.arrays(np.bool_, shape))
    parts: list[Any] = []
    for i, n in enumerate(shape[: draw(st.integers(1, len(shape)))]):
        if kind == "array" and i == 0:  # repeated indices: the gradient sums them
            parts.append(np.array(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=4))))
        elif draw(st.booleans()):
            parts.append(draw(st.integers(-n, n - 1)))
        else:
            step = draw(st.sampled_from([1, 2, -1, -2]))
            start = draw(st.none() | st.integers(-n, n - 1))
            parts.append(slice(start, None, step))
    return tuple(parts)


@st.composite
def _index_examples(draw):
    shape = draw(shapes(min_dims=1))
    key = draw(_index_key(shape))
    x = draw(values(shape))
    return Example((x,), lambda t: t[key], lambda a: a[key])


@st.composite
def _concatenate_examples(draw):
    shape = draw(shapes(min_dims=1, max_side=3))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    arrays = []
    for size in sizes:
        s = list(shape)
        s[axis] = size
        arrays.append(draw(values(tuple(s))))
    return Example(
        tuple(arrays),
        lambda *ts: mg.concatenate(ts, axis=axis),
        lambda *a: np.concatenate(a, axis=axis),
    )


@st.composite
def _stack_examples(draw):
    shape = draw(shapes(max_side=3))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    k = draw(st.integers(1, 3))
    arrays = tuple(draw(values(shape)) for _ in range(k))
    return Example(arrays, lambda *ts: mg.stack(ts, axis=axis), lambda *a: np.stack(a, axis=axis))


# ---------------------------------------------------------------- fused NN ops
_ACTS = {
    "none": lambda y: y,
    "relu": lambda y: np.maximum(y, 0),
    "sigmoid": _np_sigmoid,
    "tanh": np.tanh,
}


@st.composite
def _linear_examples(draw):
    """Inputs on a grid that keeps every pre-activation away from relu's kink: x and W hold odd
    multiples of 1/8 and in_features is odd, so each x W^T is an odd multiple of 1/64; the bias
    is an even one. Grid values are exact in float32 too."""
    act = draw(st.sampled_from(sorted(_ACTS)))
    lead = draw(st.sampled_from([(), (1,), (3,), (2, 2)]))
    k, n = draw(st.sampled_from([1, 3])), draw(st.integers(1, 4))
    odd_eighths = lambda shape: hnp.arrays(np.int64, shape, elements=st.integers(-8, 7)).map(
        lambda i: (2 * i + 1) / 8
    )
    x = draw(odd_eighths(lead + (k,)))
    w = draw(odd_eighths((n, k)))
    use_bias = draw(st.booleans())
    arrays = (x, w)
    if use_bias:
        arrays += (draw(hnp.arrays(np.int64, (n,), elements=st.integers(-32, 32))) / 32,)

    def reference(x, w, b=None):
        y = x @ w.T
        return _ACTS[act](y if b is None else y + b)

    return Example(arrays, lambda *ts: F.linear(*ts, activation=act), reference)


def _np_bce(x, t, reduction):
    loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


@st.composite
def _bce_examples(draw):
    shape = draw(shapes())
    reduction = draw(st.sampled_from(["none", "sum", "mean"]))
    x, t = draw(values(shape, -5.0, 5.0)), draw(values(shape, 0.0, 1.0))
    return Example(
        (x, t),
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction),
        lambda a, b: _np_bce(a, b, reduction),
    )


def _np_gaussian_kl(mu, logvar, reduction):
    per_row = -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=-1)
    return {"none": per_row, "sum": per_row.sum(), "mean": per_row.mean()}[reduction]


@st.composite
def _gaussian_kl_examples(draw):
    shape = draw(shapes(min_dims=1))
    reduction = draw(st.sampled_from(["none", "sum", "mean"]))
    mu, logvar = draw(values(shape, -2.0, 2.0)), draw(values(shape, -2.0, 2.0))
    return Example(
        (mu, logvar),
        lambda a, b: F.gaussian_kl(a, b, reduction=reduction),
        lambda a, b: _np_gaussian_kl(a, b, reduction),
    )


# ---------------------------------------------------------------- the table
CASES: dict[str, OpCase] = {
    case.name: case
    for case in [
        binary("add", lambda a, b: a + b, np.add),
        binary("sub", lambda a, b: a - b, np.subtract),
        binary("mul", lambda a, b: a * b, np.multiply),
        binary("div", lambda a, b: a / b, np.divide, divisor=True),
        unary("neg", lambda t: -t, np.negative, values),
        unary("exp", mg.exp, np.exp, values),
        unary("log", mg.log, np.log, lambda s: values(s, 0.1, 5.0)),
        unary("sqrt", mg.sqrt, np.sqrt, lambda s: values(s, 0.1, 5.0)),
        unary("tanh", mg.tanh, np.tanh, values),
        unary("sigmoid", mg.sigmoid, _np_sigmoid, lambda s: values(s, -6.0, 6.0)),
        unary("relu", mg.relu, lambda a: np.maximum(a, 0), away_from_zero),
        unary("softplus", mg.softplus, _np_softplus, lambda s: values(s, -6.0, 6.0)),
        unary("abs", mg.abs, np.abs, away_from_zero),
        OpCase("pow", _pow_examples()),
        OpCase("clip", _clip_examples()),
        OpCase("cast", _cast_examples()),
        OpCase("where", _where_examples()),
        OpCase("matmul", _matmul_examples()),
        reduction("sum", "sum", np.sum, values),
        reduction("mean", "mean", np.mean, values),
        reduction("max", "max", np.max, distinct),
        reduction("logsumexp", "logsumexp", _np_logsumexp, lambda s: values(s, -5.0, 5.0)),
        OpCase("reshape", _reshape_examples()),
        OpCase("transpose", _transpose_examples()),
        OpCase("broadcast_to", _broadcast_to_examples()),
        OpCase("index", _index_examples()),
        OpCase("concatenate", _concatenate_examples()),
        OpCase("stack", _stack_examples()),
        OpCase("linear", _linear_examples()),
        OpCase("bce_with_logits", _bce_examples()),
        OpCase("gaussian_kl", _gaussian_kl_examples()),
    ]
}


# ---------------------------------------------------------------- memory layouts
def with_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """The same values as `a` in another memory layout (a view into a larger buffer)."""
    if layout == "contiguous" or a.ndim == 0:
        return a.copy(order="C")
    if layout == "strided":  # every other element of a buffer twice as large in each dim
        buffer = np.full(tuple(2 * n for n in a.shape), np.nan, dtype=a.dtype)
        view = buffer[(slice(None, None, 2),) * a.ndim]
        view[...] = a
        return view
    if layout == "reversed":  # negative strides
        return np.flip(np.ascontiguousarray(np.flip(a)))
    if layout == "transposed":  # column-major: a transpose of a contiguous array
        return np.ascontiguousarray(a.T).T
    raise ValueError(layout)


LAYOUTS = ("contiguous", "strided", "reversed", "transposed")
