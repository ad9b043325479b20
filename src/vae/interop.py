"""Convert VAE weights to and from the layout of PyTorch's VAE example (pure numpy).

That example defines five ``nn.Linear`` layers: ``fc1`` (input -> hidden), ``fc21`` (hidden ->
mu), ``fc22`` (hidden -> logvar), ``fc3`` (latent -> hidden), ``fc4`` (hidden -> output). Its
weights are stored (out, in), exactly like ours, so conversion only renames keys; both
directions validate the key set and the shape chain and return fresh numpy arrays.

To load the result into a PyTorch model::

    model.load_state_dict({k: torch.from_numpy(v) for k, v in to_pytorch_example(sd).items()})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["OURS_TO_PYTORCH", "PYTORCH_TO_OURS", "from_pytorch_example", "to_pytorch_example"]

#: Our layer name -> the PyTorch example's layer name (".weight" / ".bias" appended).
_LAYERS = {
    "encoder.hidden": "fc1",
    "encoder.mu": "fc21",
    "encoder.logvar": "fc22",
    "decoder.hidden": "fc3",
    "decoder.out": "fc4",
}

OURS_TO_PYTORCH = {
    f"{ours}.{param}": f"{theirs}.{param}"
    for ours, theirs in _LAYERS.items()
    for param in ("weight", "bias")
}
PYTORCH_TO_OURS = {theirs: ours for ours, theirs in OURS_TO_PYTORCH.items()}


def _to_numpy(key: str, value: Any) -> np.ndarray:
    """A fresh float numpy copy of ``value`` (torch tensors are detached and moved to CPU)."""
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        if hasattr(value, "detach"):
            value = value.detach()
        if hasattr(value, "cpu"):
            value = value.cpu()
        try:
            value = value.numpy()
        except (TypeError, RuntimeError) as exc:  # e.g. bfloat16, which numpy has no type for
            raise ValueError(f"{key}: cannot convert to a numpy array ({exc}); convert it with "
                             ".float() first") from None
    array = np.array(value, copy=True)
    if array.dtype.kind != "f":
        raise ValueError(f"{key}: expected floating-point values, got dtype {array.dtype}")
    return array


def _convert(
    state: Mapping[str, Any], mapping: dict[str, str], caller_key: dict[str, str], side: str
) -> dict[str, np.ndarray]:
    """Rename ``state`` with ``mapping`` after checking its keys and shapes.

    ``caller_key`` maps each of our keys to the key used in ``state`` so that error messages
    speak the caller's vocabulary.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"expected a mapping of {side} parameter names, got {type(state).__name__}")
    missing = [k for k in mapping if k not in state]
    extra = [str(k) for k in state if k not in mapping]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing key(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected key(s) {', '.join(extra)}")
        hint = ""
        if extra and all(k.startswith("module.") for k in extra):
            hint = "; the keys carry a 'module.' prefix (a wrapped model): strip it first"
        raise ValueError(
            f"not a {side} VAE state_dict: {'; '.join(parts)} "
            f"(expected exactly {', '.join(mapping)}){hint}"
        )
    arrays = {key: _to_numpy(key, state[key]) for key in mapping}
    _check_shapes(arrays, caller_key)
    return {mapping[key]: arrays[key] for key in mapping}


def _check_shapes(arrays: dict[str, np.ndarray], name: dict[str, str]) -> None:
    """Check each layer's shapes and the chain between layers (``name``: our key -> caller's)."""

    def shape(ours: str) -> tuple[int, ...]:
        return tuple(arrays[name[ours]].shape)

    for layer in _LAYERS:
        w, b = f"{layer}.weight", f"{layer}.bias"
        if len(shape(w)) != 2:
            raise ValueError(f"{name[w]}: weight must be 2-D (out, in), got shape {shape(w)}")
        if len(shape(b)) != 1:
            raise ValueError(f"{name[b]}: bias must be 1-D (out,), got shape {shape(b)}")
        if shape(b)[0] != shape(w)[0]:
            raise ValueError(
                f"{name[b]} has shape {shape(b)} but {name[w]} has shape {shape(w)}: "
                "bias length must equal the weight's out dimension"
            )

    def same(ours_a: str, axis_a: int, ours_b: str, axis_b: int, why: str) -> None:
        if shape(ours_a)[axis_a] != shape(ours_b)[axis_b]:
            raise ValueError(
                f"{name[ours_a]} has shape {shape(ours_a)} but {name[ours_b]} has shape "
                f"{shape(ours_b)}: {why}"
            )

    enc, mu, logvar = "encoder.hidden.weight", "encoder.mu.weight", "encoder.logvar.weight"
    dec, out = "decoder.hidden.weight", "decoder.out.weight"
    same(mu, 1, enc, 0, "the mu head must take the encoder's hidden units as input")
    same(logvar, 1, enc, 0, "the logvar head must take the encoder's hidden units as input")
    same(logvar, 0, mu, 0, "the mu and logvar heads must have the same latent size")
    same(dec, 1, mu, 0, "the decoder must take the latent size as input")
    same(out, 1, dec, 0, "the output layer must take the decoder's hidden units as input")
    same(out, 0, enc, 1, "the decoder must output as many values as the encoder takes in")


def to_pytorch_example(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Our VAE state_dict -> the PyTorch example's (``fc1.weight``, ... ``fc4.bias``).

    Values are copied to new numpy arrays; raises ValueError for missing or extra keys and
    for shapes that do not form a valid VAE (message names the keys and shapes).
    """
    return _convert(state_dict, OURS_TO_PYTORCH, {k: k for k in OURS_TO_PYTORCH}, "our")


def from_pytorch_example(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The PyTorch example's state_dict (numpy arrays or tensors) -> our VAE state_dict.

    Tensors are read via ``.detach().cpu().numpy()``; all values are copied. Raises
    ValueError for missing or extra keys and for inconsistent shapes.
    """
    return _convert(state_dict, PYTORCH_TO_OURS, OURS_TO_PYTORCH, "PyTorch-example")
