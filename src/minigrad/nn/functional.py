"""Stateless neural-network functions (PyTorch's names)."""

from __future__ import annotations

from ..ops import BCEWithLogits, GaussianKL, Linear, _check_reduction
from ..tensor import Tensor, _lift

_ACTIVATIONS = ("none", "relu", "sigmoid", "tanh")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str = "none") -> Tensor:
    """activation(x @ weight.T + bias); weight is (out_features, in_features).

    ``activation`` fuses relu/sigmoid/tanh into the same kernel pass as the bias add."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"linear: activation must be one of {_ACTIVATIONS}, got {activation!r}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Linear.apply(*inputs, act=activation)


def relu(x: Tensor) -> Tensor:
    return Tensor.relu(x)  # unbound: a non-Tensor x gets apply's TypeError


def sigmoid(x: Tensor) -> Tensor:
    return Tensor.sigmoid(x)  # unbound: a non-Tensor x gets apply's TypeError


def softplus(x: Tensor) -> Tensor:
    return Tensor.softplus(x)  # unbound: a non-Tensor x gets apply's TypeError


def tanh(x: Tensor) -> Tensor:
    return Tensor.tanh(x)  # unbound: a non-Tensor x gets apply's TypeError


def binary_cross_entropy_with_logits(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """-[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], computed from logits without overflow
    (finite at logits of +-1000) in one fused kernel; reduction 'none' | 'sum' | 'mean'."""
    _check_reduction(reduction)
    return BCEWithLogits.apply(logits, _lift(target, logits), reduction=reduction)


def gaussian_kl(mu: Tensor, logvar: Tensor, reduction: str = "none") -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) = -1/2 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j)),
    one value per row (the last dim is summed); then reduced by 'none' | 'sum' | 'mean'."""
    _check_reduction(reduction)
    return GaussianKL.apply(mu, logvar, reduction=reduction)
