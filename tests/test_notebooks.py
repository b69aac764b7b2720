"""The notebooks in ``notebooks/``: stored clean, and each one runs top to bottom headless.

(a) Every ``notebooks/*.ipynb`` is valid nbformat 4 and is stored without outputs, execution counts or
    saved widget state (clear them before committing: Edit > Clear Outputs of All Cells, then save;
    or ``jupyter nbconvert --clear-output --inplace notebooks/NAME.ipynb``).
(b) Each notebook executes with nbclient in quick mode (``SRLEARN_MODE=quick``), working directory
    ``notebooks/``, 600 s per cell, on the ``python3`` kernel of this environment (marker ``notebook``).

The browser test (``tests/test_browser.py``) runs every notebook again, in JupyterLab, with the same
checks and more; (b) gives the plainer failure message (the whole traceback). ``SRLEARN_NB_HEADLESS``
chooses whether (b) runs: ``1`` (default) always; ``auto``: only the notebooks this pytest process has
not already run in the browser (the browser test runs first, so in ``make test`` each notebook runs
once when Chromium is available, and headless when it is not); ``0``: never.
"""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from queue import Empty

import nbformat
import pytest
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from traitlets import Type

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser_support  # noqa: E402
from browser_support import FIXTURES, NOTEBOOKS  # noqa: E402

CELL_TIMEOUT = 600  # seconds per cell for the notebooks
FIXTURE_TIMEOUT = 120  # for the tiny harness fixtures
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def stored_output_problems(nb) -> list[str]:
    """What a notebook carries that should not be committed: outputs, execution counts, widget state."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i} has {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has execution_count {cell.execution_count}")
    if "widgets" in nb.metadata:
        problems.append("the notebook metadata holds saved ipywidgets state ('widgets')")
    return problems


def read_valid(path: Path):
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    assert nb.nbformat == 4, f"{path.name} is nbformat {nb.nbformat}, not 4"
    nbformat.validate(nb)  # raises nbformat.ValidationError naming the bad field
    return nb


class _SlicedChannel(AsyncZMQSocketChannel):
    """A kernel channel that waits for a message in half-second polls instead of one long poll.

    Seen here (pyzmq 27.3, jupyter_client 8.10, nbclient 0.11; with ipykernel 7.4 and 6.31 alike):
    now and then the kernel's execute_reply, sent at once, sits unnoticed on the client's socket
    until the long poll times out, and nbclient then reads it and goes on without an error: a cell
    that took 0.1 s holds the run for the whole per-cell timeout (600 s). Runs of
    tests/fixtures/harness_bad.ipynb with a 20 s timeout stalled 2 times in 30 (ipykernel 7.4) and
    12 in 35 (6.31); with this channel, 0 in 70. A fresh poll sees a waiting message, so such a
    wait lasts at most one slice.
    """
    SLICE = 0.5

    async def get_msg(self, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = self.SLICE if deadline is None else min(self.SLICE, max(0.0, deadline - time.monotonic()))
            if await self.socket.poll(int(left * 1000)) or await self.socket.poll(0):
                return await self._recv()
            if deadline is not None and time.monotonic() >= deadline:
                raise Empty


class _SlicedKernelClient(AsyncKernelClient):
    shell_channel_class = Type(_SlicedChannel)
    iopub_channel_class = Type(_SlicedChannel)


class _NotebookClient(NotebookClient):
    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.client_factory = _SlicedKernelClient
        return km


def run_headless(path: Path, env: dict, timeout: int = CELL_TIMEOUT):
    """Execute ``path`` top to bottom with nbclient (cwd: its folder); return the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    client = _NotebookClient(nb, timeout=timeout, startup_timeout=120, kernel_name="python3",
                             resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    return nb


def _fail_with_cell_error(path: Path, error: Exception):
    pytest.fail(f"{path.name} failed in quick mode (nbclient, cwd {path.parent}):\n"
                f"{ANSI.sub('', str(error))[-6000:]}", pytrace=False)


# (a) stored clean -------------------------------------------------------------------------------

def test_notebook_is_valid_and_stored_without_outputs(notebook):
    problems = stored_output_problems(read_valid(notebook))
    assert not problems, (f"{notebook.name} is stored with outputs: {problems}. Clear them before committing: "
                          f"`jupyter nbconvert --clear-output --inplace {notebook.relative_to(NOTEBOOKS.parent)}`")


def test_harness_fixtures_are_valid_and_stored_without_outputs():
    fixtures = sorted(FIXTURES.glob("*.ipynb"))
    assert fixtures, f"no fixture notebooks in {FIXTURES}"
    for path in fixtures:
        assert stored_output_problems(read_valid(path)) == [], path.name


def test_clean_check_catches_outputs_counts_and_widget_state():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("text"),
        nbformat.v4.new_code_cell("1 + 1", execution_count=3,
                                  outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"},
                                                                  execution_count=3)])])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    assert stored_output_problems(nb) == ["cell 1 has 1 output(s)", "cell 1 has execution_count 3",
                                          "the notebook metadata holds saved ipywidgets state ('widgets')"]
    nbformat.validate(nb)
    del nb.cells[1]["source"]
    with pytest.raises(nbformat.ValidationError):
        nbformat.validate(nb)


