"""nn.Module / Linear / Sequential and the optimizers, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.optim import SGD, Adam


def snapshot(module):
    return {name: p.data.copy() for name, p in module.named_parameters()}


def assert_unchanged(module, before):
    after = snapshot(module)
    assert after.keys() == before.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)


# ---------------------------------------------------------------- Linear and Module
@pytest.mark.parametrize("dtype", [mg.float32, mg.float64], ids=str)
def test_linear_shapes_dtype_and_init_bounds(dtype):
    layer = nn.Linear(16, 5, dtype=dtype, generator=np.random.default_rng(0))
    assert layer.weight.shape == (5, 16) and layer.bias.shape == (5,)
    assert layer.weight.dtype == dtype and layer.bias.dtype == dtype
    assert layer.weight.requires_grad and layer.weight.is_leaf
    bound = 1 / math.sqrt(16)
    for p in (layer.weight, layer.bias):
        assert np.all(np.abs(p.data) <= bound)
    assert np.abs(layer.weight.data).max() > 0.5 * bound  # uniform over the range, not a tiny init
    out = layer(mg.Tensor(np.ones((7, 16), dtype=dtype)))
    assert out.shape == (7, 5) and out.dtype == dtype
    assert layer(mg.Tensor(np.ones((2, 3, 16), dtype=dtype))).shape == (2, 3, 5)
    expected = np.ones((7, 16)) @ layer.weight.data.T.astype(np.float64) + layer.bias.data
    np.testing.assert_allclose(out.data, expected, rtol=1e-5)


def test_linear_init_is_reproducible_and_bias_optional():
    a = nn.Linear(3, 2, generator=np.random.default_rng(7))
    b = nn.Linear(3, 2, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    mg.manual_seed(3)
    c = nn.Linear(3, 2)
    mg.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(3, 2).weight.data, c.weight.data)
    no_bias = nn.Linear(3, 2, bias=False)
    assert no_bias.bias is None
    assert [n for n, _ in no_bias.named_parameters()] == ["weight"]
    assert no_bias(mg.ones(4, 3)).shape == (4, 2)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_linear_refuses_bad_sizes(bad):
    with pytest.raises(ValueError, match="positive integer"):
        nn.Linear(bad, 2)
    with pytest.raises(ValueError, match="positive integer"):
        nn.Linear(2, bad)


def test_linear_activation_matches_the_unfused_ops():
    layer = nn.Linear(3, 4, dtype=mg.float64, generator=np.random.default_rng(1))
    x = mg.Tensor(np.random.default_rng(2).standard_normal((5, 3)))
    plain = layer(x)
    for act, fn in [("relu", mg.relu), ("sigmoid", mg.sigmoid), ("tanh", mg.tanh)]:
        np.testing.assert_allclose(layer(x, activation=act).data, fn(plain).data, rtol=1e-12)
    with pytest.raises(ValueError, match="activation"):
        layer(x, activation="gelu")


def test_named_parameters_of_nested_modules():
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(4, 3)
            self.heads = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1, bias=False))
            self.scale = nn.Parameter([1.0])

        def forward(self, x):
            return self.heads(self.hidden(x).relu()) * self.scale

    model = Encoder()
    names = [n for n, _ in model.named_parameters()]
    assert names == [
        "scale",
        "hidden.weight",
        "hidden.bias",
        "heads.0.weight",
        "heads.0.bias",
        "heads.2.weight",
    ]
    assert len(model.parameters()) == 6
    assert model(mg.ones(5, 4)).shape == (5, 1)
    model.heads = nn.Linear(3, 1)  # reassigning replaces the submodule and its parameters
    assert [n for n, _ in model.named_parameters()][-2:] == ["heads.weight", "heads.bias"]


def test_module_without_super_init_fails_clearly():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter([1.0])

    with pytest.raises(RuntimeError, match=r"super\(\)\.__init__\(\)"):
        Broken()


def test_zero_grad_and_train_eval():
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    model(mg.ones(1, 2)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    assert not model.training and not model[0].training
    model.train()
    assert model[1].training


def test_sequential_applies_modules_in_order():
    first = nn.Linear(2, 3, dtype=mg.float64)
    second = nn.Linear(3, 1, dtype=mg.float64)
    model = nn.Sequential(first, nn.Sigmoid(), second)
    assert len(model) == 3 and model[0] is first and model[-1] is second
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = mg.Tensor(np.array([[0.5, -1.0]]))
    np.testing.assert_allclose(model(x).data, second(first(x).sigmoid()).data)
    assert "Linear(in_features=2, out_features=3, bias=True)" in repr(model)
    with pytest.raises(TypeError, match="item 1"):
        nn.Sequential(first, lambda x: x)


def test_del_attribute_unregisters_parameters_and_submodules():
    """As PyTorch: `del m.name` removes a parameter or submodule from named_parameters/state_dict."""
    lin = nn.Linear(2, 3)
    del lin.bias
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    assert list(lin.state_dict()) == ["weight"]
    assert len(lin.parameters()) == 1
    with pytest.raises(AttributeError):
        lin.bias  # noqa: B018
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    delattr(model, "2")
    assert len(model) == 2 and [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert "(2)" not in repr(model)
    lin.note = "plain attribute"
    del lin.note
    assert not hasattr(lin, "note")
    with pytest.raises(AttributeError):
        del lin.never_set


def test_reassigning_a_parameter_or_submodule_keeps_its_place():
    lin = nn.Linear(2, 3)
    new_weight = nn.Parameter(np.zeros((3, 2)))
    lin.weight = new_weight
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    assert lin.weight is new_weight and dict(lin.named_parameters())["weight"] is new_weight
    assert list(lin.state_dict()) == ["weight", "bias"]
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    replacement = nn.Linear(2, 3)
    setattr(model, "0", replacement)
    assert model[0] is replacement
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    lin.bias = None  # a non-Parameter value still unregisters the name
    assert [n for n, _ in lin.named_parameters()] == ["weight"]


def test_sequential_slice_is_a_sequential_of_the_same_modules():
    first, act, last = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    model = nn.Sequential(first, act, last)
    head = model[0:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2
    assert head[0] is first and head[1] is act
    tail = model[1:]
    assert tail[0] is act and tail[-1] is last
    # names are kept, as PyTorch: model[1:] has parameters '2.weight', '2.bias'
    assert [n for n, _ in tail.named_parameters()] == ["2.weight", "2.bias"]
    assert tail.named_parameters().__next__()[1] is last.weight
    assert [m for m in model[::-1]._modules.values()] == [last, act, first]
    assert len(model[5:]) == 0
    x = mg.ones(4, 2)
    np.testing.assert_allclose(model[0:2](x).data, act(first(x)).data)
    assert model[-1] is last and model[-3] is first and model[np.int64(1)] is act
    with pytest.raises(IndexError):
        model[3]


# ---------------------------------------------------------------- state_dict
def test_state_dict_holds_copies():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    state["0.weight"][...] = 123.0
    assert not np.any(model[0].weight.data == 123.0)
    before = state["0.bias"].copy()
    model[0].bias.data[...] = -5.0
    np.testing.assert_array_equal(state["0.bias"], before)


def test_load_state_dict_round_trip_copies_values_in():
    source = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    target = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = source.state_dict()
    weight = target[0].weight
    target.load_state_dict(state)
    assert target[0].weight is weight  # same Parameter objects, new values
    for name, p in target.named_parameters():
        np.testing.assert_array_equal(p.data, state[name])
    state["0.weight"][...] = 0.0
    assert np.any(target[0].weight.data != 0.0)
    target.load_state_dict(
        {k: mg.Tensor(v) for k, v in source.state_dict().items()}
    )  # Tensors work too


def _model_and_state():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = {k: v + 1.0 for k, v in model.state_dict().items()}
    return model, state, snapshot(model)


def test_load_state_dict_missing_and_extra_keys():
    model, state, before = _model_and_state()
    del state["1.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['1.bias'\]"):
        model.load_state_dict(state)
    assert_unchanged(model, before)
    model, state, before = _model_and_state()
    state["2.weight"] = np.zeros((1, 1), dtype=np.float32)
    with pytest.raises(KeyError, match=r"unexpected keys \['2.weight'\]"):
        model.load_state_dict(state)
    assert_unchanged(model, before)
    del state["1.bias"]
    model.load_state_dict(state, strict=False)  # non-strict: loads what matches, ignores the rest
    np.testing.assert_array_equal(model[0].weight.data, state["0.weight"])
    np.testing.assert_array_equal(model[1].bias.data, before["1.bias"])


@pytest.mark.parametrize(
    "key, value, error, message",
    [
        (
            "1.weight",
            np.zeros((3, 1), np.float32),
            ValueError,
            r"'1.weight' has shape \(3, 1\), the model expects \(1, 3\)",
        ),
        ("1.bias", np.zeros((1, 1), np.float32), ValueError, "shape"),
        ("1.weight", np.zeros((1, 3), np.int64), TypeError, "int64"),
        ("1.weight", np.zeros((1, 3), bool), TypeError, "bool"),
        ("1.weight", [["a", "b", "c"]], TypeError, "expected floats"),
        ("1.bias", np.array([np.nan], np.float32), ValueError, "NaN"),
    ],
)
def test_load_state_dict_bad_values_raise_and_change_nothing(key, value, error, message):
    model, state, before = _model_and_state()
    state[key] = value  # the bad entry comes after good ones: nothing may be written
    with pytest.raises(error, match=message):
        model.load_state_dict(state)
    assert_unchanged(model, before)


# ---------------------------------------------------------------- optimizers, by hand
def param(values):
    return nn.Parameter(np.array(values, dtype=np.float64))


def run_steps(optimizer, p, grads):
    history = []
    for g in grads:
        p.grad = mg.Tensor(np.array(g, dtype=np.float64))
        optimizer.step()
        history.append(p.data.copy())
    return history


G = [0.5, 1.0]


def test_sgd_plain(backend):
    p = param([1.0, -2.0])
    history = run_steps(SGD([p], lr=0.1), p, [G, G])
    np.testing.assert_allclose(history, [[0.95, -2.1], [0.9, -2.2]], rtol=1e-12)


def test_sgd_momentum(backend):
    # buf = g on step 1, then 0.9 buf + g: buf = 1 g, 1.9 g, 2.71 g
    p = param([1.0, -2.0])
    history = run_steps(SGD([p], lr=0.1, momentum=0.9), p, [G, G, G])
    np.testing.assert_allclose(
        history, [[0.95, -2.1], [0.855, -2.29], [0.7195, -2.561]], rtol=1e-12
    )


def test_sgd_momentum_with_dampening(backend):
    # buf = g on step 1 (no dampening on the first step, as PyTorch), then 0.9 buf + 0.5 g = 1.4 g
    p = param([1.0, -2.0])
    history = run_steps(SGD([p], lr=0.1, momentum=0.9, dampening=0.5), p, [G, G])
    np.testing.assert_allclose(history, [[0.95, -2.1], [0.88, -2.24]], rtol=1e-12)


def test_sgd_nesterov(backend):
    # d = g + 0.9 buf: step 1 buf = g, d = 1.9 g; step 2 buf = 1.9 g, d = 2.71 g
    p = param([1.0, -2.0])
    history = run_steps(SGD([p], lr=0.1, momentum=0.9, nesterov=True), p, [G, G])
    np.testing.assert_allclose(history, [[0.905, -2.19], [0.7695, -2.461]], rtol=1e-12)


def test_sgd_weight_decay(backend):
    # d = g + 0.1 p: step 1 d = (0.6, 0.8); step 2 d = (0.594, 0.792)
    p = param([1.0, -2.0])
    history = run_steps(SGD([p], lr=0.1, weight_decay=0.1), p, [G, G])
    np.testing.assert_allclose(history, [[0.94, -2.08], [0.8806, -2.1592]], rtol=1e-12)


def adam_by_hand(p, grads, lr, b1, b2, eps, wd):
    """Adam written out one scalar at a time, straight from the paper (and PyTorch's L2 decay)."""
    p, out = list(p), []
    m, v = [0.0] * len(p), [0.0] * len(p)
    for t, g in enumerate(grads, start=1):
        for i in range(len(p)):
            gi = g[i] + wd * p[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            p[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(list(p))
    return out


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam(backend, weight_decay):
    grads = [[0.5, 1.0], [-1.0, 0.5], [0.25, -2.0]]
    p = param([1.0, -2.0])
    history = run_steps(Adam([p], lr=0.1, weight_decay=weight_decay), p, grads)
    np.testing.assert_allclose(
        history, adam_by_hand([1.0, -2.0], grads, 0.1, 0.9, 0.999, 1e-8, weight_decay), rtol=1e-10
    )
    if weight_decay == 0.0:  # step 1 of Adam moves each element by lr * sign(g)
        np.testing.assert_allclose(history[0], [0.9, -2.1], rtol=1e-7)
        # step 2, element 0: m = -0.055, v = 0.00124975 -> p = 0.9 + 0.1 * 0.289474 / 0.790688
        assert history[1][0] == pytest.approx(
            0.9 + 0.1 * (0.055 / 0.19) / math.sqrt(0.00124975 / 0.001999), rel=1e-8
        )


@pytest.mark.parametrize("dtype", [mg.float32, mg.float64], ids=str)
def test_optimizers_keep_the_parameter_dtype_and_skip_params_without_grad(dtype):
    a = nn.Parameter(np.ones(3, dtype=dtype))
    b = nn.Parameter(np.ones(2, dtype=dtype))
    for opt in (SGD([a, b], lr=0.5, momentum=0.9), Adam([a, b], lr=0.5)):
        a.grad, b.grad = mg.Tensor(np.ones(3, dtype=dtype)), None
        opt.step()
        assert a.dtype == dtype and np.all(a.data < 1)
        np.testing.assert_array_equal(b.data, np.ones(2))
        a.data[...] = 1.0


def test_adam_follows_replaced_arrays_and_refuses_bad_ones_before_any_update():
    p, q = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    opt = Adam([p, q], lr=0.1)
    p.grad, q.grad = mg.Tensor(np.ones(3)), mg.Tensor(np.ones(2))
    opt.step()
    old = p.data
    p.data = np.full(3, 5.0)
    opt.step()
    np.testing.assert_allclose(old, 0.9)  # untouched by the second step
    np.testing.assert_allclose(p.data, 4.9)
    opt.load_state_dict(opt.state_dict())  # new state arrays, same values
    opt.step()
    np.testing.assert_allclose(p.data, 4.8)
    np.testing.assert_allclose(opt.state[0]["exp_avg"], 1 - 0.9**3)
    # a read-only parameter is refused, naming it, and no parameter is updated (every one is
    # checked before the update)
    q.data.flags.writeable = False
    with pytest.raises(ValueError, match="parameter 1: .*writable"):
        opt.step()
    np.testing.assert_allclose(p.data, 4.8)
    assert opt.state[0]["step"] == 3


def test_a_failed_first_step_leaves_no_state_behind():
    p = nn.Parameter(np.ones((3, 4)))
    opt = Adam([p], lr=0.1)
    p.data = np.asfortranarray(np.ones((3, 4)))  # not C-contiguous: the kernels refuse it
    p.grad = mg.Tensor(np.ones((3, 4)))
    with pytest.raises(ValueError, match="contiguous"):
        opt.step()
    assert opt.state == [{}]
    opt.load_state_dict(opt.state_dict())  # still a valid state


def test_tied_parameters_are_listed_and_updated_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(model.parameters()) == 2
    opt = Adam(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = mg.Tensor(np.ones_like(p.data))
    before = shared.weight.data.copy()
    opt.step()
    # one step: lr * sign(g); atol for weights that land near 0.1 (random init), where rtol alone
    # compares against a difference close to 0
    np.testing.assert_allclose(shared.weight.data, before - 0.1, rtol=1e-6, atol=1e-7)


def test_training_a_tiny_regression_converges():
    rng = np.random.default_rng(0)
    x = mg.Tensor(rng.standard_normal((64, 3)))
    true_w = np.array([[1.0, -2.0, 0.5]])
    y = mg.Tensor(x.data @ true_w.T + 0.3)
    model = nn.Linear(3, 1, dtype=mg.float64, generator=rng)
    opt = Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-4
    np.testing.assert_allclose(model.weight.data, true_w, atol=1e-2)


def test_optimizer_state_dict_round_trip():
    def make():
        model = nn.Linear(3, 2, dtype=mg.float64, generator=np.random.default_rng(5))
        return model, Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99))

    x = mg.Tensor(np.random.default_rng(6).standard_normal((4, 3)))

    def step(model, opt):
        opt.zero_grad()
        (model(x) ** 2).sum().backward()
        opt.step()

    model, opt = make()
    step(model, opt)
    step(model, opt)
    saved_opt, saved_model = opt.state_dict(), model.state_dict()
    assert saved_opt["state"][0]["step"] == 2
    # a copy: the optimizer's own buffer shares no memory with the saved array
    assert not np.shares_memory(saved_opt["state"][0]["exp_avg"], opt.state[0]["exp_avg"])

    resumed_model, resumed_opt = make()
    resumed_model.load_state_dict(saved_model)
    resumed_opt.load_state_dict(saved_opt)
    assert resumed_opt.defaults["betas"] == (0.8, 0.99)
    step(model, opt)
    step(resumed_model, resumed_opt)
    for (name, p), q in zip(model.named_parameters(), resumed_model.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_optimizer_load_state_dict_refuses_mismatches():
    model = nn.Linear(3, 2)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(mg.ones(1, 3)).sum().backward()
    opt.step()
    state = opt.state_dict()
    other = SGD(nn.Linear(3, 2).parameters() + [nn.Parameter([1.0])], lr=0.1)
    with pytest.raises(ValueError, match="2 parameter states for 3 parameters"):
        other.load_state_dict(state)
    state["state"][0]["momentum_buffer"] = np.zeros((5, 5))
    with pytest.raises(ValueError, match=r"shape \(5, 5\), expected \(2, 3\)"):
        opt.load_state_dict(state)


def test_optimizer_arguments_are_checked():
    p = nn.Parameter([1.0])
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        Adam([p, nn.Parameter([2.0]), p])
    with pytest.raises(TypeError, match="not a Parameter"):
        SGD([mg.Tensor([1.0], requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        Adam([p], lr=0.0)
    with pytest.raises(ValueError, match="betas"):
        Adam([p], betas=(0.9, 1.0))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: Adam([p], lr=float("inf")), "lr must be a finite learning rate"),
        (lambda p: Adam([p], lr=True), "lr must be a real number"),
        (lambda p: Adam([p], eps=float("nan")), "eps must be a finite number >= 0"),
        (lambda p: Adam([p], eps=-1e-8), "eps must be a finite number >= 0"),
        (lambda p: Adam([p], weight_decay=float("nan")), "weight_decay must be a finite"),
        (lambda p: Adam([p], betas=(0.9,)), r"betas must be a pair"),
        (lambda p: Adam([p], betas=(0.9, float("nan"))), r"betas must be a finite number in \[0, 1\)"),
        (lambda p: Adam([p], eps="1e-8"), "eps must be a real number"),
        (lambda p: SGD([p], lr=0.1, momentum=float("nan")), "momentum must be a finite number >= 0"),
        (lambda p: SGD([p], lr=0.1, momentum=-0.9), "momentum must be a finite number >= 0"),
        (lambda p: SGD([p], lr=0.1, weight_decay=float("inf")), "weight_decay must be a finite"),
        (lambda p: SGD([p], lr=0.1, nesterov=True), "Nesterov momentum needs momentum > 0"),
        (lambda p: SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "and dampening 0"),
        (lambda p: SGD([p], lr=0.1, nesterov="yes"), "nesterov must be True or False"),
    ],
)
def test_optimizer_hyperparameters_are_checked(make, message):
    # each of these used to turn the parameters into NaN (or worse) at the first step
    with pytest.raises((ValueError, TypeError), match=message):
        make(nn.Parameter(np.ones(3, np.float32)))


def test_optimizer_hyperparameters_are_kept_as_python_numbers():
    p = nn.Parameter(np.ones(3, np.float32))
    opt = Adam([p], lr=np.float32(1e-3), betas=[np.float64(0.8), 0.9], eps=0)
    assert opt.defaults == {"lr": pytest.approx(1e-3), "betas": (0.8, 0.9), "eps": 0.0, "weight_decay": 0.0}
    assert all(type(v) is float for v in (opt.defaults["lr"], *opt.defaults["betas"], opt.defaults["eps"]))


def _stepped_adam():
    p = nn.Parameter(np.ones(3, np.float32))
    opt = Adam([p], lr=0.1)
    p.grad = mg.Tensor(np.full(3, 0.5, np.float32))
    opt.step()
    return p, opt


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s["defaults"].update(lr=-1.0), r"defaults\['lr'\] must be a finite learning rate"),
        (lambda s: s["defaults"].update(eps=None), r"defaults\['eps'\] must be a real number"),
        (lambda s: s["defaults"].update(betas=(5, 5)), r"defaults\['betas'\] must be a finite number in"),
        (lambda s: s.update(defaults=[1, 2]), "'defaults' is a list, expected a dict"),
        (lambda s: s["state"][0].update(step=2**63), "expected a positive integer below 2\\*\\*62"),
        (lambda s: s["state"][0].update(step=np.True_), "expected a positive integer"),
        (lambda s: s["state"][0]["exp_avg"].__setitem__(0, np.nan), "'exp_avg' of parameter 0 must be finite"),
        (lambda s: s["state"][0]["exp_avg_sq"].__setitem__(1, -1.0), "'exp_avg_sq' of parameter 0 must be finite and >= 0"),
        (lambda s: s["state"][0].update(exp_avg_sq=np.full(3, 1e300)), "must be finite and >= 0 \\(as float32\\)"),
    ],
)
def test_optimizer_load_state_dict_checks_everything_before_changing_anything(edit, message):
    p, opt = _stepped_adam()
    before = opt.state_dict()
    state = opt.state_dict()
    edit(state)
    with pytest.raises((ValueError, TypeError), match=message):
        opt.load_state_dict(state)
    after = opt.state_dict()
    assert after["defaults"] == before["defaults"] and after["state"][0]["step"] == before["state"][0]["step"]
    np.testing.assert_array_equal(after["state"][0]["exp_avg"], before["state"][0]["exp_avg"])


