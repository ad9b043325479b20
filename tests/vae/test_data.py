"""Tests for vae.data: IDX reading, MNIST loading, the embedded subset, pixel protocols."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest

from vae import data
from vae.data import DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
MNIST_DIR = SHARED / "mnist"
CSV_5K = SHARED / "mnist_5k.csv.gz"

CANONICAL_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

needs_mnist = pytest.mark.skipif(
    not all((MNIST_DIR / f"{stem}.gz").is_file() for stem in CANONICAL_MD5),
    reason=f"full MNIST IDX files not found in {MNIST_DIR}",
)


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Serialize ``array`` as IDX (header + raw bytes)."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist_dir(directory: Path, n_train: int = 6, n_test: int = 4, gz: bool = True) -> None:
    rng = np.random.default_rng(0)
    sets = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in sets.items():
        raw = idx_bytes(array)
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)


# --------------------------------------------------------------------------- embedded set


def test_embedded_sha256_matches_constant() -> None:
    digest = hashlib.sha256(data.EMBEDDED_PATH.read_bytes()).hexdigest()
    assert digest == data.EMBEDDED_SHA256


def test_embedded_file_is_small_and_well_formed() -> None:
    assert data.EMBEDDED_PATH.stat().st_size < 1_000_000
    with np.load(data.EMBEDDED_PATH, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["images", "labels"]
        images, labels = npz["images"], npz["labels"]
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10


def test_load_embedded_shapes_and_split() -> None:
    ds = data.load_embedded()
    assert ds.name == "embedded-mnist-5k"
    assert ds.train_images.shape == (4167, 28, 28) and ds.test_images.shape == (833, 28, 28)
    for arr in (ds.train_images, ds.train_labels, ds.test_images, ds.test_labels):
        assert arr.dtype == np.uint8
    assert len(ds.train_labels) == 4167 and len(ds.test_labels) == 833
    counts = np.bincount(ds.train_labels, minlength=10) + np.bincount(ds.test_labels, minlength=10)
    assert counts.tolist() == [500] * 10
    assert ds.image_shape == (28, 28) and ds.num_pixels == 784
    text = ds.describe()
    assert "embedded-mnist-5k" in text and "4167" in text and "833" in text


def test_load_embedded_split_is_deterministic_and_disjoint() -> None:
    a, b = data.load_embedded(seed=3), data.load_embedded(seed=3)
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    c = data.load_embedded(seed=4)
    assert not np.array_equal(a.test_images, c.test_images)
    # Train and test partition the 5,000 digits: together they are the whole file.
    with np.load(data.EMBEDDED_PATH) as npz:
        whole = npz["images"].reshape(5000, -1)
    both = np.concatenate([a.train_images, a.test_images]).reshape(5000, -1)
    assert sorted(map(bytes, both)) == sorted(map(bytes, whole))


def test_load_embedded_test_fraction() -> None:
    ds = data.load_embedded(test_fraction=0.5)
    assert len(ds.test_images) == 2500
    for bad in (0.0, 1.0, -0.1, 1e-6):
        with pytest.raises(DataError, match="test_fraction"):
            data.load_embedded(test_fraction=bad)


def test_load_embedded_rejects_damaged_file(tmp_path: Path, monkeypatch) -> None:
    damaged = tmp_path / "mnist_5k.npz"
    damaged.write_bytes(data.EMBEDDED_PATH.read_bytes()[:-10])
    monkeypatch.setattr(data, "EMBEDDED_PATH", damaged)
    with pytest.raises(DataError, match="mnist_5k.npz.*damaged"):
        data.load_embedded()
    monkeypatch.setattr(data, "EMBEDDED_PATH", tmp_path / "absent.npz")
    with pytest.raises(DataError, match="absent.npz.*not found"):
        data.load_embedded()


@pytest.mark.skipif(not CSV_5K.is_file(), reason=f"{CSV_5K} not found")
def test_make_embedded_reproduces_the_shipped_file(tmp_path: Path) -> None:
    script = data.EMBEDDED_PATH.with_name("make_embedded.py")
    spec = importlib.util.spec_from_file_location("make_embedded", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    digest = module.build(CSV_5K, tmp_path / "out.npz")
    assert digest == data.EMBEDDED_SHA256


# --------------------------------------------------------------------------- real MNIST


@pytest.fixture(scope="module")
def mnist() -> data.Dataset:
    return data.load_mnist_dir(MNIST_DIR)


@needs_mnist
def test_real_mnist_loads(mnist: data.Dataset) -> None:
    assert mnist.name == "mnist"
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.train_labels.shape == (60000,)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.test_labels.shape == (10000,)
    assert set(np.unique(mnist.train_labels)) == set(range(10))


@needs_mnist
def test_real_mnist_canonical_md5(mnist: data.Dataset) -> None:
    arrays = {
        "train-images-idx3-ubyte": mnist.train_images,
        "train-labels-idx1-ubyte": mnist.train_labels,
        "t10k-images-idx3-ubyte": mnist.test_images,
        "t10k-labels-idx1-ubyte": mnist.test_labels,
    }
    for stem, md5 in CANONICAL_MD5.items():
        raw = gzip.decompress((MNIST_DIR / f"{stem}.gz").read_bytes())
        assert hashlib.md5(raw).hexdigest() == md5, stem
        # What the reader returns is exactly the payload of the canonical file.
        header_len = 4 + 4 * arrays[stem].ndim
        assert arrays[stem].tobytes() == raw[header_len:], stem


@needs_mnist
def test_embedded_is_first_500_of_each_class(mnist: data.Dataset) -> None:
    with np.load(data.EMBEDDED_PATH) as npz:
        images, labels = npz["images"], npz["labels"]
    for digit in range(10):
        first = mnist.train_images[mnist.train_labels == digit][:500]
        np.testing.assert_array_equal(images[labels == digit], first)


# --------------------------------------------------------------------------- IDX validation


def test_read_idx_raw_and_gzip_detected_by_content(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw_named_gz = tmp_path / "raw.gz"
    raw_named_gz.write_bytes(idx_bytes(array))
    gz_plain_name = tmp_path / "compressed.idx"
    gz_plain_name.write_bytes(gzip.compress(idx_bytes(array)))
    for path in (raw_named_gz, gz_plain_name):
        out = data.read_idx(path)
        assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
        np.testing.assert_array_equal(out, array)
        out[0, 0, 0] = 99  # writable, not a view of the file buffer


@pytest.mark.parametrize("ndim", [1, 4])
def test_read_idx_dimension_range(tmp_path: Path, ndim: int) -> None:
    array = np.ones((2,) * ndim, dtype=np.uint8)
    path = tmp_path / "ok.idx"
    path.write_bytes(idx_bytes(array))
    assert data.read_idx(path).shape == (2,) * ndim


@pytest.mark.parametrize(
    ("blob", "pattern"),
    [
        (b"", "too short"),
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
        (b"\x00\x07\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
        (b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00" * 4, r"0x0d \(float\)"),
        (b"\x00\x00\x42\x01" + struct.pack(">I", 1) + b"\x00", r"0x42 \(unknown\)"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x05" + b"\x00" * 20, "5 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated IDX header"),
        (b"\x00\x00\x08\x02" + struct.pack(">II", 2, 0), "size 0"),
    ],
)
def test_read_idx_bad_header(tmp_path: Path, blob: bytes, pattern: str) -> None:
    path = tmp_path / "bad-header-idx"
    path.write_bytes(blob)
    with pytest.raises(DataError, match=pattern) as info:
        data.read_idx(path)
    assert "bad-header-idx" in str(info.value)


def test_read_idx_truncated_data(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((3, 4, 4)))[:-5])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*48 bytes, found 43 \(truncated"):
        data.read_idx(path)


def test_read_idx_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(5)) + b"xyz"))
    with pytest.raises(DataError, match=r"labels.gz.*5 bytes, found 8 \(3 trailing byte\(s\)\)"):
        data.read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    good = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    cases = {
        "cut.gz": good[: len(good) // 2],  # stream ends early
        "garbage.gz": good[:10] + b"\xff" * 40,  # invalid deflate data
        "badcrc.gz": good[:-8] + b"\x00\x00\x00\x00" + good[-4:],  # CRC mismatch
        "magic-only.gz": b"\x1f\x8b",
    }
    for name, blob in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(DataError, match=f"{name}: corrupt gzip") as info:
            data.read_idx(path)
        assert info.value.__cause__ is None or isinstance(info.value.__cause__, DataError)


def test_read_idx_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothing-here.*no such file"):
        data.read_idx(tmp_path / "nothing-here")
    with pytest.raises(DataError, match="is a directory"):
        data.read_idx(tmp_path)


# --------------------------------------------------------------------------- MNIST directories


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_dir_small(tmp_path: Path, gz: bool) -> None:
    write_mnist_dir(tmp_path, gz=gz)
    ds = data.load_mnist_dir(tmp_path)
    assert ds.train_images.shape == (6, 28, 28) and ds.test_labels.shape == (4,)
    assert ds.name == "mnist"


def test_load_mnist_dir_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no-such-dir.*no such directory.*train-images-idx3-ubyte"):
        data.load_mnist_dir(tmp_path / "no-such-dir")


def test_load_mnist_dir_missing_file(tmp_path: Path) -> None:
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        data.load_mnist_dir(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz" in message
    assert "train-images-idx3-ubyte[.gz]" in message  # lists everything looked for


def test_load_mnist_dir_count_mismatch(tmp_path: Path) -> None:
    write_mnist_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(idx_bytes(np.zeros(5)))
    with pytest.raises(DataError, match=r"holds 6 images but .*train-labels-idx1-ubyte.gz holds 5"):
        data.load_mnist_dir(tmp_path)


def test_load_mnist_dir_wrong_dims(tmp_path: Path) -> None:
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(idx_bytes(np.zeros((4, 784))))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: images must be 3-D"):
        data.load_mnist_dir(tmp_path)
    write_mnist_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(idx_bytes(np.zeros((6, 1))))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: labels must be 1-D"):
        data.load_mnist_dir(tmp_path)


def test_load_mnist_dir_train_test_size_mismatch(tmp_path: Path) -> None:
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(idx_bytes(np.zeros((4, 20, 20))))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz has"):
        data.load_mnist_dir(tmp_path)


def test_load_mnist_dir_reports_damaged_member(tmp_path: Path) -> None:
    write_mnist_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: corrupt gzip"):
        data.load_mnist_dir(tmp_path)


def test_load_mnist_dir_allows_other_image_sizes(tmp_path: Path) -> None:
    write_mnist_dir(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(idx_bytes(np.zeros((6, 8, 10))))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(idx_bytes(np.zeros((4, 8, 10))))
    ds = data.load_mnist_dir(tmp_path)
    assert ds.image_shape == (8, 10) and ds.num_pixels == 80


# --------------------------------------------------------------------------- pixel protocols


@pytest.fixture()
def images() -> np.ndarray:
    rng = np.random.default_rng(7)
    out = rng.integers(0, 256, (50, 6, 5), dtype=np.uint8)
    out[:, 0, 0], out[:, 0, 1] = 0, 255
    return out


def test_protocol_names() -> None:
    assert data.PROTOCOLS == ("grayscale", "binarized", "fixed-binarized")


def test_grayscale(images: np.ndarray) -> None:
    x = data.prepare(images, "grayscale")
    assert x.shape == (50, 30) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x, images.reshape(50, 30) / 255.0, rtol=1e-6)
    assert data.prepare(images, "grayscale", dtype=np.float64).dtype == np.float64


def test_binarized_is_binary_and_fresh_each_epoch(images: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    a = data.prepare(images, "binarized", rng)
    b = data.prepare(images, "binarized", rng)
    assert set(np.unique(a)) <= {0.0, 1.0}
    assert not np.array_equal(a, b)
    flat = images.reshape(50, 30)
    assert (a[flat == 0] == 0).all() and (a[flat == 255] == 1).all()
    epoch1 = np.concatenate(list(data.iterate_batches(images, 8, "binarized", rng, shuffle=False)))
    epoch2 = np.concatenate(list(data.iterate_batches(images, 8, "binarized", rng, shuffle=False)))
    assert set(np.unique(epoch1)) <= {0.0, 1.0}
    assert not np.array_equal(epoch1, epoch2)


def test_binarized_mean_matches_intensity() -> None:
    img = np.full((4000, 1, 3), [[0, 64, 200]], dtype=np.uint8)
    x = data.prepare(img, "binarized", np.random.default_rng(1))
    np.testing.assert_allclose(x.mean(axis=0), [0, 64 / 255, 200 / 255], atol=0.03)


def test_binarized_same_bits_for_both_dtypes(images: np.ndarray) -> None:
    a = data.prepare(images, "binarized", np.random.default_rng(5), np.float32)
    b = data.prepare(images, "binarized", np.random.default_rng(5), np.float64)
    np.testing.assert_array_equal(a, b)


def test_fixed_binarized_is_stable(images: np.ndarray) -> None:
    a = data.prepare(images, "fixed-binarized", np.random.default_rng(0))
    b = data.prepare(images, "fixed-binarized", np.random.default_rng(99))
    assert set(np.unique(a)) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    # Batches are rows of the one fixed draw, whatever the shuffle or epoch.
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        for _ in range(2):
            got = np.concatenate(list(data.iterate_batches(images, 7, "fixed-binarized", rng)))
            assert sorted(map(bytes, got)) == sorted(map(bytes, a))


def test_iterate_batches_covers_each_example_once(images: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    batches = list(data.iterate_batches(images, 16, "grayscale", rng))
    assert [len(b) for b in batches] == [16, 16, 16, 2]
    assert len(batches) == data.count_batches(50, 16)
    got = np.concatenate(batches)
    expected = data.prepare(images, "grayscale")
    assert not np.array_equal(got, expected)  # shuffled
    assert sorted(map(bytes, got)) == sorted(map(bytes, expected))
    unshuffled = np.concatenate(list(data.iterate_batches(images, 16, "grayscale", None, False)))
    np.testing.assert_array_equal(unshuffled, expected)


def test_iterate_batches_drop_last(images: np.ndarray) -> None:
    batches = list(
        data.iterate_batches(images, 16, "grayscale", np.random.default_rng(0), drop_last=True)
    )
    assert [len(b) for b in batches] == [16, 16, 16]
    assert data.count_batches(50, 16, drop_last=True) == 3
    whole = list(data.iterate_batches(images, 50, "binarized", np.random.default_rng(0)))
    assert len(whole) == 1 and whole[0].shape == (50, 30)


def test_iterate_batches_shuffle_is_seeded(images: np.ndarray) -> None:
    def epoch(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return np.concatenate(list(data.iterate_batches(images, 10, "binarized", rng)))

    np.testing.assert_array_equal(epoch(3), epoch(3))


def test_batch_size_validation(images: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    too_big = r"batch size 51 is larger than the number of examples \(50\)"
    with pytest.raises(DataError, match=too_big):
        data.iterate_batches(images, 51, "grayscale", rng)
    for bad in (0, -3):
        with pytest.raises(DataError, match="at least 1"):
            data.iterate_batches(images, bad, "grayscale", rng)
    not_ints: tuple[object, ...] = (2.5, True, "8")
    for wrong in not_ints:
        with pytest.raises(DataError, match="integer"):
            data.iterate_batches(images, wrong, "grayscale", rng)  # type: ignore[arg-type]


def test_unknown_protocol_lists_valid_ones(images: np.ndarray) -> None:
    for call in (
        lambda: data.prepare(images, "binary"),
        lambda: data.iterate_batches(images, 5, "binary", np.random.default_rng(0)),
    ):
        with pytest.raises(DataError, match="'binary'.*grayscale, binarized, fixed-binarized"):
            call()


def test_float_input_validation(images: np.ndarray) -> None:
    as_float = images.astype(np.float64)
    np.testing.assert_array_equal(
        data.prepare(as_float, "grayscale"), data.prepare(images, "grayscale")
    )
    bad = as_float.copy()
    bad[0, 0, :3] = np.nan
    with pytest.raises(DataError, match="3 NaN"):
        data.prepare(bad, "grayscale")
    with pytest.raises(DataError, match="3 NaN"):
        data.iterate_batches(bad, 5, "binarized", np.random.default_rng(0))
    bad[0, 0, :3] = np.inf
    with pytest.raises(DataError, match="infinite"):
        data.prepare(bad, "grayscale")
    with pytest.raises(DataError, match="0..255"):
        data.prepare(as_float * 2, "grayscale")
    with pytest.raises(DataError, match=r"already scaled to \[0, 1\]"):
        data.prepare(as_float / 255, "grayscale")
    with pytest.raises(DataError, match="dtype bool"):
        data.prepare(images > 100, "grayscale")


def test_misc_argument_errors(images: np.ndarray) -> None:
    with pytest.raises(TypeError, match="binarized"):
        data.prepare(images, "binarized")
    with pytest.raises(TypeError, match="shuffle"):
        data.iterate_batches(images, 5, "grayscale", None)
    with pytest.raises(ValueError, match="float32 or float64"):
        data.prepare(images, "grayscale", dtype=np.int32)
    with pytest.raises(DataError, match="empty"):
        data.prepare(images[:0], "grayscale")
