"""The installed package runs on its C kernels: a build that silently fell back fails here."""

import os

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
