"""Check analytic gradients against central finite differences, in float64."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ._checks import is_real
from .tensor import Tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numeric one; the message names input and element."""


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor] | Tensor,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """True if backward agrees with finite differences for every input that requires grad.

    The output is projected on a fixed random vector r (L = sum(fn(*inputs) * r)), so one backward
    gives the whole gradient of L; each element of each input is then perturbed by +-eps and
    (L(x+eps) - L(x-eps)) / (2 eps) compared with it: |analytic - numeric| <= atol + rtol |numeric|.
    Raises GradcheckError naming the first input and element that disagree.

    `inputs` is a sequence of Tensors or a single Tensor (one input). The inputs' values and their
    existing `.grad` are left as they were, also when fn raises."""
    _check_positive_finite("eps", eps)
    for what, value in (("atol", atol), ("rtol", rtol)):
        if not is_real(value) or not math.isfinite(value) or value < 0:
            raise ValueError(f"gradcheck: {what} must be a finite number >= 0, got {value!r}")
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: input {i} is a {type(t).__name__}, not a Tensor")
        if t.dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} ({t.name or 'unnamed'}) is {t.dtype}; finite differences "
                "need float64 inputs (use .double())"
            )
    for i, t in enumerate(inputs):
        if not t.is_leaf:
            raise ValueError(
                f"gradcheck: input {i} ({t.name or 'unnamed'}) is the result of an op, not a leaf; "
                "pass leaves (e.g. t.detach().requires_grad_())"
            )
    checked = [i for i, t in enumerate(inputs) if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True; nothing to check")

    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    r = np.random.default_rng(seed).standard_normal(out.shape)
    saved_grads = [t.grad for t in inputs]  # restored afterwards, as torch's gradcheck leaves .grad alone
    analytics: dict[int, np.ndarray] = {}
    try:
        for t in inputs:
            t.grad = None
        if out.requires_grad:
            out.backward(r)
        for i in checked:
            g = inputs[i].grad
            analytics[i] = np.zeros(inputs[i].shape) if g is None else np.array(g.data, dtype=np.float64)
    finally:
        for t, g in reversed(list(zip(inputs, saved_grads))):  # reversed: a repeated input gets its first
            t.grad = g

    def projected() -> float:
        return float(np.sum(fn(*inputs).data * r))

    for i in checked:
        t = inputs[i]
        analytic = analytics[i]
        numeric = numerical_gradient(projected, t.data, eps)
        bad = np.flatnonzero(~(np.abs(analytic - numeric) <= atol + rtol * np.abs(numeric)))
        if bad.size:
            j = int(bad[0])
            a, n = float(analytic.reshape(-1)[j]), float(numeric.reshape(-1)[j])
            index = np.unravel_index(j, t.shape) if t.shape else ()
            raise GradcheckError(
                f"gradcheck: input {i} ({t.name or 'unnamed'}, shape {t.shape}) element "
                f"{tuple(int(k) for k in index)}: analytic {a:.8g} vs numeric {n:.8g} "
                f"(difference {abs(a - n):.3g}, allowed {atol + rtol * abs(n):.3g})"
            )
    return True


def numerical_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d array by central differences, (f(x + eps) - f(x - eps)) / (2 eps) per element.

    Perturbs `array` in place (f must read it) and restores every element afterwards, also when f
    raises."""
    _check_positive_finite("eps", eps)
    numeric = np.zeros(array.shape)
    for index in np.ndindex(array.shape):  # indexes the array itself, so any strided view works
        original = array[index].copy()
        try:
            array[index] = original + eps
            plus = f()
            array[index] = original - eps
            minus = f()
        finally:
            array[index] = original
        numeric[index] = (plus - minus) / (2 * eps)
    return numeric


def _check_positive_finite(what: str, value: float) -> None:
    if not is_real(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"gradcheck: {what} must be a finite number > 0, got {value!r}")
