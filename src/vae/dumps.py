"""`python -m vae dump show|render|diff`: read graph dumps written by `train --dump-graph`
(DIR/graphs/stepNNNNNN.{txt,json,dot}) through minigrad.graph."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import minigrad as mg

from .train import REPARAMETERIZATION_CLUSTER


class GraphvizMissing(Exception):
    """Graphviz's `dot` program is not installed."""


def _existing(path: Path | str, suffixes: tuple[str, ...]) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise ValueError(f"{path}: is not a file")
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{path}: expected a {' or '.join(suffixes)} file written by `train --dump-graph`")
    return path


def load(path: Path | str) -> dict:
    path = _existing(path, (".json",))
    try:
        return mg.graph.load_json(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None


def show(path: Path | str) -> str:
    return mg.graph.render_text(load(path))


def diff(a: Path | str, b: Path | str) -> str:
    return mg.graph.diff(load(a), load(b))


def render(path: Path | str, out: Path | str | None = None) -> Path:
    """A .json dump (rendered to DOT here, with the reparameterization cluster) or a .dot file ->
    SVG through Graphviz. Returns the SVG's path (default: next to the input)."""
    path = _existing(path, (".json", ".dot"))
    out = Path(out) if out is not None else path.with_suffix(".svg")
    if out.suffix.lower() != ".svg":
        raise ValueError(f"{out}: the output must be an .svg file")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out}: the folder {out.parent} does not exist")
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing("Graphviz's `dot` program was not found on PATH; install Graphviz "
                              "(e.g. `apt-get install graphviz`, `brew install graphviz`) to render dumps, "
                              "or use `dump show` for the text form")  # fmt: skip
    if path.suffix.lower() == ".json":
        source = mg.graph.render_dot(load(path), cluster=REPARAMETERIZATION_CLUSTER)
    else:
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read: {exc}") from None
    try:
        done = subprocess.run([exe, "-Tsvg", "-o", str(out)], input=source.encode(), capture_output=True, timeout=120,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ValueError(f"{path}: Graphviz took over 120 s; no SVG written") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"{path}: Graphviz could not render it: {detail[0] if detail else 'exit ' + str(done.returncode)}")
    return out
