"""Bad input gets a clear exception (never a crash or a silent wrong answer); edge shapes work."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F


# ---------------------------------------------------------------- shapes
def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        mg.ones(2, 3) @ mg.ones(4, 5)
    with pytest.raises(ValueError, match=r"at least 2-D.*\(3,\) and \(3,\)"):
        mg.ones(3) @ mg.ones(3)
    with pytest.raises(ValueError, match=r"batch dims of \(2, 1, 3\) and \(3, 3, 2\)"):
        mg.ones(2, 1, 3) @ mg.ones(3, 3, 2)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_non_broadcastable_shapes(op):
    fn = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
    }[op]
    with pytest.raises(ValueError, match=rf"{op}: shapes \(2, 3\) and \(4,\) do not broadcast"):
        fn(mg.ones(2, 3), mg.ones(4))


def test_other_shape_errors():
    with pytest.raises(ValueError, match="where: condition shape"):
        mg.where(np.ones(5, dtype=bool), mg.ones(3), mg.ones(3))
    with pytest.raises(
        ValueError, match=r"broadcast_to: cannot broadcast shape \(3,\) to \(2, 4\)"
    ):
        mg.ones(3).broadcast_to((2, 4))
    with pytest.raises(ValueError, match="differ outside axis 0"):
        mg.cat([mg.ones(2, 3), mg.ones(3, 2)])
    with pytest.raises(ValueError, match="at least one tensor"):
        mg.cat([])
    with pytest.raises(ValueError, match="all shapes must be equal"):
        mg.stack([mg.ones(2), mg.ones(3)])
    with pytest.raises(
        ValueError, match=r"linear: input shape \(2, 3\) does not match weight shape \(4, 5\)"
    ):
        F.linear(mg.ones(2, 3), mg.ones(4, 5))
    with pytest.raises(ValueError, match="bias shape"):
        F.linear(mg.ones(2, 3), mg.ones(4, 3), mg.ones(3))
    with pytest.raises(ValueError, match=r"logits shape \(2,\) != target shape \(3,\)"):
        F.binary_cross_entropy_with_logits(mg.ones(2), mg.ones(3))
    with pytest.raises(ValueError, match="must match"):
        F.gaussian_kl(mg.ones(2), mg.ones(3))


# ---------------------------------------------------------------- data and dtypes
@pytest.mark.parametrize(
    "data",
    [
        np.array([1, 2]),
        np.array([1, 2], dtype=np.uint8),
        np.array([True, False]),
        np.ones(2, np.float16),
    ],
    ids=["int64", "uint8", "bool", "float16"],
)
def test_non_float_arrays_need_an_explicit_dtype(data):
    with pytest.raises(TypeError, match="Pass dtype=minigrad.float32"):
        mg.Tensor(data)
    t = mg.Tensor(data, dtype=mg.float64)
    assert t.dtype == mg.float64
    np.testing.assert_array_equal(t.data, data.astype(np.float64))


@pytest.mark.parametrize(
    "data",
    [np.array([1j]), [1 + 2j], np.array([object()]), "abc", ["a", "b"], None, {"a": 1}],
    ids=["complex-array", "complex-list", "object", "str", "str-list", "None", "dict"],
)
def test_unsupported_data_is_refused(data):
    with pytest.raises(TypeError, match="Tensor"):
        mg.Tensor(data)


def test_ragged_lists_are_refused():
    with pytest.raises(TypeError, match="cannot make an array"):
        mg.Tensor([[1.0], [1.0, 2.0]])


def test_python_numbers_become_the_default_dtype():
    assert mg.Tensor([1, 2, 3]).dtype == mg.float32
    assert mg.Tensor(5).dtype == mg.float32
    assert mg.Tensor([True, False]).dtype == mg.float32
    assert mg.Tensor([1.5]).dtype == mg.float32
    mg.set_default_dtype(mg.float64)  # restored by the conftest fixture
    assert mg.Tensor([1, 2]).dtype == mg.float64
    np.testing.assert_array_equal(mg.Tensor([1, 2]).data, [1.0, 2.0])


def test_float_arrays_keep_their_dtype_and_memory():
    a = np.ones(3, dtype=np.float64)
    t = mg.Tensor(a)
    assert t.dtype == mg.float64 and np.shares_memory(t.data, a)
    assert mg.Tensor(np.float64(0.1)).dtype == mg.float64  # numpy scalars too: no silent float32
    assert mg.Tensor(np.float64(0.1)).item() == 0.1
    assert mg.Tensor(np.float32(0.5)).dtype == mg.float32
    assert mg.Tensor(np.float16(0.5), dtype=mg.float64).dtype == mg.float64


@pytest.mark.parametrize("dtype", [np.int32, "int64", np.complex64, "float16", "banana"])
def test_non_float_dtype_arguments_are_refused(dtype):
    with pytest.raises(TypeError, match="float32 or float64"):
        mg.Tensor([1.0], dtype=dtype)
    with pytest.raises(TypeError, match="float32 or float64"):
        mg.ones(2).to(dtype)
    with pytest.raises(TypeError, match="float32 or float64"):
        mg.randn(2, dtype=dtype)
    with pytest.raises(TypeError, match="float32 or float64"):
        mg.set_default_dtype(dtype)


def test_mixed_float32_and_float64_are_refused():
    a, b = mg.ones(2), mg.ones(2, dtype=mg.float64)
    for fn in (lambda: a + b, lambda: b * a, lambda: a - b, lambda: a / b):
        with pytest.raises(TypeError, match="mixed dtypes float(32|64) and float(64|32)"):
            fn()
    with pytest.raises(TypeError, match=r"\.float\(\) or \.double\(\)"):
        mg.ones(2, 2) @ mg.ones(2, 2, dtype=mg.float64)
    with pytest.raises(TypeError, match="mixed dtypes"):
        mg.cat([a, b])
    np.testing.assert_array_equal((a.double() + b).data, [2.0, 2.0])  # the documented way out


def test_operands_that_are_not_numbers():
    for other in ("a", None, object()):
        with pytest.raises(TypeError, match="cannot combine a Tensor"):
            mg.ones(2) + other
    with pytest.raises(TypeError, match="ambiguous"):
        bool(mg.ones(1))
    with pytest.raises(TypeError, match="condition must be boolean"):
        mg.where(np.ones(2), mg.ones(2), mg.ones(2))


def test_pow_with_a_tensor_exponent():
    with pytest.raises(TypeError, match=r"\*\* takes a real number as exponent, got Tensor"):
        mg.ones(2) ** mg.ones(2)
    with pytest.raises(TypeError, match="got bool"):
        mg.ones(2) ** True
    with pytest.raises(TypeError):
        2 ** mg.ones(2)
    np.testing.assert_array_equal((mg.Tensor([2.0]) ** np.float64(3)).data, [8.0])


# ---------------------------------------------------------------- 0-d and empty tensors
def test_zero_dim_tensors_through_ops(backend):
    x = mg.Tensor(np.float64(2.0), requires_grad=True)
    y = x.exp() * x + x.log() - x.sqrt() / x + x**2 + x.tanh().sigmoid()
    assert y.shape == ()
    z = y.sum() + y.mean() + y.max() + y.logsumexp() + y.reshape(1, 1).sum() + y.T + y[()]
    assert z.shape == ()
    z.backward()
    assert x.grad.shape == ()
    assert np.isfinite(x.grad.item())
    assert mg.gradcheck(
        lambda t: (t.exp() * t).sum() + t.reshape(1)[0],
        [mg.Tensor(np.float64(0.3), requires_grad=True)],
    )
    with pytest.raises(TypeError, match="0-d"):
        len(x)
    with pytest.raises(ValueError, match="out of range for a tensor with 0 dims"):
        x.sum(axis=0)


def test_empty_tensors_through_ops(backend):
    x = mg.Tensor(np.zeros((0, 3)), requires_grad=True)
    w = mg.Tensor(np.ones((2, 3)), requires_grad=True)
    assert (x.exp() * 2 + 1).shape == (0, 3)
    assert (x @ mg.Tensor(np.ones((3, 4)))).shape == (0, 4)
    k0 = mg.Tensor(np.ones((2, 0))) @ mg.Tensor(np.ones((0, 3)))
    np.testing.assert_array_equal(k0.data, np.zeros((2, 3)))  # an empty sum is 0
    y = F.linear(x, w, activation="tanh")
    assert y.shape == (0, 2)
    (y.sum() + x.relu().sum()).backward()
    assert x.grad.shape == (0, 3)
    np.testing.assert_array_equal(w.grad.data, np.zeros((2, 3)))
    assert x[5:].shape == (0, 3) and x.T.shape == (3, 0)
    assert mg.cat([x, mg.Tensor(np.ones((1, 3)))]).shape == (1, 3)


def test_reductions_of_empty_tensors(backend):
    x = mg.Tensor(np.zeros((0, 3)))
    assert x.sum().item() == 0.0
    np.testing.assert_array_equal(x.sum(axis=0).data, np.zeros(3))
    assert x.sum(axis=1).shape == (0,)
    with np.errstate(all="ignore"):
        assert np.isnan(x.mean().item())  # as numpy: 0 / 0
    assert x.mean(axis=1).shape == (0,)
    assert x.logsumexp().item() == -np.inf
    assert x.max(axis=1).shape == (0,)  # nothing is reduced over an empty axis here
    with pytest.raises(
        ValueError, match=r"max: cannot reduce over an empty axis \(shape \(0, 3\)\)"
    ):
        x.max()
    with pytest.raises(ValueError, match="empty axis"):
        x.max(axis=0)
    empty = mg.Tensor(np.zeros(0))
    assert np.isnan(F.binary_cross_entropy_with_logits(empty, empty).item())  # a mean, as above
    assert F.binary_cross_entropy_with_logits(empty, empty, reduction="sum").item() == 0.0


# ---------------------------------------------------------------- backward misuse
def test_backward_on_a_non_scalar_without_grad():
    y = mg.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"shape \(2,\) needs a `grad`"):
        y.backward()


def test_backward_with_a_wrong_shaped_grad():
    y = mg.ones(2, requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"grad has shape \(3,\), the tensor has shape \(2,\)"):
        y.backward(np.ones(3))
    with pytest.raises(TypeError, match="not supported"):
        y.backward(np.array(["a", "b"]))
    y.backward(mg.Tensor([1.0, 1.0]))  # a Tensor grad of the right shape is fine


def test_backward_on_a_tensor_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (mg.ones(2) * 2).sum().backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.ones(1).backward()


# ---------------------------------------------------------------- axes, reshape, indexing
@pytest.mark.parametrize("method", ["sum", "mean", "max", "logsumexp"])
def test_bad_axis(method):
    x = mg.ones(2, 3)
    with pytest.raises(
        ValueError, match=f"{method}: axis 2 is out of range for a tensor with 2 dims"
    ):
        getattr(x, method)(axis=2)
    with pytest.raises(ValueError, match="axis -3 is out of range"):
        getattr(x, method)(axis=-3)
    with pytest.raises(ValueError, match="repeated axis"):
        getattr(x, method)(axis=(0, -2))
    for bad in (1.0, "0", (0, 1.5), True):
        with pytest.raises(TypeError, match="axis must be an int or a tuple of ints"):
            getattr(x, method)(axis=bad)


def test_bad_transpose_and_permute():
    x = mg.ones(2, 3, 4)
    with pytest.raises(ValueError, match="out of range"):
        x.transpose(0, 5)
    with pytest.raises(ValueError, match="give no dims, two dims to swap, or all 3 dims"):
        x.transpose(0)
    with pytest.raises(ValueError, match="give all 3 dims"):
        x.permute(0, 1)
    with pytest.raises(ValueError, match="repeated axis"):
        x.permute(0, 0, 1)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # numpy's note on np.matrix
def test_ndarray_subclasses_become_plain_arrays_and_masked_arrays_are_refused():
    # np.matrix keeps two dims through reshape and indexing: kept as .data, both went wrong
    t = mg.Tensor(np.matrix([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32), requires_grad=True)
    assert type(t.data) is np.ndarray
    assert t.reshape(4).shape == (4,) and t[0].shape == (2,)
    (t[0] * mg.Tensor(np.array([10.0, 20.0], np.float32))).sum().backward()
    np.testing.assert_array_equal(t.grad.data, [[10, 20], [0, 0]])
    with pytest.raises(TypeError, match="masked arrays are not supported"):
        mg.Tensor(np.ma.array([1.0, 2.0, 1e30], mask=[0, 0, 1], dtype=np.float32))


@pytest.mark.parametrize("exponent", [np.complex64(1j), 1j, np.True_, True, "2"])
def test_pow_refuses_exponents_that_are_not_real_numbers(exponent):
    with pytest.raises(TypeError, match="real number as exponent"):
        mg.ones(3) ** exponent


def test_flatten_checks_start_dim():
    x = mg.zeros((2, 3, 4))
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12) and x.flatten(-1).shape == (2, 3, 4)
    assert mg.Tensor(np.float32(2.0)).flatten().shape == (1,)
    for bad in (3, 5, -4):
        with pytest.raises(ValueError, match=f"flatten: axis {bad} is out of range"):
            x.flatten(bad)


def test_linear_with_no_input_features_and_a_batch_of_batches():
    x = mg.Tensor(np.ones((2, 3, 0), np.float32), requires_grad=True)
    w = mg.Tensor(np.ones((4, 0), np.float32), requires_grad=True)
    y = F.linear(x, w, mg.Tensor(np.arange(4, dtype=np.float32)))
    np.testing.assert_array_equal(y.data, np.broadcast_to(np.arange(4, dtype=np.float32), (2, 3, 4)))
    y.sum().backward()
    assert x.grad.shape == (2, 3, 0) and w.grad.shape == (4, 0)


@pytest.mark.parametrize("shape", [(4, 2), (-1, -1), (7,), (2, "a"), (3.0, 2), (2.7, 2), (True, 6)])
def test_bad_reshape(shape):
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\)"):
        mg.ones(2, 3).reshape(*shape)


@pytest.mark.parametrize(
    "key, message",
    [
        (5, "index 5 is out of bounds"),
        (-3, "out of bounds"),
        ([0, 7], "index 7 is out of bounds"),
        ((0, 0, 0), "too many indices"),
        ((slice(None), 3), "out of bounds"),
    ],
)
def test_index_out_of_range(key, message):
    with pytest.raises(IndexError, match=message) as info:
        mg.ones(2, 3)[key]
    assert "(tensor shape (2, 3))" in str(info.value)


def test_index_with_float_or_mismatched_masks():
    with pytest.raises(IndexError, match="integers or bools"):
        mg.ones(2, 3)[np.array([0.5])]
    with pytest.raises(IndexError):
        mg.ones(2, 3)[np.array([True, False, True])]


def test_other_argument_errors():
    with pytest.raises(ValueError, match="clip: min 1.0 is greater than max 0.0"):
        mg.ones(2).clip(1, 0)
    with pytest.raises(ValueError, match="reduction must be"):
        F.binary_cross_entropy_with_logits(mg.ones(2), mg.ones(2), reduction="avg")
    with pytest.raises(ValueError, match="reduction must be"):
        F.gaussian_kl(mg.ones(2), mg.ones(2), reduction="avg")
    with pytest.raises(ValueError, match="activation"):
        F.linear(mg.ones(2, 3), mg.ones(4, 3), activation="gelu")
    with pytest.raises(ValueError, match="one element"):
        mg.ones(2).item()
    with pytest.raises(ValueError, match="unknown backend"):
        mg.backend.set_backend("gpu")


def test_sizes_past_32_bit_int_are_indexed_with_64_bits():
    """C sees sizes and strides as int64: one reduction over 2**31 + 2**16 elements (a stride-0
    view, so nothing that large is allocated) counts every one of them. Summing over both axes
    makes a single reduced run that long, so its loop counter passes INT32_MAX."""
    n_rows, n_cols = 2**15 + 1, 2**16  # 2**31 + 2**16 elements, past INT32_MAX
    ones = np.broadcast_to(np.ones((1, 1), dtype=np.float64), (n_rows, n_cols))
    total = mg.Tensor(ones).sum()
    assert total.shape == ()
    assert float(total.data) == float(n_rows) * n_cols


# ---- regressions found in review: each was a crash or a silent wrong answer


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_optimizer_refuses_a_gradient_of_the_wrong_size(backend):
    with mg.backend.use(backend):
        for make in (lambda ps: mg.optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: mg.optim.Adam(ps)):
            p = mg.nn.Parameter(np.zeros(1000, np.float32))
            opt = make([p])
            p.grad = mg.Tensor([1.0])
            with pytest.raises(ValueError, match=r"grad has shape \(1,\)"):
                opt.step()
            assert not p.data.any()  # nothing was written


def test_optimizer_refuses_state_that_no_longer_fits_its_parameter():
    p = mg.nn.Parameter(np.zeros(2, np.float32))
    opt = mg.optim.Adam([p])
    p.grad = mg.ones(2)
    opt.step()
    p.data = np.zeros(10_000, np.float32)
    p.grad = mg.ones(10_000)
    with pytest.raises(ValueError, match="exp_avg"):
        opt.step()


def test_minus_zero_scalar_keeps_its_sign():
    x = mg.Tensor([1.0])
    x * 0.0  # caches the constant 0.0
    assert (1 / (x * -0.0)).data[0] == -np.inf


def test_complex_scalar_is_refused():
    with pytest.raises(TypeError, match="complex"):
        mg.Tensor([1.0]) + np.complex128(1 + 2j)


def test_clip_refuses_nan_bounds():
    with pytest.raises(ValueError, match="clip"):
        mg.Tensor([1.0, 5.0]).clip(float("nan"), 3)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_gradient_of_x_to_the_zero_is_zero_even_at_zero(backend):
    with mg.backend.use(backend):
        x = mg.Tensor([0.0, 2.0], requires_grad=True)
        (x**0).sum().backward()
        assert x.grad.data.tolist() == [0.0, 0.0]


def test_ops_refuse_arrays_that_are_not_tensors():
    with pytest.raises(TypeError, match="wrap arrays with minigrad.Tensor"):
        mg.nn.Linear(3, 2)(np.ones((1, 3), np.float32))
    with pytest.raises(TypeError, match="expected Tensor inputs"):
        mg.exp(np.ones(3))


def test_unaligned_input_is_copied_before_c_sees_it():
    raw = np.zeros(4 * 10 + 1, np.uint8)
    unaligned = np.ndarray((10,), np.float32, buffer=raw, offset=1)
    unaligned[:] = np.arange(10, dtype=np.float32)
    t = mg.Tensor(unaligned)
    assert t.data.flags.aligned
    np.testing.assert_array_equal((t * 2.0).data, np.arange(10) * 2)


def test_numpy_sees_a_tensor_as_its_data_and_refuses_ufuncs_on_it():
    t = mg.tensor([1.0, 2.0])
    a = np.asarray(t)
    assert a.dtype == np.float32 and np.shares_memory(a, t.data)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError):
        np.exp(t)  # used to build an object array of 0-d Tensors
    assert isinstance(np.ones(2, np.float32) + t, mg.Tensor)  # numpy defers to Tensor.__radd__


def test_iteration():
    assert [r.shape for r in mg.zeros((3, 2))] == [(2,)] * 3
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(mg.tensor(3.0))


def test_broadcast_to_refuses_non_integer_sizes():
    with pytest.raises(ValueError, match="cannot broadcast"):
        mg.tensor([1.0]).broadcast_to((2.5,))
    assert mg.tensor([1.0]).broadcast_to((np.int64(2),)).shape == (2,)


@pytest.mark.parametrize("name", [5, "two\nlines", b"bytes"])
def test_tensor_names_are_one_line_strings(name):
    with pytest.raises(ValueError, match="a tensor name must be a string"):
        mg.tensor([1.0], name=name)
    with pytest.raises(ValueError, match="a tensor name must be a string"):
        mg.tensor([1.0]).named(name)


def test_empty_list_index_and_joining_one_tensor():
    x = mg.zeros((3, 4, 5), requires_grad=True)
    assert x[[]].shape == (0, 4, 5)
    for join in (mg.cat, mg.stack):
        with pytest.raises(TypeError, match="got one Tensor"):
            join(mg.zeros((2, 3)))


def test_minigrad_tensor_copies_and_Tensor_shares():
    a = np.ones(2, np.float32)
    t, shared = mg.tensor(a), mg.Tensor(a)
    a[0] = 5.0
    assert t.data[0] == 1.0 and shared.data[0] == 5.0
    assert not np.shares_memory(mg.tensor(shared).data, shared.data)


def test_requires_grad_on_a_non_leaf_is_a_no_op_when_nothing_changes():
    y = mg.tensor([1.0], requires_grad=True) * 2
    assert y.requires_grad_() is y
    with pytest.raises(RuntimeError, match="only change leaf tensors"):
        y.requires_grad_(False)


def test_comparisons_are_elementwise_bool_arrays():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    for got, want in ((x == 1, [True, False]), (x != 1, [False, True]), (x < 2, [True, False]),
                      (x <= 1, [True, False]), (x > 1, [False, True]), (x >= 2, [False, True]),
                      (x == mg.tensor([1.0, 3.0]), [True, False]), (np.ones(2) == x, [True, False])):  # fmt: skip
        assert isinstance(got, np.ndarray) and got.dtype == np.bool_
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(mg.where(x == 1, x, 0.0).data, [1.0, 0.0])  # was [0, 0]: == was identity
    assert (x == None) is False and x in [None, x] and {x: 1}[x] == 1  # noqa: E711
    with pytest.raises(TypeError):
        x < "a"


def test_no_dtype_is_chosen_silently_and_seeds_are_checked():
    with pytest.raises(TypeError, match="dtype None is not a dtype"):
        mg.set_default_dtype(None)
    assert mg.get_default_dtype() == np.float32
    with pytest.raises(TypeError, match="dtype None is not a dtype"):
        mg.tensor([1.0]).to(None)
    for bad in (None, -1, 1.5, True):
        with pytest.raises(TypeError, match="manual_seed: seed must be a non-negative integer"):
            mg.manual_seed(bad)
    for make in (mg.zeros, mg.ones):
        with pytest.raises(TypeError, match="float32 or float64, not int32"):
            make(2, dtype=np.int32)


def test_activations_name_a_non_tensor_argument():
    for fn in (F.relu, F.sigmoid, F.tanh, F.softplus, mg.nn.ReLU(), mg.nn.Tanh(), mg.nn.Sigmoid()):
        with pytest.raises(TypeError, match="expected Tensor inputs"):
            fn(np.ones(2))


def test_broadcast_to_says_broadcast_only_when_the_shapes_do_not_broadcast():
    with pytest.raises(ValueError, match="cannot broadcast shape"):
        mg.zeros(2, 3).broadcast_to((3, 3))
    with pytest.raises(ValueError, match="cannot broadcast shape"):
        mg.zeros(2, 3).broadcast_to((3,))
    with pytest.raises((ValueError, MemoryError)) as exc:
        mg.zeros(1, 1).broadcast_to((2**40, 2**40))  # compatible, only too big
    assert "cannot broadcast" not in str(exc.value)


def test_pow_gradient_at_minus_infinity_agrees_between_backends():
    grads = []
    for name in ("c", "numpy"):
        with mg.backend.use(name):
            t = mg.Tensor([-np.inf, 4.0], dtype="float64", requires_grad=True)
            (t**1.5).backward(np.ones(2))
            grads.append(t.grad.data)
    np.testing.assert_array_equal(grads[0], grads[1])  # [nan, 3]: x ** 0.5 is sqrt, as numpy's


def test_requires_grad_must_be_a_bool_and_thread_counts_may_be_numpy_integers():
    with pytest.raises(TypeError, match="requires_grad must be True or False"):
        mg.zeros(2, requires_grad="no")
    assert mg.tensor([1.0], requires_grad=np.True_).requires_grad
    before = mg.backend_info()["num_threads"]
    try:
        mg.set_num_threads(np.int64(1))
        assert mg.backend_info()["num_threads"] == 1
    finally:
        mg.set_num_threads(before)
    for bad in (np.True_, 1.0, np.float64(2.0)):
        with pytest.raises(ValueError, match="positive integer"):
            mg.set_num_threads(bad)
