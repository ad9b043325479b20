"""`python -m vae explain`: the learner's diagram, 6 -> 4 -> (mu_1, mu_2, sigma_1, sigma_2), with numbers.

The 6 inputs are real features of real digits from the embedded data: the mean ink intensity
(pixel / 255, so in [0, 1]) of each cell of a 2 x 3 grid laid over the 28 x 28 image -- rows 0-13
and 14-27, columns 0-9, 10-18 and 19-27 -- numbered row by row:

    x_1 top-left     x_2 top-middle     x_3 top-right
    x_4 bottom-left  x_5 bottom-middle  x_6 bottom-right

The "diagram" preset (VAE 6-4-2) is trained briefly with Adam on these features of the training
digits (a few hundred steps, a few seconds), or loaded from a checkpoint of a 6-4-2 model
(``explain --save PATH`` writes one).

Training objective: reconstruction + beta * KL with beta = 0.005 by default (a beta-VAE). Six
coarse ink averages carry little information under a Bernoulli likelihood (knowing x exactly saves
only ~0.07 nats of reconstruction per digit), so with the plain ELBO (beta = 1) the encoder
collapses to q(z|x) = N(0, I) for every digit -- mu ~ 0, sigma ~ 1, KL ~ 0, "posterior collapse" --
which would make a poor illustration. A small beta keeps both latent dimensions in use. The
gradients printed are those of the two terms of the plain negative ELBO, each on its own, so
they do not depend on beta. Then one test digit is pushed through the encoder and every
number of the forward pass, the sampling step and the gradient is printed, computed by the same
minigrad graph that training uses (the printed a, mu, logvar, sigma, z are read off its nodes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import minigrad as mg

from . import checkpoint
from .data import load_embedded
from .loss import negative_elbo
from .model import PRESETS, VAE
from .train import Config

CELL_NAMES = ("top-left", "top-middle", "top-right", "bottom-left", "bottom-middle", "bottom-right")
DIAGRAM = PRESETS["diagram"]


def cell_features(images: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 images -> (N, 6) float64: mean ink (pixel/255) of each cell of a 2 x 3 grid,
    row by row (rows split in 2, columns in 3 as evenly as possible: 28 -> 14+14 and 10+9+9)."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1] < 2 or images.shape[2] < 3:
        raise ValueError(f"cell_features: need (N, H, W) images with H >= 2, W >= 3, got {images.shape}")
    ink = images.astype(np.float64) / 255.0
    rows = np.array_split(np.arange(images.shape[1]), 2)
    cols = np.array_split(np.arange(images.shape[2]), 3)
    cells = [ink[:, r[0] : r[-1] + 1, c[0] : c[-1] + 1].mean(axis=(1, 2)) for r in rows for c in cols]
    return np.stack(cells, axis=1)


DEFAULT_BETA = 0.005


def train_diagram(steps: int = 300, seed: int = 0, batch_size: int = 64, lr: float = 0.02,
                  beta: float = DEFAULT_BETA) -> tuple[VAE, mg.optim.Adam, dict[str, Any]]:  # fmt: skip
    """The 6-4-2 VAE (float64), trained `steps` Adam steps on reconstruction + beta * KL of the cell
    features of the embedded training digits. Returns (model, optimizer, info)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"--steps must be a non-negative integer, got {steps!r}")
    if not (isinstance(beta, (int, float)) and 0 <= beta < float("inf")):
        raise ValueError(f"--beta must be a non-negative number, got {beta!r}")
    features = cell_features(load_embedded().train_images)
    model = VAE.preset("diagram", seed=seed, dtype="float64")
    optimizer = mg.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng([seed, 5])
    losses = []
    for _ in range(steps):
        x = mg.Tensor(features[rng.integers(0, len(features), batch_size)], name="x")
        logits, mu, logvar = model(x)
        loss, rec, kl = negative_elbo(logits, x, mu, logvar)
        objective = loss if beta == 1 else rec + kl * beta
        optimizer.zero_grad()
        objective.backward()
        optimizer.step()
        losses.append(objective.item())
    info = {"steps": steps, "examples": len(features), "lr": lr, "batch_size": batch_size, "beta": beta,
            "first_loss": losses[0] if losses else None, "last_loss": float(np.mean(losses[-20:])) if losses else None}  # fmt: skip
    return model, optimizer, info


