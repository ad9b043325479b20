"""minigrad: a small reverse-mode autograd engine whose kernels are C.

    import minigrad as mg
    x = mg.Tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 x
"""

from . import backend
from .autograd import AnomalyError, Function, detect_anomaly, enable_grad, is_grad_enabled, no_grad, retain_grads
from .backend import backend_info, set_num_threads
from .gradcheck import GradcheckError, gradcheck
from .ops import (
    abs, cat, clip, concatenate, exp, log, logsumexp, relu, sigmoid, softplus, sqrt, stack, tanh, where,
)  # fmt: skip
from .tensor import (
    Tensor, float32, float64, get_default_dtype, manual_seed, ones, ones_like, rand, randn,
    set_default_dtype, tensor, zeros, zeros_like,
)  # fmt: skip
from . import nn, optim  # noqa: E402  (nn needs Tensor)
from . import graph  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AnomalyError", "Function", "GradcheckError", "Tensor", "abs", "backend", "backend_info", "cat",
    "clip", "concatenate", "detect_anomaly", "enable_grad", "exp", "float32", "float64",
    "get_default_dtype", "gradcheck", "graph", "is_grad_enabled", "log", "logsumexp", "manual_seed",
    "nn", "no_grad", "ones", "ones_like", "optim", "rand", "randn", "relu", "retain_grads",
    "set_default_dtype", "set_num_threads", "sigmoid", "softplus", "sqrt", "stack", "tanh", "tensor",
    "where", "zeros", "zeros_like",
]  # fmt: skip
