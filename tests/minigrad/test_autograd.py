"""The backward pass: accumulation, graph freeing, deep graphs, grad modes, anomaly mode."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg


def leaf(values, dtype=mg.float64):
    return mg.Tensor(np.array(values, dtype=dtype), requires_grad=True)


# ---------------------------------------------------------------- accumulation and graph lifetime
def test_grads_accumulate_into_leaves_across_backward_calls():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2, 4, 6])
    (3 * x).sum().backward()  # a second graph: adds, as in PyTorch
    np.testing.assert_array_equal(x.grad.data, [5, 7, 9])
    x.grad = None
    (3 * x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3, 3, 3])


def test_retain_graph_allows_a_second_backward_that_accumulates():
    x = leaf([1.0, -2.0])
    y = (x * x * x).sum()
    y.backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad.data, [3, 12])
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [6, 24])


def test_second_backward_through_a_freed_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


# ---------------------------------------------------------------- in-place updates of saved arrays
@pytest.mark.parametrize("make_opt", [lambda ps: mg.optim.Adam(ps, lr=0.1), lambda ps: mg.optim.SGD(ps, lr=0.1)])
def test_backward_refuses_a_retained_graph_whose_saved_weights_an_optimizer_changed(make_opt):
    lin = mg.nn.Linear(3, 2)
    opt = make_opt(lin.parameters())
    loss = lin(mg.randn(4, 3, requires_grad=True)).sum()  # the input's gradient reads the weight
    loss.backward(retain_graph=True)
    grad_before = lin.weight.grad.data.copy()
    opt.step()  # changes the weight array that the linear node saved
    name = type(opt).__name__
    with pytest.raises(RuntimeError, match=rf"op 'linear'.*\(2, 3\) array.*changed in place by {name}\.step\(\)"):
        loss.backward()
    np.testing.assert_array_equal(lin.weight.grad.data, grad_before)  # nothing accumulated


def test_backward_sees_an_update_through_a_view_and_load_state_dict():
    w = mg.nn.Parameter(np.arange(6.0).reshape(2, 3))
    x = leaf(np.ones((4, 3)))
    loss = (x @ w.T).sum()  # matmul saved a transposed view of w's array
    loss.backward(retain_graph=True)
    model = mg.nn.Module()
    model.w = w
    model.load_state_dict({"w": np.zeros((2, 3))})
    with pytest.raises(RuntimeError, match=r"op 'matmul'.*Module\.load_state_dict\(\)"):
        loss.backward()


def test_updates_that_no_saved_array_sees_leave_backward_alone():
    w = mg.nn.Parameter(np.array([1.0, 2.0]))
    opt = mg.optim.SGD([w], lr=0.5)
    y = (w + 3.0).sum()  # add saves nothing: its gradient does not depend on w's values
    y.backward(retain_graph=True)
    opt.step()
    y.backward()
    np.testing.assert_array_equal(w.grad.data, [2, 2])
    # the usual loop: every graph is recorded after the previous step
    for _ in range(3):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
    assert np.isfinite(w.data).all()


def test_the_update_record_forgets_arrays_that_are_gone():
    from minigrad import autograd

    before = len(autograd._updated)
    lin = mg.nn.Linear(5, 5)
    lin(mg.randn(2, 5)).sum().backward()
    mg.optim.Adam(lin.parameters()).step()
    assert len(autograd._updated) == before + 2
    del lin
    import gc

    gc.collect()
    assert len(autograd._updated) == before


def test_updates_to_arrays_that_backward_does_not_read_leave_it_alone():
    # PyTorch allows these: the updated weight feeds only the gradient of an input that needs none
    lin = mg.nn.Linear(3, 2)
    w = mg.nn.Parameter(np.ones((2, 3)), dtype=mg.float32)
    c = mg.tensor([[1.0, 2.0, 3.0]])
    opt = mg.optim.SGD([*lin.parameters(), w], lr=0.1)
    x = mg.randn(4, 3)  # data: needs no gradient
    losses = [lin(x, "relu").sum(), (c * w).sum(), (x @ w.T).sum()]
    for loss in losses:
        loss.backward(retain_graph=True)
    first = [p.grad.data.copy() for p in opt.params]
    opt.step()
    for loss in losses:
        loss.backward()  # the recorded gradients again, no error
    for p, g in zip(opt.params, first):
        np.testing.assert_allclose(p.grad.data, 2 * g)
    y = (w * w).sum()  # w's own gradient reads w: still refused
    y.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="op 'mul'"):
        y.backward()


def test_an_update_in_another_thread_is_not_hidden_by_an_earlier_stamp(monkeypatch):
    import threading

    from minigrad import autograd

    w = mg.nn.Parameter(np.ones(2))
    graphs = []
    real_next_id = autograd.next_id

    def next_id_then_another_thread_steps():
        stamp = real_next_id()  # thread A's stamp for its own update...
        monkeypatch.setattr(autograd, "next_id", real_next_id)
        y = (w * w).sum()  # ...a graph recorded after it...
        y.backward(retain_graph=True)
        graphs.append(y)
        # ...and thread B's update of w, stamped later, before A stores its stamp
        other = threading.Thread(target=autograd.mark_updated, args=([w.data], "SGD.step()"))
        other.start()
        other.join(timeout=0.2)  # with the lock, B waits for A and this times out
        graphs.append(other)
        return stamp

    monkeypatch.setattr(autograd, "next_id", next_id_then_another_thread_steps)
    autograd.mark_updated([np.zeros(1)], "Adam.step()")
    y, other = graphs
    other.join()
    with pytest.raises(RuntimeError, match=r"op 'mul'.*SGD\.step\(\)"):
        y.backward()


def test_backward_through_a_100000_deep_graph():
    x = leaf(0.5)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.backward()  # an iterative walk: no RecursionError
    assert y.item() == pytest.approx(100_000.5)
    assert x.grad.item() == 1.0
    assert x.grad.shape == ()


def test_shared_subexpressions_sum_their_gradients():
    x = leaf([1.0, 2.0, -3.0])
    (x * x + x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, 2 * x.data + 1)
    z = leaf([0.5, 1.5])
    s = z.exp()
    (s * s + s).sum().backward()  # the shared node `s` gets both contributions before passing on
    np.testing.assert_allclose(z.grad.data, 2 * np.exp(2 * z.data) + np.exp(z.data))


def test_broadcast_operands_get_gradients_in_their_own_shape():
    a = leaf(np.ones((2, 3)))
    b = leaf([1.0, 2.0, 3.0])
    c = leaf(2.0)
    (a * b * c).sum().backward()
    assert a.grad.shape == (2, 3) and b.grad.shape == (3,) and c.grad.shape == ()
    np.testing.assert_array_equal(b.grad.data, [4, 4, 4])
    assert c.grad.item() == 12


def test_leaf_grads_are_their_own_arrays():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    upstream = np.ones(2)
    (x + y).backward(upstream)
    x.grad.data[0] = 100.0
    assert y.grad.data[0] == 1.0 and upstream[0] == 1.0


def test_explicit_grad_for_a_non_scalar_output():
    x = leaf([1.0, 2.0])
    (x * x).backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.data, [2, 40])
    assert x.grad.dtype == mg.float64


def test_only_inputs_that_require_grad_get_one():
    x = leaf([1.0, 2.0])
    c = mg.Tensor([3.0, 4.0], dtype=mg.float64)
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad.data, [3, 4])


def test_intermediate_grads_are_kept_only_when_asked():
    x = leaf([1.0, 2.0])
    h = x * 3
    kept = (x * 2).retain_grad()
    (h + kept).sum().backward()
    assert h.grad is None
    np.testing.assert_array_equal(kept.grad.data, [1, 1])


def test_retain_grads_context_keeps_grad_on_every_node():
    x = leaf([1.0, 2.0])
    with mg.retain_grads():
        h = x * 3
        y = h.sum()
        y.backward()
    np.testing.assert_array_equal(h.grad.data, [1, 1])
    assert y.grad.item() == 1.0
    np.testing.assert_array_equal(x.grad.data, [3, 3])
    h2 = x * 3
    h2.sum().backward()  # outside the block: back to leaves only
    assert h2.grad is None


# ---------------------------------------------------------------- grad modes and detach
def test_no_grad_records_nothing_and_restores_the_mode():
    x = leaf([1.0, 2.0])
    assert mg.is_grad_enabled()
    with mg.no_grad():
        assert not mg.is_grad_enabled()
        y = x * 2
        with mg.enable_grad():
            z = x * 2
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y.op == "leaf"
    assert z.requires_grad and z.op == "mul"
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_an_op_that_records_nothing_keeps_nothing_alive():
    # ops on tensors that need no grad (or under no_grad) save into a shared node that keeps
    # nothing: the arrays they read must be freed with their tensors
    import gc
    import weakref

    for make in (lambda: mg.Tensor(np.ones(3)), lambda: leaf([1.0, 2.0, 3.0])):
        x = make()
        with mg.no_grad():
            y = x * x  # Mul saves both operands when it records
            y = y / x  # Div saves its divisor and its output
        ref = weakref.ref(x.data)
        del x
        gc.collect()
        assert ref() is None
        assert y.is_leaf and not y.requires_grad


def test_a_user_function_may_keep_state_on_ctx_with_or_without_grad():
    class Scale(mg.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.k = k  # PyTorch-style: state as a ctx attribute, not save_for_backward
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g * ctx.k

    from minigrad import ops

    class TracedExp(ops.Exp):  # a subclass of a built-in op gets its own node too
        @staticmethod
        def forward(ctx, x):
            ctx.seen = x.shape
            return ops.Exp.forward(ctx, x)

    x = leaf([1.0, 2.0])
    with mg.no_grad():
        np.testing.assert_array_equal(Scale.apply(x, k=3.0).data, [3.0, 6.0])
        np.testing.assert_allclose(TracedExp.apply(x).data, np.exp([1.0, 2.0]))
    Scale.apply(x, k=3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0])


def test_a_user_function_may_return_its_gradients_as_a_namedtuple():
    from collections import namedtuple

    Grads = namedtuple("Grads", "da db")

    class Mul(mg.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved
            return Grads(g * b, g * a)

    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    Mul.apply(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [3.0, 4.0])
    np.testing.assert_array_equal(b.grad.data, [1.0, 2.0])


def test_backward_is_right_whatever_ids_tensors_carry():
    # backward runs nodes in descending id order; a tensor with an id from elsewhere must not
    # be skipped
    import copy
    import pickle

    p = mg.nn.Parameter(np.ones(3))
    for q in (pickle.loads(pickle.dumps(p)), copy.deepcopy(p), copy.copy(p)):
        assert q.id > p.id and isinstance(q, mg.nn.Parameter)
        np.testing.assert_array_equal(q.data, p.data)
    class Tagged(mg.Tensor):  # a subclass without __slots__ keeps attributes in a __dict__
        pass

    t = Tagged(np.ones(2))
    t.tag = "kept"
    u = copy.deepcopy(t)
    assert u.tag == "kept" and u.id > t.id
    x = leaf([1.0, 2.0])
    y = x * 3.0
    x.id = y.id + 1000  # set by hand: larger than the node that consumes it
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.data, [18.0, 36.0])


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(ValueError), mg.no_grad():
        raise ValueError
    assert mg.is_grad_enabled()


def test_detach_shares_data_and_cuts_the_graph():
    x = leaf([1.0, 2.0])
    h = x * 2
    d = h.detach()
    assert d.is_leaf and not d.requires_grad
    assert np.shares_memory(d.data, h.data)
    (h * d).sum().backward()  # d is a constant: dx = 2 * d
    np.testing.assert_array_equal(x.grad.data, 2 * d.data)


def test_requires_grad_only_changes_leaves():
    x = mg.Tensor([1.0]).requires_grad_()
    assert x.requires_grad
    with pytest.raises(RuntimeError, match="leaf"):
        (x * 2).requires_grad_(False)


# ---------------------------------------------------------------- anomaly mode and NaN
def test_anomaly_mode_names_the_op_whose_forward_makes_nan():
    x = mg.Tensor([1.0, -1.0])
    with mg.detect_anomaly(), pytest.raises(mg.AnomalyError, match="forward of op 'log'"):
        x.log()


def test_anomaly_mode_names_the_op_whose_backward_makes_inf():
    x = leaf([0.0, 4.0])
    with mg.detect_anomaly():
        y = x.sqrt().sum()  # forward is finite: sqrt(0) = 0
        with pytest.raises(mg.AnomalyError, match="backward of op 'sqrt'"):
            y.backward()


def test_anomaly_error_is_a_runtime_error_and_the_mode_is_scoped():
    assert issubclass(mg.AnomalyError, RuntimeError)
    with pytest.raises(mg.AnomalyError), mg.detect_anomaly():
        mg.Tensor([0.0]).log()
    mg.Tensor([0.0]).log()  # outside the block: no check


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_nan_propagates_like_numpy_outside_anomaly_mode(backend):
    values = np.array([np.nan, -1.0, 0.0, 2.0])
    with mg.backend.use(backend), np.errstate(all="ignore"):
        x = leaf(values)
        for got, want in [
            (x.log(), np.log(values)),
            (x.exp(), np.exp(values)),
            (x.relu(), np.maximum(values, 0)),
            (x.abs(), np.abs(values)),
            (x.tanh(), np.tanh(values)),
            (x * 2, values * 2),
            (x.sum(), np.sum(values)),
            (x.max(), np.max(values)),
            (x.clip(-0.5, 0.5), np.clip(values, -0.5, 0.5)),
        ]:
            np.testing.assert_array_equal(got.data, want)
        (x * x).sum().backward()
        np.testing.assert_array_equal(x.grad.data, 2 * values)


def test_leaf_gradients_never_share_memory_with_each_other_or_the_caller():
    """A leaf keeps a backward's fresh array without copying it, but a gradient passed through
    unchanged (add hands g to both inputs), a view, or the caller's own array is copied."""
    x = mg.Tensor(np.ones(3, np.float32), requires_grad=True)
    y = mg.Tensor(np.ones(3, np.float32), requires_grad=True)
    w = mg.Tensor(np.ones((3, 3), np.float32), requires_grad=True)
    g = np.full(3, 2.0, np.float32)
    (x + y + (x.reshape(1, 3) @ w).reshape(3)).backward(g)
    arrays = [x.grad.data, y.grad.data, w.grad.data, g]
    for i, a in enumerate(arrays):
        for b in arrays[i + 1 :]:
            assert not np.shares_memory(a, b)
    y.grad.data[...] = 0  # writing one gradient changes no other
    np.testing.assert_array_equal(x.grad.data, [8.0, 8.0, 8.0])
    np.testing.assert_array_equal(g, [2.0, 2.0, 2.0])


