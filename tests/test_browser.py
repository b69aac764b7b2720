"""Every notebook, run in JupyterLab in a real (headless) Chromium, as a student would run it.

For each ``notebooks/*.ipynb`` (found at collection time: a notebook added later is tested with no
change here) the test starts JupyterLab (``<venv>/bin/jupyter lab``, 127.0.0.1, a token, state in a
temporary directory, ``SRLEARN_MODE=quick`` in the server's and so the kernel's environment), opens the
notebook, runs JupyterLab's own ``notebook:run-all-cells`` and asserts:

- no cell raised: no ``error`` output in the notebook model and no error message from the kernel
  (an exception shown inside an Output widget or raised by a widget callback counts too). A cell
  tagged ``raises-exception`` may raise (nbclient and JupyterLab's run-all both go on after it).
  Output on stderr (warnings, progress bars) is not an error: JupyterLab renders tracebacks and
  stderr with the same MIME type (``application/vnd.jupyter.stderr``), so the page alone cannot
  tell them apart; the harness reads the notebook model and the kernel's iopub messages instead;
- every code cell ran (run-all stops at the first error);
- every image output (matplotlib inline figures) is an ``<img>`` in the page that loaded
  (``naturalWidth > 0``), and no figure was printed as text (``<Figure size ... with 1 Axes>``);
- every ipywidgets view is a rendered control, not "Loading widget..." or "Error displaying widget";
- the notebook's main widget(s) (below) drive their output: moving one changes the cell's output;
- no dialog is left open and the notebook file on disk is unchanged (autosave is off).

A screenshot of each notebook, as tall as the notebook, goes to ``tests/screenshots/<name>.png``
(``<name>-2.png``, ... for the parts of a notebook taller than 15000 px), with ``<name>.json`` beside
it: the problems found, and seconds per step (open + kernel start, run-all, moving the main widgets).
The folder is ignored by git; ``SRLEARN_SCREENSHOTS`` puts it elsewhere.

Main widget convention (every notebook with ipywidgets controls follows it)
---------------------------------------------------------------------------
- The control the test moves carries the CSS class ``srlearn-main``:
  ``widget.add_class("srlearn-main")``. It is an ``IntSlider``, ``FloatSlider``,
  ``SelectionSlider`` or a ``Dropdown``. With ``interact``/``interactive``, mark the control:
  ``ui = widgets.interactive(f, k=slider); slider.add_class("srlearn-main")`` (or ``ui.children[0]``).
- The output it drives is in the same cell's output area: an ``ipywidgets.Output`` holding a
  matplotlib figure (or text/HTML), or the output of ``interactive``. The test focuses the slider's
  handle and presses ArrowRight (ArrowLeft at the maximum) or picks the next dropdown option, waits
  for the kernel to go busy and idle again, and asserts that the cell's images or text, leaving out
  the marked control itself, changed.
- More than one control may be marked; each is moved once. A notebook whose output shows ipywidgets
  controls (sliders, dropdowns, buttons, text boxes, ...) but none marked fails with a message saying
  to mark one. Output, HTML, Label and progress-bar widgets (tqdm.auto) are not controls: a notebook
  with only those, or with no widgets at all, gets the run / no-error / figure checks only.

The harness is checked on its own fixtures (``tests/fixtures/harness_*.ipynb``): one that must pass
(and shows that the kernel is the venv's python, in quick mode, in the notebook's folder) and three
that must fail in named ways (negative controls: every failure above, an unmarked control, a kernel
that dies). ``make lab`` is checked to serve ``notebooks/``.

Chromium: ``/usr/bin/chromium`` (``SRLEARN_CHROMIUM`` to use another). If it is missing and we are
root, Debian's ``chromium`` is installed with ``apt-get``; Playwright (from PyPI) drives it with
``executable_path`` (``playwright install`` is never run). Where it cannot be had the browser tests
skip and say why; ``SRLEARN_REQUIRE_BROWSER=1`` turns that skip into a failure (for CI).
Time limits (waits, not speed assertions): ``SRLEARN_BROWSER_TIMEOUT`` seconds per notebook (600).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import nullcontext
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser_support as bs  # noqa: E402

pytestmark = pytest.mark.browser

REQUIRE = os.environ.get("SRLEARN_REQUIRE_BROWSER", "") not in ("", "0")
TIMES: list[tuple[str, float]] = []  # (notebook, seconds) for the summary line at the end
FIXTURE_TIMEOUT = 120  # seconds for run-all of a (tiny) harness fixture


def _say(config, message: str) -> None:
    """A line on the terminal now, even while pytest captures output."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    cap = config.pluginmanager.get_plugin("capturemanager")
    if tr is None:
        print(message)
        return
    with cap.global_and_fixture_disabled() if cap else nullcontext():
        tr.write_line(message)


