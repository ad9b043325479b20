"""Raw C GEMM kernel (mg_gemm_f32 / mg_gemm_f64) against a float64 numpy reference.

Calls the cffi extension directly, so it only needs `build.py` to have been run, not the Python
package. Set MINIGRAD_KERNELS_SO to test a .so built elsewhere.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys

import numpy as np
import pytest


def _load_kernels():
    path = os.environ.get("MINIGRAD_KERNELS_SO")
    if not path:  # the installed extension; a missing one is an error, never a skip
        from minigrad._kernels import ffi, lib

        return ffi, lib
    spec = importlib.util.spec_from_file_location("minigrad._kernels", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("minigrad._kernels", mod)
    spec.loader.exec_module(mod)
    return mod.ffi, mod.lib


ffi, lib = _load_kernels()

CTYPE = {np.float32: "float *", np.float64: "double *"}
RTOL = {np.float32: 1e-4, np.float64: 1e-12}


def _ptr(x: np.ndarray, dtype):
    # x may be a strided view (row stride > width): point at its first element
    base = x.__array_interface__["data"][0]
    return ffi.cast(CTYPE[dtype], base)


def _store(rows: int, cols: int, dtype, rng, pad: int = 0, fill=None):
    """A rows x cols matrix as a view into a wider buffer (row stride cols + pad)."""
    buf = rng.standard_normal((rows, cols + pad)).astype(dtype)
    if fill is not None:
        buf[...] = fill
    return buf[:, :cols] if pad else buf


def run_gemm(ta, tb, m, n, k, alpha, beta, dtype, rng, pad=0, c_fill=None):
    a = _store(k, m, dtype, rng, pad) if ta else _store(m, k, dtype, rng, pad)
    b = _store(n, k, dtype, rng, pad) if tb else _store(k, n, dtype, rng, pad)
    c = _store(m, n, dtype, rng, pad, fill=c_fill)
    c0 = c.astype(np.float64)
    lda, ldb, ldc = (x.shape[1] + pad for x in (a, b, c))  # row strides of the underlying buffers
    fn = lib.mg_gemm_f32 if dtype == np.float32 else lib.mg_gemm_f64
    fn(int(ta), int(tb), m, n, k, alpha, _ptr(a, dtype), lda, _ptr(b, dtype), ldb, beta,
       _ptr(c, dtype), ldc)
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    opa = a64.T if ta else a64
    opb = b64.T if tb else b64
    prod = opa @ opb
    expect = alpha * prod + (beta * c0 if beta != 0 else 0.0)
    # error scale: sum of |terms| that went into each entry
    scale = abs(alpha) * (np.abs(opa) @ np.abs(opb)) + (abs(beta) * np.abs(c0) if beta != 0 else 0.0)
    return c, expect, scale


def check(ta, tb, m, n, k, alpha=1.0, beta=0.0, dtype=np.float32, seed=0, pad=0, c_fill=None):
    rng = np.random.default_rng(seed)
    got, expect, scale = run_gemm(ta, tb, m, n, k, alpha, beta, dtype, rng, pad, c_fill)
    assert np.all(np.isfinite(got)), "non-finite output"
    err = np.abs(got.astype(np.float64) - expect)
    tol = RTOL[dtype] * (scale + 1e-30)
    bad = err > tol
    assert not bad.any(), (
        f"ta={ta} tb={tb} m={m} n={n} k={k}: max err {err.max():.3g}, "
        f"{bad.sum()} entries over tolerance"
    )


TRANS = list(itertools.product([0, 1], [0, 1]))
DTYPES = [np.float32, np.float64]


def test_path_reported():
    path = ffi.string(lib.mg_gemm_path()).decode()
    assert path


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_all_small_sizes(ta, tb, dtype):
    """Every (m, n, k) in 1..17: crosses every micro-tile edge case (MR = 4 or 6, NR = 4..16)."""
    rng = np.random.default_rng(1)
    sizes = range(1, 18)
    for m in sizes:
        for n in sizes:
            # all k for the diagonal, a spread of k elsewhere, to keep the test fast
            ks = sizes if m == n else (1, 2, 7, 16, 17)
            for k in ks:
                check(ta, tb, m, n, k, dtype=dtype, seed=int(rng.integers(1 << 30)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (1.0, 1.0), (-0.5, 2.0), (2.5, -1.0), (0.0, 0.5), (0.0, 0.0)])
def test_alpha_beta_padded(ta, tb, alpha, beta, dtype):
    """Leading dimensions larger than the width (sub-matrix views) and alpha/beta combinations,
    at sizes that go through the packed path with edges."""
    for m, n, k in [(13, 37, 29), (70, 45, 300), (7, 130, 9)]:
        check(ta, tb, m, n, k, alpha, beta, dtype, pad=5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (2.5, -1.0)])
def test_narrow_c_three_vector_tiles(ta, tb, alpha, beta, dtype):
    """C one full column sliver plus at most one vector wide (17..24 columns in float32, 9..12 in
    float64 on the AVX2 path; n = 20 is the VAE's latent width), which gets its own 4-row tiles:
    every width, every leftover row count of a 4-row tile, one and several k blocks, padded
    leading dimensions, NaN in C with beta = 0. k = 300 keeps them off the direct small-GEMM
    loop."""
    widths = range(17, 25) if dtype == np.float32 else range(9, 13)
    for n in widths:
        for m in (1, 2, 3, 4, 5, 7, 9, 13, 130):
            for k in (300, 801):
                check(ta, tb, m, n, k, alpha, beta, dtype, seed=m * 1000 + n, pad=3,
                      c_fill=np.nan if beta == 0 else None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("shape", [(3, 5, 4), (50, 70, 90)])
def test_beta_zero_ignores_nan(ta, tb, shape, dtype):
    m, n, k = shape
    check(ta, tb, m, n, k, 1.5, 0.0, dtype, pad=3, c_fill=np.nan)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.0, 1.0, 3.0])
def test_k_zero(dtype, beta):
    rng = np.random.default_rng(2)
    c = rng.standard_normal((5, 7)).astype(dtype)
    before = c.copy()
    if beta == 0.0:
        c[0, 0] = np.nan
    fn = lib.mg_gemm_f32 if dtype == np.float32 else lib.mg_gemm_f64
    dummy = np.zeros(1, dtype)
    fn(0, 0, 5, 7, 0, 1.0, _ptr(dummy, dtype), 1, _ptr(dummy, dtype), 7, beta, _ptr(c, dtype), 7)
    np.testing.assert_array_equal(c, before * beta if beta else np.zeros_like(c))


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_m_or_n(dtype):
    fn = lib.mg_gemm_f32 if dtype == np.float32 else lib.mg_gemm_f64
    c = np.full((2, 2), 7.0, dtype)
    a = np.ones((2, 2), dtype)
    fn(0, 0, 0, 2, 2, 1.0, _ptr(a, dtype), 2, _ptr(a, dtype), 2, 0.0, _ptr(c, dtype), 2)
    fn(0, 0, 2, 0, 2, 1.0, _ptr(a, dtype), 2, _ptr(a, dtype), 2, 0.0, _ptr(c, dtype), 2)
    assert (c == 7.0).all()


# (m, n, k, trans_a, trans_b) of the VAE (batch 128, 784-400-20) forward and backward GEMMs
VAE_SHAPES = [
    (128, 400, 784, 0, 1),  # encoder fc1: X @ W1^T, W1 stored (400, 784)
    (128, 20, 400, 0, 1),  # mu / logvar heads
    (128, 400, 20, 0, 1),  # decoder fc3
    (128, 784, 400, 0, 1),  # decoder fc4
    (128, 784, 400, 0, 0),  # dX = dY @ W
    (128, 400, 20, 0, 0),
    (128, 20, 400, 0, 0),
    (128, 400, 784, 0, 0),
    (400, 784, 128, 1, 0),  # dW = dY^T @ X
    (20, 400, 128, 1, 0),
    (400, 20, 128, 1, 0),
    (784, 400, 128, 1, 0),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k,ta,tb", VAE_SHAPES)
def test_vae_shapes(m, n, k, ta, tb, dtype):
    check(ta, tb, m, n, k, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_multi_block(ta, tb, dtype):
    """Several MC, KC blocks with ragged ends on every loop."""
    check(ta, tb, 300, 517, 1100, 0.75, 0.5, dtype, pad=3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(130, 257, 300, 0, 1), (128, 784, 400, 0, 0), (400, 37, 129, 1, 0),
                                   (200, 1000, 900, 0, 0), (700, 60, 1000, 1, 1), (400, 20, 900, 0, 1),
                                   (5, 20, 5000, 0, 0)])
def test_thread_counts_agree(shape, dtype):
    """Correct with 1, 2 and 3 threads (both work splits: over C's columns for short-wide C, over
    row blocks otherwise; 3 threads gives uneven shares) and the same answer every time.
    700 x 60 and 400 x 20 have several k blocks (and 2 row blocks in the column split), so the
    alternating copies of the shared packed blocks are each reused. The 20-wide shapes have their
    own tiles and are always split by rows; 5 x 20 has fewer row blocks than threads."""
    m, n, k, ta, tb = shape
    before = lib.mg_get_num_threads()
    try:
        outs = []
        for nt in (1, 2, 3):
            lib.mg_set_num_threads(nt)
            for _ in range(3):  # repeat: races show up intermittently
                got, expect, scale = run_gemm(ta, tb, m, n, k, 1.0, 0.0, dtype,
                                              np.random.default_rng(4))
                assert (np.abs(got - expect) <= RTOL[dtype] * scale).all(), f"threads={nt}"
                outs.append(got)
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])
    finally:
        lib.mg_set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_shape_grid(dtype, threads):
    """A grid around the block and tile sizes, alpha 0.5 and beta 0.25: m 1-400 (edge rows, 6-row
    tiles, several row blocks), n 1-784 (one vector, one sliver, the narrow 17-24 tiles, many
    slivers), k 1-800 (k = 64 / 128 / 200 pack B with the sliver padding of NOTES AB; 384 / 385 /
    800 give several k blocks), every transpose. ~15 s: opt in with `-m slow`."""
    before = lib.mg_get_num_threads()
    lib.mg_set_num_threads(threads)
    try:
        for m, n, k in itertools.product((1, 2, 5, 6, 7, 13, 128, 150, 400),
                                         (1, 8, 9, 16, 17, 20, 24, 25, 32, 33, 47, 400, 784),
                                         (1, 17, 64, 128, 200, 384, 385, 800)):  # fmt: skip
            for ta, tb in TRANS:
                check(ta, tb, m, n, k, alpha=0.5, beta=0.25, dtype=dtype, seed=m * n + k)
    finally:
        lib.mg_set_num_threads(before)
