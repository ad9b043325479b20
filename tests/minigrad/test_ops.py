"""Every registered op, driven by the one table in op_cases.py: forward against numpy in both
dtypes, the C backend against the numpy backend (contiguous, strided, reversed and transposed
inputs, broadcasting shapes from hypothesis), and gradcheck in float64."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.autograd import REGISTRY

DTYPES = [mg.float32, mg.float64]
# forward against a float64 numpy reference computed from the same (float32-exact) inputs
FORWARD_TOL = {mg.float32: {"rtol": 2e-5, "atol": 2e-5}, mg.float64: {"rtol": 1e-12, "atol": 1e-12}}
# the two backends on identical inputs: summation order and libm may differ in the last bits
BACKEND_TOL = {mg.float32: {"rtol": 1e-5, "atol": 1e-6}, mg.float64: {"rtol": 1e-12, "atol": 1e-13}}


def test_every_registered_op_has_a_case(cases):
    missing = sorted(set(REGISTRY) - set(cases.CASES))
    stale = sorted(set(cases.CASES) - set(REGISTRY))
    assert not missing, f"ops without a test case in op_cases.py: {missing}"
    assert not stale, f"op_cases.py has cases for ops that are not registered: {stale}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(data=st.data())
def test_forward_matches_numpy(op_case, dtype, data):
    ex = data.draw(op_case.examples)
    arrays = [a.astype(dtype) for a in ex.arrays]
    out = ex.call(*[mg.Tensor(a) for a in arrays])
    expected = np.asarray(ex.reference(*[a.astype(np.float64) for a in arrays]))
    want_dtype = ex.out_dtype(dtype) if ex.out_dtype else dtype
    assert isinstance(out, mg.Tensor)
    assert out.dtype == want_dtype
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, **FORWARD_TOL[dtype])


def _run(ex, arrays, upstream, backend_name):
    """Forward and backward of one example on one backend: the output and each input's grad."""
    with mg.backend.use(backend_name):
        tensors = [mg.Tensor(a, requires_grad=True) for a in arrays]
        out = ex.call(*tensors)
        out.backward(upstream)
    return out.data, [t.grad.data for t in tensors]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(data=st.data())
def test_c_backend_matches_numpy_backend(op_case, dtype, data, cases):
    """Same inputs through both backends, each input (and the upstream gradient) in a memory
    layout drawn by hypothesis: contiguous, strided, reversed (negative strides) or transposed."""
    ex = data.draw(op_case.examples)
    layouts = st.sampled_from(cases.LAYOUTS)
    inputs = [
        cases.with_layout(a.astype(dtype), data.draw(layouts, label="layout")) for a in ex.arrays
    ]
    with mg.no_grad():
        out_dtype = ex.call(*[mg.Tensor(a) for a in inputs]).dtype
        out_shape = np.shape(ex.reference(*ex.arrays))
    upstream = np.random.default_rng(1).standard_normal(out_shape).astype(out_dtype)
    upstream = cases.with_layout(upstream, data.draw(layouts, label="upstream layout"))

    ref_out, ref_grads = _run(ex, inputs, upstream, "numpy")
    c_out, c_grads = _run(ex, inputs, upstream, "c")
    tol = BACKEND_TOL[np.dtype(dtype)]
    assert c_out.dtype == ref_out.dtype and c_out.shape == ref_out.shape == out_shape
    np.testing.assert_allclose(c_out, ref_out, **tol, err_msg=f"{op_case.name} forward")
    for i, (c, r) in enumerate(zip(c_grads, ref_grads)):
        assert c.dtype == r.dtype == dtype and c.shape == r.shape == inputs[i].shape
        np.testing.assert_allclose(c, r, **tol, err_msg=f"{op_case.name} grad of input {i}")


def test_layouts_are_what_they_say(cases):
    a = np.arange(12.0).reshape(3, 4)
    for layout in cases.LAYOUTS:
        b = cases.with_layout(a, layout)
        np.testing.assert_array_equal(b, a)
        assert b.flags.c_contiguous == (layout == "contiguous")
    assert cases.with_layout(a, "reversed").strides[0] < 0
    assert cases.with_layout(a, "strided").base is not None


