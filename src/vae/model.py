"""The VAE: an encoder with two separate heads (mu and logvar), an explicit sampling step, and a
decoder. Every value a learner asks about is a named node in the graph.

    x --hidden+relu--> a --mu head-----> mu ---------------------------+
                         \\--logvar head--> logvar --*0.5, exp--> sigma --*--> sigma*eps --+--> z --> decoder --> logits
                                                          eps ~ N(0, I) --/  (a constant leaf)

mu_i and sigma_i are *outputs* of the encoder, not parameters: mu_i = W_mu[i] . a + b_mu[i] has
its own row of weights, so mu_1 != mu_2. The parameters are the weights and biases.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import minigrad as mg
from minigrad import nn

SAMPLERS = ("reparameterized", "opaque")
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0
"""logvar is clamped to [-30, 20] so exp(logvar) stays within float32 (e^20 ~ 4.9e8, and sigma =
e^10 ~ 2.2e4) and exp(-30) stays well above zero. Inside the range the clamp is the identity."""

PRESETS: dict[str, dict[str, Any]] = {
    "mnist": dict(input_dim=784, hidden_dim=400, latent_dim=20),
    # the network of the learner's diagram: x_1..x_6 -> a_1..a_4 -> (mu_1, mu_2, sigma_1, sigma_2)
    "diagram": dict(input_dim=6, hidden_dim=4, latent_dim=2),
}


def positive_int(name: str, value: Any) -> int:
    """value as an int, or ValueError naming `name` unless it is an integer >= 1."""
    return _int_at_least(name, value, 1, "a positive integer")


def nonnegative_int(name: str, value: Any) -> int:
    """value as an int, or ValueError naming `name` unless it is an integer >= 0 (a seed)."""
    return _int_at_least(name, value, 0, "a non-negative integer")


def _int_at_least(name: str, value: Any, low: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


class Encoder(nn.Module):
    """x -> a = relu(W_h x + b_h) -> (mu = W_mu a + b_mu, logvar = W_lv a + b_lv)."""

    def __init__(self, input_dim: int, hidden_dim: int, latent_dim: int, dtype: Any, rng: np.random.Generator):
        super().__init__()
        self.hidden = nn.Linear(input_dim, hidden_dim, dtype=dtype, generator=rng)
        self.mu = nn.Linear(hidden_dim, latent_dim, dtype=dtype, generator=rng)
        self.logvar = nn.Linear(hidden_dim, latent_dim, dtype=dtype, generator=rng)

    def forward(self, x: mg.Tensor) -> tuple[mg.Tensor, mg.Tensor]:
        a = self.hidden(x, activation="relu").named("a")
        mu = self.mu(a).named("mu")
        logvar = self.logvar(a).named("logvar_unclamped").clip(LOGVAR_MIN, LOGVAR_MAX).named("logvar")
        return mu, logvar


class Decoder(nn.Module):
    """z -> relu(W_h z + b_h) -> logits = W_out h + b_out (one logit per pixel)."""

    def __init__(self, latent_dim: int, hidden_dim: int, output_dim: int, dtype: Any, rng: np.random.Generator):
        super().__init__()
        self.hidden = nn.Linear(latent_dim, hidden_dim, dtype=dtype, generator=rng)
        self.out = nn.Linear(hidden_dim, output_dim, dtype=dtype, generator=rng)

    def forward(self, z: mg.Tensor) -> mg.Tensor:
        h = self.hidden(z, activation="relu").named("decoder_h")
        return self.out(h).named("logits")


class VAE(nn.Module):
    """Variational autoencoder with Gaussian latents and a Bernoulli (logit) decoder.

    ``sampler="reparameterized"`` draws z = mu + sigma * eps with eps ~ N(0, I) a constant leaf,
    so gradients reach the encoder through mu and sigma. ``sampler="opaque"`` draws z as one
    constant sample with no path back to mu and sigma: the reconstruction loss then cannot train
    the encoder (only the KL term reaches it) -- the contrast the reparameterization trick fixes.
    """

    def __init__(self, input_dim: int = 784, hidden_dim: int = 400, latent_dim: int = 20,
                 sampler: str = "reparameterized", seed: int | None = None, dtype: Any = None):  # fmt: skip
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.input_dim = positive_int("input_dim", input_dim)
        self.hidden_dim = positive_int("hidden_dim", hidden_dim)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.sampler = sampler
        # (H, W) of the images it models, when known: train sets it from the data, and
        # checkpoints keep it (an input_dim alone does not say 16 x 36 from 24 x 24)
        self.image_shape: tuple[int, int] | None = None
        dt = np.dtype(dtype or mg.get_default_dtype())
        init_rng = np.random.default_rng(seed)
        self.encoder = Encoder(self.input_dim, self.hidden_dim, self.latent_dim, dt, init_rng)
        self.decoder = Decoder(self.latent_dim, self.hidden_dim, self.input_dim, dt, init_rng)
        # eps draws come from their own stream so a seeded run repeats exactly (and resumes)
        self.noise = np.random.default_rng(None if seed is None else [seed, 1])
        for name, p in self.named_parameters():
            p.name = name

    @classmethod
    def preset(cls, name: str, **kwargs: Any) -> VAE:
        """``VAE.preset("mnist")`` (784-400-20) or ``VAE.preset("diagram")`` (6-4-2)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**PRESETS[name], **kwargs)

    @property
    def dtype(self) -> np.dtype:
        return self.encoder.hidden.weight.dtype

    def config(self) -> dict[str, Any]:
        return dict(input_dim=self.input_dim, hidden_dim=self.hidden_dim, latent_dim=self.latent_dim,
                    sampler=self.sampler, dtype=str(self.dtype))  # fmt: skip

    def encode(self, x: mg.Tensor) -> tuple[mg.Tensor, mg.Tensor]:
        """(mu, logvar) of q(z | x), each (batch, latent_dim)."""
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"VAE.encode: expected input of shape (batch, {self.input_dim}), got {x.shape}")
        return self.encoder(x)

    def sample_eps(self, shape: tuple[int, ...]) -> mg.Tensor:
        """eps ~ N(0, I): a leaf with requires_grad=False (no gradient is ever needed for it)."""
        return mg.Tensor(self.noise.standard_normal(shape, dtype=self.dtype), name="eps")

    def reparameterize(self, mu: mg.Tensor, logvar: mg.Tensor, eps: mg.Tensor | None = None) -> mg.Tensor:
        """z = mu + sigma * eps with sigma = exp(0.5 logvar); dz/dmu = 1 and dz/dsigma = eps."""
        if eps is None:
            eps = self.sample_eps(mu.shape)
        elif eps.shape != mu.shape:
            raise ValueError(f"reparameterize: eps has shape {eps.shape}, mu has shape {mu.shape}")
        if eps.requires_grad:
            raise ValueError("reparameterize: eps must be a constant (requires_grad=False)")
        if eps.name is None:
            eps.name = "eps"
        sigma = (logvar * 0.5).named("half_logvar").exp().named("sigma")
        if self.sampler == "opaque":
            # one draw from N(mu, sigma^2) taken as a plain number: no edge back to mu or sigma
            return mg.Tensor(mu.data + sigma.data * eps.data, name="z (opaque sample)")
        noise = (sigma * eps).named("sigma*eps")
        return (mu + noise).named("z")

    def decode(self, z: mg.Tensor) -> mg.Tensor:
        """Logits of p(x | z), (batch, input_dim); pixel probabilities are sigmoid(logits)."""
        return self.decoder(z)

    def forward(self, x: mg.Tensor, eps: mg.Tensor | None = None) -> tuple[mg.Tensor, mg.Tensor, mg.Tensor]:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, eps)
        return self.decode(z), mu, logvar
