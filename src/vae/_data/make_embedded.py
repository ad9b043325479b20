"""Build ``mnist_5k.npz``, the small MNIST subset shipped with the VAE showcase.

Usage::

    python src/vae/_data/make_embedded.py PATH/TO/mnist_5k.csv.gz [OUT.npz]

Input: a csv (optionally gzipped) with 5,000 rows and no header; each row holds 784 pixel
intensities 0..255 (a 28x28 image, row-major) followed by the digit label 0..9.

Output (default: ``mnist_5k.npz`` next to this script): a compressed npz with

* ``images``: uint8, shape (5000, 28, 28)
* ``labels``: uint8, shape (5000,)

in the row order of the csv. The archive has the layout ``np.savez_compressed`` produces
(one deflated ``.npy`` member per array) but is written with a fixed member timestamp, so
running the script twice on the same csv gives byte-identical output and the sha256 recorded
in ``vae/data.py`` (``EMBEDDED_SHA256``) can be checked. After regenerating, update that
constant with the hash this script prints.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

N_EXAMPLES = 5000
SIDE = 28
N_PIXELS = SIDE * SIDE
# Zip timestamps cannot predate 1980; any constant keeps the output reproducible.
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def read_csv(csv_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse and validate the csv; return (images uint8 (N, 28, 28), labels uint8 (N,))."""
    raw = csv_path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape != (N_EXAMPLES, N_PIXELS + 1):
        raise ValueError(
            f"{csv_path}: expected {N_EXAMPLES} rows x {N_PIXELS + 1} columns, got {table.shape}"
        )
    pixels, labels = table[:, :N_PIXELS], table[:, N_PIXELS]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{csv_path}: pixel values outside 0..255")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{csv_path}: labels outside 0..9")
    images = pixels.astype(np.uint8).reshape(N_EXAMPLES, SIDE, SIDE)
    return images, labels.astype(np.uint8)


def write_npz(out_path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as a deflated npz with fixed timestamps (reproducible bytes)."""
    with zipfile.ZipFile(out_path, "w") as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(info, buffer.getvalue(), compresslevel=9)


def build(csv_path: Path, out_path: Path) -> str:
    """Convert ``csv_path`` to the npz at ``out_path``; return the npz's sha256 (hex)."""
    images, labels = read_csv(csv_path)
    write_npz(out_path, {"images": images, "labels": labels})
    return hashlib.sha256(out_path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    csv_path = Path(args[0])
    out_path = Path(args[1]) if len(args) == 2 else Path(__file__).with_name("mnist_5k.npz")
    digest = build(csv_path, out_path)
    print(f"wrote {out_path} ({out_path.stat().st_size} bytes)")
    print(f"sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
