"""Graph dumps: see where values and gradients flow, as text, JSON or Graphviz DOT.

    import minigrad as mg
    with mg.retain_grads():          # keep .grad on every node, not only on leaves
        loss.backward()
    print(mg.graph.to_text(loss))
    mg.graph.save(loss, "runs/step1", cluster=mg.graph.REPARAM_CLUSTER)

A dump is built from exactly what backward walks: each node's id, op, inputs, shape, dtype,
``requires_grad``, name, and its ``.data`` / ``.grad``. All three formats are rendered from one
JSON-able dict (``to_json``), so a saved ``.json`` can be printed again later (``render_text``)
and two dumps can be compared (``diff``), e.g. step 1 against step 100 of training.

Node kinds: ``op`` (made by an op), ``param`` (a leaf with requires_grad=True: trained),
``input`` (a leaf with requires_grad=False: data, noise such as ``eps``) and ``const`` (a
requires_grad=False leaf with exactly one element: a Python number such as the 0.5 in
``0.5 * logvar``). Gradient never flows into ``input`` or ``const`` nodes.

JSON schema (``{"schema": "minigrad.graph", "version": 1}``; also docs/graph-schema.md)::

    {
      "schema": "minigrad.graph",
      "version": 1,
      "root": 57,                       # id of the tensor the dump was made from
      "meta": {...},                    # optional, whatever the caller passed (e.g. {"step": 100})
      "summary": {"nodes": 57, "edges": 64, "param": 4, "input": 2, "const": 3, "op": 48},
      "nodes": [                        # topological order: every input before its consumers
        {
          "id": 12,                     # Tensor.id, unique within the process
          "op": "linear",               # op name, or "leaf"
          "kind": "op",                 # "op" | "param" | "input" | "const"
          "name": "mu",                 # Tensor.name, or null
          "inputs": [3, 7, 8],          # ids of the inputs, in argument order (repeats allowed)
          "shape": [128, 20],
          "dtype": "float32",
          "requires_grad": true,
          "is_leaf": false,
          "params": {"act": "none"},    # op parameters made JSON-safe ({} for leaves), see below
          "value": {"mean": .., "std": .., "min": .., "max": .., "nan": 0, "inf": 0},
          "grad": {"norm": .., "mean": .., "max_abs": .., "nan": 0, "inf": 0}   # or null
        }, ...
      ],
      "edges": [                        # one per (input, argument position) of every op node
        {"src": 8, "dst": 12, "arg": 2, "grad_flowed": true}, ...
      ]
    }

- Statistics are computed in float64 over all elements. ``nan`` / ``inf`` count the NaN and
  +-Inf elements. A non-finite statistic is written as the *string* ``"nan"``, ``"inf"`` or
  ``"-inf"`` (so the file is strict JSON); ``null`` means "not defined": every statistic of an
  empty tensor is null.
- ``grad`` is null when no gradient is stored on the node: always for requires_grad=False nodes
  (gradient never reaches them), and for intermediate nodes unless backward ran under
  ``minigrad.retain_grads()`` (or the tensor called ``retain_grad()``). ``norm`` is the L2 norm.
- ``grad_flowed`` is true when backward sends gradient along the edge, i.e. the source (and the
  destination) require grad. It describes the graph, so it is set even before backward runs.
- ``params``: numbers, strings, bools and None as they are (non-finite floats as strings),
  tuples as lists, dtypes as their name, slices as ``"start:stop:step"``, ``...`` as ``"..."``;
  arrays of up to 16 elements as nested lists, larger ones as ``{"array": {"shape", "dtype"}}``;
  anything else as a short ``repr`` string.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .autograd import topological_order

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = [
    "REPARAM_CLUSTER",
    "SCHEMA",
    "VERSION",
    "diff",
    "load_json",
    "render_dot",
    "render_text",
    "save",
    "to_dot",
    "to_json",
    "to_text",
]

SCHEMA = "minigrad.graph"
VERSION = 1
REPARAM_CLUSTER: dict[str, list[str]] = {
    "reparameterization": ["mu", "sigma", "sigma*eps", "eps", "z"]
}
"""The VAE's sampling step, for ``to_dot(loss, cluster=REPARAM_CLUSTER)``."""

_SMALL_ARRAY = 16  # op-parameter arrays up to this many elements are written out in full
_SVG_TIMEOUT_S = 60.0
_NODE_KEYS = (
    "id",
    "op",
    "kind",
    "name",
    "inputs",
    "shape",
    "dtype",
    "requires_grad",
    "is_leaf",
    "value",
    "grad",
)


