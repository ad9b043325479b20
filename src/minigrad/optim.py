"""Optimizers: SGD (with momentum), one fused C pass per parameter, and Adam, one fused C pass
over all parameters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from . import backend
from .nn.module import Parameter


class Optimizer:
    STATE_KEYS: tuple[str, ...] = ()  # what one parameter's state holds once it has stepped

    def __init__(self, params: Iterable[Parameter], defaults: dict[str, Any]):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: item {i} is a {type(p).__name__}, not a Parameter")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{type(self).__name__}: a parameter appears more than once in the list")
        if not defaults.get("lr", 0) > 0:  # also refuses NaN
            raise ValueError(f"{type(self).__name__}: learning rate must be positive, got {defaults.get('lr')}")
        self.defaults = defaults
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def _check_grads(self) -> None:
        """Every gradient must match its parameter: checked for all before any is updated."""
        for i, (p, state) in enumerate(zip(self.params, self.state)):
            data = p.data
            if p.grad is not None and (p.grad.data.shape != data.shape or p.grad.data.dtype != data.dtype):
                raise ValueError(
                    f"{type(self).__name__}.step: parameter {i} ({p.name or 'unnamed'}) has shape "
                    f"{p.shape} {p.dtype} but its grad has shape {p.grad.shape} {p.grad.dtype}"
                )
            for key, value in state.items():
                if isinstance(value, np.ndarray) and value.shape != data.shape:
                    raise ValueError(
                        f"{type(self).__name__}.step: state '{key}' of parameter {i} has shape "
                        f"{value.shape}, the parameter now has shape {p.shape}"
                    )

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state (arrays copied), for checkpoints."""
        return {
            "defaults": dict(self.defaults),
            "state": [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        entries = state.get("state")
        if not isinstance(entries, list) or len(entries) != len(self.params):
            n = len(entries) if isinstance(entries, list) else "no"
            raise ValueError(f"{type(self).__name__}.load_state_dict: {n} parameter states for {len(self.params)} parameters")
        name = type(self).__name__
        for i, (p, s) in enumerate(zip(self.params, entries)):
            if not isinstance(s, dict) or (s and set(s) != set(self.STATE_KEYS)):
                keys = sorted(s) if isinstance(s, dict) else type(s).__name__
                raise ValueError(f"{name}.load_state_dict: parameter {i} has state {keys}, expected {sorted(self.STATE_KEYS)} or none")
            for k, v in s.items():
                if k == "step":
                    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                        raise ValueError(f"{name}.load_state_dict: step of parameter {i} is {v!r}, expected a positive integer")
                elif not isinstance(v, np.ndarray) or v.shape != p.shape or v.dtype.kind != "f":
                    shape = getattr(v, "shape", type(v).__name__)
                    raise ValueError(f"{name}.load_state_dict: state '{k}' of parameter {i} has shape {shape}, expected {p.shape} (floats)")
        self.defaults.update({k: v for k, v in state.get("defaults", {}).items() if k in self.defaults})
        self.state = [{k: (np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                      for p, s in zip(self.params, entries)]  # fmt: skip


class SGD(Optimizer):
    """p -= lr * d with d = g + weight_decay p, and with momentum (PyTorch's convention)
    buf = momentum buf + (1 - dampening) d;  d = d + momentum buf if nesterov else buf."""

    STATE_KEYS = ("momentum_buffer",)

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-2, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):  # fmt: skip
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))  # fmt: skip

    def step(self) -> None:
        self._check_grads()
        d = self.defaults
        be = backend.current()
        for p, s in zip(self.params, self.state):
            if p.grad is None:
                continue
            first = "momentum_buffer" not in s
            if first:
                s["momentum_buffer"] = np.zeros_like(p.data)
            be.sgd_step(p.data, p.grad.data, s["momentum_buffer"], d["lr"], d["momentum"],
                        d["dampening"], d["weight_decay"], d["nesterov"], first)  # fmt: skip


class Adam(Optimizer):
    """Adam: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
    p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps); weight_decay adds wd * p to g."""

    STATE_KEYS = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):  # fmt: skip
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay))

    def step(self) -> None:
        self._check_grads()
        d = self.defaults
        b1, b2 = d["betas"]
        ps, gs, ms, vs, steps, states = [], [], [], [], [], []
        for p, s in zip(self.params, self.state):
            if p.grad is None:
                continue
            ps.append(p.data)
            gs.append(p.grad.data)
            if s:
                ms.append(s["exp_avg"])
                vs.append(s["exp_avg_sq"])
                steps.append(s["step"] + 1)
            else:  # a first step gets fresh state, kept only once the update has succeeded
                ms.append(np.zeros_like(p.data))
                vs.append(np.zeros_like(p.data))
                steps.append(1)
            states.append(s)
        backend.current().adam_step(ps, gs, ms, vs, steps, d["lr"], b1, b2, d["eps"], d["weight_decay"])
        for s, m, v, step in zip(states, ms, vs, steps):
            s.update(step=step, exp_avg=m, exp_avg_sq=v)
