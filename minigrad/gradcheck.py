"""Check analytic gradients against central finite differences, in float64."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .tensor import Tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numeric one; the message names input and element."""


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """True if backward agrees with finite differences for every input that requires grad.

    The output is projected on a fixed random vector r (L = sum(fn(*inputs) * r)), so one backward
    gives the whole gradient of L; each element of each input is then perturbed by +-eps and
    (L(x+eps) - L(x-eps)) / (2 eps) compared with it: |analytic - numeric| <= atol + rtol |numeric|.
    Raises GradcheckError naming the first input and element that disagree."""
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: input {i} is a {type(t).__name__}, not a Tensor")
        if t.dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} ({t.name or 'unnamed'}) is {t.dtype}; finite differences "
                "need float64 inputs (use .double())"
            )
    checked = [i for i, t in enumerate(inputs) if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True; nothing to check")

    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    r = np.random.default_rng(seed).standard_normal(out.shape)
    for t in inputs:
        t.grad = None
    if out.requires_grad:
        out.backward(r)

    def projected() -> float:
        return float(np.sum(fn(*inputs).data * r))

    for i in checked:
        t = inputs[i]
        analytic = np.zeros(t.shape) if t.grad is None else t.grad.data
        flat = t.data.reshape(-1)  # a view: perturb in place
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = projected()
            flat[j] = original - eps
            minus = projected()
            flat[j] = original
            numeric = (plus - minus) / (2 * eps)
            a = float(analytic.reshape(-1)[j])
            if not abs(a - numeric) <= atol + rtol * abs(numeric):
                index = np.unravel_index(j, t.shape) if t.shape else ()
                raise GradcheckError(
                    f"gradcheck: input {i} ({t.name or 'unnamed'}, shape {t.shape}) element "
                    f"{tuple(int(k) for k in index)}: analytic {a:.8g} vs numeric {numeric:.8g} "
                    f"(difference {abs(a - numeric):.3g}, allowed {atol + rtol * abs(numeric):.3g})"
                )
    return True