# ---------------------------------------------------------------- found by an adversarial review
def test_grad_mode_is_per_thread():
    import threading

    inside, leave = threading.Event(), threading.Event()

    def hold_no_grad():
        with mg.no_grad():
            inside.set()
            leave.wait(10)

    worker = threading.Thread(target=hold_no_grad)
    worker.start()
    inside.wait(10)
    try:
        x = mg.tensor([1.0, 2.0], requires_grad=True)
        a = (x * x).sum()  # recorded here although another thread is inside no_grad
        assert a.requires_grad and mg.is_grad_enabled()
    finally:
        leave.set()
        worker.join()
    a.backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0])


def test_grad_mode_scopes_are_reusable_and_decorate_with_or_without_parentheses():
    scope = mg.no_grad()
    for _ in range(2):
        with scope:
            assert not mg.is_grad_enabled()
            with scope:  # the same object, nested
                assert not mg.is_grad_enabled()
            assert not mg.is_grad_enabled()
        assert mg.is_grad_enabled()

    @mg.no_grad
    def bare(t):
        return t * 2

    @mg.no_grad()
    def called(t):
        return t * 2

    x = mg.tensor([1.0], requires_grad=True)
    assert not bare(x).requires_grad and not called(x).requires_grad and (x * 2).requires_grad