def test_optimizer_load_state_dict_takes_any_layout_and_numpy_integers():
    p = nn.Parameter(np.ones((2, 3), np.float32))
    opt = Adam([p], lr=0.1)
    p.grad = mg.Tensor(np.full((2, 3), 0.5, np.float32))
    opt.step()
    state = opt.state_dict()
    s = state["state"][0]
    s.update(step=np.int64(1), exp_avg=np.asfortranarray(s["exp_avg"]), exp_avg_sq=s["exp_avg_sq"].astype(np.float64))
    opt.load_state_dict(state)
    s = opt.state[0]
    assert type(s["step"]) is int and s["exp_avg"].flags.c_contiguous and s["exp_avg_sq"].dtype == np.float32
    opt.step()  # a Fortran-ordered state array used to be kept, and refused here as "not contiguous"
    assert opt.state[0]["step"] == 2


def test_sgd_checks_every_parameter_before_updating_any():
    a, b = nn.Parameter(np.ones(3, np.float32)), nn.Parameter(np.ones(3, np.float32))
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    b.data = np.ones(6, np.float32)[::2]  # not contiguous: the kernel refuses it
    a.grad = b.grad = mg.Tensor(np.full(3, 0.5, np.float32))
    with pytest.raises(ValueError, match="parameter 1.*contiguous"):
        opt.step()
    np.testing.assert_array_equal(a.data, np.ones(3))  # a was updated first before the fix
    assert opt.state == [{}, {}]  # no momentum buffer that would make the next step look like a later one


def test_module_load_state_dict_refuses_values_that_overflow_the_parameter_dtype():
    m = nn.Linear(3, 2)
    before = snapshot(m)
    with pytest.raises(ValueError, match=r"'weight' contains NaN or Inf \(as float32\)"):
        m.load_state_dict({"weight": np.full((2, 3), 1e300), "bias": np.ones(2)})
    assert_unchanged(m, before)


def test_an_optimizer_subclass_keeps_its_own_hyperparameters():
    class Halving(mg.optim.Optimizer):
        def __init__(self, params, lr=0.5, factor=0.5):
            super().__init__(params, dict(lr=lr, factor=factor))

    opt = Halving([nn.Parameter(np.ones(2))])
    assert opt.defaults == {"lr": 0.5, "factor": 0.5}
    opt.load_state_dict({"state": [{}], "defaults": {"factor": 0.25}})
    assert opt.defaults == {"lr": 0.5, "factor": 0.25}