# (b) executed headless in quick mode -------------------------------------------------------------

@pytest.mark.notebook
def test_notebook_runs_headless_in_quick_mode(notebook, jupyter_env):
    choice = os.environ.get("SRLEARN_NB_HEADLESS", "1").strip().lower()
    if choice not in ("1", "0", "auto"):
        pytest.fail(f"SRLEARN_NB_HEADLESS={choice!r}: use 1 (always), auto or 0 (never)", pytrace=False)
    if choice == "0":
        pytest.skip("SRLEARN_NB_HEADLESS=0: headless runs are off (the browser test runs every notebook)")
    if choice == "auto" and notebook.resolve() in browser_support.BROWSER_RAN:
        pytest.skip(f"SRLEARN_NB_HEADLESS=auto: {notebook.name} already ran in the browser test")
    try:
        executed = run_headless(notebook, jupyter_env)
    except CellExecutionError as e:
        _fail_with_cell_error(notebook, e)
    browser_support.save_executed(executed, notebook, "headless test")  # for make site (SRLEARN_EXECUTED_DIR)


@pytest.mark.notebook
def test_headless_runner_passes_a_good_notebook_in_quick_mode(jupyter_env):
    nb = run_headless(FIXTURES / "harness_good.ipynb", jupyter_env, timeout=FIXTURE_TIMEOUT)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")
    assert "SRLEARN_MODE=quick" in text
    assert f"KERNEL_CWD={FIXTURES}" in text
    assert f"KERNEL_PREFIX={sys.prefix}" in text


@pytest.mark.notebook
def test_headless_runner_reports_a_failing_cell(jupyter_env):
    with pytest.raises(CellExecutionError) as raised:
        run_headless(FIXTURES / "harness_bad.ipynb", jupyter_env, timeout=FIXTURE_TIMEOUT)
    # a timeout is a CellExecutionError too, and its message quotes the cell: check what was raised
    assert not isinstance(raised.value, CellTimeoutError), str(raised.value)[:500]
    assert (raised.value.ename, raised.value.evalue) == ("ValueError", "harness fixture: this cell raises on purpose")


# (c) without the shipped weights ------------------------------------------------------------------

#: the notebook run without data/weights: the quickest one (01: 23-30 s in quick mode on a shared 2-core CPU)
NO_WEIGHTS_NOTEBOOK = "01_san_se_vs_soca.ipynb"


@pytest.mark.notebook
@pytest.mark.slow
def test_a_notebook_runs_top_to_bottom_without_the_shipped_weights(jupyter_env, tmp_path):
    """Issue 13: with ``SRLEARN_WEIGHTS`` pointing at an empty folder, ``load_pretrained`` fails, and the
    notebook falls back (one printed line) to its own live training and still runs top to bottom."""
    from srlearn.weights import FALLBACK

    path = NOTEBOOKS / NO_WEIGHTS_NOTEBOOK
    empty = tmp_path / "no-weights"
    empty.mkdir()
    try:
        executed = run_headless(path, {**jupyter_env, "SRLEARN_WEIGHTS": str(empty)})
    except CellExecutionError as e:
        _fail_with_cell_error(path, e)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, f"{path.name} without weights: {errors}"
    stdout = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stdout")
    fallbacks = [line for line in stdout.splitlines() if line.startswith(FALLBACK)]
    assert fallbacks, f"{path.name} printed no '{FALLBACK} ...' line with SRLEARN_WEIGHTS={empty}"
    assert all(str(empty) in line for line in fallbacks), fallbacks      # it looked where it was told to
    loaded = [line for line in stdout.splitlines() if re.match(r"shipped weights \S+/\S+: ", line)]
    assert not loaded, loaded                                              # and loaded nothing shipped