def test_retained_grads_add_up_over_backward_calls_and_own_their_memory():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).retain_grad()
    z = y.sum()
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_array_equal(y.grad.data, [2.0, 2.0])  # as leaves do (and PyTorch)
    r = x.exp().retain_grad()
    seed = np.ones(2, np.float32)
    r.backward(seed)
    seed[0] = 99.0
    np.testing.assert_array_equal(r.grad.data, [1.0, 1.0])


def test_indices_and_conditions_are_kept_as_they_were_at_forward():
    x = mg.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    k = np.array([0, 1])
    y = x[k]
    k[:] = 2
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[1, 1], [1, 1], [0, 0]])
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    c = np.array([True, False])
    w = mg.where(c, a, 0.0)
    c[:] = [False, True]
    w.sum().backward()
    np.testing.assert_array_equal(a.grad.data, [1.0, 0.0])


def test_anomaly_mode_checks_the_seed_and_the_sums_into_grad():
    x = mg.tensor(np.array([1e-38], np.float32), requires_grad=True)
    with mg.detect_anomaly(), pytest.raises(mg.AnomalyError, match="the sum overflowed"):
        ((x * 3e38).sum() + (x * 3e38).sum()).backward()
    (x * 3e38).sum().backward()  # x.grad = 3e38: a second backward adds to it
    with mg.detect_anomaly(), pytest.raises(mg.AnomalyError, match=r"the \.grad of .*the sum overflowed"):
        (x * 3e38).sum().backward()
    y = mg.tensor([1.0, 2.0], requires_grad=True) * 2
    with mg.detect_anomaly(), pytest.raises(mg.AnomalyError, match="gradient given to backward"):
        y.backward(np.array([np.nan, 1.0], np.float32))