def save_diagram(path: Path | str, model: VAE, optimizer: mg.optim.Adam, seed: int, steps: int) -> Path:
    """A checkpoint of the diagram model that `explain --checkpoint` (and `eval`-style loaders) read."""
    config = Config(data="embedded", epochs=1, batch_size=64, hidden_dim=model.hidden_dim,
                    latent_dim=model.latent_dim, seed=seed, dtype=str(model.dtype))  # fmt: skip
    meta = {"config": dataclasses.asdict(config), "epoch": 0, "step": steps, "history": [],
            "features": "mean ink of a 2x3 grid of cells (vae.explain.cell_features)", "minigrad": mg.__version__}
    return checkpoint.save(path, model.state_dict(), optimizer.state_dict(), meta)


def load_diagram(path: Path | str) -> VAE:
    """A 6-4-2 model from a checkpoint; CheckpointError for any other architecture."""
    state = checkpoint.load(path)
    weights = state["model"]
    shape = weights.get("encoder.hidden.weight", np.zeros((0, 0))).shape
    latent = weights.get("encoder.mu.weight", np.zeros((0, 0))).shape[0]
    if (shape[1:], shape[:1], latent) != ((DIAGRAM["input_dim"],), (DIAGRAM["hidden_dim"],), DIAGRAM["latent_dim"]):
        found = f"{shape[1] if len(shape) == 2 else '?'}-{shape[0] if len(shape) == 2 else '?'}-{latent}"
        raise checkpoint.CheckpointError(
            f"{path}: explain needs a 6-4-2 model (the diagram's network), this checkpoint holds a "
            f"{found} VAE; run `python -m vae explain --save FILE` to make one")  # fmt: skip
    dtype = next(iter(weights.values())).dtype
    model = VAE.preset("diagram", dtype=str(dtype) if str(dtype) in ("float32", "float64") else "float64")
    try:
        model.load_state_dict(weights)
    except (KeyError, ValueError, TypeError) as exc:
        raise checkpoint.CheckpointError(f"{path}: does not fit the 6-4-2 model: {exc}") from None
    return model


# ---------------------------------------------------------------- formatting
def _n(v: float, width: int = 8) -> str:
    """A number, signed, aligned: 4 decimals, or scientific when tiny."""
    v = float(v)
    if v == 0.0:
        s = " 0"
    elif abs(v) < 1e-3 or abs(v) >= 1e4:
        s = f"{v:+.2e}"
    else:
        s = f"{v:+.4f}"
    return s.rjust(width)


def _sum_terms(weights: Sequence[float] | np.ndarray, inputs: Sequence[float] | np.ndarray) -> str:
    """'0.123*0.456 - 0.789*0.012 + ...': each weight times its input, signs folded in."""
    parts = [f"{'-' if w < 0 else '+'} {abs(w):.3f}*{v:.3f}" for w, v in zip(weights, inputs)]
    text = " ".join(parts)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


def _matrix(m: np.ndarray, row_label: str, indent: str = "    ") -> list[str]:
    return [f"{indent}{row_label}_{i + 1}: [" + " ".join(_n(v, 10) for v in row) + " ]" for i, row in enumerate(m)]


def _grads(model: VAE, x: np.ndarray, eps: np.ndarray, term: str) -> dict[str, np.ndarray]:
    """Gradients of one term ('reconstruction' | 'kl' | 'loss') of the negative ELBO of x with this
    eps, from a fresh forward pass and a backward call on that term only: every parameter by name,
    plus the graph nodes 'z', 'mu', 'sigma', 'logvar' (zeros where no gradient reaches)."""
    model.zero_grad()
    xt = mg.Tensor(x[None, :].astype(model.dtype), name="x")
    with mg.retain_grads():
        mu, logvar = model.encode(xt)
        z = model.reparameterize(mu, logvar, mg.Tensor(eps[None, :].astype(model.dtype), name="eps"))
        logits = model.decode(z)
        loss, rec, kl = negative_elbo(logits, xt, mu, logvar)
        chosen = {"reconstruction": rec, "kl": kl, "loss": loss}[term]
        if chosen.requires_grad:
            chosen.backward()
    nodes = {"z": z, "mu": mu, "logvar": logvar}
    if z.inputs:  # reparameterized: z = mu + (sigma * eps)
        nodes["sigma"] = z.inputs[1].inputs[0]
    out = {name: (np.zeros(p.shape) if p.grad is None else p.grad.data.astype(np.float64).copy())
           for name, p in model.named_parameters()}  # fmt: skip
    for name, t in nodes.items():
        out[name] = np.zeros(t.shape[1:]) if t.grad is None else t.grad.data[0].astype(np.float64).copy()
    return out


