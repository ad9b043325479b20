"""`python -m vae ...`: every command's happy path on tiny settings, and user errors -> exit 2."""

import json
import shutil
import subprocess
import sys

import pytest

from vae import images
from vae.cli import main



@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--epochs", "1", "--batch-size", "500", "--hidden", "8", "--latent", "2",
                 "--out", str(out), "--quiet", "--dump-graph", "1,last"])  # fmt: skip
    assert code == 0
    return out


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def user_error(capsys, *argv, match=""):
    code, out, err = cli(capsys, *argv)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and "Traceback" not in err and match in err, err
    assert err.count("\n") == 1  # one line
    return err


def python_m_vae(*argv):
    return subprocess.run([sys.executable, "-m", "vae", *map(str, argv)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_subprocess_help_and_error_exit(tmp_path):
    done = python_m_vae("--help")
    assert done.returncode == 0
    for command in ("train", "eval", "sample", "reconstruct", "explain", "gradcheck", "dump"):
        assert command in done.stdout
    done = python_m_vae("eval", "--checkpoint", tmp_path / "missing.npz")
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["eval", "sample", "reconstruct", "explain", "gradcheck", "dump", "dump show"])
def test_help_of_every_command(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([*command.split(), "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_eval(capsys, run_dir):
    ckpt = run_dir / "checkpoint.npz"
    code, out, err = cli(capsys, "eval", "--checkpoint", ckpt, "-k", 5, "--limit", 30, "--batch-size", 10, "--threads", 1)
    assert code == 0, err
    assert "negative ELBO" in out and "NLL (IS, k=5)" in out and "active units" in out
    assert "pixel protocol grayscale" in out
    code, out, err = cli(capsys, "eval", "--checkpoint", ckpt, "-k", 3, "--limit", 20, "--json",
                         "--protocol", "fixed-binarized", "--quiet")  # fmt: skip
    report = json.loads(out)
    assert report["protocol"] == "fixed-binarized" and report["examples"] == 20 and report["k"] == 3
    assert 0 <= report["active_units"] <= report["latent_dim"] == 2
    assert report["negative_elbo"] == pytest.approx(report["reconstruction"] + report["kl"])


def test_sample_and_reconstruct(capsys, run_dir, tmp_path):
    ckpt = run_dir / "checkpoint.npz"
    code, out, err = cli(capsys, "sample", "--checkpoint", ckpt, "--out", tmp_path / "s.png", "-n", 6, "--seed", 1, "--scale", 1)
    assert code == 0, err
    grid = images.read_png(tmp_path / "s.png")
    assert grid.shape == (2 + 2 * 30, 2 + 3 * 30) and grid.dtype.name == "uint8"
    code, out, err = cli(capsys, "reconstruct", "--checkpoint", ckpt, "--out", tmp_path / "r.png", "-n", 3, "--scale", 1)
    assert code == 0, err
    assert images.read_png(tmp_path / "r.png").shape == (2 + 30, 2 + 6 * 30)


def test_explain(capsys, tmp_path):
    code, out, err = cli(capsys, "explain", "--steps", 60, "--seed", 0, "--save", tmp_path / "d.npz")
    assert code == 0, err
    for text in ("x_6 =", "a_4 = relu(", "mu_1 = W_mu[1,:] . a + b_mu[1] =", "logvar_2 =", "sigma_1 = exp(",
                 "mu_1 != mu_2", "not parameters", "eps_1 =", "z_1 = mu_1 + sigma_1 * eps_1",
                 "dz/dmu = [1, 1]", "reconstruction part", "KL part", "reconstruction part exactly zero",
                 "identical to the reparameterized one"):  # fmt: skip
        assert text in out, text
    assert "NONZERO" not in out
    code, out2, err = cli(capsys, "explain", "--checkpoint", tmp_path / "d.npz", "--seed", 0)
    assert code == 0, err
    assert out2.split("# Input")[1] == out.split("# Input")[1]  # same model, same eps -> same numbers


def test_gradcheck(capsys):
    code, out, err = cli(capsys, "gradcheck", "--batch", 2, "--hidden", 3, "--latent", 2, "--input", 4)
    assert code == 0, err
    assert "encoder.mu.weight" in out and "all gradients agree" in out and " NO" not in out


def test_dump_show_diff_render(capsys, run_dir, tmp_path):
    graphs = sorted((run_dir / "graphs").glob("*.json"))
    assert len(graphs) == 2
    code, out, err = cli(capsys, "dump", "show", graphs[0])
    assert code == 0 and "eps" in out and "sigma*eps" in out
    code, out, err = cli(capsys, "dump", "diff", graphs[0], graphs[1])
    assert code == 0 and "graph diff" in out
    if shutil.which("dot"):
        code, out, err = cli(capsys, "dump", "render", graphs[0], "--out", tmp_path / "g.svg")
        assert code == 0 and (tmp_path / "g.svg").read_text().lstrip().startswith("<")
    else:
        user_error(capsys, "dump", "render", graphs[0], match="install Graphviz")


def test_dump_render_without_graphviz(capsys, run_dir, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    graph = min((run_dir / "graphs").glob("*.dot"))
    user_error(capsys, "dump", "render", graph, match="install Graphviz")


def test_user_errors(capsys, run_dir, tmp_path):
    ckpt = run_dir / "checkpoint.npz"
    user_error(capsys, "eval", "--checkpoint", tmp_path / "nope.npz", match="nope.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(ckpt.read_bytes()[:300])
    user_error(capsys, "eval", "--checkpoint", broken, match="broken.npz")
    user_error(capsys, "eval", "--checkpoint", ckpt, "-k", 0, "--limit", 5, match="-k")
    user_error(capsys, "eval", "--checkpoint", ckpt, "--limit", 0, match="--limit")
    user_error(capsys, "eval", "--checkpoint", ckpt, "--data", tmp_path / "no-mnist", "--limit", 5, match="no-mnist")
    user_error(capsys, "eval", "--checkpoint", ckpt, "--threads", 0, "--limit", 5, match="threads")
    user_error(capsys, "sample", "--checkpoint", ckpt, "--out", tmp_path / "missing" / "s.png", match="does not exist")
    user_error(capsys, "sample", "--checkpoint", ckpt, "--out", tmp_path / "s.jpg", match=".png")
    user_error(capsys, "sample", "--checkpoint", ckpt, "--out", tmp_path / "s.png", "-n", 0, match="-n")
    user_error(capsys, "reconstruct", "--checkpoint", ckpt, "--out", tmp_path / "r.png", "-n", 0, match="-n")
    user_error(capsys, "explain", "--checkpoint", ckpt, match="6-4-2")
    user_error(capsys, "explain", "--steps", -1, match="--steps")
    user_error(capsys, "explain", "--steps", 0, "--index", 10**6, match="--index")
    user_error(capsys, "gradcheck", "--batch", 0, match="--batch")
    user_error(capsys, "dump", "show", tmp_path / "none.json", match="none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    user_error(capsys, "dump", "show", bad, match="bad.json")
    user_error(capsys, "dump", "diff", bad, bad, match="bad.json")
    user_error(capsys, "dump", "show", tmp_path, match="not a file")
    user_error(capsys, "dump", "show", ckpt, match=".json")


def test_reconstruct_needs_an_image_model(capsys, tmp_path):
    assert cli(capsys, "explain", "--steps", 5, "--save", tmp_path / "d.npz")[0] == 0
    user_error(capsys, "sample", "--checkpoint", tmp_path / "d.npz", "--out", tmp_path / "s.png", match="square")
    user_error(capsys, "reconstruct", "--checkpoint", tmp_path / "d.npz", "--out", tmp_path / "r.png", match="square")


def _rewrite_checkpoint(src, dst, change):
    """Copy a checkpoint with `change(arrays)` applied to its entries (meta is a uint8 JSON blob)."""
    import numpy as np

    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    return dst


def test_damaged_checkpoints_are_one_line_errors(capsys, run_dir, tmp_path):
    import numpy as np

    ckpt = run_dir / "checkpoint.npz"

    def meta_list(a):
        a["meta"] = np.frombuffer(b"[1, 2]", dtype=np.uint8)

    def text_param(a):
        a["model/encoder.mu.bias"] = np.array(["x", "y"])

    def drop_adam_state(a):
        del a["optim/0/exp_avg"]

    for change, match in ((meta_list, "not a JSON object"), (text_param, "not floats"),
                          (drop_adam_state, "expected ['exp_avg', 'exp_avg_sq', 'step']")):  # fmt: skip
        bad = _rewrite_checkpoint(ckpt, tmp_path / f"{change.__name__}.npz", change)
        if change is not drop_adam_state:  # eval needs no optimizer state
            user_error(capsys, "eval", "--checkpoint", bad, "-k", "2", "--limit", "4", "--quiet", match=match)
        user_error(capsys, "train", "--resume", bad, "--out", tmp_path / "r", "--quiet", match=match)


def test_bad_output_folder_and_thread_count(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    user_error(capsys, "train", "--out", tmp_path / "file", "--epochs", "1", match="is not a folder")
    user_error(capsys, "train", "--threads", "99999999999", "--epochs", "1", "--out", tmp_path, match="threads")


def test_bad_minigrad_environment_is_one_line(tmp_path):
    import os

    for var, value in (("MINIGRAD_BACKEND", "cuda"), ("MINIGRAD_NUM_THREADS", "abc")):
        done = subprocess.run([sys.executable, "-m", "vae", "gradcheck"], capture_output=True, text=True,
                              timeout=120, env={**os.environ, var: value}, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def _edit_meta(src, dst, change):
    """Copy a checkpoint with `change(meta)` applied to its JSON meta."""
    import numpy as np

    def edit(arrays):
        meta = json.loads(arrays["meta"].tobytes())
        change(meta)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    return _rewrite_checkpoint(src, dst, edit)


def _set(*keys, value):
    """change(meta) setting meta[keys[0]][keys[1]]... to value."""

    def change(meta):
        for key in keys[:-1]:
            meta = meta[key]
        meta[keys[-1]] = value

    return change


@pytest.mark.parametrize("keys, value, match", [
    (("config", "seed"), "abc", "seed must be a non-negative integer, got 'abc'"),
    (("config", "seed"), -1, "seed must be a non-negative integer, got -1"),
    (("config", "seed"), True, "seed must be a non-negative integer, got True"),
    (("config", "lr"), True, "learning rate must be a positive number, got True"),
    (("config", "data"), 5, "data must be 'embedded' or a folder name, got 5"),
    (("epoch",), -3, "meta field 'epoch' must be a non-negative integer, got -3"),
    (("epoch",), 1.5, "meta field 'epoch' must be a non-negative integer, got 1.5"),
    (("step",), "9", "meta field 'step' must be a non-negative integer, got '9'"),
])  # fmt: skip
def test_invalid_saved_settings_name_the_file_and_field(capsys, run_dir, tmp_path, keys, value, match):
    bad = _edit_meta(run_dir / "checkpoint.npz", tmp_path / "edited.npz", _set(*keys, value=value))
    err = user_error(capsys, "eval", "--checkpoint", bad, "-k", "2", "--limit", "4", "--quiet", match=match)
    assert "edited.npz" in err
    err = user_error(capsys, "train", "--resume", bad, "--out", tmp_path / "r", "--quiet", match=match)
    assert "edited.npz" in err and not (tmp_path / "r" / "checkpoint.npz").exists()


def test_damaged_optimizer_state_is_one_line_error(capsys, run_dir, tmp_path):
    import numpy as np

    ckpt = run_dir / "checkpoint.npz"

    def nan_exp_avg(a):
        a["optim/0/exp_avg"] = np.full_like(a["optim/0/exp_avg"], np.nan)

    def inf_exp_avg_sq(a):
        a["optim/3/exp_avg_sq"] = np.full_like(a["optim/3/exp_avg_sq"], np.inf)

    def negative_exp_avg_sq(a):
        a["optim/1/exp_avg_sq"] = -np.ones_like(a["optim/1/exp_avg_sq"])

    for change, match in ((nan_exp_avg, "'optim/0/exp_avg' contains NaN or Inf"),
                          (inf_exp_avg_sq, "'optim/3/exp_avg_sq' contains NaN or Inf"),
                          (negative_exp_avg_sq, "'optim/1/exp_avg_sq' has negative values")):  # fmt: skip
        bad = _rewrite_checkpoint(ckpt, tmp_path / f"{change.__name__}.npz", change)
        for argv in (("eval", "--checkpoint", bad, "-k", "2", "--limit", "4"),
                     ("train", "--resume", bad, "--out", tmp_path / "r")):  # fmt: skip
            err = user_error(capsys, *argv, "--quiet", match=match)
            assert bad.name in err
    bad = _edit_meta(ckpt, tmp_path / "defaults_list.npz", _set("optimizer", "defaults", value=[1, 2]))
    err = user_error(capsys, "train", "--resume", bad, "--out", tmp_path / "r", "--quiet",
                     match="meta field 'optimizer.defaults' must be a JSON object")  # fmt: skip
    assert "defaults_list.npz" in err and not (tmp_path / "r" / "checkpoint.npz").exists()


# These rely on minigrad's Optimizer.load_state_dict checking the hyperparameters it is given
# (ValueError/TypeError naming defaults['...']); train --resume adds the checkpoint's name.
@pytest.mark.parametrize("key, value", [("lr", "abc"), ("lr", -1), ("eps", None), ("betas", [0.9])])
def test_invalid_optimizer_defaults_name_the_file_and_field(capsys, run_dir, tmp_path, key, value):
    bad = _edit_meta(run_dir / "checkpoint.npz", tmp_path / "edited.npz", _set("optimizer", "defaults", key, value=value))
    err = user_error(capsys, "train", "--resume", bad, "--out", tmp_path / "r", "--quiet", match=f"defaults['{key}']")
    assert "edited.npz" in err and "optimizer state is invalid" in err
    assert not (tmp_path / "r" / "checkpoint.npz").exists()


def test_sample_and_reconstruct_sizes_are_bounded(capsys, run_dir, tmp_path):
    ckpt = run_dir / "checkpoint.npz"
    assert images.MAX_SAMPLES == 10_000 and images.MAX_PIXELS == 64_000_000  # as documented in --help
    user_error(capsys, "sample", "--checkpoint", ckpt, "--out", tmp_path / "s.png", "-n", 100_000, "--scale", 16,
               match="-n must be at most 10,000, got 100000")  # fmt: skip
    user_error(capsys, "sample", "--checkpoint", ckpt, "--out", tmp_path / "s.png", "-n", 10_000, "--scale", 3,
               match="the image would be 9006x9006 pixels, more than the limit of 64,000,000")  # fmt: skip
    user_error(capsys, "reconstruct", "--checkpoint", ckpt, "--out", tmp_path / "r.png", "-n", 5000, "--scale", 16,
               match="use a smaller -n or --scale")  # fmt: skip
    assert not list(tmp_path.iterdir())


def _idx(array):
    import struct

    import numpy as np

    array = np.asarray(array, dtype=np.uint8)
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _image_folder(path, h, w, n_train=60, n_test=10):
    """An MNIST-style folder of h x w random images."""
    import numpy as np

    rng = np.random.default_rng(0)
    path.mkdir()
    for stem, shape in (("train-images-idx3-ubyte", (n_train, h, w)), ("t10k-images-idx3-ubyte", (n_test, h, w)),
                        ("train-labels-idx1-ubyte", (n_train,)), ("t10k-labels-idx1-ubyte", (n_test,))):  # fmt: skip
        (path / stem).write_bytes(_idx(rng.integers(0, 256 if "images" in stem else 10, shape)))
    return path


def test_images_keep_the_shape_the_model_was_trained_on(capsys, tmp_path):
    # 8 x 10 images: 80 inputs, which is no square; a 16 x 36 set once came out as 24 x 24 tiles
    folder = _image_folder(tmp_path / "d", 8, 10)
    out = tmp_path / "run"
    assert cli(capsys, "train", "--data", folder, "--epochs", 1, "--batch-size", 30, "--hidden", 4, "--latent", 2,
               "--out", out, "--quiet")[0] == 0  # fmt: skip
    ckpt = out / "checkpoint.npz"
    assert cli(capsys, "reconstruct", "--checkpoint", ckpt, "--out", tmp_path / "r.png", "-n", 2, "--scale", 1)[0] == 0
    # a row of 2 inputs and their reconstructions: four 8 x 10 tiles, 2-pixel gaps
    assert images.read_png(tmp_path / "r.png").shape == (8 + 4, 4 * (10 + 2) + 2)
    assert cli(capsys, "sample", "--checkpoint", ckpt, "--out", tmp_path / "s.png", "-n", 1, "--scale", 1)[0] == 0
    assert images.read_png(tmp_path / "s.png").shape == (8 + 4, 10 + 4)
    other = _image_folder(tmp_path / "d2", 10, 8)  # as many pixels, another shape
    user_error(capsys, "eval", "--checkpoint", ckpt, "--data", other, "-k", 2, "--quiet",
               match="the data's images are 10x8 but the model was trained on 8x10 images")  # fmt: skip

    def bad_shape(arrays):
        import numpy as np

        meta = json.loads(arrays["meta"].tobytes())
        meta["image_shape"] = [9, 9]
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    bad = _rewrite_checkpoint(ckpt, tmp_path / "bad.npz", bad_shape)
    user_error(capsys, "sample", "--checkpoint", bad, "--out", tmp_path / "x.png", match="meta field 'image_shape'")


@pytest.mark.parametrize("command", ["train", "eval", "sample", "explain", "gradcheck"])
def test_a_negative_seed_names_the_option(capsys, command, tmp_path):
    extra = {"eval": ["--checkpoint", tmp_path / "c.npz"], "sample": ["--checkpoint", tmp_path / "c.npz", "--out",
             tmp_path / "s.png"]}.get(command, [])  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main([command, *map(str, extra), "--seed", "-1"])
    assert exc.value.code == 2
    assert "argument --seed: must be a non-negative integer, got -1" in capsys.readouterr().err


def test_resume_without_out_goes_on_in_the_checkpoint_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = ["--batch-size", "500", "--hidden", "8", "--latent", "2", "--quiet"]
    assert cli(capsys, "train", "--epochs", 1, "--seed", 7, *tiny)[0] == 0  # into runs/latest
    latest = (tmp_path / "runs" / "latest" / "checkpoint.npz").read_bytes()
    assert cli(capsys, "train", "--epochs", 1, "--out", "exp1", *tiny)[0] == 0
    assert cli(capsys, "train", "--resume", "exp1/checkpoint.npz", "--epochs", 2, "--quiet")[0] == 0
    assert (tmp_path / "runs" / "latest" / "checkpoint.npz").read_bytes() == latest  # another run, untouched
    assert json.loads((tmp_path / "exp1" / "history.json").read_text())[-1]["epoch"] == 2


def test_dump_steps_must_be_steps_the_run_trains(capsys, run_dir, tmp_path):
    # the embedded set in batches of 500: 9 steps per epoch
    user_error(capsys, "train", "--epochs", 1, "--batch-size", 500, "--hidden", 8, "--latent", 2, "--out",
               tmp_path / "a", "--quiet", "--dump-graph", "5000,1", match="step 5000 is beyond the last step (9)")  # fmt: skip
    user_error(capsys, "train", "--resume", run_dir / "checkpoint.npz", "--epochs", 2, "--out", tmp_path / "b",
               "--quiet", "--dump-graph", "3", match="step 3 was trained before the checkpoint (step 9)")  # fmt: skip
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_interrupt_message_says_what_the_run_left(capsys, tmp_path, monkeypatch):
    import vae.cli

    def interrupted(config, out, write=False, **kwargs):
        if write:
            (out / "checkpoint.npz").write_bytes(b"epoch 1")
        raise KeyboardInterrupt

    args = ["train", "--epochs", "1", "--quiet", "--out"]
    monkeypatch.setattr(vae.cli, "train", interrupted)
    assert cli(capsys, *args, tmp_path / "new")[2] == (
        f"interrupted; no epoch completed, so no checkpoint was written to {tmp_path / 'new'}\n")
    old = tmp_path / "old"
    old.mkdir()
    (old / "checkpoint.npz").write_bytes(b"an earlier run")
    import os

    os.utime(old / "checkpoint.npz", (0, 0))
    assert "no epoch of this run completed" in cli(capsys, *args, old)[2]
    monkeypatch.setattr(vae.cli, "train", lambda config, out, **kw: interrupted(config, out, write=True))
    assert "holds this run's last completed epoch (--resume" in cli(capsys, *args, old)[2]
