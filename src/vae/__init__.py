"""vae: a variational autoencoder on minigrad that makes the reparameterization trick visible.

    from vae import VAE, negative_elbo
    model = VAE(784, 400, 20)
    logits, mu, logvar = model(x)            # z = mu + sigma * eps inside, as named graph nodes
    loss, reconstruction, kl = negative_elbo(logits, x, mu, logvar)
"""

import importlib
from typing import Any

__all__ = ["VAE", "PRESETS", "negative_elbo", "interop", "loss"]
_FROM = {"VAE": "model", "PRESETS": "model", "negative_elbo": "loss"}


def __getattr__(name: str) -> Any:
    """Load on first use, so `python -m vae` can report a bad MINIGRAD_* setting as one line."""
    if name in _FROM:
        return getattr(importlib.import_module(f".{_FROM[name]}", __name__), name)
    if name in ("interop", "loss"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'vae' has no attribute {name!r}")
