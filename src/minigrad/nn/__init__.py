"""Layers and losses: Module, Parameter, Linear, Sequential, and ``nn.functional``."""

from . import functional
from .module import Linear, Module, Parameter, ReLU, Sequential, Sigmoid, Tanh

__all__ = ["functional", "Linear", "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh"]
