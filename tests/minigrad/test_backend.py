"""The raw kernels, C against the numpy reference backend, and how a backend is chosen."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.backend import numpy_backend as ref

c = pytest.importorskip("minigrad.backend.c_backend", reason="the C extension is not built")

DTYPES = [mg.float32, mg.float64]
TOL = {mg.float32: {"rtol": 1e-5, "atol": 1e-6}, mg.float64: {"rtol": 1e-12, "atol": 1e-13}}
SPECIAL = np.array(
    [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 30.0, -30.0, 1000.0, -1000.0, np.inf, -np.inf, np.nan]
)


def assert_same(c_result, ref_result, dtype, what=""):
    assert c_result.dtype == ref_result.dtype == dtype, what
    assert c_result.shape == ref_result.shape, what
    np.testing.assert_allclose(
        c_result, ref_result, **TOL[np.dtype(dtype)], equal_nan=True, err_msg=what
    )


def arrays(shape, lo=-3.0, hi=3.0):
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False, width=32))


def test_both_backends_offer_the_same_ops():
    assert c.UNARY_OPS == ref.UNARY_OPS
    assert c.BINARY_OPS == ref.BINARY_OPS


# ---------------------------------------------------------------- elementwise by name
UNARY_PARAMS = {
    "pow_scalar": [(2.0, 0.0), (3.0, 0.0), (0.5, 0.0), (-1.5, 0.0)],
    "clip": [(-0.5, 0.5), (0.0, 2.0)],
}
POSITIVE_ONLY = {"log", "sqrt"}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ref.UNARY_OPS)
@given(data=st.data())
def test_unary_kernels(op, dtype, data, cases):
    lo = 0.0625 if op in POSITIVE_ONLY or op == "pow_scalar" else -5.0
    x = data.draw(arrays(data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=5)), lo, 5.0))
    x = cases.with_layout(x.astype(dtype), data.draw(st.sampled_from(cases.LAYOUTS)))
    p, q = data.draw(st.sampled_from(UNARY_PARAMS.get(op, [(0.0, 0.0)])))
    assert_same(c.unary(op, x, p, q), ref.unary(op, x, p, q), dtype, op)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ref.UNARY_OPS)
def test_unary_kernels_at_special_values(op, dtype):
    """Zeros, infinities, NaN, huge arguments (NaN must propagate as numpy does)."""
    x = SPECIAL.astype(dtype)
    for p, q in UNARY_PARAMS.get(op, [(0.0, 0.0)]):
        assert_same(c.unary(op, x, p, q), ref.unary(op, x, p, q), dtype, f"{op} at {x}")


def test_float32_exp_within_one_ulp_over_its_whole_range():
    """exp in float32 is minigrad's own polynomial (it vectorizes; libm's expf does not): within
    1 ulp of e^x correctly rounded, for every 997th float from below the subnormal results (-110)
    to past overflow (90) and every float near both ends, with the same zeros, subnormals and
    infinities there."""
    def ordered(f):  # float32 bit patterns as integers that count ulps across zero
        i = f.view(np.int32).astype(np.int64)
        return np.where(i < 0, np.int64(-(2**31)) - i, i)

    def floats(lo, hi, step):
        keys = np.arange(*ordered(np.array([lo, hi], np.float32)), step, dtype=np.int64)
        return np.where(keys < 0, np.int64(-(2**31)) - keys, keys).astype(np.int32).view(np.float32)

    x = np.concatenate([floats(-110.0, 90.0, 997), floats(-103.98, -103.96, 1), floats(88.71, 88.73, 1)])
    with np.errstate(over="ignore", under="ignore"):
        want = np.exp(x.astype(np.float64)).astype(np.float32)
    got = c.unary("exp", x)
    assert (want == 0).any() and (want[want > 0].min() < 1e-44) and np.isinf(want).any()  # both ends covered
    assert np.array_equal(np.isinf(got), np.isinf(want)) and np.array_equal(got == 0, want == 0)
    finite = np.isfinite(want)
    assert np.abs(ordered(got[finite]) - ordered(want[finite])).max() <= 1


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_pow_half_of_minus_infinity(dtype):
    """x ** 0.5 is sqrt(x), as numpy computes it: NaN at -inf (C's pow would give +inf)."""
    x = np.array([-np.inf], dtype=dtype)
    assert_same(c.unary("pow_scalar", x, 0.5), ref.unary("pow_scalar", x, 0.5), dtype)


BINARY_PARAMS = {"pow_bwd": [(2.0, 0.0), (0.5, 0.0), (-1.0, 0.0)], "clip_bwd": [(-0.5, 0.5)]}
DIVISOR = {"div", "sqrt_bwd"}  # b is a divisor: keep it away from 0
POSITIVE_B = {"pow_bwd"}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ref.BINARY_OPS)
@given(data=st.data())
def test_binary_kernels_with_broadcasting(op, dtype, data, cases):
    sa, sb = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4)
    ).input_shapes
    if op == "eq":  # a coarse grid, so equal elements actually occur
        grid = hnp.arrays(np.int64, sa, elements=st.integers(-2, 2))
        a, b = (
            data.draw(grid) / 2,
            data.draw(hnp.arrays(np.int64, sb, elements=st.integers(-2, 2))) / 2,
        )
    else:
        a = data.draw(arrays(sa))
        b = data.draw(arrays(sb, 0.125, 3.0) if op in DIVISOR | POSITIVE_B else arrays(sb))
        if op in DIVISOR:
            b = b * data.draw(st.sampled_from([1.0, -1.0]))
    layouts = st.sampled_from(cases.LAYOUTS)
    a = cases.with_layout(a.astype(dtype), data.draw(layouts))
    b = cases.with_layout(b.astype(dtype), data.draw(layouts))
    p, q = data.draw(st.sampled_from(BINARY_PARAMS.get(op, [(0.0, 0.0)])))
    assert_same(c.binary(op, a, b, p, q), ref.binary(op, a, b, p, q), dtype, op)