def _unavailable(reason: str):
    if REQUIRE:
        pytest.fail(f"SRLEARN_REQUIRE_BROWSER is set but the browser test cannot run: {reason}", pytrace=False)
    pytest.skip(f"browser test skipped: {reason}")


# --------------------------------------------------------------------------------------------
# fixtures: one JupyterLab server and one browser page for this module (stopped when it ends)
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium(pytestconfig):
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        _unavailable(f"Playwright is not importable ({e}); `make test` installs it (pip install -e '.[test]')")
    path, note = bs.ensure_chromium(say=lambda m: _say(pytestconfig, m))
    if path is None:
        _say(pytestconfig, f"browser test: no Chromium: {note.splitlines()[0]}")
        _unavailable(note)
    return path


@pytest.fixture(scope="module")
def lab_server(jupyter_env, tmp_path_factory, pytestconfig):
    log = tmp_path_factory.mktemp("lab-server") / "jupyter-lab.log"
    server = bs.LabServer(bs.REPO, jupyter_env, log)
    try:
        server.start()
        yield server
    finally:
        killed = server.stop()
        if killed:
            _say(pytestconfig, f"browser test: had to SIGKILL JupyterLab processes {killed}")


@pytest.fixture(scope="module")
def lab(chromium, lab_server, pytestconfig):
    browser = bs.LabBrowser(lab_server, chromium)
    try:
        browser.start()
        yield browser
    finally:
        killed = browser.close()
        if killed:
            _say(pytestconfig, f"browser test: had to SIGKILL browser processes {killed}")
        if TIMES:
            total = sum(s for _, s in TIMES)
            _say(pytestconfig, "browser test times: " + ", ".join(f"{n} {s:.1f} s" for n, s in TIMES)
                 + f"; total {total:.1f} s")


def _check(lab, path: Path, run_timeout: float = bs.RUN_TIMEOUT) -> bs.NotebookReport:
    report = lab.check_notebook(path, run_timeout)
    TIMES.append((path.stem, report.seconds))
    return report


# --------------------------------------------------------------------------------------------
# the harness, checked on its fixtures (positive and negative controls)
# --------------------------------------------------------------------------------------------

def test_harness_passes_a_good_notebook(lab):
    report = _check(lab, bs.FIXTURES / "harness_good.ipynb", FIXTURE_TIMEOUT)
    assert report.problems == [], report.describe()
    lines = dict(ln.split("=", 1) for ln in report.stdout.splitlines() if "=" in ln)
    assert Path(lines.get("KERNEL_PREFIX", "?")).resolve() == Path(sys.prefix).resolve(), (
        f"the kernel runs {lines.get('KERNEL_PYTHON')}, not this environment's python ({sys.executable})")
    assert lines.get("SRLEARN_MODE") == "quick", "the kernel did not see SRLEARN_MODE=quick"
    assert Path(lines.get("KERNEL_CWD", "?")).resolve() == bs.FIXTURES.resolve(), "kernel cwd is not the notebook's folder"
    assert report.main_widgets == 3, f"found {report.main_widgets} srlearn-main widgets, the fixture has 3"
    assert report.images >= 1 and report.widget_views >= 3, report
    assert report.screenshot is not None and report.screenshot.stat().st_size > 0


def test_harness_catches_every_failure(lab):
    report = _check(lab, bs.FIXTURES / "harness_bad.ipynb", FIXTURE_TIMEOUT)
    text = "\n".join(report.problems)
    expected = {
        "a cell that raises": "raised ValueError: harness fixture: this cell raises on purpose",
        "the cell after it, never run": "were not run",
        "a widget view that cannot be displayed": "ipywidgets view is not rendered (page shows 'Error displaying widget",
        "an image that does not load": "cell 2 (In [2]): an image/png output is not shown as a loaded image",
        "the same widget view, inside an Output widget": "cell 3: widget placeholder 'Error displaying widget",
        "the same image, inside an Output widget": "cell 3: an image did not load",
        "a main slider whose output never changes": "moving it did not change the output",
        "a widget callback that raises": "RuntimeError: harness fixture: a widget callback that raises raised while moving a widget",
    }
    missed = [what for what, needle in expected.items() if needle not in text]
    assert not missed, f"the harness missed {missed}; it reported:\n{report.describe()}"
    assert len(report.problems) == len(set(report.problems))


