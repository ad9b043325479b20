"""Training: determinism, exact resume, atomic and validated checkpoints, data errors, graph dumps."""

import json

import numpy as np
import pytest

from vae import checkpoint, data, evaluate, explain, train
from vae.train import Config

TIMING = {"seconds", "steps_per_second"}


def tiny_config(**kw):
    return Config(**{"epochs": 2, "batch_size": 500, "hidden_dim": 8, "latent_dim": 2, "seed": 0, **kw})


def run(config, out, **kw):
    return train.train(config, out, log=lambda s: None, progress=False, **kw)


def strip(history):
    return [{k: v for k, v in rec.items() if k not in TIMING} for rec in history]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    return out, run(tiny_config(), out, dump_graph="1,last")


def test_same_seed_same_history(straight, tmp_path):
    _, first = straight
    second = run(tiny_config(), tmp_path)
    assert len(first["history"]) == 2
    assert strip(first["history"]) == strip(second["history"])
    assert all(np.isfinite(r["test_loss"]) for r in first["history"])


def test_resume_continues_exactly(straight, tmp_path):
    _, full = straight
    run(tiny_config(epochs=1), tmp_path)
    resumed = run(tiny_config(epochs=2), tmp_path, resume=tmp_path / "checkpoint.npz")
    assert strip(resumed["history"]) == strip(full["history"])
    for k, v in full["model"].state_dict().items():
        np.testing.assert_array_equal(resumed["model"].state_dict()[k], v)


def test_checkpoint_is_written_atomically(straight):
    out, _ = straight
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "graphs", "history.json"]
    assert not list(out.rglob("*.tmp"))
    state = checkpoint.load(out / "checkpoint.npz")
    assert state["meta"]["epoch"] == 2 and state["meta"]["config"]["hidden_dim"] == 8


def test_a_failed_save_keeps_the_previous_checkpoint(straight, tmp_path, monkeypatch):
    """Interrupted while writing (here: the archive writer raises half-way), a save leaves the
    old checkpoint whole and no temporary file behind."""
    out, _ = straight
    path = tmp_path / "checkpoint.npz"
    path.write_bytes((out / "checkpoint.npz").read_bytes())
    before = checkpoint.load(path)

    def savez_then_fail(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", savez_then_fail)
    meta = {k: v for k, v in before["meta"].items() if k not in ("format", "version")}
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, before["model"], before["optimizer"], meta)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]
    after = checkpoint.load(path)
    assert after["meta"] == before["meta"]
    for k, v in before["model"].items():
        np.testing.assert_array_equal(after["model"][k], v)


def test_corrupt_checkpoint_names_the_file(straight, tmp_path):
    out, _ = straight
    blob = (out / "checkpoint.npz").read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="truncated.npz"):
        checkpoint.load(bad)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(checkpoint.CheckpointError, match="junk.npz"):
        run(tiny_config(), tmp_path / "r", resume=junk)
    with pytest.raises(checkpoint.CheckpointError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "missing.npz")


def test_checkpoint_from_another_architecture(straight, tmp_path):
    out, _ = straight
    state = checkpoint.load(out / "checkpoint.npz")
    meta = state["meta"]
    meta["config"]["hidden_dim"] = 16  # the weights are 8 wide
    other = checkpoint.save(tmp_path / "other.npz", state["model"], state["optimizer"], meta)
    with pytest.raises(checkpoint.CheckpointError, match="does not fit"):
        run(tiny_config(), tmp_path / "r", resume=other)
    with pytest.raises(checkpoint.CheckpointError, match="other.npz"):
        evaluate.load_model(other)
    with pytest.raises(checkpoint.CheckpointError, match="6-4-2"):
        explain.load_diagram(out / "checkpoint.npz")


def test_nan_in_data_is_a_data_error(monkeypatch, tmp_path):
    images = np.full((40, 4, 4), 100.0)
    images[3, 1, 1] = np.nan
    fake = data.Dataset(images, np.zeros(40, np.uint8), images[:10], np.zeros(10, np.uint8), "fake")
    monkeypatch.setattr(train, "load_dataset", lambda spec: fake)
    with pytest.raises(data.DataError, match="NaN"):
        run(tiny_config(batch_size=8), tmp_path)