@given(shapes=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3),
       other=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
def test_broadcast_shape_follows_numpy(shapes, other):
    """The shared shape rule of binary ops: numpy's result, or numpy's refusal with a named error."""
    from minigrad.backend._common import broadcast_shape

    try:
        expect = np.broadcast_shapes(shapes, other)
    except ValueError:
        with pytest.raises(ValueError, match=r"mul: shapes .* do not broadcast"):
            broadcast_shape("mul", shapes, other)
    else:
        assert broadcast_shape("mul", shapes, other) == expect


@pytest.mark.parametrize("backend", [c, ref], ids=["c", "numpy"])
def test_binary_refuses_shapes_that_do_not_broadcast(backend):
    """Both backends raise the same error before any kernel runs (ops rely on it)."""
    with pytest.raises(ValueError, match=r"sub: shapes \(2, 3\) and \(4,\) do not broadcast"):
        backend.binary("sub", np.ones((2, 3)), np.ones(4))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ref.BINARY_OPS)
def test_binary_kernels_at_special_values(op, dtype):
    g = np.linspace(-2, 2, SPECIAL.size).astype(dtype)
    x = SPECIAL.astype(dtype)
    for p, q in BINARY_PARAMS.get(op, [(0.0, 0.0)]):
        for a, b in [(g, x), (x, g), (x, x[::-1])]:
            assert_same(
                c.binary(op, a, b, p, q), ref.binary(op, a, b, p, q), dtype, f"{op}({a}, {b})"
            )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(data=st.data())
def test_where_kernel(dtype, data, cases):
    sc, sa, sb = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4)
    ).input_shapes
    cond = data.draw(hnp.arrays(np.bool_, sc))
    layouts = st.sampled_from(cases.LAYOUTS)
    a = cases.with_layout(data.draw(arrays(sa)).astype(dtype), data.draw(layouts))
    b = cases.with_layout(data.draw(arrays(sb)).astype(dtype), data.draw(layouts))
    cond = cases.with_layout(cond, data.draw(layouts))
    assert_same(c.where(cond, a, b), ref.where(cond, a, b), dtype, "where")


