"""PNG grids of samples and reconstructions, written with the standard library only (zlib + struct).

    write_png("grid.png", grid(images))      # images: (N, H, W) floats in [0, 1]

Pixel values shown are probabilities sigmoid(logits) of the Bernoulli decoder, as grayscale
(0 black, 1 white), the way MNIST digits are stored.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

import minigrad as mg

from .model import VAE, positive_int

PAD_VALUE = 0.35  # gray lines between the tiles
MAX_SAMPLES = 10_000  # `sample -n`: 100 x 100 digits, far more than one picture shows well
MAX_PIXELS = 64_000_000  # the largest grid written (64 MB as uint8), for sample and reconstruct


def write_png(path: Path | str, pixels: np.ndarray) -> Path:
    """Write an (H, W) uint8 grayscale array as an 8-bit PNG (filter 0 rows, one IDAT chunk)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: the output file must end in .png")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")
    pixels = np.ascontiguousarray(pixels)
    if pixels.ndim != 2 or pixels.dtype != np.uint8 or pixels.size == 0:
        raise ValueError(f"write_png: need a non-empty (H, W) uint8 array, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))  # filter type 0 per row
    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))  # 8-bit gray
           + chunk(b"IDAT", zlib.compress(raw, 9))
           + chunk(b"IEND", b""))  # fmt: skip
    path.write_bytes(png)
    return path


def read_png(path: Path | str) -> np.ndarray:
    """Read back an 8-bit grayscale PNG written by ``write_png`` (for tests and checks)."""
    blob = Path(path).read_bytes()
    if blob[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind, body = blob[pos + 4 : pos + 8], blob[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            if (depth, color) != (8, 0):
                raise ValueError(f"{path}: only 8-bit grayscale PNGs are supported")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, width + 1)
    if (rows[:, 0] != 0).any():
        raise ValueError(f"{path}: only PNG filter type 0 is supported")
    return rows[:, 1:].copy()


def image_shape(model: VAE) -> tuple[int, int]:
    """(H, W) of the model's images: the shape it was trained on when known, else square ones
    only (784 -> 28 x 28)."""
    if model.image_shape is not None:
        return model.image_shape
    side = math.isqrt(model.input_dim)
    if side * side != model.input_dim or side < 2:
        raise ValueError(f"this model has {model.input_dim} inputs, not a square image; sample and "
                         "reconstruct need an image model such as 784 = 28 x 28")  # fmt: skip
    return side, side


def grid(images: np.ndarray, columns: int | None = None, pad: int = 2, scale: int = 2) -> np.ndarray:
    """Tile (N, H, W) values in [0, 1] into one uint8 image, `columns` per row (default ~sqrt N),
    separated by `pad` gray pixels, each pixel enlarged `scale` times."""
    n, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    height, width = (rows * (h + pad) + pad) * scale, (columns * (w + pad) + pad) * scale
    if height * width > MAX_PIXELS:
        raise ValueError(f"the image would be {width}x{height} pixels, more than the limit of "
                         f"{MAX_PIXELS:,}; use a smaller -n or --scale")  # fmt: skip
    canvas = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad), PAD_VALUE)
    for i in range(n):
        r, c = divmod(i, columns)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = images[i]
    pixels = np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8)  # enlarged after: 1 byte per pixel
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


def decode_probabilities(model: VAE, z: np.ndarray) -> np.ndarray:
    """sigmoid(decoder(z)): pixel probabilities, (N, input_dim) float64."""
    with mg.no_grad():
        return model.decode(mg.Tensor(z.astype(model.dtype))).sigmoid().data.astype(np.float64)


def samples(model: VAE, n: int = 64, seed: int = 0) -> np.ndarray:
    """n images decoded from z ~ N(0, I) (the prior), (n, H, W) in [0, 1]."""
    positive_int("-n", n)
    if n > MAX_SAMPLES:
        raise ValueError(f"-n must be at most {MAX_SAMPLES:,}, got {n}")
    h, w = image_shape(model)
    z = np.random.default_rng(seed).standard_normal((n, model.latent_dim))
    return decode_probabilities(model, z).reshape(n, h, w)


def reconstructions(model: VAE, x: np.ndarray) -> np.ndarray:
    """(2n, H, W): each input followed by its reconstruction sigmoid(decoder(mu(x))) -- the decoder
    applied to the mean of q(z|x), so the picture is deterministic."""
    h, w = image_shape(model)
    with mg.no_grad():
        mu, _ = model.encode(mg.Tensor(x.astype(model.dtype, copy=False)))
    rec = decode_probabilities(model, mu.data)
    pairs = np.stack([x.astype(np.float64), rec], axis=1)  # (n, 2, D)
    return pairs.reshape(-1, h, w)


def reconstruction_grid(model: VAE, x: np.ndarray, scale: int = 2) -> np.ndarray:
    """Pairs (input | reconstruction) side by side, 4 pairs per row (fewer when n < 4)."""
    tiles = reconstructions(model, x)
    return grid(tiles, columns=2 * min(4, len(x)), scale=scale)