def test_harness_requires_a_main_widget(lab):
    report = _check(lab, bs.FIXTURES / "harness_unmarked.ipynb", FIXTURE_TIMEOUT)
    assert len(report.problems) == 1 and "none is marked as its main widget" in report.problems[0], report.describe()


def test_harness_reports_a_kernel_that_dies_and_recovers(lab):
    report = _check(lab, bs.FIXTURES / "harness_kernel_dies.ipynb", FIXTURE_TIMEOUT)
    assert any("the kernel died" in p for p in report.problems), report.describe()
    assert lab.page.locator(".jp-Dialog").count() == 0, "the 'kernel restarting' dialog was left open for the next notebook"


# --------------------------------------------------------------------------------------------
# the notebooks
# --------------------------------------------------------------------------------------------

def test_notebook_in_browser(lab, notebook):
    report = _check(lab, notebook)
    assert report.problems == [], report.describe()


# --------------------------------------------------------------------------------------------
# make lab, and the process helpers the fixtures rely on
# --------------------------------------------------------------------------------------------

def test_make_lab_serves_the_notebooks(jupyter_env, tmp_path):
    make = shutil.which("make")
    if make is None:
        _unavailable("`make` is not installed, so `make lab` cannot be checked")
    port, token = bs.free_port(), secrets.token_hex(16)
    flags = ["--no-browser", f"--IdentityProvider.token={token}", "--ServerApp.ip=127.0.0.1",
             "--ServerApp.port_retries=0"] + (["--allow-root"] if os.geteuid() == 0 else [])
    # -o: never (re)build the venv stamp from here; `make test` has just made sure it is up to date
    cmd = [make, "--no-print-directory", "-o", ".venv/.srlearn-installed", "lab",
           f"LAB_PORT={port}", f"LAB_FLAGS={' '.join(flags)}"]
    log = tmp_path / "make-lab.log"
    proc = bs.start_group(cmd, env=jupyter_env, cwd=bs.REPO, log=log)
    try:
        status = json.loads(bs.wait_for_http(f"http://127.0.0.1:{port}/api/status?token={token}", proc, 180, log))
        assert "started" in status, status
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=10) as r:
            listed = {item["name"] for item in json.loads(r.read())["content"] if item["type"] == "notebook"}
        on_disk = {p.name for p in bs.NOTEBOOKS.glob("*.ipynb")}
        assert listed == on_disk, f"`make lab` does not serve notebooks/: its notebooks are {sorted(listed)}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=30) as r:
            assert r.status == 200 and b"jupyter-config-data" in r.read(), "/lab is not the JupyterLab page"
    finally:
        tree = bs.descendants(proc.pid) | {proc.pid}
        bs.stop_group(proc)
    assert not [p for p in tree if bs.alive(p)], "processes of `make lab` survived stopping it"


def test_stop_group_kills_processes_that_left_the_group(tmp_path):
    # like Jupyter kernels, one child runs in its own session; both must be gone after stop_group
    code = ("import subprocess, time; subprocess.Popen(['sleep', '300'], start_new_session=True); "
            "subprocess.Popen(['sleep', '301']); time.sleep(300)")
    proc = bs.start_group([sys.executable, "-c", code], env=dict(os.environ), cwd=tmp_path, log=tmp_path / "log")
    try:
        deadline = time.monotonic() + 30
        while len(bs.descendants(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = bs.descendants(proc.pid) | {proc.pid}
        assert len(tree) == 3, f"the test processes did not start: {tree}"
    finally:
        bs.stop_group(proc, grace=5)
    assert not [p for p in tree if bs.alive(p)]


def test_wait_for_http_reports_a_server_that_died(tmp_path):
    log = tmp_path / "log"
    proc = bs.start_group([sys.executable, "-c", "print('boom: port in use'); raise SystemExit(3)"],
                          env=dict(os.environ), cwd=tmp_path, log=log)
    try:
        with pytest.raises(RuntimeError, match=r"(?s)exited with status 3.*boom: port in use"):
            bs.wait_for_http(f"http://127.0.0.1:{bs.free_port()}/api/status", proc, 60, log)
    finally:
        bs.stop_group(proc, grace=5)
