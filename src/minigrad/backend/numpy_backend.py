"""The reference backend: every kernel written in plain numpy, as directly as the math allows.

Tests check the C backend against this one. Each function has the same signature and contract as
its twin in ``c_backend``: arrays in, new arrays out (the optimizer steps update in place).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from ._common import broadcast_shape

name = "numpy"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only, so no overflow warnings
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _pow(x: np.ndarray, p: float) -> np.ndarray:
    return np.power(x, x.dtype.type(p))


_UNARY = {
    "neg": lambda x, p, q: -x,
    "exp": lambda x, p, q: np.exp(x),
    "log": lambda x, p, q: np.log(x),
    "sqrt": lambda x, p, q: np.sqrt(x),
    "tanh": lambda x, p, q: np.tanh(x),
    "sigmoid": lambda x, p, q: _sigmoid(x),
    "relu": lambda x, p, q: np.maximum(x, x.dtype.type(0)),
    "softplus": lambda x, p, q: _softplus(x),
    "abs": lambda x, p, q: np.abs(x),
    "pow_scalar": lambda x, p, q: _pow(x, p),
    "clip": lambda x, p, q: np.clip(x, x.dtype.type(p), x.dtype.type(q)),
    "copy": lambda x, p, q: x.copy(),
}


def _nan_where(cond: np.ndarray, g: np.ndarray, x: np.ndarray) -> np.ndarray:
    """g where cond, else 0 -- except NaN in x stays NaN, as the C kernels do."""
    zero = np.zeros((), dtype=g.dtype)
    return np.where(cond, g, np.where(np.isnan(x), x, zero))


_BINARY = {
    "add": lambda a, b, p, q: a + b,
    "sub": lambda a, b, p, q: a - b,
    "mul": lambda a, b, p, q: a * b,
    "div": lambda a, b, p, q: a / b,
    "maximum": lambda a, b, p, q: np.maximum(a, b),
    "minimum": lambda a, b, p, q: np.minimum(a, b),
    "eq": lambda a, b, p, q: (a == b).astype(a.dtype),
    "relu_bwd": lambda g, x, p, q: _nan_where(x > 0, g, x),
    "sigmoid_bwd": lambda g, y, p, q: g * y * (1 - y),
    "tanh_bwd": lambda g, y, p, q: g * (1 - y * y),
    "abs_bwd": lambda g, x, p, q: _nan_where(x != 0, g * np.sign(x), x),  # 0 at x = 0, even for g = inf
    "softplus_bwd": lambda g, x, p, q: g * _sigmoid(x),
    "sqrt_bwd": lambda g, y, p, q: g * g.dtype.type(0.5) / y,
    "pow_bwd": lambda g, x, p, q: g * g.dtype.type(p) * _pow(x, p - 1) if p != 0 else np.zeros_like(g * x),
    "clip_bwd": lambda g, x, p, q: _nan_where((x >= p) & (x <= q), g, x),
}

UNARY_OPS = tuple(_UNARY)
BINARY_OPS = tuple(_BINARY)


def _out(result: npt.ArrayLike, dtype: np.dtype) -> np.ndarray:
    # ascontiguousarray turns 0-d into 1-d; the reshape keeps a scalar result 0-d
    return np.ascontiguousarray(result, dtype=dtype).reshape(np.shape(result))


def unary(op: str, x: np.ndarray, p: float = 0.0, q: float = 0.0) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _out(_UNARY[op](x, p, q), x.dtype)


def binary(op: str, a: np.ndarray, b: np.ndarray, p: float = 0.0, q: float = 0.0) -> np.ndarray:
    broadcast_shape(op, a.shape, b.shape)
    with np.errstate(all="ignore"):
        return _out(_BINARY[op](a, b, p, q), a.dtype)


def where(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _out(np.where(cond, a, b), a.dtype)


def reduce(op: str, x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    if op == "sum":
        # accumulate float32 in float64, as the C kernel does
        acc = x.dtype if x.dtype == np.float64 else np.float64
        return _out(np.sum(x, axis=axes, keepdims=keepdims, dtype=acc), x.dtype)
    if x.size == 0:
        shape = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
        full = np.full(shape, -np.inf, dtype=x.dtype)
        return full if keepdims else full.reshape([s for i, s in enumerate(x.shape) if i not in axes])
    return _out(np.max(x, axis=axes, keepdims=keepdims), x.dtype)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _out(np.matmul(a, b), a.dtype)


_ACT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda y: y,
    "relu": lambda y: np.maximum(y, y.dtype.type(0)),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
}


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, act: str = "none") -> np.ndarray:
    """act(x @ w.T + b) for x (m, k), w (n, k), b (n,)."""
    y = x @ w.T
    if b is not None:
        y = y + b
    return _out(_ACT[act](y), x.dtype)


def linear_backward(g, x, w, y, act, need_x, need_w, need_bias):
    """(dx, dw, dbias) of y = act(x @ w.T + b) from g = dL/dy, each None unless asked for:
    dpre = g act'(pre) written through the output y, dx = dpre @ w, dw = dpre.T @ x."""
    if act == "relu":
        dpre = np.where(y > 0, g, 0)
    elif act == "sigmoid":
        dpre = g * y * (1 - y)
    elif act == "tanh":
        dpre = g * (1 - y * y)
    else:
        dpre = g
    dpre = _out(dpre, g.dtype)
    dx = _out(dpre @ w, g.dtype) if need_x else None
    dw = _out(dpre.T @ x, g.dtype) if need_w else None
    dbias = _out(dpre.sum(axis=0, dtype=np.float64), g.dtype) if need_bias else None
    return dx, dw, dbias


