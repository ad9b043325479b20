"""Tensor: a numpy array with a gradient and a place in the autograd graph."""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import autograd
from ._checks import is_integer, is_real
from .backend._common import broadcast_shape
from .autograd import Function, next_id

_new_object = object.__new__
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
FLOAT_DTYPES = (float32, float64)
_default_dtype = float32


def set_default_dtype(dtype: Any) -> None:
    """The dtype of tensors made from Python numbers (float32 unless changed)."""
    global _default_dtype
    _default_dtype = _float_dtype(dtype, "set_default_dtype")


def get_default_dtype() -> np.dtype:
    return _default_dtype


def _float_dtype(dtype: Any, what: str) -> np.dtype:
    if dtype is None:  # np.dtype(None) is float64: never pick a dtype silently
        raise TypeError(f"{what}: dtype None is not a dtype; use float32 or float64")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{what}: {dtype!r} is not a dtype; use float32 or float64") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{what}: minigrad computes in float32 or float64, not {dt}")
    return dt


def as_array(data: Any, dtype: Any = None) -> np.ndarray:
    """Validate and convert user data to a float32/float64 array.

    Float arrays (and numpy float32/float64 scalars) keep their dtype and share memory, like
    torch.from_numpy. Python numbers and lists become the default dtype. Integer, bool and
    float16 *arrays* need an explicit dtype (so a label array is never silently used as data);
    complex, object and string data are refused."""
    if isinstance(data, Tensor):
        data = data.data
    want = None if dtype is None else _float_dtype(dtype, "Tensor")
    if isinstance(data, np.ndarray) and type(data) is not np.ndarray:
        if isinstance(data, np.ma.MaskedArray):
            raise TypeError("Tensor: masked arrays are not supported (their mask would be ignored); "
                            "pass .filled(value) or .compressed()")
        data = np.asarray(data)  # a subclass (np.matrix) would change what reshape and indexing do
    if isinstance(data, np.generic) and data.dtype in FLOAT_DTYPES:
        data = np.asarray(data)  # a numpy float64 scalar keeps float64, like a 0-d array
    from_python = not isinstance(data, np.ndarray)
    if from_python:
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"Tensor: cannot make an array from {type(data).__name__}: {exc}") from None
    else:
        arr = data
    kind = arr.dtype.kind
    if kind == "f" and arr.dtype in FLOAT_DTYPES:
        target = want or (_default_dtype if from_python else arr.dtype)
    elif kind in "iubf" and (want is not None or from_python):  # float16 too, as the error promises
        target = want or _default_dtype
    elif kind in "iub" or kind == "f":
        raise TypeError(
            f"Tensor: got a {arr.dtype} array; minigrad computes in float32 or float64. "
            f"Pass dtype=minigrad.float32 (or float64) to convert it."
        )
    else:
        raise TypeError(f"Tensor: {arr.dtype} data is not supported; minigrad needs real numbers")
    if arr.dtype != target:
        return arr.astype(target)
    return arr if arr.flags.aligned else arr.copy()  # the C kernels read aligned elements only


def _comparison(op: Callable[[Any, Any], Any]) -> Callable[[Tensor, Any], Any]:
    """A comparison operator of Tensor: op on the data against a Tensor's data, a number or an
    array; NotImplemented for anything else."""

    def compare(self: Tensor, other: Any) -> Any:
        if isinstance(other, Tensor):
            other = other.data
        elif not isinstance(other, (int, float, np.ndarray, np.number, list, tuple)):
            return NotImplemented
        return op(self.data, other)

    return compare