# ---------------------------------------------------------------- reductions
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ["sum", "max"])
@given(data=st.data())
def test_reduce_over_random_axis_sets(op, dtype, data, cases):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    x = data.draw(arrays(shape, -10.0, 10.0)).astype(dtype)
    x = cases.with_layout(x, data.draw(st.sampled_from(cases.LAYOUTS)))
    axes = tuple(
        sorted(data.draw(st.sets(st.integers(0, max(len(shape) - 1, 0)), max_size=len(shape))))
    )
    keepdims = data.draw(st.booleans())
    assert_same(
        c.reduce(op, x, axes, keepdims), ref.reduce(op, x, axes, keepdims), dtype, f"{op} {axes}"
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "shape, axes", [((0,), (0,)), ((3, 0), (1,)), ((0, 4), (0,)), ((2, 0, 3), (0, 1))]
)
def test_reduce_over_empty_axes(shape, axes, dtype):
    x = np.zeros(shape, dtype=dtype)
    for op, fill in [("sum", 0.0), ("max", -np.inf)]:
        for keepdims in (False, True):
            out = c.reduce(op, x, axes, keepdims)
            assert_same(
                out, ref.reduce(op, x, axes, keepdims), dtype, f"{op} of {shape} over {axes}"
            )
            assert np.all(out == fill)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_reduce_propagates_nan(dtype):
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], dtype=dtype)
    for op in ("sum", "max"):
        for axes in [(0,), (1,), (0, 1)]:
            assert_same(
                c.reduce(op, x, axes, False), ref.reduce(op, x, axes, False), dtype, f"{op} {axes}"
            )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_sum_of_a_long_column_block(dtype, rng):
    """The column-sum path (unit-stride kept dim, strided reduced dim, >= 8 columns)."""
    x = rng.standard_normal((300, 70)).astype(dtype)
    assert_same(c.reduce("sum", x, (0,), False), ref.reduce("sum", x, (0,), False), dtype)
    assert_same(c.reduce("sum", x.T, (1,), True), ref.reduce("sum", x.T, (1,), True), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "shape, axes",
    [
        ((33, 8), (0,)),  # two row chunks, the second of one row
        ((130, 784), (0,)),  # the VAE's bias gradient: chunks of 32 rows, 4-row passes and rest
        ((70, 2100), (0,)),  # five column blocks (4 x 512 + 52) in three row chunks
        ((3000, 9), (0,)),  # chunks longer than 32 rows
        ((4, 37, 12), (0, 1)),  # leading axes of a 3-D array, summed as one row axis
        ((20, 100), (0,)),  # one chunk: summed on the stack, no scratch
        ((300, 20000), (0,)),  # 40 column blocks: one chunk however many rows
        ((40, 1500), (0,)),  # three column blocks in two row chunks
    ],
)
def test_column_sums_in_row_chunks(shape, axes, dtype, rng):
    """Sums over the leading axes of a contiguous array go through the chunked column sum: the
    same answer as numpy (within float64 / float32 rounding), bit-identical for 1 and 2 threads,
    and a strided view of the same data takes the general path to the same sums."""
    x = rng.standard_normal(shape).astype(dtype)
    want = x.astype(np.float64).sum(axis=axes)
    before = mg.backend_info()["num_threads"]
    try:
        outs = []
        for threads in (1, 2):
            mg.set_num_threads(threads)
            outs.append(c.reduce("sum", x, axes, False))
    finally:
        mg.set_num_threads(before)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], want, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-5)
    wide = np.zeros(shape[:-1] + (2 * shape[-1],), dtype)
    wide[..., ::2] = x  # the same values with a column stride of 2
    np.testing.assert_allclose(c.reduce("sum", wide[..., ::2], axes, False), outs[0], rtol=1e-6, atol=1e-5)
    assert c.reduce("sum", x, axes, True).shape == tuple(1 if d in axes else n for d, n in enumerate(shape))