def test_an_assigned_grad_of_the_wrong_kind_is_named():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x.grad = mg.zeros((2, 3))
    with pytest.raises(TypeError, match=r"is a \(2, 3\) float32 Tensor; backward adds to a Tensor"):
        x.sum().backward()
    x.grad = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match="is a ndarray"):
        x.sum().backward()


class _Scale(mg.Function):
    @staticmethod
    def forward(ctx, a, b):
        return a * b

    @staticmethod
    def backward(ctx, g):
        return ctx.params.get("answer", (g, g))


@pytest.mark.parametrize(
    "answer, error, match",
    [
        (lambda g: (g,), TypeError, "returned 1 gradient"),
        (lambda g: (g, g, g), TypeError, "returned 3 gradient"),
        (lambda g: (1.0, g), TypeError, "gradient 0 is a float"),
        (lambda g: (np.ones(4), g), ValueError, r"gradient 0 has shape \(4,\), input 0 has shape \(2,\)"),
    ],
)
def test_a_user_function_backward_is_checked(answer, error, match):
    a, b = mg.tensor([1.0, 2.0], requires_grad=True), mg.tensor([3.0, 4.0], requires_grad=True)

    class Bad(_Scale):
        @staticmethod
        def backward(ctx, g):
            return answer(g)

    with pytest.raises(error, match=match):
        Bad.apply(a, b).sum().backward()


def test_a_user_function_gets_gradients_in_its_inputs_dtype():
    class Wide(_Scale):
        @staticmethod
        def backward(ctx, g):
            return np.ones(2, np.int64), g.astype(np.float64)

    a, b = mg.tensor([1.0, 2.0], requires_grad=True), mg.tensor([3.0, 4.0], requires_grad=True)
    Wide.apply(a, b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float32

    class IntForward(_Scale):
        @staticmethod
        def forward(ctx, a, b):
            return np.arange(2)

    assert IntForward.apply(a, b).dtype == np.float32

    class ListForward(_Scale):
        @staticmethod
        def forward(ctx, a, b):
            return [1.0, 2.0]

    with pytest.raises(TypeError, match="ListForward.forward returned a list"):
        ListForward.apply(a, b)


def test_the_gradient_of_a_nan_maximum_goes_to_the_nan():
    x = mg.tensor([[np.nan, 1.0, 2.0], [3.0, 1.0, 0.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # was NaN everywhere