class Tensor:
    """An n-dimensional float32/float64 array that records the ops applied to it.

    ``Tensor(data, requires_grad=False, dtype=None, name=None)``. ``.data`` is the numpy array,
    ``.grad`` a Tensor (or None) filled by ``backward()``, ``.name`` an optional label shown in
    graph dumps."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "name", "id", "_retains_grad", "__weakref__")
    __array_priority__ = 100  # numpy defers `ndarray + Tensor` to Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None, name: str | None = None):
        self.data = as_array(data, dtype)
        self.grad: Tensor | None = None
        if not isinstance(requires_grad, (bool, np.bool_)):  # bool('no') is True
            raise TypeError(f"requires_grad must be True or False, got {requires_grad!r}")
        self.requires_grad = bool(requires_grad)
        self._ctx: Function | None = None
        self.name = _checked_name(name)
        self.id = autograd.next_id()
        self._retains_grad = False

    def __setstate__(self, state: Any) -> None:
        """Unpickled or copied: the same contents under a fresh id (ids order the backward pass
        and name nodes in graph dumps, so two live tensors never share one)."""
        attrs, slots = state if isinstance(state, tuple) else (state, None)  # (__dict__, slots)
        for part in (attrs, slots):
            for key, value in (part or {}).items():
                setattr(self, key, value)
        self.id = autograd.next_id()

    @staticmethod
    def _from_op(data: np.ndarray, ctx: Function | None) -> Tensor:
        """Wrap an op's output without re-validating it (the hot path)."""
        t = _new_object(Tensor)
        t.data = data
        t.grad = None
        t.requires_grad = ctx is not None
        t._ctx = ctx
        t.name = None
        t.id = next_id()
        t._retains_grad = False
        return t

    # ---- what a tensor is ----
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    @property
    def op(self) -> str:
        """Name of the op that made this tensor, or 'leaf'."""
        return self._ctx.op if self._ctx is not None else "leaf"

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        """The tensors this one was computed from (empty for leaves)."""
        return self._ctx.inputs if self._ctx is not None else ()

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def numpy(self) -> np.ndarray:
        return self.data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """np.asarray(t): the data (a view, as numpy())."""
        if copy is False and dtype is not None and np.dtype(dtype) != self.data.dtype:
            raise ValueError(f"np.asarray: a {dtype} array of a {self.data.dtype} tensor needs a copy")
        data = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return data.copy() if copy else data

    # numpy functions on a Tensor (np.exp(t)) would run on its elements one by one and build an
    # object array; with this, numpy refuses them, and ndarray + Tensor runs Tensor.__radd__
    __array_ufunc__ = None

    def __iter__(self) -> Iterator[Tensor]:
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return float(self.data.reshape(()))

    def named(self, name: str) -> Tensor:
        """Set the label shown in graph dumps and error messages; returns self."""
        self.name = _checked_name(name)
        return self

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retains_grad = True
        return self

    def detach(self) -> Tensor:
        """The same data, cut from the graph (a leaf with requires_grad=False)."""
        return Tensor._from_op(self.data, None)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if not self.is_leaf and bool(flag) == self.requires_grad:  # nothing to change
            return self
        if not self.is_leaf:
            raise RuntimeError("requires_grad_ can only change leaf tensors; use detach() first")
        self.requires_grad = bool(flag)
        return self

    def to(self, dtype: Any) -> Tensor:
        dt = _float_dtype(dtype, "to")
        return self if dt == self.dtype else _OPS.Cast.apply(self, dtype=dt)

    def float(self) -> Tensor:
        return self.to(float32)

    def double(self) -> Tensor:
        return self.to(float64)

    def __repr__(self) -> str:
        extra = ""
        if self.requires_grad:
            extra += ", requires_grad=True"
        if self.name:
            extra += f", name={self.name!r}"
        body = np.array2string(self.data, separator=", ", threshold=20, precision=4)
        return f"Tensor({body}, dtype={self.dtype}{extra})"

    def __bool__(self) -> bool:
        raise TypeError("the truth value of a Tensor is ambiguous; compare .item() or .data instead")

    def __hash__(self) -> int:
        return id(self)  # by identity: a tensor is a graph node, usable as a dict key

    # Comparisons are elementwise, as in PyTorch, and give a numpy bool array: they have no
    # gradient, and where() takes the array as its condition. Other operands (None, strings) get
    # Python's default: == is identity, < raises TypeError.
    __eq__ = _comparison(operator.eq)  # type: ignore[assignment]
    __ne__ = _comparison(operator.ne)  # type: ignore[assignment]
    __lt__ = _comparison(operator.lt)
    __le__ = _comparison(operator.le)
    __gt__ = _comparison(operator.gt)
    __ge__ = _comparison(operator.ge)

    # ---- autograd ----
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) * grad into every leaf's ``.grad``.

        ``grad`` defaults to 1 for a single-element tensor and is required otherwise. Frees the
        graph's saved values unless ``retain_graph=True``."""
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the graph has "
                "requires_grad=True (or it was computed under no_grad())"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() on a tensor of shape {self.shape} needs a `grad` of that shape; "
                    "only a single-element tensor gets the implicit gradient 1"
                )
            g = np.ones(self.shape, dtype=self.dtype)
        else:
            g = as_array(grad.data if isinstance(grad, Tensor) else grad, self.dtype)
            if g.shape != self.shape:
                raise ValueError(f"backward(): grad has shape {g.shape}, the tensor has shape {self.shape}")
        autograd.run_backward(self, g, retain_graph)

    # ---- operators ----
    def __add__(self, other: Any) -> Tensor:
        if other.__class__ is not Tensor:  # the exact-class test first: cheaper than a call
            other = _lift(other, self)
        return _OPS.Add.apply(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _OPS.Add.apply(_lift(other, self), self)

    def __sub__(self, other: Any) -> Tensor:
        if other.__class__ is not Tensor:  # the exact-class test first: cheaper than a call
            other = _lift(other, self)
        return _OPS.Sub.apply(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _OPS.Sub.apply(_lift(other, self), self)

    def __mul__(self, other: Any) -> Tensor:
        if other.__class__ is not Tensor:  # the exact-class test first: cheaper than a call
            other = _lift(other, self)
        return _OPS.Mul.apply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _OPS.Mul.apply(_lift(other, self), self)

    def __truediv__(self, other: Any) -> Tensor:
        if other.__class__ is not Tensor:  # the exact-class test first: cheaper than a call
            other = _lift(other, self)
        return _OPS.Div.apply(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _OPS.Div.apply(_lift(other, self), self)

    def __neg__(self) -> Tensor:
        return _OPS.Neg.apply(self)

    def __pow__(self, exponent: Any) -> Tensor:
        if not is_real(exponent):
            raise TypeError(f"** takes a real number as exponent, got {type(exponent).__name__}")
        return _OPS.PowScalar.apply(self, p=float(exponent))

    def __matmul__(self, other: Any) -> Tensor:
        return _OPS.MatMul.apply(self, _lift(other, self))

    def __rmatmul__(self, other: Any) -> Tensor:
        return _OPS.MatMul.apply(_lift(other, self), self)

    def __getitem__(self, key: Any) -> Tensor:
        return _OPS.Index.apply(self, key=_index_key(key))

    # ---- elementwise and reductions (see ops.py for the formulas) ----
    def exp(self) -> Tensor:
        return _OPS.Exp.apply(self)

    def log(self) -> Tensor:
        return _OPS.Log.apply(self)

    def sqrt(self) -> Tensor:
        return _OPS.Sqrt.apply(self)

    def tanh(self) -> Tensor:
        return _OPS.Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        return _OPS.Sigmoid.apply(self)

    def relu(self) -> Tensor:
        return _OPS.Relu.apply(self)

    def softplus(self) -> Tensor:
        return _OPS.Softplus.apply(self)

    def abs(self) -> Tensor:
        return _OPS.Abs.apply(self)

    def clip(self, min: builtins.float | None = None, max: builtins.float | None = None) -> Tensor:
        lo = -np.inf if min is None else float(min)
        hi = np.inf if max is None else float(max)
        if math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"clip: bounds must be numbers, got min={min} and max={max}")
        if lo > hi:
            raise ValueError(f"clip: min {lo} is greater than max {hi}")
        return _OPS.Clip.apply(self, lo=lo, hi=hi)

    clamp = clip

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _OPS.Sum.apply(self, axes=_axes(axis, self.ndim, "sum"), keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _OPS.Mean.apply(self, axes=_axes(axis, self.ndim, "mean"), keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        axes = _axes(axis, self.ndim, "max")
        if any(self.shape[a] == 0 for a in axes):
            raise ValueError(f"max: cannot reduce over an empty axis (shape {self.shape})")
        return _OPS.Max.apply(self, axes=axes, keepdims=keepdims)

    def logsumexp(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _OPS.LogSumExp.apply(self, axes=_axes(axis, self.ndim, "logsumexp"), keepdims=keepdims)

    # ---- shape ----
    def reshape(self, *shape: Any) -> Tensor:
        shape = _dims(shape)
        try:
            if not all(map(is_integer, shape)):
                raise TypeError("dims must be integers")  # int() would truncate 2.7 to 2
            return _OPS.Reshape.apply(self, shape=tuple(int(n) for n in shape))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {self.shape} to {shape}: {exc}") from None

    view = reshape

    def flatten(self, start_dim: int = 0) -> Tensor:
        """Merge the dims from start_dim on into one (a 0-d tensor becomes shape (1,))."""
        start = _axes(start_dim, max(self.ndim, 1), "flatten")[0]
        return self.reshape(self.shape[:start] + (-1,))

    def transpose(self, *axes: int) -> Tensor:
        """Reverse the dims (no args), swap two dims (two args, as PyTorch), or permute all dims."""
        axes = _dims(axes)
        n = self.ndim
        if not axes:
            perm = tuple(reversed(range(n)))
        elif len(axes) == 2:
            i, j = (_axes((a,), n, "transpose", sort=False)[0] for a in axes)
            swapped = list(range(n))
            swapped[i], swapped[j] = swapped[j], swapped[i]
            perm = tuple(swapped)
        elif len(axes) == n:
            perm = _axes(axes, n, "transpose", sort=False)
        else:
            raise ValueError(f"transpose: give no dims, two dims to swap, or all {n} dims, got {axes}")
        return _OPS.Transpose.apply(self, perm=perm)

    def permute(self, *dims: int) -> Tensor:
        dims = _dims(dims)
        if len(dims) != self.ndim:
            raise ValueError(f"permute: give all {self.ndim} dims, got {dims}")
        # not self.transpose(dims): for 2-D, transpose reads two dims as a swap, so (0, 1) would flip
        return _OPS.Transpose.apply(self, perm=_axes(dims, self.ndim, "permute", sort=False))

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        # broadcasting must give `shape` itself, in integer sizes (a size too big for memory is
        # the allocation's error, not this one)
        shape = tuple(shape)
        try:
            if not all(is_integer(s) and s >= 0 for s in shape) or broadcast_shape("broadcast_to", self.shape, shape) != shape:
                raise ValueError
        except ValueError:
            raise ValueError(f"broadcast_to: cannot broadcast shape {self.shape} to {shape}") from None
        return _OPS.BroadcastTo.apply(self, shape=tuple(int(s) for s in shape))


autograd.bind_tensor_class(Tensor)


_OPS: Any = None  # the minigrad.ops module; it binds itself here when imported


_SCALARS: dict[tuple[Any, float, np.dtype], np.ndarray] = {}


def _lift(value: Any, like: Tensor) -> Tensor:
    """Make the other operand of a binary op a Tensor: Python numbers take `like`'s dtype."""
    if isinstance(value, Tensor):
        return value
    kind = value.__class__
    if kind is float or kind is int or (
        isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    ):
        key = (value, math.copysign(1.0, value), like.data.dtype)  # -0.0 and 0.0 stay apart
        array = _SCALARS.get(key)
        if array is None:  # 0-d constants are cached: loops reuse the same few (0.5, 1, batch size)
            array = np.asarray(value, dtype=like.data.dtype)
            array.flags.writeable = False
            if len(_SCALARS) < 1024:
                _SCALARS[key] = array
        return Tensor._from_op(array, None)
    if isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
        return Tensor(value)
    raise TypeError(f"cannot combine a Tensor with {type(value).__name__}")


def _dims(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """f(2, 3) and f((2, 3)) alike: the dims or axes a variadic call was given."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def _axes(axis: Any, ndim: int, what: str, sort: bool = True) -> tuple[int, ...]:
    """Normalize an axis argument (None, int, or tuple of ints) to positive axes, sorted unless
    sort is False (a permutation keeps its order)."""
    if axis is None:
        return tuple(range(ndim))
    try:
        items = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    except TypeError:  # e.g. axis=1.0: say what is wrong, not "'float' object is not iterable"
        raise TypeError(f"{what}: axis must be an int or a tuple of ints, got {axis!r}") from None
    out = []
    for a in items:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"{what}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < max(ndim, 1) or (ndim == 0):
            raise ValueError(f"{what}: axis {a} is out of range for a tensor with {ndim} dims")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated axis in {axis!r}")
    return tuple(sorted(out)) if sort else tuple(out)


def _index_key(key: Any) -> Any:
    """Indices as numpy understands them; Tensors and lists of ints become int arrays."""
    if isinstance(key, tuple):
        return tuple(_index_key(k) for k in key)
    if isinstance(key, Tensor):
        key = key.data
    if isinstance(key, list):
        key = np.asarray(key) if key else np.zeros(0, np.intp)  # [] selects nothing, as in numpy
    if isinstance(key, np.ndarray):
        if key.dtype.kind not in "iub":
            raise IndexError(f"index arrays must hold integers or bools, got {key.dtype}")
        key = key.copy()  # backward uses it later: the caller may change theirs meanwhile
    return key


def _checked_name(name: Any) -> str | None:
    """A tensor's label: a string on one line (graph text dumps print one node per line), or None."""
    if name is not None and (not isinstance(name, str) or "\n" in name or "\r" in name):
        raise ValueError(f"a tensor name must be a string without line breaks, or None; got {name!r}")
    return name


# ---- constructors ----
_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator behind randn/rand and the default parameter init."""
    global _rng
    if not is_integer(seed) or seed < 0:
        # None would reseed from the OS: runs would differ without a word
        raise TypeError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _rng = np.random.default_rng(seed)


def default_generator() -> np.random.Generator:
    return _rng


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, name: str | None = None) -> Tensor:
    """A new leaf holding a copy of `data` (as torch.tensor); Tensor(array) shares the array."""
    t = Tensor(data, requires_grad=requires_grad, dtype=dtype, name=name)
    source = data.data if isinstance(data, Tensor) else data
    if isinstance(source, np.ndarray) and np.may_share_memory(t.data, source):  # bounds only: cheap
        t.data = t.data.copy()
    return t


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape = _dims(shape)
    return Tensor(np.zeros(shape, dtype=_float_dtype(dtype or _default_dtype, "zeros")), requires_grad=requires_grad)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape = _dims(shape)
    return Tensor(np.ones(shape, dtype=_float_dtype(dtype or _default_dtype, "ones")), requires_grad=requires_grad)


def randn(*shape: Any, dtype: Any = None, requires_grad: bool = False,
          generator: np.random.Generator | None = None) -> Tensor:  # fmt: skip
    shape = _dims(shape)
    dt = _float_dtype(dtype or _default_dtype, "randn")
    data = (generator or _rng).standard_normal(shape, dtype=dt)
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape: Any, dtype: Any = None, requires_grad: bool = False,
         generator: np.random.Generator | None = None) -> Tensor:  # fmt: skip
    shape = _dims(shape)
    dt = _float_dtype(dtype or _default_dtype, "rand")
    return Tensor((generator or _rng).random(shape, dtype=dt), requires_grad=requires_grad)


def zeros_like(t: Tensor) -> Tensor:
    return Tensor(np.zeros_like(t.data))


def ones_like(t: Tensor) -> Tensor:
    return Tensor(np.ones_like(t.data))
