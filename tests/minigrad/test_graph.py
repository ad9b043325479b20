"""Graph dumps (minigrad.graph): a hand-built VAE sampling step shows where gradient flows."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad import graph
from minigrad.nn.module import Parameter


def vae_step(seed: int = 0, w_mu: np.ndarray | None = None, w_lv: np.ndarray | None = None):
    """x -> mu, logvar -> sigma = exp(0.5 logvar); z = mu + sigma * eps; loss = sum z^2 + KL-ish."""
    rng = np.random.default_rng(seed)
    x = mg.Tensor(rng.random((4, 3), dtype=np.float32), name="x")
    W_mu = Parameter(
        rng.standard_normal((3, 2)) if w_mu is None else w_mu, dtype=np.float32, name="W_mu"
    )
    W_lv = Parameter(
        rng.standard_normal((3, 2)) if w_lv is None else w_lv, dtype=np.float32, name="W_lv"
    )
    mu = (x @ W_mu).named("mu")
    logvar = (x @ W_lv).named("logvar")
    sigma = (0.5 * logvar).exp().named("sigma")
    eps = mg.Tensor(rng.standard_normal((4, 2), dtype=np.float32), requires_grad=False, name="eps")
    se = (sigma * eps).named("sigma*eps")
    z = (mu + se).named("z")
    loss = ((z * z).sum() + (mu * mu).sum() + logvar.exp().sum()).named("loss")
    with mg.retain_grads():
        loss.backward()
    return loss, {"W_mu": W_mu, "W_lv": W_lv}


def by_name(dump: dict) -> dict[str, dict]:
    return {n["name"]: n for n in dump["nodes"] if n["name"]}


def test_json_nodes_topological_and_gradient_flow():
    loss, _ = vae_step()
    dump = graph.to_json(loss)
    assert dump["schema"] == "minigrad.graph" and dump["version"] == 1 and dump["root"] == loss.id
    seen: set[int] = set()
    for n in dump["nodes"]:
        assert all(i in seen for i in n["inputs"]), f"node {n['id']} before its inputs"
        seen.add(n["id"])
    assert dump["nodes"][-1]["id"] == loss.id
    nodes = by_name(dump)
    eps = nodes["eps"]
    assert (
        eps["grad"] is None
        and eps["requires_grad"] is False
        and eps["is_leaf"]
        and eps["kind"] == "input"
    )
    assert nodes["x"]["kind"] == "input" and nodes["W_mu"]["kind"] == "param"
    for name in ("mu", "sigma", "logvar", "z", "W_mu", "W_lv"):
        g = nodes[name]["grad"]
        assert g is not None and g["norm"] > 0, name
        assert set(g) >= {"norm", "mean", "max_abs"}
    assert (
        nodes["mu"]["shape"] == [4, 2]
        and nodes["mu"]["dtype"] == "float32"
        and nodes["mu"]["op"] == "matmul"
    )
    assert set(nodes["mu"]["value"]) >= {"mean", "std", "min", "max"}
    prod = nodes["sigma*eps"]
    edges = {(e["src"], e["dst"]): e["grad_flowed"] for e in dump["edges"]}
    assert edges[(eps["id"], prod["id"])] is False
    assert edges[(nodes["sigma"]["id"], prod["id"])] is True
    assert edges[(nodes["x"]["id"], nodes["mu"]["id"])] is False
    assert edges[(nodes["W_mu"]["id"], nodes["mu"]["id"])] is True
    sums = [n for n in dump["nodes"] if n["op"] == "sum"]
    assert sums and sums[0]["params"] == {"axes": [0, 1], "keepdims": False}
    json.dumps(dump, allow_nan=False)  # strict JSON


def test_grad_norm_matches_numpy():
    loss, params = vae_step()
    nodes = by_name(graph.to_json(loss))
    g = params["W_mu"].grad.data.astype(np.float64)
    assert nodes["W_mu"]["grad"]["norm"] == pytest.approx(np.linalg.norm(g))
    assert nodes["W_mu"]["value"]["mean"] == pytest.approx(params["W_mu"].data.mean())


def test_text_lines_and_header():
    loss, _ = vae_step()
    text = graph.to_text(loss)
    lines = text.splitlines()
    assert lines[0].startswith("# ") and "columns" in text
    body = [ln for ln in lines if not ln.startswith("#")]
    assert len(body) == len(graph.to_json(loss)["nodes"])
    eps_line = next(ln for ln in body if " eps = " in ln)
    assert (
        "leaf input" in eps_line
        and eps_line.rstrip().endswith("no grad")
        and "f32[4,2]" in eps_line
    )
    assert "leaf param" in next(ln for ln in body if " W_mu = " in ln)
    assert re.search(r"%\d+ sigma\*eps = mul\(%\d+ sigma, %\d+ eps\)", text)
    assert re.search(r"%\d+ mu = matmul\(%\d+ x, %\d+ W_mu\)\s+f32\[4,2\]\s+value mean=\S+ std=\S+ min=\S+ max=\S+"
                     r"\s+\| grad norm=", text)  # fmt: skip
    assert "leaf const" in text  # the 0.5 in 0.5 * logvar
    assert graph.render_text(graph.to_json(loss)) == text


def test_dot_cluster_and_edge_styles():
    loss, _ = vae_step()
    dot = graph.to_dot(loss, cluster=graph.REPARAM_CLUSTER)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert "subgraph cluster_reparameterization" in dot and 'label="reparameterization"' in dot
    cluster = dot[dot.index("subgraph cluster_") :]
    cluster = cluster[: cluster.index("  }")]
    nodes = by_name(graph.to_json(loss))
    for name in ("mu", "sigma", "sigma*eps", "eps", "z"):
        assert f"n{nodes[name]['id']} [" in cluster, name
    assert f"n{nodes['W_mu']['id']} [" not in cluster
    eps_edge = re.search(rf"n{nodes['eps']['id']} -> n{nodes['sigma*eps']['id']} \[([^\]]*)\]", dot)
    sig_edge = re.search(
        rf"n{nodes['sigma']['id']} -> n{nodes['sigma*eps']['id']} \[([^\]]*)\]", dot
    )
    assert "dashed" in eps_edge.group(1) and "dashed" not in sig_edge.group(1)
    assert "penwidth=2" in sig_edge.group(1)
    assert 'label="W_mu\\nleaf param\\nf32[3,2]' in dot
    assert 'label="0.5\\nleaf const\\nf32[]' in dot  # the 0.5 of 0.5 * logvar shows its value
    assert "subgraph" not in graph.to_dot(loss)  # no clusters unless asked


def test_save_load_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))  # no graphviz: no SVG, no warning
    loss, _ = vae_step()
    paths = graph.save(loss, tmp_path / "dumps" / "step1", meta={"step": 1})
    assert [p.name for p in paths] == ["step1.txt", "step1.json", "step1.dot"]
    loaded = graph.load_json(tmp_path / "dumps" / "step1.json")
    assert loaded == graph.to_json(loss, meta={"step": 1})
    assert graph.render_text(loaded) == (tmp_path / "dumps" / "step1.txt").read_text()
    assert (tmp_path / "dumps" / "step1.dot").read_text().startswith("digraph")
    assert graph.save(loss, tmp_path / "only", formats=("json",)) == [tmp_path / "only.json"]
    with pytest.raises(ValueError, match="unknown format"):
        graph.save(loss, tmp_path / "bad", formats=("png",))


def _fake_dot(dirpath: Path, body: str) -> None:
    dirpath.mkdir()
    exe = dirpath / "dot"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(sys.platform == "win32", reason="shell-script stand-in for graphviz")
def test_svg_rendered_when_dot_exists_and_failure_is_a_warning(tmp_path, monkeypatch):
    loss, _ = vae_step()
    _fake_dot(
        tmp_path / "ok",
        'while [ $# -gt 0 ]; do [ "$1" = -o ] && echo "<svg/>" > "$2"; shift; done\n',
    )
    monkeypatch.setenv("PATH", str(tmp_path / "ok") + os.pathsep + os.environ.get("PATH", ""))
    paths = graph.save(loss, tmp_path / "g", formats=("dot",))
    assert (
        paths == [tmp_path / "g.dot", tmp_path / "g.svg"]
        and (tmp_path / "g.svg").read_text() == "<svg/>\n"
    )
    _fake_dot(tmp_path / "broken", 'echo "syntax error in line 1" >&2; exit 1\n')
    monkeypatch.setenv("PATH", str(tmp_path / "broken"))
    with pytest.warns(RuntimeWarning, match="syntax error"):
        paths = graph.save(loss, tmp_path / "h", formats=("dot",))
    assert paths == [tmp_path / "h.dot"]


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "top level"),
        ('{"schema": "other", "version": 1, "nodes": []}', "schema"),
        ('{"schema": "minigrad.graph", "version": 99, "nodes": []}', "version"),
        ('{"schema": "minigrad.graph", "version": 1, "root": 1, "nodes": [{"id": 1}]}', "lacks"),
        ("[" * 100_000, "invalid JSON: nested too deeply"),  # a RecursionError in json.loads
        ('{"root": ' + "1" * 5000 + "}", "invalid JSON: Exceeds the limit"),  # int(str) refuses
    ],
)
def test_load_json_rejects_bad_files(tmp_path, content, problem):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as info:
        graph.load_json(path)
    assert "broken.json" in str(info.value)


def test_load_json_rejects_dangling_input(tmp_path):
    loss, _ = vae_step()
    dump = graph.to_json(loss)
    dump["nodes"] = dump["nodes"][1:]  # drop x, which mu and logvar use
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(dump))
    with pytest.raises(ValueError, match=r"cut\.json.*do not come earlier"):
        graph.load_json(path)


STAT = 'a number, "nan", "inf", "-inf" or null'


BAD_FIELDS = [  # where: a node's name or a top-level key, then keys inside it; the bad value
    (("mu", "value", "mean"), [1], f"value.mean [1] is not {STAT}"),
    (("mu", "value", "mean"), {}, f"value.mean {{}} is not {STAT}"),
    (("mu", "value", "std"), "abc", f"value.std 'abc' is not {STAT}"),
    (("mu", "value", "max"), True, f"value.max True is not {STAT}"),
    (("mu", "value", "min"), 10**400, "value.min 1000000"),  # too big for a float
    (("mu", "value", "nan"), "1", "value.nan '1' is not a non-negative integer"),
    (("mu", "value", "inf"), -1, "value.inf -1 is not a non-negative integer"),
    (("mu", "grad", "norm"), [1], f"grad.norm [1] is not {STAT}"),
    (("mu", "grad", "norm"), "abc", f"grad.norm 'abc' is not {STAT}"),
    (("mu", "grad", "max_abs"), {}, f"grad.max_abs {{}} is not {STAT}"),
    (("mu", "grad", "nan"), 0.5, "grad.nan 0.5 is not a non-negative integer"),
    (("mu", "grad"), [], "grad [] is not an object or null"),
    (("mu", "value"), None, "value None is not an object"),
    (("mu", "params"), [], "params [] is not an object"),
    (("mu", "params"), "act=relu", "params 'act=relu' is not an object"),
    (("mu", "inputs"), [[1]], "inputs [[1]] is not a list of integers"),
    (("mu", "inputs"), [True], "inputs [True] is not a list of integers"),
    (("mu", "kind"), "weird", "kind 'weird' is not one of 'op', 'param', 'input', 'const'"),
    (("mu", "shape"), [4, -2], "shape [4, -2] is not a list of non-negative integers"),
    (("mu", "shape"), [True], "shape [True] is not a list of non-negative integers"),
    (("mu", "name"), 5, "name 5 is not a string or null"),
    (("mu", "op"), None, "op None is not a string"),
    (("mu", "dtype"), ["float32"], "dtype ['float32'] is not a string"),
    (("mu", "is_leaf"), "no", "is_leaf 'no' is not a boolean"),
    (("mu", "requires_grad"), 1, "requires_grad 1 is not a boolean"),
    (("mu", "id"), True, "has a bad or repeated id True"),
    (("summary",), [1], "summary [1] is not an object"),
    (("summary", "op"), "48", "summary.op '48' is not a non-negative integer"),
    (("meta",), [1], "meta [1] is not an object"),
    (("root",), [1], "root [1] is not one of the nodes"),
    (("edges", 0, "src"), [1], "edge 0 is malformed"),
    (("edges", 0, "dst"), {}, "edge 0 is malformed"),
]


@pytest.mark.parametrize(
    "where, bad, problem",
    BAD_FIELDS,
    ids=[f"{'.'.join(map(str, w))}={b!r:.12}" for w, b, _ in BAD_FIELDS],
)
def test_load_json_names_file_node_and_bad_field(tmp_path, where, bad, problem):
    good = graph.to_json(vae_step()[0], meta={"step": 1})
    dump = json.loads(json.dumps(good))
    first, *keys = where
    node = by_name(dump).get(first)
    obj = dump if node is None else node
    path = where if node is None else keys
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = bad
    file = tmp_path / "edited.json"
    file.write_text(json.dumps(dump))
    with pytest.raises(ValueError) as info:
        graph.load_json(file)
    message = str(info.value)
    assert message.startswith(f"{file}: not a valid minigrad graph dump: ") and problem in message
    if node is not None:
        index = dump["nodes"].index(node)
        assert f"node {index} " in message
        assert keys == ["id"] or f"node {index} (%{node['id']}): " in message
    with pytest.raises(ValueError, match="diff: dump B is not a valid minigrad graph dump"):
        graph.diff(good, dump)


def test_load_json_accepts_what_the_writer_writes(tmp_path):
    """Non-finite statistics as strings, nulls for an empty tensor, no grad, slices and an array
    summary in params, meta with a null."""
    p = mg.Tensor(np.array(2.0), requires_grad=True, name="p")
    empty = mg.Tensor(np.zeros((0, 3)), name="empty")
    bad = mg.Tensor(np.array([1.0, np.inf, -np.inf]), name="bad")
    x = mg.Tensor(np.arange(40.0).reshape(8, 5), requires_grad=True, name="x")
    picked = mg.where(np.eye(4, 5) > 0, x[1:8:2, ::-1, ...], 0.0).sum(axis=(0,), keepdims=True)
    out = ((p * bad).sum() + (empty * p).sum() + picked.sum()).named("out")
    with mg.retain_grads():
        out.backward()
    meta = {"step": 3, "note": None, "lr": 1e-3}
    graph.save(out, tmp_path / "g", formats=("json",), meta=meta)
    loaded = graph.load_json(tmp_path / "g.json")
    assert loaded == json.loads(json.dumps(graph.to_json(out, meta=meta)))
    nodes = by_name(loaded)
    assert nodes["bad"]["value"]["min"] == "-inf" and nodes["bad"]["value"]["max"] == "inf"
    assert nodes["bad"]["value"]["mean"] == "nan" and nodes["empty"]["value"]["std"] is None
    assert nodes["p"]["grad"]["norm"] == "nan" and nodes["bad"]["grad"] is None
    conds = [n["params"]["cond"] for n in loaded["nodes"] if n["op"] == "where"]
    assert conds == [{"array": {"shape": [4, 5], "dtype": "bool"}}]
    assert graph.render_text(loaded) and graph.render_dot(loaded)
    assert "changed nodes: 0" in graph.diff(loaded, loaded)


def test_diff_reports_changes_between_steps():
    rng = np.random.default_rng(1)
    w_mu, w_lv = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    a = graph.to_json(vae_step(0, w_mu, w_lv)[0], meta={"step": 1})
    b = graph.to_json(vae_step(0, w_mu * 0.5, w_lv)[0], meta={"step": 100})
    report = graph.diff(a, b)
    assert "step=1" in report and "step=100" in report
    assert "structure: identical" in report
    assert re.search(r"^  mu \(matmul\): mean .* -> .*grad norm", report, re.MULTILINE)
    assert re.search(r"^  W_mu \(leaf\): .*mean", report, re.MULTILINE)
    assert not re.search(
        r"^  eps ", report, re.MULTILINE
    )  # same noise, same values, never a gradient
    assert re.search(
        r"^  loss \(add\): value \S+ -> \S+ \([+-]", report, re.MULTILINE
    )  # a scalar: one number
    assert re.search(
        r"^  #\d+ \(mul\): ", report, re.MULTILINE
    )  # unnamed nodes matched by position
    same = graph.diff(a, a)
    assert "changed nodes: 0" in same
    with pytest.raises(ValueError, match="dump B"):
        graph.diff(a, {"schema": "something else"})


def test_diff_reports_structure():
    a = graph.to_json(vae_step()[0])
    x = mg.Tensor(np.ones((4, 3), dtype=np.float32), name="x")
    w = Parameter(np.ones((3, 5)), dtype=np.float32, name="W_mu")
    b = graph.to_json((x @ w).named("mu").sum().named("loss"))
    report = graph.diff(a, b)
    assert "only in A: sigma" in report
    assert "mu: shape [4, 2] -> [4, 5]" in report


def test_zero_d_empty_and_nan():
    p = mg.Tensor(np.array(2.0), requires_grad=True, name="p")
    empty = mg.Tensor(np.zeros((0, 3)), name="empty")
    bad = mg.Tensor(np.array([1.0, np.nan, np.inf]), name="bad")
    out = ((p * bad).sum() + (empty * p).sum()).named("out")
    with mg.retain_grads():
        out.backward()
    dump = graph.to_json(out)
    text = json.dumps(dump, allow_nan=False)
    nodes = by_name(dump)
    assert (
        nodes["p"]["shape"] == []
        and nodes["p"]["value"]["mean"] == 2.0
        and nodes["p"]["value"]["std"] == 0.0
    )
    assert nodes["empty"]["value"]["mean"] is None and nodes["empty"]["value"]["max"] is None
    assert nodes["bad"]["value"]["nan"] == 1 and nodes["bad"]["value"]["inf"] == 1
    assert nodes["bad"]["value"]["mean"] == "nan" and nodes["bad"]["value"]["max"] == "nan"
    assert nodes["p"]["grad"]["norm"] == "nan"
    assert nodes["out"]["value"]["mean"] == "nan"
    loaded = json.loads(text)
    rendered = graph.render_text(loaded)
    assert nodes["empty"]["kind"] == "input"
    assert (
        "value (empty)" in rendered
        and "grad (empty)" in rendered
        and "NaN=1!" in rendered
        and "f64[0,3]" in rendered
    )
    assert "value=2" in rendered
    assert graph.diff(loaded, loaded).count("changed nodes: 0") == 1


def test_op_params_json_safe():
    x = mg.Tensor(np.arange(40.0).reshape(8, 5), requires_grad=True, name="x")
    y = x[1:8:2, ::-1].named("sliced")
    cond = np.arange(20).reshape(4, 5) % 2 == 0  # 20 elements: summarized, not listed
    w = mg.where(cond, y, mg.Tensor(np.zeros((4, 5)))).named("w")
    dump = graph.to_json(w.sum())
    nodes = by_name(dump)
    assert nodes["sliced"]["params"] == {"key": ["1:8:2", "::-1"]}
    assert nodes["w"]["params"]["cond"] == {"array": {"shape": [4, 5], "dtype": "bool"}}
    json.dumps(dump, allow_nan=False)
    assert "index[key=" in graph.to_text(w)


def test_deep_chain_has_no_recursion_limit():
    depth = 30_000
    x = mg.Tensor(np.float32(1.0), requires_grad=True, name="x")
    y = x
    for _ in range(depth):
        y = y.relu()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # a recursive walk would fail long before 30,000 levels
    try:
        start = time.perf_counter()
        text = graph.to_text(y)
        dump = graph.to_json(y)
        elapsed = time.perf_counter() - start
    finally:
        sys.setrecursionlimit(limit)
    assert len(dump["nodes"]) == depth + 1 and dump["nodes"][0]["name"] == "x"
    assert text.count("\n") == depth + 1 + 4  # header lines + one line per node
    assert elapsed < 5.0, f"dumping a {depth}-deep chain took {elapsed:.1f} s"


@pytest.mark.slow
def test_hundred_thousand_deep_chain():
    x = mg.Tensor(np.float32(1.0), requires_grad=True, name="x")
    y = x
    for _ in range(100_000):
        y = y.relu()
    with mg.retain_grads():
        y.backward()
    dump = graph.to_json(y)
    assert len(dump["nodes"]) == 100_001 and dump["nodes"][50_000]["grad"]["norm"] == 1.0
    assert graph.to_text(y).count("\n") == 100_001 + 4
    assert graph.to_dot(y).count(" -> ") == 100_000


@pytest.mark.parametrize("cluster", [{"g": "mu"}, ["mu"], {1: ["mu"]}, {"g": [["mu"]]}])
def test_to_dot_refuses_a_malformed_cluster(cluster):
    x = mg.tensor([1.0, 2.0], requires_grad=True).named("mu")
    with pytest.raises(TypeError, match="cluster must map a label to a list of node names"):
        graph.to_dot((x * 2).sum(), cluster=cluster)
    assert "subgraph cluster" in graph.to_dot((x * 2).sum(), cluster={"g": (n for n in ["mu"])})


@pytest.mark.parametrize("prefix", ["", "runs/", "."])
def test_save_refuses_a_folder_as_prefix(tmp_path, monkeypatch, prefix):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match="is a folder or empty"):
        graph.save((mg.tensor([1.0], requires_grad=True) * 2).sum(), prefix)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written beside it


def test_meta_keys_that_collide_as_json_strings_are_refused():
    x = mg.Tensor(np.ones(2), requires_grad=True)
    y = (x * x).sum()
    with pytest.raises(ValueError, match=r"keys 1, '1' of a mapping become the same JSON key '1'"):
        graph.to_json(y, meta={1: "a", "1": "b", "step": 2})
    assert graph.to_json(y, meta={1: "a", "step": 2})["meta"] == {"1": "a", "step": 2}


def test_a_user_op_parameter_whose_keys_collide_dumps_as_text_and_meta_names_one_clash():
    class Look(mg.Function):
        @staticmethod
        def forward(ctx, x, table):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = mg.Tensor(np.ones(2), requires_grad=True)
    y = Look.apply(x, table={1: "a", "1": "b"}).sum()
    node = next(n for n in graph.to_json(y)["nodes"] if n["params"])
    assert node["params"] == {"table": "{1: 'a', '1': 'b'}"}  # the graph still dumps
    with pytest.raises(ValueError, match=r"keys 2, '2' of a mapping become the same JSON key '2';"):
        graph.to_json(y, meta={"step": 1, 2: "a", "2": "b", 3: "c", "3": "d"})