# ---------------------------------------------------------------- walking the graph
def _kind(t: Tensor) -> str:
    if not t.is_leaf:
        return "op"
    if t.requires_grad:
        return "param"
    return "const" if t.data.size == 1 else "input"


# ---------------------------------------------------------------- JSON-safe values
def _num(x: float | np.floating) -> float | str:
    """A float for JSON: finite as is, NaN/Inf as the strings 'nan', 'inf', '-inf'."""
    x = float(x)
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _nonfinite_counts(a: np.ndarray, lo: float, hi: float) -> tuple[int, int]:
    if math.isfinite(lo) and math.isfinite(hi):  # NaN would make min/max NaN, so none here
        return 0, 0
    return int(np.count_nonzero(np.isnan(a))), int(np.count_nonzero(np.isinf(a)))


def _value_stats(data: np.ndarray) -> dict[str, Any]:
    """mean/std/min/max (float64) and NaN/Inf counts; all statistics null for an empty array."""
    if data.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "nan": 0, "inf": 0}
    if data.dtype.kind not in "fiub":
        return {"mean": None, "std": None, "min": None, "max": None, "nan": 0, "inf": 0}
    if data.size == 1:  # fast path: scalars and the links of long chains
        v = float(data.reshape(-1)[0])
        bad = math.isnan(v)
        return {"mean": _num(v), "std": _num(float("nan") if bad or math.isinf(v) else 0.0),
                "min": _num(v), "max": _num(v), "nan": int(bad), "inf": int(math.isinf(v))}  # fmt: skip
    a = data.astype(np.float64, copy=False)
    with np.errstate(all="ignore"):
        lo, hi = float(a.min()), float(a.max())
        mean, std = float(a.mean()), float(a.std())
    nan, inf = _nonfinite_counts(a, lo, hi)
    return {
        "mean": _num(mean),
        "std": _num(std),
        "min": _num(lo),
        "max": _num(hi),
        "nan": nan,
        "inf": inf,
    }


def _grad_stats(grad: Tensor | None) -> dict[str, Any] | None:
    """L2 norm, mean and max |g| of a stored gradient, or None when there is none."""
    if grad is None:
        return None
    g = np.asarray(grad.data if hasattr(grad, "data") else grad)
    if g.size == 0:
        return {"norm": None, "mean": None, "max_abs": None, "nan": 0, "inf": 0}
    if g.size == 1:
        v = float(g.reshape(-1)[0])
        return {"norm": _num(abs(v)), "mean": _num(v), "max_abs": _num(abs(v)),
                "nan": int(math.isnan(v)), "inf": int(math.isinf(v))}  # fmt: skip
    a = g.astype(np.float64, copy=False)
    with np.errstate(all="ignore"):
        absmax = float(np.abs(a).max())
        norm = float(np.sqrt(np.vdot(a, a).real)) if math.isfinite(absmax) else absmax
        mean = float(a.mean())
    nan, inf = _nonfinite_counts(a, absmax, absmax)
    if nan:
        norm = absmax = float("nan")
    return {"norm": _num(norm), "mean": _num(mean), "max_abs": _num(absmax), "nan": nan, "inf": inf}


class _KeyClash(ValueError):
    """A mapping whose keys collide as JSON strings (1 and '1')."""


def _jsonable(v: Any, depth: int = 0) -> Any:
    """An op parameter as JSON: small things as they are, big arrays as a shape/dtype summary."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)) and not isinstance(v, np.bool_):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, (float, np.floating)):
        return _num(v)
    if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
        return np.dtype(v).name
    if isinstance(v, slice):
        parts = ["" if p is None else str(_jsonable(p)) for p in (v.start, v.stop, v.step)]
        return ":".join(parts[:2]) if v.step is None else ":".join(parts)
    if v is Ellipsis:
        return "..."
    if isinstance(v, np.ndarray):
        if v.size <= _SMALL_ARRAY and depth < 4:
            return _jsonable(v.tolist(), depth + 1)
        return {"array": {"shape": list(v.shape), "dtype": v.dtype.name}}
    if isinstance(v, (tuple, list)) and depth < 4:
        if len(v) > 64:
            return f"<{type(v).__name__} of {len(v)} items>"
        return [_jsonable(x, depth + 1) for x in v]
    if isinstance(v, Mapping) and depth < 4 and len(v) <= 64:
        out = {}
        for k, x in v.items():
            key = str(k)
            if key in out:  # JSON keys are strings: 1 and '1' would keep one value
                clash = ", ".join(repr(j) for j in v if str(j) == key)
                raise _KeyClash(f"graph dump: the keys {clash} of a mapping become the same JSON key "
                                f"{key!r}; use distinct string keys")  # fmt: skip
            out[key] = _jsonable(x, depth + 1)
        return out
    return _short(v, 80)


def _op_params(t: Tensor) -> dict[str, Any]:
    ctx = t._ctx
    params = getattr(ctx, "params", None) if ctx is not None else None
    if not params:
        return {}
    return {str(k): _param_json(v) for k, v in params.items()}


def _param_json(v: Any) -> Any:
    """One op parameter as JSON. A mapping whose keys collide as JSON strings is shown as text:
    a user's Function may take any parameter, and its graph must still dump (meta= is the
    caller's own and raises instead)."""
    try:
        return _jsonable(v)
    except _KeyClash:
        return _short(v, 80)


