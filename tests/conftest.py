"""Shared fixtures for the notebook tests.

- A test that takes a ``notebook`` argument is run once per ``notebooks/*.ipynb`` (ids: file stems);
  with no notebook yet it is one clean skip saying so, whatever ``empty_parameter_set_mark`` says.
- ``jupyter_env``: an environment whose Jupyter/IPython/Matplotlib state lives in a temporary
  directory, with ``SRLEARN_MODE=quick`` (see ``browser_support.jupyter_environment``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers, with or without tests/__init__.py
from browser_support import NOTEBOOKS, jupyter_environment  # noqa: E402


def pytest_generate_tests(metafunc):
    if "notebook" in metafunc.fixturenames:
        found = sorted(NOTEBOOKS.glob("*.ipynb"))
        params = [pytest.param(p, id=p.stem) for p in found] or [
            pytest.param(None, id="no-notebooks", marks=pytest.mark.skip(
                reason=f"no notebooks in {NOTEBOOKS} yet: each notebooks/*.ipynb added is tested here"))]
        metafunc.parametrize("notebook", params)


@pytest.fixture(scope="session")
def jupyter_env(tmp_path_factory):
    return jupyter_environment(tmp_path_factory.mktemp("jupyter"))


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test: small tensors are as fast on one thread when the machine is idle, and two
    threads per process spin against other processes on a shared 2-core machine (gradcheck up to 20x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
