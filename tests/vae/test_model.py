"""The VAE model: shapes, the reparameterized sampling step, gradient paths, state, gradcheck."""

import numpy as np
import pytest

import minigrad as mg
from vae import checks, explain, interop
from vae.loss import importance_sampled_nll, negative_elbo
from vae.model import LOGVAR_MAX, LOGVAR_MIN, VAE
from vae.train import evaluate_elbo


def tiny(sampler="reparameterized", dtype="float64", seed=0):
    return VAE(8, 5, 3, sampler=sampler, seed=seed, dtype=dtype)


def batch(n=4, d=8, seed=0):
    return mg.Tensor(np.random.default_rng(seed).uniform(0, 1, (n, d)), name="x")


def test_shapes():
    model, x = tiny(), batch()
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (4, 3)
    z = model.reparameterize(mu, logvar)
    assert z.shape == (4, 3)
    assert model.decode(z).shape == (4, 8)
    logits, mu2, _ = model(x)
    assert logits.shape == (4, 8) and mu2.shape == (4, 3)
    with pytest.raises(ValueError, match="expected input of shape"):
        model.encode(batch(4, 7))


def test_z_is_mu_plus_sigma_eps():
    model, x = tiny(), batch()
    mu, logvar = model.encode(x)
    eps = mg.Tensor(np.random.default_rng(1).standard_normal((4, 3)))
    z = model.reparameterize(mu, logvar, eps)
    np.testing.assert_allclose(z.data, mu.data + np.exp(0.5 * logvar.data) * eps.data, rtol=1e-12)
    assert [z.name, z.inputs[0].name, z.inputs[1].name] == ["z", "mu", "sigma*eps"]


def test_eps_is_a_constant_leaf():
    model = tiny()
    eps = model.sample_eps((4, 3))
    assert eps.is_leaf and not eps.requires_grad and eps.name == "eps"
    mu, logvar = model.encode(batch())
    with pytest.raises(ValueError, match="requires_grad=False"):
        model.reparameterize(mu, logvar, mg.Tensor(np.zeros((4, 3)), requires_grad=True))
    with pytest.raises(ValueError, match="shape"):
        model.reparameterize(mu, logvar, mg.Tensor(np.zeros((4, 2))))


def _term_grads(model, term, eps):
    model.zero_grad()
    x = batch()
    logits, mu, logvar = model(x, eps=eps)
    loss, rec, kl = negative_elbo(logits, x, mu, logvar)
    {"rec": rec, "kl": kl, "loss": loss}[term].backward()
    return {n: None if p.grad is None else p.grad.data.copy() for n, p in model.named_parameters()}


def test_gradient_reaches_encoder_only_when_reparameterized():
    eps = mg.Tensor(np.random.default_rng(2).standard_normal((4, 3)))
    rep = tiny()
    g = _term_grads(rep, "rec", eps)
    assert g["encoder.mu.weight"] is not None and np.abs(g["encoder.mu.weight"]).max() > 0
    assert np.abs(g["encoder.logvar.weight"]).max() > 0

    opaque = tiny("opaque")
    opaque.load_state_dict(rep.state_dict())
    g_rec = _term_grads(opaque, "rec", eps)
    for name in ("encoder.hidden.weight", "encoder.mu.weight", "encoder.logvar.weight", "encoder.mu.bias"):
        assert g_rec[name] is None or not g_rec[name].any(), name
    assert np.abs(g_rec["decoder.out.weight"]).max() > 0  # the decoder still learns
    g_kl = _term_grads(opaque, "kl", eps)
    assert np.abs(g_kl["encoder.mu.weight"]).max() > 0
    np.testing.assert_allclose(g_kl["encoder.mu.weight"], _term_grads(rep, "kl", eps)["encoder.mu.weight"])


def test_state_dict_names():
    assert list(tiny().state_dict()) == [
        "encoder.hidden.weight", "encoder.hidden.bias", "encoder.mu.weight", "encoder.mu.bias",
        "encoder.logvar.weight", "encoder.logvar.bias", "decoder.hidden.weight", "decoder.hidden.bias",
        "decoder.out.weight", "decoder.out.bias",
    ]  # fmt: skip
    model = tiny()
    assert all(p.name == n for n, p in model.named_parameters())


def test_interop_round_trip_of_a_real_model():
    model = VAE(784, 400, 20, seed=3)
    sd = model.state_dict()
    theirs = interop.to_pytorch_example(sd)
    assert set(theirs) == {f"fc{i}.{p}" for i in ("1", "21", "22", "3", "4") for p in ("weight", "bias")}
    back = interop.from_pytorch_example(theirs)
    other = VAE(784, 400, 20, seed=4)
    other.load_state_dict(back)
    for k, v in sd.items():
        np.testing.assert_array_equal(other.state_dict()[k], v)


def test_logvar_is_clamped():
    model = tiny()
    x = batch()
    model.encoder.logvar.bias.data[...] = [1e4, -1e4, 0.0]
    model.encoder.logvar.weight.data[...] = 0.0
    _, logvar = model.encode(x)
    assert (logvar.data[:, 0] == LOGVAR_MAX).all() and (logvar.data[:, 1] == LOGVAR_MIN).all()
    assert (logvar.data[:, 2] == 0).all()
    logits, mu, lv = model(x)
    assert np.isfinite(negative_elbo(logits, x, mu, lv)[0].item())


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_sizes(bad):
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(8, 5, bad)
    with pytest.raises(ValueError, match="sampler"):
        VAE(8, 5, 3, sampler="magic")


def test_gradcheck_of_the_whole_negative_elbo():
    model = tiny()
    x = batch()
    eps = mg.Tensor(np.random.default_rng(5).standard_normal((4, 3)))

    def loss(*params):
        logits, mu, logvar = model(x, eps=eps)
        return negative_elbo(logits, x, mu, logvar)[0]

    assert mg.gradcheck(loss, model.parameters(), atol=1e-6, rtol=1e-4)
    rows = checks.gradcheck_vae(batch=3, hidden=4, latent=2, input_dim=5)
    assert [r["name"] for r in rows] == list(tiny().state_dict())
    assert all(r["ok"] and r["max_abs"] < 1e-6 for r in rows)


def test_importance_sampled_nll_is_tighter_than_the_elbo():
    model, _, _ = explain.train_diagram(steps=150, seed=0)
    from vae.data import load_embedded

    x = explain.cell_features(load_embedded().test_images[:200])
    model.noise = np.random.default_rng(0)
    nll_1 = importance_sampled_nll(model, x, k=1)  # k = 1: an unbiased estimate of -ELBO
    nll_100 = importance_sampled_nll(model, x, k=100)
    elbo = evaluate_elbo(model, x)["loss"]
    assert nll_100.shape == (200,) and np.isfinite(nll_100).all()
    assert nll_100.mean() <= nll_1.mean()
    assert nll_100.mean() <= elbo + 0.01
    with pytest.raises(ValueError, match="k >= 1"):
        importance_sampled_nll(model, x, k=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"k": 2.5}, "k >= 1 samples"), ({"k": True}, "k >= 1 samples"), ({"chunk": 0}, "chunk must be a positive"),
     ({"chunk": -1}, "chunk must be a positive"), ({"chunk": 2.5}, "chunk must be a positive"),
     ({"rows": 0}, "non-empty batch")],
)  # fmt: skip
def test_importance_sampled_nll_checks_its_arguments(kwargs, match):
    model, x = tiny(), batch()
    rows = kwargs.pop("rows", len(x))
    with pytest.raises(ValueError, match=match):
        importance_sampled_nll(model, x[:rows], **{"k": 3, **kwargs})