# ---------------------------------------------------------------- to_json
_DTYPE_NAMES: dict[np.dtype, str] = {}


def _dtype_name(dt: np.dtype) -> str:
    """np.dtype.name, cached (it is slow, and a dump asks once per node)."""
    name = _DTYPE_NAMES.get(dt)
    if name is None:
        name = _DTYPE_NAMES[dt] = dt.name
    return name


def to_json(tensor: Tensor, *, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The graph that computed `tensor` as a JSON-able dict (schema in the module docstring)."""
    with _gc_paused():
        return _to_json(tensor, meta)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: building 100,000s of small dicts next to a big live graph otherwise
    triggers full collections over that graph again and again (about a third of the time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _to_json(tensor: Tensor, meta: Mapping[str, Any] | None) -> dict[str, Any]:
    order = topological_order(tensor)
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    counts = {"param": 0, "input": 0, "const": 0, "op": 0}
    for t in order:
        kind = _kind(t)
        counts[kind] += 1
        inputs = t.inputs
        nodes.append({
            "id": t.id,
            "op": t.op,
            "kind": kind,
            "name": t.name,
            "inputs": [p.id for p in inputs],
            "shape": list(t.shape),
            "dtype": _dtype_name(t.dtype),
            "requires_grad": bool(t.requires_grad),
            "is_leaf": t.is_leaf,
            "params": _op_params(t),
            "value": _value_stats(t.data),
            "grad": _grad_stats(t.grad),
        })  # fmt: skip
        for arg, p in enumerate(inputs):
            flowed = bool(p.requires_grad and t.requires_grad)
            edges.append({"src": p.id, "dst": t.id, "arg": arg, "grad_flowed": flowed})
    dump: dict[str, Any] = {"schema": SCHEMA, "version": VERSION, "root": tensor.id}
    if meta is not None:
        dump["meta"] = _jsonable(dict(meta))
    dump["summary"] = {"nodes": len(nodes), "edges": len(edges), **counts}
    dump["nodes"] = nodes
    dump["edges"] = edges
    return dump


# ---------------------------------------------------------------- text
_SHORT_DTYPES: dict[str, str] = {}


def _type_str(dtype: str, shape: Sequence[int]) -> str:
    """'float32', [128, 20] -> 'f32[128,20]' (int64 -> i64, uint8 -> u8, bool stays bool)."""
    short = _SHORT_DTYPES.get(dtype)
    if short is None:
        m = re.fullmatch(r"(uint|int|float|complex)(\d+)", dtype)
        short = ("u" if m.group(1) == "uint" else m.group(1)[0]) + m.group(2) if m else dtype
        _SHORT_DTYPES[dtype] = short
    return f"{short}[{','.join(map(str, shape))}]"


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.4g}"


def _ref(node: Mapping[str, Any]) -> str:
    return f"%{node['id']} {node['name']}" if node.get("name") else f"%{node['id']}"


def _params_str(params: Mapping[str, Any]) -> str:
    if not params:
        return ""
    return "[" + ", ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" if not isinstance(v, str)
                           else f"{k}={v}" for k, v in params.items()) + "]"  # fmt: skip


def _value_str(v: Mapping[str, Any] | None, numel: int) -> str:
    if not v or numel == 0:
        return "value (empty)"
    if numel == 1:
        s = f"value={_fmt(v.get('mean'))}"
    else:
        s = (f"value mean={_fmt(v.get('mean'))} std={_fmt(v.get('std'))} "
             f"min={_fmt(v.get('min'))} max={_fmt(v.get('max'))}")  # fmt: skip
    return s + _bad_str(v)


def _bad_str(stats: Mapping[str, Any]) -> str:
    extra = ""
    if stats.get("nan"):
        extra += f" NaN={stats['nan']}!"
    if stats.get("inf"):
        extra += f" Inf={stats['inf']}!"
    return extra


def _grad_str(node: Mapping[str, Any]) -> str:
    g = node.get("grad")
    if g is not None:
        if g.get("norm") is None:
            return "grad (empty)"
        return f"grad norm={_fmt(g.get('norm'))}" + _bad_str(g)
    if not node.get("requires_grad"):
        return "no grad"
    return "grad not computed" if node.get("is_leaf") else "grad not kept"


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def render_text(dump: Mapping[str, Any]) -> str:
    """A dump (from ``to_json`` or ``load_json``) as text: one line per node, inputs first."""
    nodes = dump["nodes"]
    refs = {n["id"]: _ref(n) for n in nodes}
    lhs: list[str] = []
    types: list[str] = []
    for n in nodes:
        if n["op"] == "leaf" or n.get("is_leaf"):
            rhs = f"leaf {n.get('kind') or ('param' if n.get('requires_grad') else 'input')}"
        else:
            args = ", ".join([refs.get(i) or f"%{i}" for i in n["inputs"]])
            rhs = f"{n['op']}{_params_str(n.get('params') or {})}({args})"
        lhs.append(f"{refs[n['id']]} = {rhs}")
        types.append(_type_str(n["dtype"], n["shape"]))
    w1 = min(max((len(s) for s in lhs), default=0), 64)
    w2 = min(max((len(s) for s in types), default=0), 20)
    root = refs.get(dump.get("root"))
    s = dump.get("summary") or {}
    kinds = ", ".join(f"{s.get(k, 0)} {k}" for k in ("param", "input", "const", "op"))
    meta = dump.get("meta")
    out = [
        f"# minigrad graph of {root or '?'}: {len(nodes)} nodes ({kinds})"
        + (f"  meta={json.dumps(meta, separators=(',', ':'))}" if meta else ""),
        "# columns: %id name = op[params](inputs)  dtype[shape]  value mean/std/min/max  | grad L2 norm",
        "# leaf param: trained (requires_grad=True); leaf input/const: requires_grad=False, grad stops",
        "# no grad: gradient never reaches it; grad not kept: use backward under minigrad.retain_grads()",
    ]
    for n, left, ty in zip(nodes, lhs, types):
        value = _value_str(n.get("value"), _numel(n["shape"]))
        out.append(f"{left.ljust(w1)}  {ty.ljust(w2)}  {value}  | {_grad_str(n)}")
    return "\n".join(out) + "\n"


def to_text(tensor: Tensor) -> str:
    """The graph that computed `tensor`, one line per node in topological order (like a jaxpr)::

    %12 mu = linear[act=none](%3 a, %7 W_mu, %8 b_mu)  f32[128,20]  value mean=.. | grad norm=..
    """
    return render_text(to_json(tensor))


# ---------------------------------------------------------------- DOT
_DOT_STYLE = {
    "param": 'shape=box, style="filled,rounded,bold", fillcolor="#ffd966", color="#b45f06"',
    "input": 'shape=box, style="filled,dashed", fillcolor="#eeeeee", color="#999999", fontcolor="#666666"',
    "const": 'shape=box, style="filled,dashed", fillcolor="#f6f6f6", color="#bbbbbb", fontcolor="#888888", fontsize=10',
    "op": 'shape=box, style="filled", fillcolor="#cfe2f3", color="#3d85c6"',
    "op_nograd": 'shape=box, style="filled", fillcolor="#eeeeee", color="#999999"',
}  # fmt: skip
_EDGE_GRAD = 'color="#cc0000", penwidth=2.2, style=solid'
_EDGE_NOGRAD = 'color="#aaaaaa", penwidth=1, style=dashed, arrowhead=empty'


def _dot_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_label(n: Mapping[str, Any]) -> str:
    first = n["name"] or f"%{n['id']}"
    if not n["name"] and n.get("kind") == "const":  # a Python number: show the number itself
        first = _fmt((n.get("value") or {}).get("mean"))
    lines = [first]
    if n["op"] == "leaf" or n.get("is_leaf"):
        lines.append(f"leaf {n.get('kind', '')}".strip())
    else:
        lines.append(n["op"] + _params_str(n.get("params") or {}))
    lines.append(_type_str(n["dtype"], n["shape"]))
    lines.append(_grad_str(n))
    return _dot_str("\n".join(lines))


def _check_cluster(cluster: Any) -> dict[str, list[str]]:
    """cluster maps a label to node names: {"reparameterization": ["mu", "sigma", ...]}."""
    if cluster is None:
        return {}
    if isinstance(cluster, Mapping):  # names as lists: a generator would be used up by the check
        cluster = {label: list(names) if isinstance(names, Iterable) and not isinstance(names, (str, bytes))
                   else names for label, names in cluster.items()}  # fmt: skip
    ok = isinstance(cluster, Mapping) and all(
        isinstance(label, str) and not isinstance(names, (str, bytes)) and isinstance(names, Iterable)
        and all(isinstance(nm, str) for nm in names)
        for label, names in cluster.items()
    )  # fmt: skip
    if not ok:
        raise TypeError(f"cluster must map a label to a list of node names, e.g. {{'z': ['mu', 'sigma']}}; "
                        f"got {cluster!r:.80}")  # fmt: skip
    return cluster


def render_dot(
    dump: Mapping[str, Any], *, cluster: Mapping[str, Iterable[str]] | None = None
) -> str:
    """A dump as Graphviz DOT (see ``to_dot``)."""
    cluster = _check_cluster(cluster)
    membership: dict[str, str] = {}
    for label, names in cluster.items():
        for nm in names:
            membership.setdefault(nm, label)
    groups: dict[str, list[str]] = {label: [] for label in (cluster or {})}
    top: list[str] = []
    root = dump.get("root")
    for n in dump["nodes"]:
        kind = n.get("kind") or (
            "op" if not n.get("is_leaf") else "param" if n.get("requires_grad") else "input"
        )
        style = _DOT_STYLE["op_nograd" if kind == "op" and not n.get("requires_grad") else kind]
        if n["id"] == root:
            style += ", peripheries=2"
        stmt = f"  n{n['id']} [label={_dot_label(n)}, {style}];"
        where = membership.get(n["name"]) if n.get("name") else None
        (groups[where] if where is not None else top).append(stmt)
    out = [
        "digraph minigrad {",
        "  rankdir=TB;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
        (
            '  labelloc=b; label="solid red: gradient flows back along this edge | dashed gray: no'
            " gradient (source has requires_grad=False)\\nyellow: trained parameter | gray dashed"
            ' box: input/constant (no gradient)";'
        ),
    ]
    out += top
    for i, (label, stmts) in enumerate(groups.items()):
        if not stmts:
            continue
        ident = re.sub(r"\W", "_", label) or "group"
        out.append(f"  subgraph cluster_{ident}_{i} {{")
        out.append(
            f'    label={_dot_str(label)}; style="rounded,dashed"; color="#6a329f"; fontcolor="#6a329f";'
        )
        out += ["  " + s for s in stmts]
        out.append("  }")
    for e in dump.get("edges", []):
        out.append(
            f"  n{e['src']} -> n{e['dst']} [{_EDGE_GRAD if e['grad_flowed'] else _EDGE_NOGRAD}];"
        )
    out.append("}")
    return "\n".join(out) + "\n"


def to_dot(tensor: Tensor, *, cluster: Mapping[str, Iterable[str]] | None = None) -> str:
    """Graphviz DOT of the graph that computed `tensor`.

    Edges that carry gradient are solid red and bold, edges from requires_grad=False nodes
    dashed gray; parameters are yellow boxes, inputs/constants (``x``, ``eps``) gray dashed boxes.
    ``cluster={"reparameterization": ["mu", "sigma", "sigma*eps", "eps", "z"]}`` draws the nodes
    with those names inside a labelled ``subgraph cluster_...`` (see ``REPARAM_CLUSTER``)."""
    return render_dot(to_json(tensor), cluster=cluster)


# ---------------------------------------------------------------- files
def save(tensor: Tensor, path_prefix: str | Path, formats: Sequence[str] = ("txt", "json", "dot"), *,
         cluster: Mapping[str, Iterable[str]] | None = None,
         meta: Mapping[str, Any] | None = None) -> list[Path]:  # fmt: skip
    """Write ``prefix.txt`` / ``.json`` / ``.dot`` (those in `formats`); returns the paths written.

    When a ``.dot`` is written and Graphviz's ``dot`` is on PATH, ``prefix.svg`` is rendered too;
    a failed render is a warning, not an error."""
    formats = tuple(formats)
    unknown = [f for f in formats if f not in ("txt", "json", "dot")]
    if unknown:
        raise ValueError(f"save: unknown format(s) {unknown}; choose from 'txt', 'json', 'dot'")
    text = str(path_prefix)
    prefix = Path(path_prefix)
    if not prefix.name or text.endswith(("/", "\\")) or prefix.is_dir():
        raise ValueError(f"save: {text!r} is a folder or empty; give a path prefix such as 'runs/step1' "
                         "(it writes runs/step1.txt, .json, .dot)")  # fmt: skip
    prefix.parent.mkdir(parents=True, exist_ok=True)
    dump = to_json(tensor, meta=meta)
    written: list[Path] = []
    for fmt in formats:
        path = Path(f"{prefix}.{fmt}")
        if fmt == "txt":
            path.write_text(render_text(dump), encoding="utf-8")
        elif fmt == "json":
            path.write_text(json.dumps(dump, allow_nan=False, indent=1) + "\n", encoding="utf-8")
        else:
            path.write_text(render_dot(dump, cluster=cluster), encoding="utf-8")
        written.append(path)
        if fmt == "dot":
            svg = _render_svg(path)
            if svg is not None:
                written.append(svg)
    return written


def _render_svg(dot_path: Path) -> Path | None:
    exe = shutil.which("dot")
    if exe is None:
        return None
    svg = dot_path.with_suffix(".svg")
    try:
        subprocess.run([exe, "-Tsvg", str(dot_path), "-o", str(svg)], check=True, capture_output=True,
                       timeout=_SVG_TIMEOUT_S)  # fmt: skip
    except subprocess.TimeoutExpired:
        warnings.warn(f"graphviz: rendering {dot_path} took over {_SVG_TIMEOUT_S:.0f} s; no SVG written",
                      RuntimeWarning, stacklevel=3)  # fmt: skip
        return None
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        msg = detail.decode(errors="replace").strip() if isinstance(detail, bytes) else str(detail)
        warnings.warn(
            f"graphviz: could not render {dot_path} to SVG: {msg or exc}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    if not svg.exists():
        warnings.warn(
            f"graphviz: dot exited cleanly but wrote no {svg}", RuntimeWarning, stacklevel=3
        )
        return None
    return svg


def load_json(path: str | Path) -> dict[str, Any]:
    """Read a dump written by ``save``; ValueError naming the file for anything that is not one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a minigrad graph dump (not UTF-8 text: {exc})") from None
    try:
        dump = json.loads(text)
    except (ValueError, RecursionError) as exc:  # bad syntax, a 5000-digit integer, deep nesting
        detail = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise ValueError(f"{path}: not a minigrad graph dump (invalid JSON: {detail})") from None
    problem = _validate(dump)
    if problem:
        raise ValueError(f"{path}: not a valid minigrad graph dump: {problem}")
    return dump


# What each field of a dump may hold: what ``to_json`` writes, checked so that every reader
# (render_text, render_dot, diff) can format and compare it. Numbers are ints or floats, never
# bools, and not too big to become a float.
def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_count(x: Any) -> bool:
    return _is_int(x) and 0 <= x <= sys.float_info.max


def _is_stat(x: Any) -> bool:
    """A statistic: a number, "nan" / "inf" / "-inf" (how ``_num`` writes those), or null."""
    if isinstance(x, str):
        return x in ("nan", "inf", "-inf")
    return x is None or isinstance(x, float) or (_is_int(x) and abs(x) <= sys.float_info.max)


_KINDS = ("op", "param", "input", "const")
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "count": (_is_count, "a non-negative integer"),
    "stat": (_is_stat, 'a number, "nan", "inf", "-inf" or null'),
    "str": (lambda x: isinstance(x, str), "a string"),
    "str|null": (lambda x: x is None or isinstance(x, str), "a string or null"),
    "bool": (lambda x: isinstance(x, bool), "a boolean"),
    "object": (lambda x: isinstance(x, dict), "an object"),
    "object|null": (lambda x: x is None or isinstance(x, dict), "an object or null"),
    "kind": (lambda x: isinstance(x, str) and x in _KINDS,
             "one of " + ", ".join(map(repr, _KINDS))),
    "ids": (lambda x: isinstance(x, list) and all(map(_is_int, x)), "a list of integers"),
    "shape": (lambda x: isinstance(x, list) and all(map(_is_count, x)),
              "a list of non-negative integers"),
}  # fmt: skip
# Fields and what they hold, per object. A field that is present is checked; _NODE_KEYS (and
# the top level's schema, version and nodes) are required, the rest may be left out.
_DUMP_FIELDS = {"meta": "object", "summary": "object"}
_SUMMARY_FIELDS = dict.fromkeys(("nodes", "edges", *_KINDS), "count")
_NODE_FIELDS = {
    "op": "str", "kind": "kind", "name": "str|null", "inputs": "ids", "shape": "shape",
    "dtype": "str", "requires_grad": "bool", "is_leaf": "bool", "params": "object",
    "value": "object", "grad": "object|null",
}  # fmt: skip
_VALUE_FIELDS = {"mean": "stat", "std": "stat", "min": "stat", "max": "stat", "nan": "count",
                 "inf": "count"}  # fmt: skip