def bce_with_logits(x: np.ndarray, t: np.ndarray, reduction: str, with_grad: bool = False):
    """l = max(x, 0) - x t + log1p(exp(-|x|)), reduced by 'none' | 'sum' | 'mean';
    with_grad: (loss, dl/dx = sigmoid(x) - t)."""
    l = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    if reduction == "none":
        loss = _out(l, x.dtype)
    else:
        total = l.sum(dtype=np.float64)
        if reduction == "mean":
            total = total / x.size if x.size else float("nan")  # a mean of nothing, as in numpy
        loss = np.asarray(total, dtype=x.dtype)
    return (loss, _out(_sigmoid(x) - t, x.dtype)) if with_grad else loss


def gaussian_kl(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Per row: -0.5 * sum(1 + logvar - mu^2 - exp(logvar)) = KL(N(mu, e^logvar) || N(0, I))."""
    terms = 1 + logvar - mu * mu - np.exp(logvar)
    return _out(-0.5 * terms.sum(axis=-1, dtype=np.float64), mu.dtype)


def gaussian_kl_backward(
    mu: np.ndarray, logvar: np.ndarray, g: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    g = g[..., None]
    return _out(g * mu, mu.dtype), _out(g * 0.5 * (np.exp(logvar) - 1), mu.dtype)


def adam_step(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay) -> None:
    """One Adam update of every parameter in place; PyTorch's formulation (L2 weight decay added
    to g)."""
    for p, g, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        t = p.dtype.type
        g = g + t(weight_decay) * p
        m *= t(beta1)
        m += t(1 - beta1) * g
        v *= t(beta2)
        v += t(1 - beta2) * g * g
        bc1 = 1 - beta1**step
        bc2 = 1 - beta2**step
        p -= t(lr / bc1) * m / (np.sqrt(v) * t(1 / np.sqrt(bc2)) + t(eps))


def sgd_step(params, grads, bufs, first_steps, lr, momentum, dampening, weight_decay, nesterov) -> None:
    """One SGD update of every parameter in place (PyTorch's formulation)."""
    for p, g, buf, first_step in zip(params, grads, bufs, first_steps):
        t = p.dtype.type
        d = g + t(weight_decay) * p
        if momentum != 0:
            if first_step:
                buf[...] = d
            else:
                buf *= t(momentum)
                buf += t(1 - dampening) * d
            d = d + t(momentum) * buf if nesterov else buf.copy()
        p -= t(lr) * d
