"""`python -m vae gradcheck`: the whole negative ELBO's gradient against central finite differences.

A small float64 VAE, a small batch of real data (embedded test digits, each averaged down to
`input` values in [0, 1]) and one fixed eps draw, so the loss is a deterministic function of the
parameters. For every parameter p and every element p_k:

    numeric_k = (L(p_k + h) - L(p_k - h)) / (2 h),   h = 1e-6
    ok  <=>  |analytic_k - numeric_k| <= atol + rtol |numeric_k|   for all k

and the table reports the maximum absolute and relative error per parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import minigrad as mg
from minigrad.gradcheck import numerical_gradient

from .data import load_embedded
from .loss import negative_elbo
from .model import VAE, positive_int

STEP, ATOL, RTOL = 1e-6, 1e-6, 1e-4
REL_FLOOR = 1e-6  # max rel err is taken over elements with |numeric| >= this


def small_batch(batch: int, input_dim: int) -> np.ndarray:
    """The first `batch` embedded test digits, each flattened and averaged over `input_dim` nearly
    equal runs of pixels: (batch, input_dim) float64 in [0, 1]."""
    images = load_embedded().test_images
    if batch > len(images):
        raise ValueError(f"--batch must be at most {len(images)}, got {batch}")
    if input_dim > images[0].size:
        raise ValueError(f"--input must be at most {images[0].size}, got {input_dim}")
    flat = images[:batch].reshape(batch, -1).astype(np.float64) / 255.0
    return np.stack([chunk.mean(axis=1) for chunk in np.array_split(flat, input_dim, axis=1)], axis=1)


def gradcheck_vae(batch: int = 4, hidden: int = 5, latent: int = 3, input_dim: int = 8, seed: int = 0,
                  step: float = STEP, atol: float = ATOL, rtol: float = RTOL) -> list[dict[str, Any]]:  # fmt: skip
    """One row per parameter: name, shape, max_abs, max_rel, ok."""
    for name, value in (("--batch", batch), ("--hidden", hidden), ("--latent", latent), ("--input", input_dim)):
        positive_int(name, value)
    model = VAE(input_dim, hidden, latent, seed=seed, dtype="float64")
    x = mg.Tensor(small_batch(batch, input_dim), name="x")
    eps = mg.Tensor(np.random.default_rng([seed, 7]).standard_normal((batch, latent)), name="eps")

    def loss_value() -> float:
        with mg.no_grad():
            logits, mu, logvar = model(x, eps=eps)
            return negative_elbo(logits, x, mu, logvar)[0].item()

    model.zero_grad()
    logits, mu, logvar = model(x, eps=eps)
    negative_elbo(logits, x, mu, logvar)[0].backward()
    rows = []
    for name, p in model.named_parameters():
        analytic = np.zeros(p.shape) if p.grad is None else p.grad.data.copy()
        numeric = numerical_gradient(loss_value, p.data, step)
        abs_err = np.abs(analytic - numeric)
        big = np.abs(numeric) >= REL_FLOOR  # relative error is meaningless for near-zero gradients
        rel_err = np.where(big, abs_err / np.maximum(np.abs(numeric), REL_FLOOR), 0.0)
        ok = bool((abs_err <= atol + rtol * np.abs(numeric)).all())
        rows.append({"name": name, "shape": list(p.shape), "max_abs": float(abs_err.max()),
                     "max_rel": float(rel_err.max()), "ok": ok})
    return rows


def format_table(rows: list[dict[str, Any]], atol: float = ATOL, rtol: float = RTOL) -> str:
    w = max(len(r["name"]) for r in rows)
    lines = [f"{'parameter'.ljust(w)}  {'shape':>9}  {'max abs err':>11}  {'max rel err':>11}  ok"]
    for r in rows:
        shape = "x".join(str(s) for s in r["shape"])
        lines.append(f"{r['name'].ljust(w)}  {shape:>9}  {r['max_abs']:11.2e}  {r['max_rel']:11.2e}  "
                     f"{'yes' if r['ok'] else 'NO'}")  # fmt: skip
    bad = [r["name"] for r in rows if not r["ok"]]
    lines.append(f"criterion: |analytic - numeric| <= {atol:g} + {rtol:g} |numeric| (central differences, "
                 f"h = {STEP:g}, float64); max rel err over elements with |numeric| >= {REL_FLOOR:g}")  # fmt: skip
    lines.append("all gradients agree" if not bad else f"FAILED: {', '.join(bad)}")
    return "\n".join(lines)
