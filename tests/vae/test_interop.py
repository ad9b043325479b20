"""Tests for vae.interop: renaming to and from the PyTorch VAE example's state_dict."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vae.interop import OURS_TO_PYTORCH, from_pytorch_example, to_pytorch_example

PYTORCH_KEYS = {
    "fc1.weight",
    "fc1.bias",
    "fc21.weight",
    "fc21.bias",
    "fc22.weight",
    "fc22.bias",
    "fc3.weight",
    "fc3.bias",
    "fc4.weight",
    "fc4.bias",
}


def ours(d_in: int = 12, h_enc: int = 7, z: int = 3, h_dec: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = {
        "encoder.hidden.weight": (h_enc, d_in),
        "encoder.hidden.bias": (h_enc,),
        "encoder.mu.weight": (z, h_enc),
        "encoder.mu.bias": (z,),
        "encoder.logvar.weight": (z, h_enc),
        "encoder.logvar.bias": (z,),
        "decoder.hidden.weight": (h_dec, z),
        "decoder.hidden.bias": (h_dec,),
        "decoder.out.weight": (d_in, h_dec),
        "decoder.out.bias": (d_in,),
    }
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


class FakeTensor:
    """Stands in for a torch tensor: detach() -> cpu() -> numpy()."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.calls: list[str] = []

    def detach(self) -> FakeTensor:
        self.calls.append("detach")
        return self

    def cpu(self) -> FakeTensor:
        self.calls.append("cpu")
        return self

    def numpy(self) -> np.ndarray:
        self.calls.append("numpy")
        return self.array


def test_key_mapping() -> None:
    sd = ours()
    out = to_pytorch_example(sd)
    assert set(out) == PYTORCH_KEYS
    assert set(OURS_TO_PYTORCH) == set(sd)
    np.testing.assert_array_equal(out["fc21.weight"], sd["encoder.mu.weight"])
    np.testing.assert_array_equal(out["fc22.bias"], sd["encoder.logvar.bias"])
    np.testing.assert_array_equal(out["fc1.weight"], sd["encoder.hidden.weight"])
    np.testing.assert_array_equal(out["fc3.weight"], sd["decoder.hidden.weight"])
    np.testing.assert_array_equal(out["fc4.bias"], sd["decoder.out.bias"])


def test_round_trip_preserves_values_and_dtype() -> None:
    sd = ours()
    back = from_pytorch_example(to_pytorch_example(sd))
    assert set(back) == set(sd)
    for key, value in sd.items():
        assert back[key].dtype == value.dtype and back[key].shape == value.shape
        np.testing.assert_array_equal(back[key], value)


def test_pytorch_example_default_sizes() -> None:
    sd = ours(d_in=784, h_enc=400, z=20, h_dec=400)
    out = to_pytorch_example(sd)
    assert out["fc1.weight"].shape == (400, 784) and out["fc4.weight"].shape == (784, 400)


def test_no_aliasing() -> None:
    sd = ours()
    out = to_pytorch_example(sd)
    out["fc1.weight"][0, 0] = 1e6
    assert sd["encoder.hidden.weight"][0, 0] != 1e6
    back = from_pytorch_example(out)
    for key, value in back.items():
        assert not np.shares_memory(value, out[OURS_TO_PYTORCH[key]])


def test_tensor_like_values_are_converted() -> None:
    pt = {k: FakeTensor(v) for k, v in to_pytorch_example(ours()).items()}
    back = from_pytorch_example(pt)
    for key, value in back.items():
        fake = pt[OURS_TO_PYTORCH[key]]
        assert fake.calls == ["detach", "cpu", "numpy"]
        assert isinstance(value, np.ndarray) and not np.shares_memory(value, fake.array)
        np.testing.assert_array_equal(value, fake.array)


@pytest.mark.parametrize("convert", [to_pytorch_example, from_pytorch_example])
def test_missing_and_extra_keys(convert: Any) -> None:
    sd = ours() if convert is to_pytorch_example else to_pytorch_example(ours())
    key = min(sd)
    missing = {k: v for k, v in sd.items() if k != key}
    with pytest.raises(ValueError, match=f"missing key\\(s\\) {key}"):
        convert(missing)
    extra = dict(sd, running_mean=np.zeros(3))
    with pytest.raises(ValueError, match="unexpected key\\(s\\) running_mean"):
        convert(extra)


def test_wrapped_model_prefix_hint() -> None:
    wrapped = {f"module.{k}": v for k, v in to_pytorch_example(ours()).items()}
    with pytest.raises(ValueError, match="'module.' prefix"):
        from_pytorch_example(wrapped)


def test_mu_logvar_mismatch_names_keys_and_shapes() -> None:
    pt = to_pytorch_example(ours())
    pt["fc22.weight"] = np.zeros((4, 7), np.float32)
    pt["fc22.bias"] = np.zeros(4, np.float32)
    pattern = r"fc22.weight has shape \(4, 7\) but fc21.weight has shape \(3, 7\)"
    with pytest.raises(ValueError, match=pattern):
        from_pytorch_example(pt)


def test_output_size_must_match_input_size() -> None:
    sd = ours()
    sd["decoder.out.weight"] = np.zeros((11, 5), np.float32)
    sd["decoder.out.bias"] = np.zeros(11, np.float32)
    with pytest.raises(
        ValueError,
        match=r"decoder.out.weight has shape \(11, 5\) "
        r"but encoder.hidden.weight has shape \(7, 12\)",
    ):
        to_pytorch_example(sd)


@pytest.mark.parametrize(
    ("key", "shape", "pattern"),
    [
        ("fc1.bias", (6,), r"fc1.bias has shape \(6,\) but fc1.weight has shape \(7, 12\)"),
        ("fc1.weight", (7, 12, 1), r"fc1.weight: weight must be 2-D"),
        ("fc4.bias", (12, 1), r"fc4.bias: bias must be 1-D"),
        ("fc21.weight", (3, 8), r"fc21.weight has shape \(3, 8\) but fc1.weight"),
        ("fc3.weight", (5, 4), r"fc3.weight has shape \(5, 4\) but fc21.weight"),
        ("fc4.weight", (12, 6), r"fc4.weight has shape \(12, 6\) but fc3.weight"),
    ],
)
def test_inconsistent_shapes(key: str, shape: tuple[int, ...], pattern: str) -> None:
    pt = to_pytorch_example(ours())
    pt[key] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=pattern):
        from_pytorch_example(pt)


def test_non_float_values_and_non_mappings_rejected() -> None:
    sd = ours()
    sd["encoder.mu.bias"] = np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match="encoder.mu.bias.*int64"):
        to_pytorch_example(sd)
    with pytest.raises(TypeError, match="mapping"):
        to_pytorch_example(list(ours().items()))  # type: ignore[arg-type]


def test_a_tensor_numpy_cannot_hold_is_named() -> None:
    torch = pytest.importorskip("torch")
    pt = dict(to_pytorch_example(ours()))
    pt["fc1.weight"] = torch.zeros(pt["fc1.weight"].shape, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"fc1.weight: cannot convert to a numpy array .*\.float\(\)"):
        from_pytorch_example(pt)
