"""minigrad.gradcheck itself: it passes correct gradients and catches wrong ones precisely."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad.autograd import REGISTRY, Function


@pytest.fixture
def wrong_square():
    """x^2 whose backward forgets the factor 2 on every element but the first: registered only
    for the duration of one test, so the registry test never sees it."""

    class WrongSquare(Function):
        """x^2;  dx = 2 g x on element 0, g x (wrong) elsewhere"""

        op = "test_gradcheck_wrong_square"

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved
            factor = np.ones_like(x)
            factor.reshape(-1)[0] = 2.0
            return g * x * factor

    assert REGISTRY[WrongSquare.op] is WrongSquare
    yield WrongSquare
    del REGISTRY[WrongSquare.op]


def f64(values, requires_grad=True, name=None):
    return mg.Tensor(np.array(values, dtype=np.float64), requires_grad=requires_grad, name=name)


def test_returns_true_for_a_correct_function():
    a, b = f64([[0.5, -1.0], [2.0, 0.3]]), f64([1.5, -0.7])
    assert mg.gradcheck(lambda x, y: (x * y).tanh() + x.exp() / (y * y + 1), [a, b]) is True
    assert mg.gradcheck(lambda x: (x @ x.T).logsumexp(axis=1), [a]) is True


def test_checks_only_inputs_that_require_grad():
    x, c = f64([1.0, 2.0]), f64([3.0, 4.0], requires_grad=False)
    assert mg.gradcheck(lambda x, c: x * c, [x, c])


def test_names_the_input_and_element_that_disagree(wrong_square):
    good = f64([1.0, 2.0])
    bad = f64([[1.5, 2.0], [3.0, -1.0]], name="weights")
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(lambda a, b: a.exp().sum() + wrong_square.apply(b), [good, bad])
    message = str(info.value)
    assert "input 1" in message and "weights" in message and "(2, 2)" in message
    assert "element (0, 1)" in message  # element (0, 0) is right; (0, 1) is the first wrong one
    assert "analytic" in message and "numeric" in message
    assert isinstance(info.value, AssertionError)


def test_wrong_function_in_first_position(wrong_square):
    with pytest.raises(mg.GradcheckError, match=r"input 0 .* element \(1,\)"):
        mg.gradcheck(wrong_square.apply, [f64([1.0, 2.0, 3.0])])


def test_refuses_float32_inputs():
    with pytest.raises(TypeError, match="float64"):
        mg.gradcheck(lambda x: x * x, [mg.Tensor([1.0, 2.0], requires_grad=True)])
    with pytest.raises(TypeError, match="input 1"):
        mg.gradcheck(lambda x, y: x * y, [f64([1.0]), mg.Tensor([1.0], dtype=mg.float32)])


def test_refuses_bad_arguments():
    with pytest.raises(ValueError, match="requires_grad"):
        mg.gradcheck(lambda x: x * x, [f64([1.0], requires_grad=False)])
    with pytest.raises(TypeError, match="not a Tensor"):
        mg.gradcheck(lambda x: x, [np.ones(2)])
    with pytest.raises(TypeError, match="must return a Tensor"):
        mg.gradcheck(lambda x: x.data, [f64([1.0])])


def test_tolerances_are_honoured():
    """A gradient off by 1e-4 relative passes at rtol=1e-3 and fails at rtol=1e-6."""

    class SlightlyOff(Function):
        op = "test_gradcheck_slightly_off"

        @staticmethod
        def forward(ctx, x):
            return 3 * x

        @staticmethod
        def backward(ctx, g):
            return g * 3 * (1 + 1e-4)

    try:
        x = f64([1.0, 2.0])
        assert mg.gradcheck(SlightlyOff.apply, [x])
        with pytest.raises(mg.GradcheckError):
            mg.gradcheck(SlightlyOff.apply, [x], atol=0, rtol=1e-6)
    finally:
        del REGISTRY[SlightlyOff.op]


def test_leaves_the_inputs_unchanged():
    x = f64([0.25, -1.5, 3.0])
    before = x.data.copy()
    mg.gradcheck(lambda t: t.sigmoid() * t, [x])
    np.testing.assert_array_equal(x.data, before)


def test_leaves_existing_grads_alone():
    """As torch.autograd.gradcheck: a .grad the caller already holds is neither replaced nor
    accumulated into; inputs without a .grad still have none afterwards."""
    x, y = f64([0.5, -1.0]), f64([2.0, 3.0])
    x.grad = mg.Tensor(np.array([7.0, 8.0]))
    kept = x.grad
    assert mg.gradcheck(lambda a, b: a * b + a.exp(), [x, y])
    assert x.grad is kept
    np.testing.assert_array_equal(x.grad.data, [7.0, 8.0])
    assert y.grad is None


def test_leaves_existing_grads_alone_when_backward_sees_a_prior_grad():
    """The analytic gradient is computed from scratch, not on top of an existing .grad."""
    x = f64([1.0, 2.0])
    x.grad = mg.Tensor(np.array([100.0, 100.0]))
    assert mg.gradcheck(lambda a: a * a, [x])
    np.testing.assert_array_equal(x.grad.data, [100.0, 100.0])


def test_restores_the_input_when_fn_raises_during_finite_differences():
    x = f64([0.25, -1.5, 3.0])
    before = x.data.copy()
    calls = []

    def fn(t):
        calls.append(1)
        if len(calls) == 3:  # the first call is the forward pass; the third is x[0] - eps
            raise RuntimeError("boom")
        return t * t

    with pytest.raises(RuntimeError, match="boom"):
        mg.gradcheck(fn, [x])
    np.testing.assert_array_equal(x.data, before)


def test_numerical_gradient_restores_the_array_when_f_raises():
    from minigrad.gradcheck import numerical_gradient

    array = np.array([[1.0, 2.0], [3.0, 4.0]])

    def f():
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        numerical_gradient(f, array)
    np.testing.assert_array_equal(array, [[1.0, 2.0], [3.0, 4.0]])


def test_accepts_a_single_tensor_as_the_one_input(wrong_square):
    x = f64([[0.5, -1.0], [2.0, 0.3]])
    assert mg.gradcheck(lambda t: (t @ t.T).tanh(), x) is True
    with pytest.raises(mg.GradcheckError, match=r"input 0 .* element \(0, 1\)"):
        mg.gradcheck(wrong_square.apply, x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"eps": 0}, "eps"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -1e-6}, "eps"),
        ({"eps": float("nan")}, "eps"),
        ({"eps": float("inf")}, "eps"),
        ({"atol": -1e-5}, "atol"),
        ({"atol": float("nan")}, "atol"),
        ({"rtol": -1e-3}, "rtol"),
        ({"rtol": float("inf")}, "rtol"),
    ],
)
def test_refuses_bad_eps_and_tolerances(kwargs, message):
    x = f64([1.0, 2.0])
    before = x.data.copy()
    with pytest.raises(ValueError, match=message):
        mg.gradcheck(lambda t: t * t, [x], **kwargs)
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None


def test_numerical_gradient_refuses_zero_eps():
    from minigrad.gradcheck import numerical_gradient

    with pytest.raises(ValueError, match="eps"):
        numerical_gradient(lambda: 0.0, np.ones(2), eps=0)
