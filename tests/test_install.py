"""The installed package runs on its C kernels: a build that silently fell back fails here."""

import os

import minigrad


def test_c_extension_is_built_and_active():
    if os.environ.get("MINIGRAD_BACKEND", "c") != "c":
        return  # a run that explicitly asked for the reference backend
    info = minigrad.backend_info()
    assert "c" in info["available"], f"the C extension did not build: {info.get('c_error')}"
    assert info["name"] == "c"
    assert "-O3" in info["compile_flags"]
    assert info["num_threads"] >= 1
