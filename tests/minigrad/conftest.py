"""Shared pieces of the minigrad tests: the op table, the hypothesis profile, clean global state.

The op table lives in op_cases.py next to this file. pytest runs with --import-mode=importlib, so
test modules do not import it by name: this conftest loads it once and hands it out through
``pytest_generate_tests`` (a test taking an ``op_case`` argument runs once per op in the table)
and through the ``cases`` fixture.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import minigrad
from minigrad import autograd

settings.register_profile(
    "minigrad",
    max_examples=25,
    deadline=None,
    # `cases` and `rng` are function-scoped fixtures, but neither holds state an example could change
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.register_profile(
    "minigrad-thorough", parent=settings.get_profile("minigrad"), max_examples=300
)
if not os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile("minigrad")
else:
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def _load_op_cases():
    name = "minigrad_tests_op_cases"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("op_cases.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


OP_CASES = _load_op_cases()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "op_case" in metafunc.fixturenames:
        cases = sorted(OP_CASES.CASES.values(), key=lambda c: c.name)
        metafunc.parametrize("op_case", cases, ids=[c.name for c in cases])


@pytest.fixture
def cases():
    """The op table module: CASES, Example, with_layout, LAYOUTS."""
    return OP_CASES


@pytest.fixture(autouse=True)
def _clean_global_state():
    """No test leaks a backend, a grad mode, anomaly mode or a default dtype into the next."""
    backend = minigrad.backend.current()
    flags = (autograd.FLAGS.grad_enabled, autograd.FLAGS.anomaly, autograd.FLAGS.retain_grads)
    dtype = minigrad.get_default_dtype()
    yield
    minigrad.backend.set_backend(backend.name)
    autograd.FLAGS.grad_enabled, autograd.FLAGS.anomaly, autograd.FLAGS.retain_grads = flags
    minigrad.set_default_dtype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=["c", "numpy"])
def backend(request):
    """Run the test once on each backend."""
    with minigrad.backend.use(request.param):
        yield request.param