_GRAD_FIELDS = {"norm": "stat", "mean": "stat", "max_abs": "stat", "nan": "count", "inf": "count"}


def _short(x: Any, limit: int = 60) -> str:
    """repr(x), cut to `limit` characters."""
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check(obj: Mapping[str, Any], fields: Mapping[str, str], prefix: str = "") -> str | None:
    """'field value is not <what it should be>' for the first field of `obj` that is wrong."""
    for key, check in fields.items():
        if key in obj:
            ok, expected = _CHECKS[check]
            if not ok(obj[key]):
                return f"{prefix}{key} {_short(obj[key])} is not {expected}"
    return None


def _validate(dump: Any) -> str | None:
    """What is wrong with a loaded dump, or None."""
    if not isinstance(dump, dict):
        return f"top level is a {type(dump).__name__}, expected an object"
    if dump.get("schema") != SCHEMA:
        return f"schema is {dump.get('schema')!r}, expected {SCHEMA!r}"
    if dump.get("version") != VERSION:
        return f"version {dump.get('version')!r} is not supported (this minigrad reads version {VERSION})"
    nodes, edges = dump.get("nodes"), dump.get("edges", [])
    if not isinstance(nodes, list):
        return "'nodes' is missing or not a list"
    if not isinstance(edges, list):
        return "'edges' is not a list"
    problem = _check(dump, _DUMP_FIELDS) or _check(dump.get("summary") or {}, _SUMMARY_FIELDS,
                                                   "summary.")  # fmt: skip
    if problem:
        return problem
    seen: set[int] = set()
    for i, n in enumerate(nodes):
        if not isinstance(n, dict):
            return f"node {i} is not an object"
        missing = [k for k in _NODE_KEYS if k not in n]
        if missing:
            return f"node {i} lacks {', '.join(missing)}"
        if not _is_int(n["id"]) or n["id"] in seen:
            return f"node {i} has a bad or repeated id {_short(n['id'])}"
        problem = (_check(n, _NODE_FIELDS) or _check(n["value"], _VALUE_FIELDS, "value.")
                   or _check(n["grad"] or {}, _GRAD_FIELDS, "grad."))  # fmt: skip
        if problem:
            return f"node {i} (%{n['id']}): {problem}"
        late = [j for j in n["inputs"] if j not in seen]
        if late:
            return f"node {i} (%{n['id']}): inputs {_short(late)} do not come earlier in 'nodes'"
        seen.add(n["id"])
    root = dump.get("root")
    if not (root is None or _is_int(root)) or (nodes and root not in seen):
        return f"root {_short(root)} is not one of the nodes"
    for i, e in enumerate(edges):
        if not isinstance(e, dict) or not isinstance(e.get("grad_flowed"), bool) \
                or not all(_is_int(e.get(k)) and e[k] in seen for k in ("src", "dst")):  # fmt: skip
            return f"edge {i} is malformed or names an unknown node: {_short(e)}"
    return None


