"""Checkpoints: one .npz holding the model, the optimizer state, the RNG states and the config.

Written atomically (a temp file in the same folder, fsync, then rename), so a crash mid-write
leaves the previous checkpoint intact. Loading checks every part and raises CheckpointError
naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

FORMAT = "vae-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint file is missing, damaged, or does not fit the model it is loaded into."""


def save(path: Path | str, model_state: dict[str, np.ndarray], optimizer_state: dict[str, Any],
         meta: dict[str, Any]) -> Path:  # fmt: skip
    """Write the checkpoint atomically; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {f"model/{k}": v for k, v in model_state.items()}
    optim_meta = {"defaults": optimizer_state["defaults"], "state": []}
    for i, entry in enumerate(optimizer_state["state"]):
        scalars = {}
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                arrays[f"optim/{i}/{k}"] = v
            else:
                scalars[k] = v
        optim_meta["state"].append(scalars)
    header = {"format": FORMAT, "version": VERSION, "optimizer": optim_meta, **meta}
    arrays["meta"] = np.frombuffer(json.dumps(header, default=_json_scalar).encode(), dtype=np.uint8)
    return write_atomic(path, lambda f: np.savez(f, **arrays))


def write_atomic(path: Path | str, write: Callable[[BinaryIO], Any]) -> Path:
    """Call write(file) on a temp file beside `path`, fsync it, then rename it over `path`: a
    reader (or an interrupted run) sees the old file or the new one, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; these are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_scalar(value: Any) -> Any:
    """numpy scalars (an lr of np.float32, a step of np.int64) as the Python numbers JSON holds."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"checkpoint meta: a {type(value).__name__} cannot be written as JSON")


def load(path: Path | str) -> dict[str, Any]:
    """{"meta", "model", "optimizer"} from a checkpoint, validated structurally."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {exc}") from None
    if "meta" not in files:
        raise CheckpointError(f"{path}: no 'meta' entry; this is not a VAE checkpoint")
    try:
        meta = json.loads(files.pop("meta").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: the 'meta' entry is corrupt: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the 'meta' entry is not a JSON object")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: format {meta.get('format')!r} version {meta.get('version')!r}; "
            f"expected {FORMAT!r} version {VERSION}"
        )
    for field in ("epoch", "step"):  # training progress; explain --save writes epoch 0
        value = meta.get(field, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(f"{path}: meta field {field!r} must be a non-negative integer, got {value!r}")
    model = {k[len("model/"):]: v for k, v in files.items() if k.startswith("model/")}
    optim_meta = meta.pop("optimizer", None)
    if not model or not isinstance(optim_meta, dict):
        raise CheckpointError(f"{path}: missing model parameters or optimizer state")
    entries = optim_meta.get("state")
    if not isinstance(entries, list) or not all(isinstance(s, dict) for s in entries):
        raise CheckpointError(f"{path}: the optimizer state is not a list of per-parameter entries")
    defaults = optim_meta.get("defaults", {})
    if not isinstance(defaults, dict):
        raise CheckpointError(f"{path}: meta field 'optimizer.defaults' must be a JSON object, got {defaults!r:.60}")
    state = [dict(s) for s in entries]
    for key, value in files.items():
        if key.startswith("optim/"):
            parts = key.split("/", 2)
            if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(state):
                raise CheckpointError(f"{path}: optimizer entry {key!r} names no parameter")
            state[int(parts[1])][parts[2]] = value
    arrays = [(f"parameter {k}", v, False) for k, v in model.items()]
    arrays += [(f"optimizer entry {k!r}", v, k.endswith("/exp_avg_sq"))
               for k, v in files.items() if k.startswith("optim/")]  # fmt: skip
    for what, value, squares in arrays:  # squares: Adam's running mean of g^2, never negative
        if value.dtype.kind != "f":
            raise CheckpointError(f"{path}: {what} holds {value.dtype} data, not floats")
        if not np.isfinite(value).all():
            raise CheckpointError(f"{path}: {what} contains NaN or Inf")
        if squares and (value < 0).any():
            raise CheckpointError(f"{path}: {what} has negative values; it is a mean of squares")
    return {"meta": meta, "model": model, "optimizer": {"defaults": defaults, "state": state}}
