"""The installed package runs on its C kernels: a build that silently fell back fails here."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import minigrad


def test_c_extension_is_built_and_active():
    if os.environ.get("MINIGRAD_BACKEND", "c") != "c":
        pytest.skip("this run asked for the reference backend (MINIGRAD_BACKEND)")
    info = minigrad.backend_info()
    assert "c" in info["available"], f"the C extension did not build: {info.get('c_error')}"
    assert info["name"] == "c"
    assert "-O3" in info["compile_flags"]
    assert info["num_threads"] >= 1


def test_other_build_flags_change_the_generated_source(tmp_path):
    """setuptools rebuilds the extension only when a source is newer than it: a digest of the
    compile flags is written into the C file cffi generates, so installing the same tree again with other
    flags (MINIGRAD_PORTABLE=1 after a native build, say) compiles again instead of keeping the
    extension built with the old ones. (Two MINIGRAD_CFLAGS, which every compiler takes as given.)"""
    root = Path(__file__).resolve().parents[1]
    if not (root / "build.py").exists():
        pytest.skip("no source tree (build.py) next to the tests")
    sources = []
    for define in ("-DMG_FLAGS_A", "-DMG_FLAGS_B"):
        out = tmp_path / f"kernels{define}.c"
        code = f"import runpy; runpy.run_path('build.py')['ffibuilder'].emit_c_code({str(out)!r})"
        env = {**os.environ, "MINIGRAD_CFLAGS": define}
        subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True)
        sources.append(out.read_text())
    assert sources[0] != sources[1]
