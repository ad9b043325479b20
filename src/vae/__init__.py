"""vae: a variational autoencoder on minigrad that makes the reparameterization trick visible.

    from vae import VAE, negative_elbo
    model = VAE(784, 400, 20)
    logits, mu, logvar = model(x)            # z = mu + sigma * eps inside, as named graph nodes
    loss, reconstruction, kl = negative_elbo(logits, x, mu, logvar)
"""

from . import interop, loss
from .loss import negative_elbo
from .model import PRESETS, VAE

__all__ = ["VAE", "PRESETS", "negative_elbo", "interop", "loss"]
