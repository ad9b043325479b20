"""The VAE objective: the negative ELBO, per example, averaged over the batch.

    -ELBO(x) = E_q[-log p(x | z)] + KL(q(z | x) || p(z))
             ~ BCE(logits, x) summed over pixels + (-1/2) sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))

with one sample of z (the reparameterized one). The KL term is exact (analytic for Gaussians).
"""

from __future__ import annotations

import math

import numpy as np

import minigrad as mg
from minigrad.nn import functional as F

from .model import positive_int


def negative_elbo(
    logits: mg.Tensor, x: mg.Tensor, mu: mg.Tensor, logvar: mg.Tensor
) -> tuple[mg.Tensor, mg.Tensor, mg.Tensor]:
    """(loss, reconstruction, kl): each the batch mean of its per-example term, in nats;
    loss = reconstruction + kl. All three are named nodes of the graph."""
    if logits.shape != x.shape:
        raise ValueError(f"negative_elbo: logits shape {logits.shape} != data shape {x.shape}")
    if mu.shape != logvar.shape or mu.shape[0] != x.shape[0]:
        raise ValueError(f"negative_elbo: mu {mu.shape} / logvar {logvar.shape} do not match batch {x.shape[0]}")
    batch = x.shape[0]
    reconstruction = (F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / batch).named("reconstruction")
    kl = (F.gaussian_kl(mu, logvar, reduction="sum") / batch).named("kl")
    return (reconstruction + kl).named("loss"), reconstruction, kl


def importance_sampled_nll(model, x: np.ndarray, k: int = 1000, chunk: int = 250) -> np.ndarray:
    """-log p(x) per example, estimated with k importance samples from q(z | x):

        log p(x) ~ logsumexp_k [log p(x | z_k) + log p(z_k) - log q(z_k | x)] - log k

    computed in the graph with logsumexp (samples in chunks of `chunk`, combined by another
    logsumexp). Returns a float64 array of shape (batch,)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"importance sampling needs k >= 1 samples (an integer), got {k!r}")
    positive_int("chunk", chunk)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"importance sampling needs a non-empty batch of shape (batch, pixels), got {x.shape}")
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    with mg.no_grad():
        xt = mg.Tensor(x.astype(model.dtype, copy=False))
        mu, logvar = model.encode(xt)
        sigma = (logvar * 0.5).exp()
        batch, latent = mu.shape
        pieces = []
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            eps = model.sample_eps((n, batch, latent))
            z = mu + sigma * eps  # (n, batch, latent)
            logits = model.decode(z.reshape(n * batch, latent))
            target = mg.Tensor(np.broadcast_to(xt.data, (n, batch, x.shape[1])).reshape(n * batch, -1))
            log_px_z = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(axis=1).reshape(n, batch)
            log_pz = -(z * z).sum(axis=2) * 0.5 - latent * half_log_2pi
            log_qz = -(eps * eps).sum(axis=2) * 0.5 - logvar.sum(axis=1) * 0.5 - latent * half_log_2pi
            pieces.append((log_px_z + log_pz - log_qz).logsumexp(axis=0))
        log_px = mg.stack(pieces, axis=0).logsumexp(axis=0) - math.log(k)
    return -log_px.data.astype(np.float64)