@settings(max_examples=20)
@given(data=st.data())
def test_gradcheck_float64(op_case, data):
    ex = data.draw(op_case.examples)
    tensors = [mg.Tensor(a.astype(np.float64), requires_grad=True) for a in ex.arrays]
    assert mg.gradcheck(ex.call, tensors, **ex.gradcheck_kwargs)


# ---------------------------------------------------------------- operator forms the table does not reach
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_python_scalars_take_the_tensor_dtype(dtype):
    x = mg.Tensor(np.array([1.0, 2.0, 4.0], dtype=dtype))
    for out, expected in [
        (x + 1, [2, 3, 5]),
        (1 + x, [2, 3, 5]),
        (x - 1, [0, 1, 3]),
        (1 - x, [0, -1, -3]),
        (x * 2, [2, 4, 8]),
        (2 * x, [2, 4, 8]),
        (x / 2, [0.5, 1, 2]),
        (2 / x, [2, 1, 0.5]),
        (x**2, [1, 4, 16]),
        (-x, [-1, -2, -4]),
    ]:
        assert out.dtype == dtype
        np.testing.assert_array_equal(out.data, np.array(expected, dtype=dtype))


def test_numpy_array_on_the_left_defers_to_tensor():
    x = mg.Tensor([1.0, 2.0], requires_grad=True)
    out = np.array([3.0, 4.0], dtype=np.float32) * x
    assert isinstance(out, mg.Tensor)
    np.testing.assert_array_equal(out.data, [3.0, 8.0])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 4.0])


def test_transpose_forms():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = mg.Tensor(a)
    np.testing.assert_array_equal(x.T.data, a.T)
    np.testing.assert_array_equal(x.transpose().data, a.T)
    np.testing.assert_array_equal(
        x.transpose(0, 2).data, np.swapaxes(a, 0, 2)
    )  # PyTorch: swap two dims
    np.testing.assert_array_equal(x.transpose(-1, 1).data, np.swapaxes(a, -1, 1))
    np.testing.assert_array_equal(x.permute(2, 0, 1).data, np.transpose(a, (2, 0, 1)))
    m = mg.Tensor(a[0])
    np.testing.assert_array_equal(m.permute(0, 1).data, a[0])  # identity, not a swap
    np.testing.assert_array_equal(m.permute(1, 0).data, a[0].T)


def test_max_splits_the_gradient_between_ties():
    x = mg.Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], dtype=mg.float64, requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 0.5, 0.5], [0.5, 0, 0.5]])


def test_logsumexp_of_large_and_minus_infinite_values():
    x = mg.Tensor([[1000.0, 1000.0], [-np.inf, -np.inf]], dtype=mg.float64)
    out = x.logsumexp(axis=1).data
    np.testing.assert_allclose(out[0], 1000 + np.log(2))
    assert out[1] == -np.inf


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_gaussian_kl_of_empty_rows(reduction, backend):
    """A zero-width latent: every row's KL is 0 and the gradients are empty, for each reduction
    (the mean's backward counts rows from the shape, not size / width). No rows at all: the sum
    is 0 and the mean NaN, as sum() and mean() of an empty tensor give."""
    with mg.backend.use(backend):
        mu = mg.Tensor(np.zeros((4, 0), np.float32), requires_grad=True)
        logvar = mg.Tensor(np.zeros((4, 0), np.float32), requires_grad=True)
        out = F.gaussian_kl(mu, logvar, reduction=reduction)
        assert np.all(out.data == 0) and out.shape == ((4,) if reduction == "none" else ())
        (out.sum() if reduction == "none" else out).backward()
        assert mu.grad.shape == logvar.grad.shape == (4, 0)

        mu = mg.Tensor(np.zeros((0, 3), np.float32), requires_grad=True)
        out = F.gaussian_kl(mu, mg.Tensor(np.zeros((0, 3), np.float32)), reduction=reduction)
        if reduction == "mean":
            assert np.isnan(out.data) and np.isnan(mu.sum(axis=1).mean().data)
        else:
            assert out.shape == ((0,) if reduction == "none" else ()) and np.all(out.data == 0)
        (out.sum() if reduction == "none" else out).backward()
        assert mu.grad.shape == (0, 3)