def test_batch_larger_than_data(tmp_path):
    with pytest.raises(ValueError, match="larger than"):
        run(tiny_config(batch_size=100_000), tmp_path)
    with pytest.raises(ValueError, match="batch size"):
        run(tiny_config(batch_size=0), tmp_path)


def test_graph_dumps(straight):
    out, result = straight
    last = result["history"][-1]["step"]
    names = sorted(p.name for p in (out / "graphs").iterdir() if p.suffix != ".svg")
    assert names == [f"step{s:06d}.{ext}" for s in (1, last) for ext in ("dot", "json", "txt")]
    dump = json.loads((out / "graphs" / "step000001.json").read_text())
    by_name = {n["name"]: n for n in dump["nodes"] if n["name"]}
    assert by_name["eps"]["grad"] is None and by_name["eps"]["requires_grad"] is False
    assert by_name["mu"]["grad"] is not None and by_name["z"]["grad"] is not None
    assert by_name["encoder.mu.weight"]["kind"] == "param"
    assert "sigma*eps" in (out / "graphs" / "step000001.txt").read_text()
    with pytest.raises(ValueError, match="not a step number"):
        train.parse_dump_steps("1,zero", 10)


def test_save_writes_numpy_scalars_as_json_numbers(straight, tmp_path):
    """Optimizer hyperparameters and state may hold numpy scalars (an lr of np.float32, a step of
    np.int64); they are saved as plain JSON numbers. Anything else JSON cannot hold fails the save
    and leaves the previous checkpoint as it was."""
    out, _ = straight
    state = checkpoint.load(out / "checkpoint.npz")
    meta = {k: v for k, v in state["meta"].items() if k not in ("format", "version")}
    optimizer = state["optimizer"]
    optimizer["defaults"].update(lr=np.float32(0.5), betas=(np.float64(0.8), np.float32(0.75)), eps=np.float16(0.25))
    optimizer["state"][0]["step"] = np.int64(7)
    meta["epoch"] = np.int64(2)
    path = checkpoint.save(tmp_path / "checkpoint.npz", state["model"], optimizer, meta)
    loaded = checkpoint.load(path)
    assert loaded["optimizer"]["defaults"] == {"lr": 0.5, "betas": [0.8, 0.75], "eps": 0.25, "weight_decay": 0.0}
    assert type(loaded["optimizer"]["defaults"]["lr"]) is float
    assert loaded["optimizer"]["state"][0]["step"] == 7 and type(loaded["optimizer"]["state"][0]["step"]) is int
    assert loaded["meta"]["epoch"] == 2
    np.testing.assert_array_equal(loaded["optimizer"]["state"][0]["exp_avg"], optimizer["state"][0]["exp_avg"])
    before = path.read_bytes()
    optimizer["defaults"]["lr"] = object()
    with pytest.raises(TypeError, match="object"):
        checkpoint.save(path, state["model"], optimizer, meta)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]


def test_resume_from_a_checkpoint_saved_with_numpy_scalars(straight, tmp_path):
    """What an Adam(params, lr=np.float32(...)) run saves resumes like any other checkpoint."""
    out, _ = straight
    state = checkpoint.load(out / "checkpoint.npz")
    meta = {k: v for k, v in state["meta"].items() if k not in ("format", "version")}
    state["optimizer"]["defaults"]["lr"] = np.float32(1e-3)
    state["optimizer"]["state"] = [{**s, "step": np.int64(s["step"])} for s in state["optimizer"]["state"]]
    saved = checkpoint.save(tmp_path / "np.npz", state["model"], state["optimizer"], meta)
    resumed = run(tiny_config(epochs=3), tmp_path / "r", resume=saved)
    assert [r["epoch"] for r in resumed["history"]] == [1, 2, 3]
