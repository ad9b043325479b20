"""Training: the loop, per-epoch evaluation, checkpoints, resume, and graph dumps of chosen steps."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import minigrad as mg

from . import checkpoint, data
from .loss import negative_elbo
from .model import SAMPLERS, VAE, nonnegative_int, positive_int
from .progress import Progress

REPARAMETERIZATION_NODES = ["mu", "logvar", "half_logvar", "sigma", "eps", "sigma*eps", "z"]
# how graph dumps (train --dump-graph, dump render) box the sampling step
REPARAMETERIZATION_CLUSTER = {"reparameterization: z = mu + sigma * eps": REPARAMETERIZATION_NODES}


@dataclasses.dataclass
class Config:
    data: str = "embedded"  # "embedded" or a folder of MNIST IDX files
    epochs: int = 10
    batch_size: int = 128
    hidden_dim: int = 400
    latent_dim: int = 20
    lr: float = 1e-3
    seed: int = 0
    protocol: str = "grayscale"
    sampler: str = "reparameterized"
    dtype: str = "float32"

    def validate(self) -> None:
        if not isinstance(self.data, str):
            raise ValueError(f"data must be 'embedded' or a folder name, got {self.data!r}")
        for name in ("epochs", "batch_size", "hidden_dim", "latent_dim"):
            positive_int(name.replace("_", " "), getattr(self, name))
        lr = self.lr
        real = isinstance(lr, (int, float, np.integer, np.floating)) and not isinstance(lr, bool)
        if not (real and lr > 0 and np.isfinite(lr)):
            raise ValueError(f"learning rate must be a positive number, got {lr!r}")
        nonnegative_int("seed", self.seed)
        if self.protocol not in data.PROTOCOLS:
            raise ValueError(f"pixel protocol must be one of {data.PROTOCOLS}, got {self.protocol!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")


def load_dataset(spec: str) -> data.Dataset:
    """'embedded' -> the 5,000 digits shipped in the package; anything else -> an MNIST folder."""
    return data.load_embedded() if spec == "embedded" else data.load_mnist_dir(spec)


def build_model(config: Config, input_dim: int) -> VAE:
    return VAE(input_dim, config.hidden_dim, config.latent_dim, sampler=config.sampler,
               seed=config.seed, dtype=config.dtype)  # fmt: skip


def evaluate_elbo(model: VAE, x: np.ndarray, batch_size: int = 500, eps_seed: int = 1234) -> dict[str, float]:
    """Mean negative ELBO, reconstruction and KL (nats per example) over x, one fixed-seed eps
    draw per example so numbers are comparable across epochs."""
    noise = np.random.default_rng(eps_seed)
    totals = np.zeros(3)
    with mg.no_grad():
        for start in range(0, len(x), batch_size):
            xb = mg.Tensor(x[start : start + batch_size].astype(model.dtype, copy=False))
            eps = mg.Tensor(noise.standard_normal((len(xb), model.latent_dim), dtype=model.dtype))
            logits, mu, logvar = model(xb, eps=eps)
            terms = negative_elbo(logits, xb, mu, logvar)
            totals += np.array([t.item() for t in terms]) * len(xb)
    loss, rec, kl = totals / len(x)
    return {"loss": float(loss), "reconstruction": float(rec), "kl": float(kl)}


def parse_dump_steps(spec: str | None, total_steps: int, done: int = 0) -> set[int]:
    """'1,100,last' -> {1, 100, total_steps}; every step must be one this run will train (after
    the `done` steps of a resumed run, up to total_steps)."""
    if not spec:
        return set()
    steps = set()
    for item in spec.split(","):
        item = item.strip()
        if item == "last":
            steps.add(total_steps)
        elif item.isdigit() and int(item) >= 1:
            steps.add(int(item))
        else:
            raise ValueError(f"--dump-graph: {item!r} is not a step number (1, 2, ...) or 'last'")
    for n in sorted(steps):
        if n > total_steps:
            raise ValueError(f"--dump-graph: step {n} is beyond the last step ({total_steps:,})")
        if n <= done:
            raise ValueError(f"--dump-graph: step {n} was trained before the checkpoint (step {done:,}); "
                             f"this run trains steps {done + 1:,}-{total_steps:,}")  # fmt: skip
    return steps


def _format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def saved_config(state: dict[str, Any], path: Path | str) -> Config:
    """The validated training Config stored in a loaded checkpoint; CheckpointError naming the
    file when it is missing or invalid."""
    try:
        config = Config(**state["meta"]["config"])
        config.validate()
    except (KeyError, TypeError, ValueError) as exc:
        raise checkpoint.CheckpointError(f"{path}: the saved training settings are invalid: {exc}") from None
    return config


def train(config: Config, out_dir: Path | str, resume: Path | str | None = None,
          dump_graph: str | None = None, log: Callable[[str], None] = print,
          progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Train a VAE; checkpoint after every epoch to out_dir/checkpoint.npz. Returns the history."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {out} exists and is not a folder; pick another --out")
    state = checkpoint.load(resume) if resume else None
    if resume and state is not None:
        saved = saved_config(state, resume)
        # the run continues with the saved config; only the epoch budget may grow
        saved.epochs = max(config.epochs, saved.epochs)
        log(f"resuming {resume} with its saved settings: {dataclasses.asdict(saved)}")
        config = saved
    config.validate()
    dataset = load_dataset(config.data)
    n_train = len(dataset.train_images)
    if config.batch_size > n_train:
        raise ValueError(f"batch size {config.batch_size} is larger than the {n_train} training examples")
    input_dim = int(np.prod(dataset.train_images.shape[1:]))
    model = build_model(config, input_dim)
    model.image_shape = dataset.image_shape
    optimizer = mg.optim.Adam(model.parameters(), lr=config.lr)
    data_rng = np.random.default_rng([config.seed, 2])
    history: list[dict[str, Any]] = []
    start_epoch, step = 1, 0
    if state is not None:
        try:
            model.load_state_dict(state["model"])
        except (KeyError, ValueError, TypeError) as exc:
            raise checkpoint.CheckpointError(f"{resume}: does not fit this model: {exc}") from None
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, TypeError) as exc:
            raise checkpoint.CheckpointError(f"{resume}: the saved optimizer state is invalid: {exc}") from None
        meta = state["meta"]
        try:
            data_rng.bit_generator.state = meta["data_rng"]
            model.noise.bit_generator.state = meta["noise_rng"]
            if not isinstance(meta["history"], list):
                raise TypeError(f"meta field 'history' is a {type(meta['history']).__name__}, not a list")
            history = list(meta["history"])
            start_epoch, step = int(meta["epoch"]) + 1, int(meta["step"])
        except (KeyError, TypeError, ValueError) as exc:
            raise checkpoint.CheckpointError(f"{resume}: the saved training progress is damaged: {exc!r}") from None
    test_x = data.prepare(dataset.test_images, config.protocol, np.random.default_rng([config.seed, 3]), config.dtype)
    batches_per_epoch = data.count_batches(n_train, config.batch_size)
    total_steps = config.epochs * batches_per_epoch
    dump_steps = parse_dump_steps(dump_graph, total_steps, done=step)
    out.mkdir(parents=True, exist_ok=True)
    log(f"data: {dataset.describe()}; protocol {config.protocol}")
    log(f"model: {config.dtype} VAE {input_dim}-{config.hidden_dim}-{config.latent_dim}, sampler "
        f"{config.sampler}; {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"backend {mg.backend_info()['name']} with {mg.backend_info()['num_threads']} threads")  # fmt: skip
    if start_epoch > config.epochs:
        log(f"checkpoint is already at epoch {start_epoch - 1} of {config.epochs}; nothing to do")
    bar = Progress(progress)  # silent when stderr is not a terminal: the epoch lines suffice
    run_start = time.perf_counter()
    for epoch in range(start_epoch, config.epochs + 1):
        epoch_start = time.perf_counter()
        sums = np.zeros(3)
        seen = 0
        batches = data.iterate_batches(dataset.train_images, config.batch_size, config.protocol,
                                       data_rng, dtype=config.dtype)  # fmt: skip
        for i, xb in enumerate(batches, 1):
            step += 1
            x = mg.Tensor(xb, name="x")
            logits, mu, logvar = model(x)
            loss, rec, kl = negative_elbo(logits, x, mu, logvar)
            if not np.isfinite(loss.data):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch}, step {step}; try a lower --lr")
            optimizer.zero_grad()
            dumping = step in dump_steps
            with mg.retain_grads() if dumping else contextlib.nullcontext():
                loss.backward()
            if dumping:
                _dump(loss, out / "graphs" / f"step{step:06d}", step, log)
            optimizer.step()
            sums += np.array([loss.item(), rec.item(), kl.item()]) * len(xb)
            seen += len(xb)
            elapsed = time.perf_counter() - epoch_start
            rate = i / elapsed
            remaining = (batches_per_epoch - i + (config.epochs - epoch) * batches_per_epoch) / rate
            bar.show(f"epoch {epoch}/{config.epochs} [{i}/{batches_per_epoch}] loss {sums[0] / seen:.2f} "
                       f"{rate:.1f} steps/s ETA {_format_seconds(remaining)}")  # fmt: skip
        bar.clear()
        seconds = time.perf_counter() - epoch_start
        test = evaluate_elbo(model, test_x)
        train_loss, train_rec, train_kl = sums / seen
        record = dict(epoch=epoch, step=step, train_loss=train_loss, train_reconstruction=train_rec,
                      train_kl=train_kl, test_loss=test["loss"], test_reconstruction=test["reconstruction"],
                      test_kl=test["kl"], seconds=seconds, steps_per_second=batches_per_epoch / seconds)  # fmt: skip
        history.append(record)
        eta = (config.epochs - epoch) * seconds
        log(f"epoch {epoch:3d}/{config.epochs}  train loss {train_loss:8.3f} (rec {train_rec:8.3f} kl {train_kl:6.3f})"
            f"  test loss {test['loss']:8.3f}  {record['steps_per_second']:6.1f} steps/s  "
            f"{seconds:5.1f}s/epoch  ETA {_format_seconds(eta)}")  # fmt: skip
        meta = dict(config=dataclasses.asdict(config), image_shape=list(dataset.image_shape),
                    epoch=epoch, step=step, history=history,
                    data_rng=data_rng.bit_generator.state, noise_rng=model.noise.bit_generator.state,
                    minigrad=mg.__version__)  # fmt: skip
        checkpoint.save(out / "checkpoint.npz", model.state_dict(), optimizer.state_dict(), meta)
        history_json = json.dumps(history, indent=1).encode()  # a copy for reading; the checkpoint has it too
        checkpoint.write_atomic(out / "history.json", lambda f: f.write(history_json))
    if history:
        log(f"done in {_format_seconds(time.perf_counter() - run_start)}; checkpoint {out / 'checkpoint.npz'}")
    return {"config": dataclasses.asdict(config), "history": history, "model": model}


def _dump(loss: mg.Tensor, prefix: Path, step: int, log: Callable[[str], None]) -> None:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    written = mg.graph.save(loss, prefix, cluster=REPARAMETERIZATION_CLUSTER)
    log(f"step {step}: graph written to {', '.join(str(p) for p in written)}")