def explain(model: VAE, x: np.ndarray, eps: np.ndarray, title: str = "") -> str:
    """The whole walk-through for one input x (6,) and one noise draw eps (2,), as text."""
    if (model.input_dim, model.hidden_dim, model.latent_dim) != tuple(DIAGRAM.values()):
        raise ValueError("explain works on the 6-4-2 diagram model")
    out: list[str] = []
    say = out.append
    enc = model.encoder  # the diagram model's layers all have a bias
    assert enc.hidden.bias is not None and enc.mu.bias is not None and enc.logvar.bias is not None
    W_h, b_h = (p.data.astype(np.float64) for p in (enc.hidden.weight, enc.hidden.bias))
    W_mu, b_mu = (p.data.astype(np.float64) for p in (enc.mu.weight, enc.mu.bias))
    W_lv, b_lv = (p.data.astype(np.float64) for p in (enc.logvar.weight, enc.logvar.bias))

    # one forward pass through the real graph; the numbers printed are read off its nodes
    rep = VAE.preset("diagram", dtype=str(model.dtype))
    rep.load_state_dict(model.state_dict())
    xt = mg.Tensor(x[None, :].astype(model.dtype), name="x")
    et = mg.Tensor(eps[None, :].astype(model.dtype), name="eps")
    with mg.retain_grads():
        mu_t, logvar_t = rep.encode(xt)
        z_t = rep.reparameterize(mu_t, logvar_t, et)
        z_t.sum().backward()  # dz/dmu and dz/dsigma by autograd
    a_t = mu_t.inputs[0]  # mu = linear(a, W_mu, b_mu)
    noise_t = z_t.inputs[1]  # z = mu + sigma*eps
    sigma_t = noise_t.inputs[0]
    a, mu, logvar = (t.data[0].astype(np.float64) for t in (a_t, mu_t, logvar_t))
    sigma, z = sigma_t.data[0].astype(np.float64), z_t.data[0].astype(np.float64)
    assert mu_t.grad is not None and sigma_t.grad is not None  # retain_grads() kept them
    dz_dmu, dz_dsigma = mu_t.grad.data[0], sigma_t.grad.data[0]

    if title:
        say(title)
        say("")
    say("1. Inputs: x_1..x_6, the mean ink (0 = white paper, 1 = full black) of 6 cells of the digit")
    for i in range(6):
        say(f"   x_{i + 1} = {x[i]:.4f}   ({CELL_NAMES[i]})")
    say("")
    say("2. Hidden layer: a_j = relu(W_h[j,1] x_1 + ... + W_h[j,6] x_6 + b_h[j]), its own row of W_h per unit")
    for j in range(4):
        pre = float(W_h[j] @ x + b_h[j])
        say(f"   a_{j + 1} = relu({_sum_terms(W_h[j], x)} {'+' if b_h[j] >= 0 else '-'} {abs(b_h[j]):.3f})"
            f" = relu({pre:+.4f}) = {a[j]:.4f}")  # fmt: skip
    say("")
    say("3. Encoder outputs: each of mu_1, mu_2, logvar_1, logvar_2 is its OWN weighted sum of a_1..a_4")
    for name, W, b, vals in (("mu", W_mu, b_mu, mu), ("logvar", W_lv, b_lv, logvar)):
        for i in range(2):
            rowname = "W_mu" if name == "mu" else "W_logvar"
            say(f"   {name}_{i + 1} = {rowname}[{i + 1},:] . a + b_{name}[{i + 1}]"
                f" = {_sum_terms(W[i], a)} {'+' if b[i] >= 0 else '-'} {abs(b[i]):.3f} = {vals[i]:+.4f}")  # fmt: skip
    for i in range(2):
        say(f"   sigma_{i + 1} = exp(logvar_{i + 1} / 2) = exp({logvar[i]:+.4f} / 2) = {sigma[i]:.4f}")
    say("")
    say(f"   mu_1 != mu_2 ({mu[0]:+.4f} vs {mu[1]:+.4f}): both read the same a = ({', '.join(f'{v:.3f}' for v in a)}),")
    say("   but each has its own row of weights:")
    say(f"      W_mu[1,:] = [{', '.join(f'{v:+.3f}' for v in W_mu[0])}]   b_mu[1] = {b_mu[0]:+.3f}")
    say(f"      W_mu[2,:] = [{', '.join(f'{v:+.3f}' for v in W_mu[1])}]   b_mu[2] = {b_mu[1]:+.3f}")
    say(f"   Neither is the average of a (that would be {a.mean():.4f} for both). Likewise sigma_1 != sigma_2.")
    say("   mu and sigma are OUTPUTS computed from x, not parameters: another digit gives other values.")
    say("   The parameters -- what training changes -- are the weights listed above: W_h (4x6), b_h (4),")
    say("   W_mu (2x4), b_mu (2), W_logvar (2x4), b_logvar (2), plus the decoder's. Training moves them")
    say("   so that, for every x, mu(x) and sigma(x) come out useful.")
    say("")
    say("4. Sampling, reparameterized: eps ~ N(0, I) is drawn once and is then a constant (requires_grad=False)")
    for i in range(2):
        say(f"   eps_{i + 1} = {eps[i]:+.4f}   z_{i + 1} = mu_{i + 1} + sigma_{i + 1} * eps_{i + 1}"
            f" = {mu[i]:+.4f} + {sigma[i]:.4f} * {eps[i]:+.4f} = {z[i]:+.4f}")  # fmt: skip
    say(f"   so dz_i/dmu_i = 1 and dz_i/dsigma_i = eps_i. Autograd on this graph: dz/dmu = "
        f"[{', '.join(f'{v:g}' for v in dz_dmu)}], dz/dsigma = [{', '.join(f'{v:+.4f}' for v in dz_dsigma)}] = eps")  # fmt: skip
    say("")

    # 5. gradients, each term's backward separately, reparameterized and opaque
    opaque = VAE.preset("diagram", sampler="opaque", dtype=str(model.dtype))
    opaque.load_state_dict(model.state_dict())
    g = {(s, term): _grads(m, x, eps, term) for s, m in (("rep", rep), ("opq", opaque)) for term in ("reconstruction", "kl")}
    elbo_terms = _loss_terms(rep, x, eps)
    say(f"5. Loss for this x: reconstruction {elbo_terms[1]:.4f} + KL {elbo_terms[2]:.4f} = negative ELBO {elbo_terms[0]:.4f}")
    say("   Gradients, from backward() on each term separately (same weights, same eps):")
    r = g[("rep", "reconstruction")]
    v = lambda arr: "[" + ", ".join(f"{t:+.4f}" for t in arr) + "]"
    say(f"   reconstruction: dL/dz = {v(r['z'])} (from the decoder), then through the sampling step")
    say(f"     dL/dmu     = dL/dz * 1   = {v(r['mu'])}")
    say(f"     dL/dsigma  = dL/dz * eps = {v(r['sigma'])}")
    say(f"     dL/dlogvar = dL/dsigma * sigma/2 = {v(r['logvar'])}   (sigma = exp(logvar/2))")
    k = g[("rep", "kl")]
    say(f"   KL = -1/2 sum(1 + logvar - mu^2 - exp(logvar)) needs no sample: dKL/dmu = mu = {v(k['mu'])},")
    say(f"     dKL/dlogvar = (exp(logvar) - 1)/2 = {v(k['logvar'])}")
    say("   and dL/dW_mu[i,j] = dL/dmu_i * a_j, dL/dW_logvar[i,j] = dL/dlogvar_i * a_j:")
    for pname, label, rowname in (("encoder.mu.weight", "W_mu", "mu"), ("encoder.logvar.weight", "W_logvar", "logvar")):
        say(f"   dLoss/d{label} (row i feeds {rowname}_i; columns a_1..a_4)")
        for what, key in (("reconstruction part", ("rep", "reconstruction")), ("KL part", ("rep", "kl"))):
            say(f"     {what}:")
            out.extend(_matrix(g[key][pname], "row", "       "))
        say("")
    dead = [j + 1 for j in range(4) if a[j] == 0]
    if dead:
        say(f"   (column{'s' if len(dead) > 1 else ''} {', '.join(f'a_{j}' for j in dead)} {'are' if len(dead) > 1 else 'is'} zero "
            f"because {'those units are' if len(dead) > 1 else 'that unit is'} switched off by relu for this x)")  # fmt: skip
        say("")
    say("6. The same with sampler='opaque' (z = one number drawn from N(mu, sigma^2), no edge back to mu, sigma):")
    for pname, label in (("encoder.mu.weight", "W_mu"), ("encoder.logvar.weight", "W_logvar")):
        rec, kl = g[("opq", "reconstruction")][pname], g[("opq", "kl")][pname]
        say(f"   dLoss/d{label}: reconstruction part {'exactly zero' if not rec.any() else 'NONZERO (unexpected)'}:")
        out.extend(_matrix(rec, "row", "       "))
        same = np.allclose(kl, g[("rep", "kl")][pname], rtol=1e-6, atol=1e-12)
        say(f"     KL part ({'identical to the reparameterized one' if same else 'differs'}):")
        out.extend(_matrix(kl, "row", "       "))
    dec = g[("opq", "reconstruction")]["decoder.out.weight"]
    say(f"   The decoder still learns (|dLoss_rec/dW_out| max {np.abs(dec).max():.3g}), but the encoder only ever")
    say("   hears the KL term, which pulls every q(z|x) toward N(0, I) whatever x is. The reparameterization")
    say("   z = mu + sigma * eps is what lets the reconstruction error reach W_mu and W_logvar.")
    return "\n".join(out) + "\n"


