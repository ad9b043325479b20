"""Data layer of the VAE showcase: MNIST loading and pixel protocols (pure numpy).

* :func:`read_idx` reads one IDX file (raw or gzip), validated.
* :func:`load_mnist_dir` loads the four standard MNIST files from a directory.
* :func:`load_embedded` loads the 5,000-digit MNIST subset shipped with the package.
* :func:`prepare` / :func:`iterate_batches` turn uint8 images into float model inputs under
  one of the :data:`PROTOCOLS`.

Every problem a user can cause (bad path, damaged file, bad batch size, ...) raises
:class:`DataError` with a message naming the file or value and what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "EMBEDDED_PATH",
    "EMBEDDED_SHA256",
    "FIXED_BINARIZATION_SEED",
    "MNIST_FILES",
    "PROTOCOLS",
    "DataError",
    "Dataset",
    "count_batches",
    "iterate_batches",
    "load_embedded",
    "load_mnist_dir",
    "prepare",
    "read_idx",
]

PathLike = str | os.PathLike[str]

EMBEDDED_PATH = Path(__file__).parent / "_data" / "mnist_5k.npz"
#: sha256 of ``_data/mnist_5k.npz`` as written by ``_data/make_embedded.py``.
EMBEDDED_SHA256 = "63818dc867dd7ee1181196c2588842f34debadc19cc80dc16b1dc1401cbb62c4"

#: Standard MNIST file names (each may also carry a ``.gz`` suffix).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

PROTOCOLS = ("grayscale", "binarized", "fixed-binarized")

#: Seed of the single Bernoulli draw behind the "fixed-binarized" protocol.
FIXED_BINARIZATION_SEED = 20_240_601

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}


class DataError(Exception):
    """A user-facing data problem; the message names the file or value and what is wrong."""


# --------------------------------------------------------------------------- IDX files


def _read_maybe_gzip(path: Path) -> bytes:
    """Return the bytes of ``path``, gunzipped if it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected an IDX file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip stream ({exc})") from None


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file of unsigned bytes (raw or gzip-compressed) into a uint8 array.

    Compression is detected from the content, not the name. The header must have two zero
    bytes, type code 0x08, 1 to 4 dimensions each of size >= 1, and the data must be exactly
    as long as the product of the sizes. Any violation raises :class:`DataError`.
    """
    path = Path(path)
    raw = _read_maybe_gzip(path)
    if len(raw) < 4:
        raise DataError(
            f"{path}: {len(raw)} bytes is too short for an IDX header (need at least 4)"
        )
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{path}: bad IDX magic: first two bytes are 0x{raw[0]:02x} 0x{raw[1]:02x}, "
            "expected 0x00 0x00 (not an IDX file?)"
        )
    type_code, ndim = raw[2], raw[3]
    if type_code != 0x08:
        kind = _IDX_TYPES.get(type_code, "unknown")
        raise DataError(
            f"{path}: IDX type code 0x{type_code:02x} ({kind}) is not supported; "
            "only 0x08 (unsigned byte) is"
        )
    if not 1 <= ndim <= 4:
        raise DataError(f"{path}: IDX header says {ndim} dimensions; expected 1 to 4")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header_len} header bytes, "
            f"file has {len(raw)}"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    for axis, size in enumerate(shape):
        if size == 0:
            raise DataError(f"{path}: IDX dimension {axis} has size 0 (shape {shape})")
    expected = math.prod(shape)
    actual = len(raw) - header_len
    if actual != expected:
        what = "truncated" if actual < expected else f"{actual - expected} trailing byte(s)"
        raise DataError(
            f"{path}: IDX data for shape {shape} should be {expected} bytes, "
            f"found {actual} ({what})"
        )
    # frombuffer over bytes is read-only; copy so callers get an ordinary array.
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape).copy()


# --------------------------------------------------------------------------- datasets


@dataclass
class Dataset:
    """A train/test split of uint8 images (N, H, W) with uint8 labels (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    name: str

    @property
    def image_shape(self) -> tuple[int, int]:
        """(H, W) of every image."""
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    @property
    def num_pixels(self) -> int:
        """H * W, the length of a flattened image."""
        return int(math.prod(self.image_shape))

    def describe(self) -> str:
        """One line: name, split sizes, image size and the label set."""
        labels = np.union1d(self.train_labels, self.test_labels)
        h, w = self.image_shape
        return (
            f"{self.name}: {len(self.train_images)} train / {len(self.test_images)} test "
            f"images of {h}x{w}, {len(labels)} classes ({', '.join(map(str, labels))})"
        )


def _find_mnist_file(directory: Path, stem: str) -> Path | None:
    """The raw file if present, else the ``.gz`` one, else None."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _check_pair(images: np.ndarray, labels: np.ndarray, img_path: Path, lbl_path: Path) -> None:
    if images.ndim != 3:
        raise DataError(f"{img_path}: images must be 3-D (N, H, W), got shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{lbl_path}: labels must be 1-D (N,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{img_path} holds {len(images)} images but {lbl_path} holds {len(labels)} labels"
        )


def load_mnist_dir(directory: PathLike) -> Dataset:
    """Load the four standard MNIST IDX files (each raw or ``.gz``) from ``directory``.

    If both a raw and a ``.gz`` file exist, the raw one is used. Raises :class:`DataError`
    for a missing directory or file (listing the names looked for), any malformed file, or
    inconsistent shapes between images and labels or between train and test images.
    """
    directory = Path(directory)
    wanted = ", ".join(f"{stem}[.gz]" for stem in MNIST_FILES.values())
    if not directory.is_dir():
        raise DataError(
            f"{directory}: no such directory; expected one holding the MNIST files {wanted}"
        )
    paths: dict[str, Path] = {}
    missing: list[str] = []
    for key, stem in MNIST_FILES.items():
        found = _find_mnist_file(directory, stem)
        if found is None:
            missing.append(f"{stem} or {stem}.gz")
        else:
            paths[key] = found
    if missing:
        raise DataError(
            f"{directory}: missing MNIST file(s): {'; '.join(missing)} (looked for {wanted})"
        )
    arrays = {key: read_idx(path) for key, path in paths.items()}
    _check_pair(
        arrays["train_images"], arrays["train_labels"], paths["train_images"], paths["train_labels"]
    )
    _check_pair(
        arrays["test_images"], arrays["test_labels"], paths["test_images"], paths["test_labels"]
    )
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(
            f"{paths['train_images']} has images of {arrays['train_images'].shape[1:]} but "
            f"{paths['test_images']} has {arrays['test_images'].shape[1:]}"
        )
    return Dataset(name="mnist", **arrays)


def load_embedded(test_fraction: float = 1 / 6, seed: int = 0) -> Dataset:
    """Load the shipped 5,000-digit MNIST subset and split it into train and test.

    The split is a shuffle by ``np.random.default_rng(seed)``; the same seed always gives
    the same split. ``round(test_fraction * 5000)`` examples go to the test set (833 by
    default). The file's sha256 is checked against :data:`EMBEDDED_SHA256`.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    path = EMBEDDED_PATH
    try:
        blob = path.read_bytes()
    except OSError:
        raise DataError(
            f"{path}: embedded dataset not found; the package was installed without its data files"
        ) from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != EMBEDDED_SHA256:
        raise DataError(
            f"{path}: embedded dataset is damaged: sha256 {digest}, expected {EMBEDDED_SHA256}"
        )
    with np.load(path, allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    n = len(images)
    n_test = round(test_fraction * n)
    if not 1 <= n_test <= n - 1:
        raise DataError(
            f"test_fraction {test_fraction} leaves {n_test} of {n} examples for testing; "
            "both train and test need at least one"
        )
    order = np.random.default_rng(seed).permutation(n)
    test_idx, train_idx = order[:n_test], order[n_test:]
    return Dataset(
        train_images=images[train_idx],
        train_labels=labels[train_idx],
        test_images=images[test_idx],
        test_labels=labels[test_idx],
        name="embedded-mnist-5k",
    )


# --------------------------------------------------------------------------- protocols
#
# "grayscale":        x = intensity / 255, in [0, 1].
# "binarized":        dynamic binarization: x ~ Bernoulli(intensity / 255), drawn afresh from
#                     the caller's rng every time (so every epoch sees new binary images).
# "fixed-binarized":  one Bernoulli(intensity / 255) draw over the whole image array, made with
#                     np.random.default_rng(FIXED_BINARIZATION_SEED) and therefore identical on
#                     every call: the same array always binarizes to the same binary images.
#                     The draw for an image depends on its position in the array, so binarize a
#                     set as a whole (prepare / iterate_batches do) rather than piecewise.
#
# The random draws do not depend on the output dtype, so float32 and float64 outputs carry
# the same binary values for the same rng state.

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _flatten_intensities(images: np.ndarray) -> np.ndarray:
    """Validate 0..255 intensities of shape (N, ...) and return them as (N, D)."""
    images = np.asarray(images)
    if images.ndim < 2:
        raise DataError(f"images must have shape (N, H, W) or (N, D), got {images.shape}")
    if len(images) == 0:
        raise DataError("images is empty (0 examples)")
    kind = images.dtype.kind
    if kind == "f":
        n_nan = int(np.isnan(images).sum())
        if n_nan:
            raise DataError(f"images contain {n_nan} NaN value(s) of {images.size}")
        n_inf = int(np.isinf(images).sum())
        if n_inf:
            raise DataError(f"images contain {n_inf} infinite value(s) of {images.size}")
    elif kind not in "ui":
        raise DataError(
            f"images must hold 0..255 intensities (uint8 preferred), got dtype {images.dtype}"
        )
    if images.dtype != np.uint8:
        lo, hi = images.min(), images.max()
        if lo < 0 or hi > 255:
            raise DataError(f"image intensities must lie in 0..255, got range [{lo}, {hi}]")
        if kind == "f" and 0 < hi <= 1:
            raise DataError(
                f"float images lie in [{lo}, {hi}], which looks already scaled to [0, 1]; "
                "pass 0..255 intensities, e.g. np.round(x * 255).astype(np.uint8)"
            )
    return images.reshape(len(images), -1)


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise DataError(
            f"unknown pixel protocol {protocol!r}; valid ones are {', '.join(PROTOCOLS)}"
        )


def _check_dtype(dtype: npt.DTypeLike) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in _DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _check_rng(rng: np.random.Generator | None, why: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{why} needs rng=np.random.Generator, got {type(rng).__name__}")
    return rng


def _bernoulli(flat: np.ndarray, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Independent Bernoulli(flat / 255) draws, as 0/1 values of ``dtype``."""
    if flat.dtype == np.uint8:
        # P(r < v) = v / 255 exactly for r uniform on 0..254; cheaper than float uniforms.
        r = rng.integers(0, 255, size=flat.shape, dtype=np.uint8)
        return (r < flat).astype(dtype)
    u = rng.random(flat.shape, dtype=np.float64)
    return (u * 255.0 < flat).astype(dtype)


def _convert(
    flat: np.ndarray, protocol: str, rng: np.random.Generator | None, dtype: np.dtype
) -> np.ndarray:
    """Apply ``protocol`` to validated (N, D) intensities (dynamic protocols only here)."""
    if protocol == "grayscale":
        return flat.astype(dtype) / dtype.type(255)
    if protocol == "binarized":
        return _bernoulli(flat, _check_rng(rng, "protocol 'binarized'"), dtype)
    return _bernoulli(flat, np.random.default_rng(FIXED_BINARIZATION_SEED), dtype)


def prepare(
    images: np.ndarray,
    protocol: str,
    rng: np.random.Generator | None = None,
    dtype: npt.DTypeLike = np.float32,
) -> np.ndarray:
    """Convert a whole image set to model inputs of shape (N, H*W) under ``protocol``.

    ``rng`` is required for "binarized" and ignored otherwise. ``dtype`` is float32 or
    float64. Raises :class:`DataError` for an unknown protocol or invalid images.
    """
    _check_protocol(protocol)
    dt = _check_dtype(dtype)
    return _convert(_flatten_intensities(images), protocol, rng, dt)


def count_batches(n_examples: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of batches one epoch of :func:`iterate_batches` yields."""
    return n_examples // batch_size if drop_last else -(-n_examples // batch_size)


def iterate_batches(
    images: np.ndarray,
    batch_size: int,
    protocol: str,
    rng: np.random.Generator | None,
    shuffle: bool = True,
    drop_last: bool = False,
    dtype: npt.DTypeLike = np.float32,
) -> Iterator[np.ndarray]:
    """One epoch of (B, H*W) float batches of ``images`` under ``protocol``.

    ``rng`` drives the shuffle and, for "binarized", the fresh Bernoulli draws; it is needed
    when ``shuffle`` is true or the protocol is "binarized". The last batch is smaller than
    ``batch_size`` unless ``drop_last``. All arguments are validated before the first batch:
    ``1 <= batch_size <= len(images)``, a known protocol and valid images, else
    :class:`DataError`.
    """
    _check_protocol(protocol)
    dt = _check_dtype(dtype)
    flat = _flatten_intensities(images)
    n = len(flat)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise DataError(f"batch size must be an integer, got {batch_size!r}")
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    if batch_size > n:
        raise DataError(
            f"batch size {batch_size} is larger than the number of examples ({n}); "
            f"use a batch size of at most {n}"
        )
    if shuffle:
        order = _check_rng(rng, "shuffle=True").permutation(n)
    else:
        order = np.arange(n)
    if protocol == "binarized":
        _check_rng(rng, "protocol 'binarized'")
    convert: str | None = protocol
    if protocol == "fixed-binarized":
        # Binarize the whole set in its given order so an image's draw does not depend on
        # the shuffle or the batch it lands in.
        flat = _convert(flat, protocol, None, dt)
        convert = None
    stop = n - n % batch_size if drop_last else n
    return _batches(flat, order, batch_size, stop, convert, rng, dt)


def _batches(
    flat: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    stop: int,
    convert: str | None,
    rng: np.random.Generator | None,
    dtype: np.dtype,
) -> Iterator[np.ndarray]:
    for start in range(0, stop, batch_size):
        rows = flat[order[start : start + batch_size]]
        yield rows if convert is None else _convert(rows, convert, rng, dtype)