# ---------------------------------------------------------------- diff
def _keys(nodes: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Match keys: (name, k-th node of that name) when named, else (position, op)."""
    count: dict[str, int] = {}
    keys: list[tuple[Any, ...]] = []
    for pos, n in enumerate(nodes):
        name = n.get("name")
        if name:
            k = count.get(name, 0)
            count[name] = k + 1
            keys.append(("name", name, k))
        else:
            keys.append(("pos", pos, n["op"]))
    return keys


def _key_str(key: tuple[Any, ...]) -> str:
    if key[0] == "name":
        return key[1] if key[2] == 0 else f"{key[1]}#{key[2] + 1}"
    return f"#{key[1]}"


def _as_float(x: Any) -> float | None:
    """A JSON stat as a float: numbers, or the strings "nan" / "inf" / "-inf"; null stays None."""
    return None if x is None else float(x)


def _change(label: str, a: Any, b: Any) -> str | None:
    """'label a -> b (+d)' when the two statistics differ (NaN equals NaN), else None."""
    fa, fb = _as_float(a), _as_float(b)
    if fa == fb or (fa is not None and fb is not None and math.isnan(fa) and math.isnan(fb)):
        return None
    s = f"{label} {_fmt(a)} -> {_fmt(b)}"
    if fa is not None and fb is not None and math.isfinite(fa) and math.isfinite(fb):
        s += f" ({fb - fa:+.3g})"
    return s


def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """Compare two dumps of the same graph structure (e.g. step 1 and step 100 of training).

    Nodes are matched by name when they have one, else by position and op. Reports structural
    differences (nodes only on one side, changed op/shape/dtype/inputs/requires_grad), then, per
    node, the value statistics and gradient norm that changed."""
    for side, dump in (("A", a), ("B", b)):
        problem = _validate(dump)
        if problem:
            raise ValueError(f"diff: dump {side} is not a valid minigrad graph dump: {problem}")
    na, nb = a["nodes"], b["nodes"]
    ka, kb = _keys(na), _keys(nb)
    ia, ib = dict(zip(ka, na)), dict(zip(kb, nb))
    key_of_a = {n["id"]: k for k, n in zip(ka, na)}
    key_of_b = {n["id"]: k for k, n in zip(kb, nb)}
    structure: list[str] = []
    for k in ka:
        if k not in ib:
            structure.append(
                f"  - only in A: {_key_str(k)} = {ia[k]['op']} {_type_str(ia[k]['dtype'], ia[k]['shape'])}"
            )
    for k in kb:
        if k not in ia:
            structure.append(
                f"  + only in B: {_key_str(k)} = {ib[k]['op']} {_type_str(ib[k]['dtype'], ib[k]['shape'])}"
            )
    changes: list[str] = []
    unchanged = 0
    for k in ka:
        if k not in ib:
            continue
        x, y = ia[k], ib[k]
        for field in ("op", "dtype", "requires_grad"):
            if x.get(field) != y.get(field):
                structure.append(f"  ~ {_key_str(k)}: {field} {x.get(field)} -> {y.get(field)}")
        if list(x["shape"]) != list(y["shape"]):
            structure.append(f"  ~ {_key_str(k)}: shape {x['shape']} -> {y['shape']}")
        ins_a = [_key_str(key_of_a[i]) if i in key_of_a else f"%{i}" for i in x["inputs"]]
        ins_b = [_key_str(key_of_b[i]) if i in key_of_b else f"%{i}" for i in y["inputs"]]
        if ins_a != ins_b:
            structure.append(
                f"  ~ {_key_str(k)}: inputs ({', '.join(ins_a)}) -> ({', '.join(ins_b)})"
            )
        items: list[str] = []
        va, vb = x.get("value") or {}, y.get("value") or {}
        scalar = _numel(x["shape"]) == 1 and _numel(y["shape"]) == 1
        c = _change("value", va.get("mean"), vb.get("mean")) if scalar else None
        if c:
            items.append(c)
        for stat in ("nan", "inf") if scalar else ("mean", "std", "min", "max", "nan", "inf"):
            c = _change(stat, va.get(stat), vb.get(stat))
            if c:
                items.append(c)
        ga, gb = x.get("grad"), y.get("grad")
        if ga is None and gb is not None:
            items.append(f"grad appeared (norm {_fmt(gb.get('norm'))})")
        elif ga is not None and gb is None:
            items.append(f"grad gone (was norm {_fmt(ga.get('norm'))})")
        elif ga is not None and gb is not None:
            c = _change("grad norm", ga.get("norm"), gb.get("norm"))
            if c:
                fa, fb = _as_float(ga.get("norm")), _as_float(gb.get("norm"))
                if fa and fb and math.isfinite(fa) and math.isfinite(fb):
                    c += f" x{fb / fa:.3g}"
                items.append(c)
            for stat in ("nan", "inf"):
                c = _change(f"grad {stat}", ga.get(stat), gb.get(stat))
                if c:
                    items.append(c)
        if items:
            changes.append(f"  {_key_str(k)} ({y['op']}): " + "; ".join(items))
        else:
            unchanged += 1
    label_a = _meta_label(a, "A")
    label_b = _meta_label(b, "B")
    matched = sum(1 for k in ka if k in ib)
    out = [f"# graph diff {label_a} -> {label_b}: {len(na)} vs {len(nb)} nodes, {matched} matched"]
    out.append("structure: identical" if not structure else "structure differences:")
    out += structure
    out.append(f"changed nodes: {len(changes)} ({unchanged} unchanged)")
    out += changes
    return "\n".join(out) + "\n"


def _meta_label(dump: Mapping[str, Any], default: str) -> str:
    meta = dump.get("meta")
    if isinstance(meta, dict) and meta:
        return f"{default}({', '.join(f'{k}={v}' for k, v in meta.items())})"
    return default
