"""Optimizers: SGD (with momentum), one fused C pass per parameter, and Adam, one fused C pass
over all parameters."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import backend
from .autograd import mark_updated
from ._checks import is_integer, is_real
from .nn.module import Parameter


class Optimizer:
    STATE_KEYS: tuple[str, ...] = ()  # what one parameter's state holds once it has stepped
    NONNEGATIVE_STATE: tuple[str, ...] = ()  # state arrays that can never hold a negative value

    def __init__(self, params: Iterable[Parameter], defaults: dict[str, Any]):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: item {i} is a {type(p).__name__}, not a Parameter")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{type(self).__name__}: a parameter appears more than once in the list")
        self.defaults = self._checked(defaults, type(self).__name__ + ": {}")
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    @staticmethod
    def _checked(defaults: dict[str, Any], field: str) -> dict[str, Any]:
        """The hyperparameters, each checked and made a plain Python value (subclasses add their
        own rules; keys without a rule are kept as given); `field` formats a key into the error
        message's subject."""
        return {**defaults, "lr": _number(defaults.get("lr"), field.format("lr"), "learning rate > 0", positive=True)}

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
        """Restore hyperparameters and state from state_dict()'s output; everything is checked
        before anything changes."""
        name = type(self).__name__
        entries = state.get("state") if isinstance(state, dict) else None
        if not isinstance(entries, list) or len(entries) != len(self.params):
            n = len(entries) if isinstance(entries, list) else "no"
            raise ValueError(f"{name}.load_state_dict: {n} parameter states for {len(self.params)} parameters")
        given = state.get("defaults", {})
        if not isinstance(given, dict):
            raise TypeError(f"{name}.load_state_dict: 'defaults' is a {type(given).__name__}, expected a dict")
        defaults = self._checked({**self.defaults, **{k: v for k, v in given.items() if k in self.defaults}},
                                 f"{name}.load_state_dict: defaults['{{}}']")  # fmt: skip
        loaded = []
        for i, (p, s) in enumerate(zip(self.params, entries)):
            if not isinstance(s, dict) or (s and set(s) != set(self.STATE_KEYS)):
                keys = sorted(s) if isinstance(s, dict) else type(s).__name__
                raise ValueError(f"{name}.load_state_dict: parameter {i} has state {keys}, expected {sorted(self.STATE_KEYS)} or none")
            entry: dict[str, Any] = {}
            for k, v in s.items():
                what = f"{name}.load_state_dict: state '{k}' of parameter {i}"
                if k == "step":
                    # the next step adds 1 and the kernels count in int64
                    if not is_integer(v) or not 1 <= v < 2**62:
                        raise ValueError(f"{what} is {v!r}, expected a positive integer below 2**62")
                    entry[k] = int(v)
                    continue
                if not isinstance(v, np.ndarray) or v.shape != p.shape or v.dtype.kind != "f":
                    shape = getattr(v, "shape", type(v).__name__)
                    raise ValueError(f"{what} has shape {shape}, expected {p.shape} (floats)")
                # owned, C-ordered copies in the parameter's dtype: the kernels update them in place
                with np.errstate(over="ignore"):  # an overflow is reported below
                    a = np.array(v, dtype=p.dtype, order="C")
                if not np.isfinite(a).all() or (k in self.NONNEGATIVE_STATE and (a < 0).any()):
                    rule = "finite and >= 0" if k in self.NONNEGATIVE_STATE else "finite"
                    raise ValueError(f"{what} must be {rule} (as {p.dtype}), found other values")
                entry[k] = a
            loaded.append(entry)
        self.defaults, self.state = defaults, loaded


def _number(value: Any, subject: str, rule: str, positive: bool = False, below_one: bool = False) -> float:
    """A hyperparameter as a float: a real number (not a bool), finite, >= 0, and > 0 or < 1 when
    asked; the error names the subject and the rule."""
    if not is_real(value):
        raise TypeError(f"{subject} must be a real number ({rule}), got {value!r}")
    x = float(value)
    if not (math.isfinite(x) and x >= 0) or (positive and x == 0) or (below_one and x >= 1):
        raise ValueError(f"{subject} must be a finite {rule}, got {value!r}")
    return x


class SGD(Optimizer):
    """p -= lr * d with d = g + weight_decay p, and with momentum (PyTorch's convention)
    buf = momentum buf + (1 - dampening) d;  d = d + momentum buf if nesterov else buf."""

    STATE_KEYS = ("momentum_buffer",)

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-2, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):  # fmt: skip
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))  # fmt: skip

    @staticmethod
    def _checked(defaults: dict[str, Any], field: str) -> dict[str, Any]:
        d = Optimizer._checked(defaults, field)
        for key in ("momentum", "dampening", "weight_decay"):
            d[key] = _number(defaults.get(key), field.format(key), "number >= 0")
        nesterov = defaults.get("nesterov")
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"{field.format('nesterov')} must be True or False, got {nesterov!r}")
        if nesterov and (d["momentum"] == 0 or d["dampening"] != 0):
            raise ValueError(f"{field.format('nesterov')}: Nesterov momentum needs momentum > 0 and dampening 0, "
                             f"got momentum {d['momentum']} and dampening {d['dampening']}")  # fmt: skip
        d["nesterov"] = bool(nesterov)
        return d

    def step(self) -> None:
        """One update of every parameter that has a grad; all are checked before any changes."""
        self._check_grads()
        d = self.defaults
        ps, gs, bufs, firsts, states = [], [], [], [], []
        for p, s in zip(self.params, self.state):
            if p.grad is None:
                continue
            ps.append(p.data)
            gs.append(p.grad.data)
            first = "momentum_buffer" not in s  # fresh state, kept only once the update succeeded
            bufs.append(np.zeros_like(p.data) if first else s["momentum_buffer"])
            firsts.append(first)
            states.append(s)
        backend.current().sgd_step(ps, gs, bufs, firsts, d["lr"], d["momentum"], d["dampening"],
                                   d["weight_decay"], d["nesterov"])  # fmt: skip
        mark_updated(ps, "SGD.step()")
        for s, buf in zip(states, bufs):
            s["momentum_buffer"] = buf


class Adam(Optimizer):
    """Adam: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
    p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps); weight_decay adds wd * p to g."""

    STATE_KEYS = ("step", "exp_avg", "exp_avg_sq")
    NONNEGATIVE_STATE = ("exp_avg_sq",)

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):  # fmt: skip
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @staticmethod
    def _checked(defaults: dict[str, Any], field: str) -> dict[str, Any]:
        d = Optimizer._checked(defaults, field)
        betas = defaults.get("betas")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{field.format('betas')} must be a pair (beta1, beta2), got {betas!r}")
        d["betas"] = tuple(_number(b, field.format("betas"), "number in [0, 1)", below_one=True) for b in betas)
        for key in ("eps", "weight_decay"):
            d[key] = _number(defaults.get(key), field.format(key), "number >= 0")
        return d

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
        mark_updated(ps, "Adam.step()")
        for s, m, v, step in zip(states, ms, vs, steps):
            s.update(step=step, exp_avg=m, exp_avg_sq=v)