def _loss_terms(model: VAE, x: np.ndarray, eps: np.ndarray) -> tuple[float, float, float]:
    with mg.no_grad():
        xt = mg.Tensor(x[None, :].astype(model.dtype))
        logits, mu, logvar = model(xt, eps=mg.Tensor(eps[None, :].astype(model.dtype)))
        loss, rec, kl = negative_elbo(logits, xt, mu, logvar)
    return loss.item(), rec.item(), kl.item()


def run(checkpoint_path: Path | str | None = None, steps: int = 300, seed: int = 0, index: int = 0,
        save: Path | str | None = None, beta: float = DEFAULT_BETA) -> str:  # fmt: skip
    """Everything `python -m vae explain` prints."""
    dataset = load_embedded()
    test = cell_features(dataset.test_images)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(test):
        raise ValueError(f"--index must be between 0 and {len(test) - 1}, got {index!r}")
    if checkpoint_path is not None:
        model = load_diagram(checkpoint_path)
        how = f"the 6-4-2 model from {checkpoint_path}"
        if save is not None:
            raise ValueError("--save writes a freshly trained model; it cannot be combined with --checkpoint")
    else:
        model, optimizer, info = train_diagram(steps, seed, beta=beta)
        how = (f"the 6-4-2 model trained here:\n#   {steps} Adam steps (batch {info['batch_size']}, lr {info['lr']}, "
               f"seed {seed}) on reconstruction + {beta:g} * KL\n#   over the {info['examples']} embedded "
               "training digits")  # fmt: skip
        if steps:
            how += f" (objective {info['first_loss']:.3f} -> {info['last_loss']:.3f})"
        if save is not None:
            how += f"\n#   saved to {save_diagram(save, model, optimizer, seed, steps)}"
    eps = np.random.default_rng([seed, 6]).standard_normal(DIAGRAM["latent_dim"])
    title = (f"# The learner's diagram with real numbers, on {how}.\n"
             f"# Input: test digit #{index} of the embedded data (label {int(dataset.test_labels[index])}).")  # fmt: skip
    text = explain(model, test[index], eps, title=title)
    kl = _mean_kl(model, test)
    if kl < 0.05:
        text += (f"\nnote: this model's mean KL over the test digits is {kl:.3f} nats: q(z|x) is N(0, I) for almost "
                 "every x (posterior collapse),\nso mu ~ 0 and sigma ~ 1 everywhere. Try another --seed or a "
                 "smaller --beta.\n")  # fmt: skip
    return text


def _mean_kl(model: VAE, x: np.ndarray) -> float:
    with mg.no_grad():
        mu, logvar = model.encode(mg.Tensor(x.astype(model.dtype)))
        return float(mg.nn.functional.gaussian_kl(mu, logvar, reduction="mean").item())