def test_float32_column_sums_stay_accurate_over_many_rows(rng):
    """Column sums add eight rows at a time in float32 and those group sums in double: over
    thousands of positive rows the result is within 2 float32 ulps of the exact sum (adding every
    row into a float32 sum, as numpy's axis-0 sum does, is off by ~50 ulps here)."""
    x = rng.random((4096, 300), dtype=np.float32)
    exact = x.astype(np.float64).sum(axis=0)
    got = c.reduce("sum", x, (0,), False)
    assert got.dtype == np.float32
    rel = np.abs(got.astype(np.float64) - exact) / exact
    assert rel.max() <= 2 * np.finfo(np.float32).eps, rel.max()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_max_over_leading_axes(dtype, keepdims, rng):
    # the leading-axes fast path hands max to the general kernel: same values, NaN and shapes
    x = rng.standard_normal((50, 3, 9)).astype(dtype)
    x[7, 1, 4] = np.nan
    for axes in [(0,), (0, 1)]:
        got = c.reduce("max", x, axes, keepdims)
        np.testing.assert_array_equal(got, np.max(x, axis=axes, keepdims=keepdims))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_misaligned_buffers_reach_c_only_through_aligned_reads(dtype):
    # numpy makes contiguous arrays at odd byte offsets; the flat kernels read those one element
    # at a time through copies, and reduce copies them first
    n = 70001  # long enough for the threaded paths
    item = np.dtype(dtype).itemsize
    raw = np.zeros(3 * n * item + 8, np.uint8)
    a = np.ndarray((n,), dtype, buffer=raw, offset=1)
    b = np.ndarray((n,), dtype, buffer=raw, offset=1 + n * item)
    a[:] = np.linspace(-3, 3, n)
    b[:] = np.linspace(2, 5, n)
    assert not a.flags.aligned and not b.flags.aligned and a.flags.c_contiguous
    np.testing.assert_array_equal(c.binary("mul", a, b), a * b)
    np.testing.assert_array_equal(c.binary("sub", a, b[:1]), a - b[0])  # a one-value operand
    np.testing.assert_array_equal(c.binary("add", b[:1], a), b[0] + a)
    np.testing.assert_allclose(c.unary("exp", a), np.exp(a), rtol=1e-6)
    np.testing.assert_array_equal(c.unary("relu", a), np.maximum(a, 0))
    m = a[: 7 * 10000].reshape(7, 10000)
    np.testing.assert_allclose(c.reduce("sum", m, (0,), False), m.astype(np.float64).sum(0), rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(c.reduce("max", m, (0,), True), m.max(0, keepdims=True))
    np.testing.assert_allclose(c.reduce("sum", a, (0,), False), a.astype(np.float64).sum(), atol=1e-6)


# ---------------------------------------------------------------- matmul and fused kernels
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(data=st.data())
def test_matmul_kernel(dtype, data, cases):
    m, k, n = (data.draw(st.integers(1, 9)) for _ in range(3))
    layouts = st.sampled_from(cases.LAYOUTS)
    a = cases.with_layout(data.draw(arrays((m, k))).astype(dtype), data.draw(layouts))
    b = cases.with_layout(data.draw(arrays((k, n))).astype(dtype), data.draw(layouts))
    assert_same(c.matmul(a, b), ref.matmul(a, b), dtype, "matmul")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("act", ["none", "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@given(data=st.data())
def test_linear_kernel(act, bias, dtype, data, cases):
    m, k, n = (data.draw(st.integers(1, 7)) for _ in range(3))
    layouts = st.sampled_from(cases.LAYOUTS)
    x = cases.with_layout(data.draw(arrays((m, k))).astype(dtype), data.draw(layouts))
    w = cases.with_layout(data.draw(arrays((n, k))).astype(dtype), data.draw(layouts))
    b = data.draw(arrays((n,))).astype(dtype) if bias else None
    assert_same(c.linear(x, w, b, act), ref.linear(x, w, b, act), dtype, f"linear {act}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("act", ["none", "relu", "sigmoid", "tanh"])
@given(data=st.data(), need=st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_linear_backward_kernel(act, dtype, data, need, cases):
    # m = 0: an empty batch (zero bias sums); 100: the bias sums split the rows into chunks
    m, k = data.draw(st.sampled_from([0, 1, 2, 5, 7, 100])), data.draw(st.integers(1, 7))
    n = data.draw(st.sampled_from([1, 3, 17, 300, 600]))  # 600: two column blocks
    layouts = st.sampled_from(cases.LAYOUTS)
    x = cases.with_layout(data.draw(arrays((m, k))).astype(dtype), data.draw(layouts))
    w = cases.with_layout(data.draw(arrays((n, k))).astype(dtype), data.draw(layouts))
    g = cases.with_layout(data.draw(arrays((m, n))).astype(dtype), data.draw(layouts))
    y = ref.unary({"none": "copy", "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}[act],
                  data.draw(arrays((m, n))).astype(dtype))  # fmt: skip
    got = c.linear_backward(g, x, w, y, act, *need)
    # float64 reference; the error allowed scales with the sum of |terms| of each entry (a sum
    # of 300 float32 products can cancel far below its terms), which act' >= 0 makes the same
    # computation on absolute values
    f64 = [a.astype(np.float64) for a in (g, x, w, y)]
    want = ref.linear_backward(*f64, act, *need)
    scale = ref.linear_backward(*(np.abs(a) for a in f64[:3]), f64[3], act, *need)
    rtol = 1e-4 if dtype == mg.float32 else 1e-12  # as the GEMM kernel tests
    for name, a, b, sc, asked in zip(("dx", "dw", "dbias"), got, want, scale, need):
        if asked:
            assert a.dtype == dtype and a.shape == b.shape, name
            assert np.all(np.abs(a - b) <= rtol * sc + 1e-30), f"linear {act} {name}"
        else:
            assert a is None and b is None


def test_linear_kernels_check_shapes_and_dtypes():
    x, w = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="does not match weight"):
        c.linear(x, w.T, None)
    with pytest.raises(ValueError, match=r"shape \(3,\) where \(4,\) was expected"):
        c.linear(x, w, np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"shape \(2, 4\) where \(4,\) was expected"):
        c.linear(x, w, np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="share a dtype"):
        c.linear(x, w.astype(np.float64), None)
    y = np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"shape \(2, 3\) where \(2, 4\) was expected"):
        c.linear_backward(x, x, w, y, "relu", True, True, True)
    with pytest.raises(ValueError, match=r"shape \(4,\) where \(2, 4\) was expected"):
        c.linear_backward(np.ones(4, np.float32), x, w, y, "none", True, True, True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_bce_with_logits_is_finite_at_huge_logits(reduction, dtype):
    x = np.array([1000.0, -1000.0, 1000.0, -1000.0, 0.0, 3.0], dtype=dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.25], dtype=dtype)
    out, expected = c.bce_with_logits(x, t, reduction), ref.bce_with_logits(x, t, reduction)
    assert np.all(np.isfinite(out))
    assert_same(out, expected, dtype, "bce forward")
    exact = np.array([0.0, 0.0, 1000.0, 1000.0, np.log(2.0), 3.0 * 0.75 + np.log1p(np.exp(-3.0))])
    exact = {"none": exact, "sum": exact.sum(), "mean": exact.mean()}[reduction]
    np.testing.assert_allclose(out, exact, rtol=1e-6)
    (out2, dsig), (_, rdsig) = (b.bce_with_logits(x, t, reduction, with_grad=True) for b in (c, ref))
    assert np.array_equal(out2, out), "the gradient output changed the loss"
    assert np.all(np.isfinite(dsig))
    assert_same(dsig, rdsig, dtype, "bce sigmoid(x) - t")
    np.testing.assert_allclose(dsig, [0.0, 0.0, 1.0, -1.0, 0.0, 1 / (1 + np.exp(-3.0)) - 0.25], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@given(data=st.data())
def test_bce_with_logits_kernel(reduction, dtype, data):
    """C against the reference computed in float64, within a tolerance scaled by the size of the
    terms: max(x, 0) - x t cancels (x = 44, t = 0.99999 leaves 4.4e-4 of two 44s), and there the
    float32 reference itself is off by 0.4% while C, with an fma, is exact."""
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=5))
    x = data.draw(arrays(shape, -50.0, 50.0)).astype(dtype)
    t = data.draw(arrays(shape, 0.0, 1.0)).astype(dtype)
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    rloss, rdsig = ref.bce_with_logits(x64, t64, reduction, with_grad=True)
    terms = np.abs(x64) + np.abs(x64 * t64) + np.log1p(np.exp(-np.abs(x64)))
    terms = {"none": terms, "sum": terms.sum(), "mean": terms.mean()}[reduction]
    rtol, atol = TOL[np.dtype(dtype)]["rtol"], TOL[np.dtype(dtype)]["atol"]
    loss_only = c.bce_with_logits(x, t, reduction)
    loss, dsig = c.bce_with_logits(x, t, reduction, with_grad=True)
    assert loss.dtype == dsig.dtype == dtype and loss.shape == rloss.shape and dsig.shape == x.shape
    assert np.array_equal(loss, loss_only), "writing the gradient changed the loss"
    assert np.all(np.abs(loss - rloss) <= rtol * terms + atol), "bce"
    sig_scale = np.abs(rdsig + t64) + t64  # |sigmoid(x)| + |t|
    assert np.all(np.abs(dsig - rdsig) <= rtol * sig_scale + atol), "bce sigmoid(x) - t"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gaussian_kl_wide_rows_and_the_whole_logvar_range(dtype):
    """Rows wider than the kernel's 256-term tile, logvar over the VAE's clamp range [-30, 20]
    and beyond (float32 uses a polynomial exp), against float64 within a tolerance scaled by
    the size of the terms; infinities and NaN come out as numpy's do."""
    rng = np.random.default_rng(7)
    for lo, hi in [(-3.0, 3.0), (-30.0, 20.0)]:  # the narrow range keeps the tolerance tight
        mu = rng.uniform(-5, 5, (3, 700)).astype(dtype)
        logvar = rng.uniform(lo, hi, (3, 700)).astype(dtype)
        logvar[0, :4] = [hi, lo, 0.0, -0.0]
        mu64, lv64 = mu.astype(np.float64), logvar.astype(np.float64)
        want = ref.gaussian_kl(mu64, lv64)
        scale = 0.5 * (1 + np.abs(lv64) + mu64**2 + np.exp(lv64)).sum(axis=-1)
        got = c.gaussian_kl(mu, logvar)
        assert np.all(np.abs(got - want) <= TOL[np.dtype(dtype)]["rtol"] * scale), f"kl, logvar in [{lo}, {hi}]"
        g = np.ones(3, dtype=dtype)
        dmu, dlv = c.gaussian_kl_backward(mu, logvar, g)
        rmu, rlv = ref.gaussian_kl_backward(mu64, lv64, g.astype(np.float64))
        assert_same(dmu, rmu.astype(dtype), dtype, "kl dmu")
        assert_same(dlv, rlv.astype(dtype), dtype, "kl dlogvar")
    special = np.array([[np.inf, -np.inf, np.nan, 89.0, 88.7, 88.5, -104.0]], dtype=dtype)
    with np.errstate(all="ignore"):
        _, rlv = ref.gaussian_kl_backward(np.zeros_like(special), special, np.ones(1, dtype=dtype))
        assert_same(c.gaussian_kl_backward(np.zeros_like(special), special, np.ones(1, dtype=dtype))[1],
                    rlv, dtype, "kl dlogvar at special values")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("g_shape", [(), (1,), (1, 1), (3, 4)])
def test_gaussian_kl_backward_takes_one_value_or_one_per_row(dtype, g_shape):
    """Rows (3, 4): a gradient of one element in any of its shapes is shared by every row (read
    with stride 0); a full (3, 4) one gives each row its own."""
    rng = np.random.default_rng(3)
    mu, logvar = (rng.standard_normal((3, 4, 5)).astype(dtype) for _ in range(2))
    g = rng.standard_normal(g_shape).astype(dtype)
    for got, want in zip(c.gaussian_kl_backward(mu, logvar, g), ref.gaussian_kl_backward(mu, logvar, g)):
        assert got.shape == mu.shape
        assert_same(got, want, dtype, f"kl backward, g of shape {g_shape}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(data=st.data())
def test_gaussian_kl_kernels(dtype, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
    mu = data.draw(arrays(shape, -3.0, 3.0)).astype(dtype)
    logvar = data.draw(arrays(shape, -3.0, 3.0)).astype(dtype)
    assert_same(c.gaussian_kl(mu, logvar), ref.gaussian_kl(mu, logvar), dtype, "kl")
    g = data.draw(arrays(shape[:-1])).astype(dtype)
    # one value per row, and one value every row shares (the gradient of a summed KL)
    for g in (g, np.asarray(data.draw(st.floats(-3.0, 3.0)), dtype=dtype)):
        for got, want, what in zip(
            c.gaussian_kl_backward(mu, logvar, g),
            ref.gaussian_kl_backward(mu, logvar, g),
            ["mu", "logvar"],
        ):
            assert got.shape == mu.shape
            assert_same(got, want, dtype, f"kl d{what}")


# ---------------------------------------------------------------- optimizer steps
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_step_matches_reference_over_several_steps(weight_decay, dtype, rng):
    # several tensors in one call, each with its own step count (a parameter whose grad was None
    # on some steps is behind), one of them large enough that threads split the elements
    # across tensor boundaries
    sizes = [37, 1, 40_000, 3 * 5]
    p0 = [rng.standard_normal(n).astype(dtype) for n in sizes]
    states = {name: [[p.copy() for p in p0], [np.zeros_like(p) for p in p0],
                     [np.zeros_like(p) for p in p0]] for name in ("c", "ref")}  # fmt: skip
    for step in range(1, 6):
        grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
        steps = [step, step + 3, step, 1]
        for name, backend in (("c", c), ("ref", ref)):
            ps, ms, vs = states[name]
            backend.adam_step(ps, grads, ms, vs, steps, 1e-2, 0.9, 0.999, 1e-8, weight_decay)
        for i, what in enumerate(("param", "exp_avg", "exp_avg_sq")):
            for t in range(len(sizes)):
                assert_same(states["c"][i][t], states["ref"][i][t], dtype, f"adam {what} {t} after step {step}")
    assert not any(np.array_equal(p, q) for p, q in zip(states["c"][0], p0))


def _read_only(a):
    a.flags.writeable = False
    return a


def _unaligned(n):
    """n float32 zeros starting one byte into a buffer: not aligned to their element size."""
    return np.frombuffer(bytearray(4 * n + 1), dtype=np.float32, count=n, offset=1)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        ({"g": np.ones(2, np.float32)}, ValueError, r"parameter 1: gradient has shape \(2,\)"),
        ({"g": np.ones(3, np.float64)}, ValueError, r"parameter 1: gradient has shape \(3,\) float64"),
        ({"m": np.zeros(4, np.float32)}, ValueError, r"parameter 1: optimizer state has shape \(4,\)"),
        ({"v": np.zeros(6, np.float32)[::2]}, ValueError, r"parameter 1: .*contiguous, writable"),
        ({"m": np.zeros(3, np.float64)}, ValueError, r"parameter 1: .*one dtype"),
        ({"p": _read_only(np.zeros(3, np.float32))}, ValueError, r"parameter 1: .*writable"),
        ({"p": np.zeros(3, np.int32), "g": np.ones(3, np.int32)}, TypeError, r"parameter 1: .*float32 or float64"),
        ({"p": np.zeros(6, np.float32)[::2]}, ValueError, r"parameter 1: .*contiguous, writable"),
        ({"p": _unaligned(3)}, ValueError, r"parameter 1: .*contiguous, writable"),
        ({"m": _read_only(np.zeros(3, np.float32))}, ValueError, r"parameter 1: .*writable"),
        ({"v": np.zeros(3, np.float64)}, ValueError, r"parameter 1: .*one dtype"),
        # a second dtype group: checked with the first, before either group's update runs
        ({"p": np.zeros(3), "g": np.ones(2), "m": np.zeros(3), "v": np.zeros(3)}, ValueError,
         r"parameter 1: gradient has shape \(2,\) float64"),
    ],
)
def test_adam_step_checks_every_tensor_before_updating_any(bad, error, match):
    ps = [np.zeros(4, np.float32), bad.get("p", np.zeros(3, np.float32))]
    grads = [np.ones(4, np.float32), bad.get("g", np.ones(3, np.float32))]
    ms = [np.zeros(4, np.float32), bad.get("m", np.zeros(3, np.float32))]
    vs = [np.zeros(4, np.float32), bad.get("v", np.zeros(3, np.float32))]
    with pytest.raises(error, match=match):
        c.adam_step(ps, grads, ms, vs, [1, 1], 0.1, 0.9, 0.999, 1e-8, 0.0)
    assert not ps[0].any() and not ms[0].any()


def test_adam_step_updates_overlapping_parameters_in_order():
    # two parameters on the same memory (tied by hand): updated one after the other, as two
    # calls would, with the same result for any thread count, never both at once
    n = 1 << 17
    results = []
    before = mg.backend_info()["num_threads"]
    try:
        for threads in (1, 2):
            mg.set_num_threads(threads)
            base = np.linspace(-1, 1, n, dtype=np.float32)
            m, v = [np.zeros(n, np.float32) for _ in range(2)], [np.zeros(n, np.float32) for _ in range(2)]
            g = np.ones(n, np.float32)
            c.adam_step([base, base], [g, g], m, v, [1, 1], 0.1, 0.9, 0.999, 1e-8, 0.0)
            results.append(base)
    finally:
        mg.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], np.linspace(-1, 1, n, dtype=np.float32) - 0.2, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "momentum, dampening, weight_decay, nesterov",
    [
        (0.0, 0.0, 0.0, False),
        (0.9, 0.0, 0.0, False),
        (0.9, 0.1, 0.01, False),
        (0.9, 0.0, 0.01, True),
    ],
)
def test_sgd_step_matches_reference_over_several_steps(
    momentum, dampening, weight_decay, nesterov, dtype, rng
):
    p0 = rng.standard_normal(29).astype(dtype)
    states = {name: [p0.copy(), np.zeros_like(p0)] for name in ("c", "ref")}
    for step in range(4):
        g = rng.standard_normal(29).astype(dtype)
        for name, backend in (("c", c), ("ref", ref)):
            p, buf = states[name]
            backend.sgd_step([p], [g], [buf], [step == 0], 0.1, momentum, dampening, weight_decay, nesterov)
        assert_same(states["c"][0], states["ref"][0], dtype, f"sgd param after step {step}")
        assert_same(states["c"][1], states["ref"][1], dtype, f"sgd buffer after step {step}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_first_step_is_lr_times_the_sign_of_the_gradient(dtype):
    # 1 - beta2 must be rounded once, from double: in float32, 1 - (float)0.999 is 1.3e-5 off
    # and moved the first step by 6.6e-6 of lr
    for backend in (c, ref):
        p, g = np.zeros(3000, dtype), np.where(np.arange(3000) % 2, 1.0, -0.25).astype(dtype)
        m, v = np.zeros_like(p), np.zeros_like(p)
        backend.adam_step([p], [g], [m], [v], [1], 0.1, 0.9, 0.999, 1e-8, 0.0)
        exact = -0.1 * g.astype(np.float64) / (np.abs(g.astype(np.float64)) + 1e-8)  # m_hat = g, v_hat = g^2
        np.testing.assert_allclose(p, exact, rtol=4 * np.finfo(dtype).eps, err_msg=backend.name)


def test_optimizer_kernels_refuse_non_contiguous_buffers():
    p = np.zeros(8)[::2]
    with pytest.raises(ValueError, match="contiguous"):
        c.sgd_step([p], [np.ones(4)], [np.zeros(4)], [True], 0.1, 0.0, 0.0, 0.0, False)


def test_c_kernels_refuse_other_dtypes():
    with pytest.raises(TypeError, match="float32 or float64"):
        c.unary("exp", np.arange(3, dtype=np.int32))
    with pytest.raises(TypeError, match="share a dtype"):
        c.binary("add", np.ones(2, np.float32), np.ones(2, np.float64))


# ---------------------------------------------------------------- choosing a backend
def _backend_in_subprocess(value: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("MINIGRAD_BACKEND", None)
    if value is not None:
        env["MINIGRAD_BACKEND"] = value
    code = (
        "import minigrad; print(minigrad.backend.current().name, minigrad.backend_info()['name'])"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "value, expected", [(None, "c"), ("numpy", "numpy"), ("c", "c"), (" NumPy ", "numpy")]
)
def test_minigrad_backend_env_var_selects_the_backend(value, expected):
    proc = _backend_in_subprocess(value)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [expected, expected]


def test_unknown_backend_env_var_fails_with_the_choices():
    proc = _backend_in_subprocess("cuda")
    assert proc.returncode != 0
    assert "unknown backend 'cuda'" in proc.stderr and "numpy" in proc.stderr


def test_use_restores_the_previous_backend_even_after_an_error():
    start = mg.backend.current()
    with mg.backend.use("numpy") as active:
        assert active is ref and mg.backend.current() is ref
        with mg.backend.use("c"):
            assert mg.backend.current() is c
        assert mg.backend.current() is ref
    assert mg.backend.current() is start
    with pytest.raises(RuntimeError, match="boom"), mg.backend.use("numpy"):
        raise RuntimeError("boom")
    assert mg.backend.current() is start
    with pytest.raises(ValueError, match="unknown backend"), mg.backend.use("fortran"):
        pass
    assert mg.backend.current() is start


def test_backend_info_describes_what_runs():
    info = mg.backend_info()
    assert {"name", "compile_flags", "openmp", "num_threads"} <= set(info)
    assert info["name"] == mg.backend.current().name
    assert isinstance(info["compile_flags"], str) and "-O" in info["compile_flags"]
    assert isinstance(info["openmp"], bool)
    assert isinstance(info["num_threads"], int) and info["num_threads"] >= 1
    with mg.backend.use("numpy"):
        assert mg.backend_info()["name"] == "numpy"


def test_set_num_threads():
    before = mg.backend_info()["num_threads"]
    try:
        mg.set_num_threads(1)
        assert mg.backend_info()["num_threads"] == 1
    finally:
        mg.set_num_threads(before)
    for bad in (0, -2, 1.5, "2"):
        with pytest.raises(ValueError, match="positive integer"):
            mg.set_num_threads(bad)


@pytest.mark.skipif(not c.info()["openmp"], reason="OMP_NUM_THREADS needs an OpenMP build")
def test_too_many_openmp_threads_are_refused_at_import():
    # libgomp crashes (or exits) at the first parallel kernel when asked for 100000 threads
    env = {k: v for k, v in os.environ.items() if k != "MINIGRAD_NUM_THREADS"}
    code = "import minigrad, numpy as np; minigrad.Tensor(np.ones(10**6, np.float32)) * 2"
    proc = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_NUM_THREADS": "100000"},
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "OMP_NUM_THREADS='100000' asks for more than 4096 threads" in proc.stderr
    ok = subprocess.run([sys.executable, "-c", code + "; print(minigrad.backend_info()['num_threads'])"],
                        env={**env, "OMP_NUM_THREADS": "100000", "MINIGRAD_NUM_THREADS": "2"},
                        capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert ok.returncode == 0 and ok.stdout.split() == ["2"], ok.stderr


def test_arrays_c_gets_are_aligned_copies_when_the_input_is_misaligned():
    # x86 forgives misaligned floats, other CPUs fault: the copies the backend makes must fix it
    raw = np.zeros(4 * 12 + 1, np.uint8)
    misaligned = np.ndarray((3, 4), np.float32, buffer=raw, offset=1)
    misaligned[:] = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert not misaligned.flags.aligned
    for helper in (c._usable, c._carray):
        fixed = helper(misaligned)
        assert fixed.flags.aligned and fixed.flags.c_contiguous
        np.testing.assert_array_equal(fixed, misaligned)
    np.testing.assert_array_equal(c.linear(misaligned, misaligned, None), misaligned @ misaligned.T)
