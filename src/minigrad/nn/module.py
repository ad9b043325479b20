"""Module, Parameter and the layers: the PyTorch shapes of things, on minigrad tensors."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, overload

import numpy as np

from ..autograd import mark_updated
from ..tensor import Tensor, as_array, default_generator, get_default_dtype
from . import functional as F


class Parameter(Tensor):
    """A leaf tensor that a Module owns and an optimizer updates (requires_grad=True)."""

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None, name: str | None = None):
        super().__init__(np.array(as_array(data, dtype)), requires_grad=True, name=name)


class Module:
    """Base class: assign Parameters and Modules as attributes; they are found by name."""

    _parameters: OrderedDict[str, Parameter]
    _modules: OrderedDict[str, Module]
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, key: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        # A name already registered keeps its place in the order (as PyTorch): overwrite, not pop+insert.
        if isinstance(value, Parameter):
            self._modules.pop(key, None)
            self._parameters[key] = value
        elif isinstance(value, Module):
            self._parameters.pop(key, None)
            self._modules[key] = value
        else:
            self._parameters.pop(key, None)
            self._modules.pop(key, None)
        object.__setattr__(self, key, value)

    def __delattr__(self, key: str) -> None:
        """`del module.name` also unregisters a parameter or submodule, as PyTorch."""
        if "_parameters" in self.__dict__:
            self._parameters.pop(key, None)
            self._modules.pop(key, None)
        object.__delattr__(self, key)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        """Every parameter once, also one shared by two modules (tied weights), as PyTorch."""
        unique: dict[int, Parameter] = {}
        for _, p in self.named_parameters():
            unique.setdefault(id(p), p)
        return list(unique.values())

    def modules(self) -> Iterator[Module]:
        yield self
        for m in self._modules.values():
            yield from m.modules()

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Parameter name -> a copy of its array."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters (all or nothing): keys, shapes and finiteness are checked
        first; float data of another precision is converted to each parameter's dtype."""
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        extra = [k for k in state if k not in own]
        if strict and (missing or extra):
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: missing keys {missing}, unexpected keys {extra}"
            )
        staged = {}
        for name, value in state.items():
            if name not in own:
                continue
            p = own[name]
            arr = np.asarray(value.data if isinstance(value, Tensor) else value)
            if arr.dtype.kind != "f":
                raise TypeError(f"load_state_dict: '{name}' holds {arr.dtype} data; expected floats")
            if arr.shape != p.shape:
                raise ValueError(f"load_state_dict: '{name}' has shape {arr.shape}, the model expects {p.shape}")
            with np.errstate(over="ignore"):  # an overflow is reported below, by name
                arr = arr.astype(p.dtype, copy=False)
            if not np.isfinite(arr).all():
                raise ValueError(f"load_state_dict: '{name}' contains NaN or Inf (as {p.dtype})")
            staged[name] = arr
        for name, arr in staged.items():
            own[name].data[...] = arr
        mark_updated([own[name].data for name in staged], f"{type(self).__name__}.load_state_dict()")

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            lines.append(f"  ({name}): " + repr(m).replace("\n", "\n  "))
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


class Linear(Module):
    """y = x W^T + b with W (out_features, in_features), initialized as PyTorch does:
    W and b uniform in [-1/sqrt(in_features), 1/sqrt(in_features)]."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None,
                 generator: np.random.Generator | None = None):  # fmt: skip
        super().__init__()
        for what, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                raise ValueError(f"Linear: {what} must be a positive integer, got {n!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dt = dtype or get_default_dtype()
        rng = generator or default_generator()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)), dtype=dt)
        self.bias = Parameter(rng.uniform(-bound, bound, out_features), dtype=dt) if bias else None

    def forward(self, x: Tensor, activation: str = "none") -> Tensor:
        return F.linear(x, self.weight, self.bias, activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Sequential(Module):
    """Modules applied in order; parameters named '0.weight', '1.bias', ..."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    @overload
    def __getitem__(self, i: slice) -> Sequential: ...
    @overload
    def __getitem__(self, i: int) -> Module: ...
    def __getitem__(self, i: int | slice) -> Module:
        """An int (negative too) gives that module; a slice gives a Sequential of the same module
        objects, keeping their names (as PyTorch: model[1:3] has parameters '1.weight', ...)."""
        if isinstance(i, slice):
            sub = Sequential()
            for name, m in list(self._modules.items())[i]:
                setattr(sub, name, m)
            return sub
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def forward(self, x: Tensor) -> Tensor:
        for m in self._modules.values():
            x = m(x)
        return x
