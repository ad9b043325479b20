"""Evaluation of a trained VAE: test negative ELBO, importance-sampled NLL, active latent units.

    model, config, meta = load_model("runs/latest/checkpoint.npz")
    report = evaluate(model, test_x, k=1000)

* negative ELBO: ``train.evaluate_elbo`` (one fixed-seed eps draw per example), nats per example.
* NLL: ``loss.importance_sampled_nll`` with k samples from q(z|x), mean over the examples. It is an
  upper bound on the true -log p(x) that tightens as k grows, and lies below the negative ELBO
  (which is the k = 1 bound) up to sampling noise.
* active units (Burda et al., 2016): latent dimension j is active when Var_x(E_q[z_j | x]) > 0.01,
  where E_q[z_j | x] = mu_j(x) and the variance is over the examples evaluated.

Under the "grayscale" protocol the Bernoulli likelihood is applied to intensities in [0, 1], so
the numbers are cross-entropies rather than log-likelihoods of binary images; they are comparable
with each other but not with published binarized-MNIST results. The protocol is always reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import minigrad as mg

from . import checkpoint, data
from .loss import importance_sampled_nll
from .model import VAE, positive_int
from .progress import Progress
from .train import Config, build_model, evaluate_elbo, load_dataset, saved_config

ACTIVE_UNIT_THRESHOLD = 0.01


def load_model(path: Path | str) -> tuple[VAE, Config, dict[str, Any]]:
    """(model, config, meta) from a checkpoint written by ``train`` (or ``explain --save``).

    The architecture comes from the checkpoint itself; CheckpointError naming the file when the
    saved config or weights do not describe a VAE this code can build."""
    state = checkpoint.load(path)
    meta = state["meta"]
    config = saved_config(state, path)
    weights = state["model"]
    if "encoder.hidden.weight" not in weights or weights["encoder.hidden.weight"].ndim != 2:
        raise checkpoint.CheckpointError(f"{path}: no encoder.hidden.weight matrix; not a VAE checkpoint")
    input_dim = int(weights["encoder.hidden.weight"].shape[1])
    model = build_model(config, input_dim)
    shape = meta.get("image_shape")  # absent in checkpoints from before it was saved
    if shape is not None:
        if not (isinstance(shape, list) and len(shape) == 2 and all(type(n) is int and n > 0 for n in shape)
                and shape[0] * shape[1] == input_dim):  # fmt: skip
            raise checkpoint.CheckpointError(f"{path}: meta field 'image_shape' {shape!r:.40} is not [H, W] "
                                             f"with H x W = the model's {input_dim} inputs")  # fmt: skip
        model.image_shape = (shape[0], shape[1])
    try:
        model.load_state_dict(weights)
    except (KeyError, ValueError, TypeError) as exc:
        raise checkpoint.CheckpointError(f"{path}: the weights do not fit the saved architecture: {exc}") from None
    return model, config, meta


def describe_model(model: VAE) -> str:
    return (f"VAE {model.input_dim}-{model.hidden_dim}-{model.latent_dim} ({model.dtype}, "
            f"sampler {model.sampler})")  # fmt: skip


def test_inputs(config: Config, data_spec: str | None, protocol: str | None, limit: int | None,
                input_dim: int, image_shape: tuple[int, int] | None = None,
                ) -> tuple[np.ndarray, np.ndarray, str, str]:  # fmt: skip
    """(x, labels, dataset description, protocol): the test set under the protocol (default: the
    checkpoint's), prepared exactly as ``train`` prepares it, optionally cut to the first `limit`."""
    protocol = protocol or config.protocol
    if protocol not in data.PROTOCOLS:
        raise ValueError(f"pixel protocol must be one of {data.PROTOCOLS}, got {protocol!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be a positive integer, got {limit}")
    dataset = load_dataset(data_spec or config.data)
    if dataset.num_pixels != input_dim:
        raise ValueError(f"the data has {dataset.num_pixels} pixels per image but the model expects "
                         f"{input_dim} inputs")  # fmt: skip
    if image_shape is not None and dataset.image_shape != tuple(image_shape):
        (h, w), (mh, mw) = dataset.image_shape, image_shape
        raise ValueError(f"the data's images are {h}x{w} but the model was trained on {mh}x{mw} images")
    images, labels = dataset.test_images, dataset.test_labels
    x = data.prepare(images, protocol, np.random.default_rng([config.seed, 3]), config.dtype)
    if limit is not None:
        x, labels = x[:limit], labels[:limit]
    return x, labels, f"{dataset.name} test set", protocol


def latent_means(model: VAE, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """mu(x) = E_q[z | x] for every row of x, (N, latent_dim) float64."""
    out = []
    with mg.no_grad():
        for start in range(0, len(x), batch_size):
            mu, _ = model.encode(mg.Tensor(x[start : start + batch_size].astype(model.dtype, copy=False)))
            out.append(mu.data.astype(np.float64))
    return np.concatenate(out, axis=0)


def active_units(model: VAE, x: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD,
                 batch_size: int = 500) -> tuple[int, np.ndarray]:  # fmt: skip
    """(count, per-dimension variances): dims whose Var_x(mu_j(x)) exceeds the threshold."""
    variances = latent_means(model, x, batch_size).var(axis=0)
    return int((variances > threshold).sum()), variances


def importance_nll(model: VAE, x: np.ndarray, k: int, batch_size: int, seed: int = 0,
                   progress: Progress | None = None) -> np.ndarray:  # fmt: skip
    """Per-example -log p(x) with k importance samples, computed `batch_size` examples at a time
    (memory ~ min(k, 250) * batch_size * input_dim floats). Seeded: the same call repeats exactly."""
    positive_int("-k", k)
    positive_int("--batch-size", batch_size)
    saved_noise = model.noise
    model.noise = np.random.default_rng([seed, 4])
    started = time.perf_counter()
    try:
        out = []
        for start in range(0, len(x), batch_size):
            out.append(importance_sampled_nll(model, x[start : start + batch_size], k=k, chunk=min(k, 250)))
            if progress is not None:
                done = min(start + batch_size, len(x))
                elapsed = time.perf_counter() - started
                progress.show(f"importance sampling (k={k}): {done}/{len(x)} examples, "
                              f"{elapsed:.0f}s elapsed, ETA {elapsed / done * (len(x) - done):.0f}s")  # fmt: skip
    finally:
        model.noise = saved_noise
        if progress is not None:
            progress.clear()
    return np.concatenate(out)


def evaluate(model: VAE, x: np.ndarray, k: int = 1000, batch_size: int = 100, seed: int = 0,
             progress: Progress | None = None) -> dict[str, Any]:  # fmt: skip
    """Negative ELBO, its two terms, the k-sample NLL and the active units over x (nats/example)."""
    if len(x) == 0:
        raise ValueError("no examples to evaluate")
    positive_int("--batch-size", batch_size)
    elbo = evaluate_elbo(model, x, batch_size=batch_size)
    nll = importance_nll(model, x, k, batch_size, seed=seed, progress=progress)
    count, variances = active_units(model, x)
    if not (np.isfinite(elbo["loss"]) and np.isfinite(nll).all()):
        raise FloatingPointError("the evaluation produced NaN or Inf; the checkpoint's model is unstable")
    return {
        "examples": len(x),
        "negative_elbo": elbo["loss"],
        "reconstruction": elbo["reconstruction"],
        "kl": elbo["kl"],
        "nll": float(nll.mean()),
        "nll_stderr": float(nll.std(ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else None,
        "k": k,
        "active_units": count,
        "latent_dim": model.latent_dim,
        "active_unit_threshold": ACTIVE_UNIT_THRESHOLD,
        "latent_mean_variances": [float(v) for v in variances],
    }


def format_report(report: dict[str, Any]) -> str:
    """The evaluation as aligned text lines."""
    r = report
    variances = " ".join(f"{v:.3g}" for v in r["latent_mean_variances"])
    err = f" +- {r['nll_stderr']:.2f}" if r.get("nll_stderr") is not None else ""
    lines = [
        f"{'checkpoint:':19} {r['checkpoint']} ({r['model']}, epoch {r['epoch']})",
        f"{'data:':19} {r['data']}, {r['examples']} examples, pixel protocol {r['protocol']}",
        (f"{'negative ELBO:':19} {r['negative_elbo']:10.3f} nats/example  "
         f"(reconstruction {r['reconstruction']:.3f} + KL {r['kl']:.3f})"),
        (f"{'NLL (IS, k=' + str(r['k']) + '):':19} {r['nll']:10.3f} nats/example{err}  "
         f"(ELBO gap {r['negative_elbo'] - r['nll']:.3f})"),
        (f"{'active units:':19} {r['active_units']} of {r['latent_dim']}  "
         f"(Var_x[mu_j(x)] > {r['active_unit_threshold']}; per dim: {variances})"),
    ]
    if r["protocol"] == "grayscale":
        lines.append("note: grayscale targets in [0,1]: Bernoulli cross-entropies, not likelihoods of binary images")
    return "\n".join(lines)


def run(checkpoint_path: Path | str, data_spec: str | None = None, protocol: str | None = None, k: int = 1000,
        batch_size: int = 100, limit: int | None = None, seed: int = 0, progress: bool = True,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Everything `python -m vae eval` does, returned as a JSON-able dict."""
    model, config, meta = load_model(checkpoint_path)
    x, _, described, protocol = test_inputs(config, data_spec, protocol, limit, model.input_dim, model.image_shape)
    report = evaluate(model, x, k=k, batch_size=batch_size, seed=seed, progress=Progress(progress, every=15.0))
    report.update(checkpoint=str(checkpoint_path), model=describe_model(model), epoch=meta.get("epoch"),
                  data=described, protocol=protocol)  # fmt: skip
    return report
