"""Helpers for the notebook tests: an isolated Jupyter environment, process groups, JupyterLab,
Chromium, and the browser harness that runs a notebook in JupyterLab and checks what the page shows.

Used by ``tests/test_browser.py`` (the browser test, its self-tests and the ``make lab`` check),
``tests/test_notebooks.py`` (headless nbclient run) and ``tests/conftest.py`` (shared fixtures).
Nothing here imports ``srlearn``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCREENSHOTS = Path(os.environ.get("SRLEARN_SCREENSHOTS", Path(__file__).resolve().parent / "screenshots"))

CHROMIUM = os.environ.get("SRLEARN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Seconds. Waits, not assertions on speed: each only bounds how long a broken notebook can hang the run.
RUN_TIMEOUT = float(os.environ.get("SRLEARN_BROWSER_TIMEOUT", "600"))  # run-all of one notebook
WIDGET_TIMEOUT = 120.0  # the kernel's answer to one move of a main widget
SETTLE_TIMEOUT = 30.0  # widget views and images to finish rendering

# JupyterLab user settings for the test session (files under JUPYTERLAB_SETTINGS_DIR).
LAB_SETTINGS = {
    # no "Would you like to receive official Jupyter news?" toast, no update check (no network)
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # never write the notebooks under test back to disk
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # every cell attached to the DOM (the default 'contentVisibility' may skip off-screen cells)
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}

# ipywidgets controls a reader can move (DOM classes of ipywidgets 8). Output, HTML, Label and
# progress bars (tqdm.auto) are not controls: a notebook with only those needs no main widget.
CONTROL_SELECTOR = ", ".join(".widget-" + c for c in (
    "slider", "dropdown", "select", "select-multiple", "radio", "toggle-buttons", "toggle-button",
    "checkbox", "text", "textarea", "button", "play", "colorpicker", "datepicker", "timepicker",
    "datetimepicker", "upload", "combobox"))
MAIN_CLASS = "srlearn-main"

# Notebooks this process has run in the browser (whatever the outcome): with SRLEARN_NB_HEADLESS=auto,
# tests/test_notebooks.py does not run them a second time.
BROWSER_RAN: set[Path] = set()


# --------------------------------------------------------------------------------------------
# environment and processes
# --------------------------------------------------------------------------------------------

def jupyter_environment(base: Path) -> dict[str, str]:
    """The environment for a Jupyter server or kernel whose state lives under ``base``.

    Config, data, runtime, IPython and Matplotlib directories are fresh; lab user settings switch
    off the news pop-up and autosave. Extensions and kernels that live under ``sys.prefix`` (the
    ipywidgets lab extension, the venv's ``python3`` kernel) are still found: Jupyter searches the
    user directory first and ``sys.prefix`` after it. ``SRLEARN_MODE=quick`` for every kernel.
    """
    base = Path(base)
    dirs = {name: base / name for name in ("config", "data", "runtime", "ipython", "matplotlib",
                                           "lab-settings", "lab-workspaces", "checkpoints")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for plugin, values in LAB_SETTINGS.items():
        f = dirs["lab-settings"] / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values, indent=2))
    env = dict(os.environ)
    # a user's own setting of these would pull in other kernels, another lab build or a non-inline backend
    for var in ("JUPYTER_PATH", "JUPYTERLAB_DIR", "JUPYTER_CONFIG_PATH", "MPLBACKEND", "JPY_PARENT_PID"):
        env.pop(var, None)
    env.update({
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        "MPLCONFIGDIR": str(dirs["matplotlib"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["lab-settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["lab-workspaces"]),
        "SRLEARN_CHECKPOINTS_DIR": str(dirs["checkpoints"]),  # read by LabServer, not by srlearn
        "SRLEARN_MODE": "quick",
        "PYTHONUNBUFFERED": "1",
        # one compute thread per kernel: the kernel shares 2 cores with the server and the browser, and
        # torch's 2 threads on a busy 2-core machine made quick-mode training 6-10x slower (measured)
        "OMP_NUM_THREADS": "1",
    })
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc; an empty set elsewhere)."""
    if not Path("/proc/self/stat").exists():
        return set()
    kids, out, todo = _children_map(), set(), [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie is dead, waiting to be reaped


def kill_pids(pids, sig=signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def start_group(cmd: list[str], *, env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    """Start ``cmd`` in its own session and process group, stdout and stderr to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop_group(proc: subprocess.Popen, grace: float = 20.0) -> list[int]:
    """Stop a process started by :func:`start_group`: SIGTERM to its group, SIGKILL after ``grace``
    seconds, then SIGKILL by id to any descendant that left the group (Jupyter kernels run in their
    own sessions). Returns the ids that had to be killed with SIGKILL."""
    tree = descendants(proc.pid)
    killed: list[int] = []
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            killed.append(proc.pid)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
    try:  # the group may outlive its leader
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(alive(p) for p in tree):
        time.sleep(0.1)
    left = [p for p in tree if alive(p)]
    kill_pids(left)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in left):
        time.sleep(0.05)
    return killed + left


def log_tail(path: Path, n: int = 40) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float, log: Path | None = None) -> bytes:
    """GET ``url`` until it answers 200; raise RuntimeError if ``proc`` exits or ``timeout`` passes."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise RuntimeError(f"the server process exited with status {code} before {url} answered; "
                               f"its log ({log}):\n{log_tail(log) if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return r.read()
        except (urllib.error.URLError, OSError) as e:
            last = e
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s (last error: {last}); "
                       f"log ({log}):\n{log_tail(log) if log else ''}")


# --------------------------------------------------------------------------------------------
# Chromium
# --------------------------------------------------------------------------------------------

def ensure_chromium(say=print) -> tuple[str | None, str]:
    """Return ``(path, note)``: Chromium's path, installing Debian's ``chromium`` with apt-get when it
    is missing and we are root; ``(None, reason)`` where it cannot be had."""
    if Path(CHROMIUM).exists():
        return CHROMIUM, f"using {CHROMIUM}"
    fix = ("install it (Debian/Ubuntu: `sudo apt-get install -y chromium`) or point SRLEARN_CHROMIUM "
           "at a Chromium/Chrome binary")
    if os.environ.get("SRLEARN_CHROMIUM"):
        return None, f"SRLEARN_CHROMIUM={CHROMIUM} does not exist: {fix}"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, f"{CHROMIUM} is missing and this user is not root, so the test cannot apt-get it: {fix}"
    if not shutil.which("apt-get"):
        return None, f"{CHROMIUM} is missing and there is no apt-get on this machine: {fix}"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = []

    def apt(*args):
        say(f"browser test: apt-get {' '.join(args)} ...")
        r = subprocess.run(["apt-get", *args], env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=1200)
        log.append(f"$ apt-get {' '.join(args)} -> {r.returncode}\n{(r.stdout + r.stderr)[-2000:]}")
        return r.returncode == 0

    t0 = time.monotonic()
    try:
        # a fresh container has no package lists: install fails fast, then update and retry
        ok = apt("install", "-y", "-q", "chromium") or (apt("update", "-q") and apt("install", "-y", "-q", "chromium"))
    except (OSError, subprocess.TimeoutExpired) as e:
        ok, _ = False, log.append(repr(e))
    if ok and Path(CHROMIUM).exists():
        say(f"browser test: installed Debian's chromium in {time.monotonic() - t0:.0f} s")
        return CHROMIUM, f"installed {CHROMIUM} with apt-get"
    return None, (f"{CHROMIUM} is missing and `apt-get install -y chromium` did not provide it "
                  f"(no package repository reachable?): {fix}.\n" + "\n".join(log)[-3000:])


# --------------------------------------------------------------------------------------------
# JupyterLab server
# --------------------------------------------------------------------------------------------

class LabServer:
    """``jupyter lab`` from this interpreter's environment (the venv) on 127.0.0.1 with a token,
    serving ``root``; state under the directories of ``env`` (see :func:`jupyter_environment`)."""

    def __init__(self, root: Path, env: dict, log: Path):
        self.root, self.env, self.log = Path(root), env, Path(log)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.jupyter = Path(sys.executable).parent / "jupyter"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def start(self, timeout: float = 180) -> "LabServer":
        if not self.jupyter.exists():
            raise RuntimeError(f"{self.jupyter} not found: run the tests with the venv's python "
                               f"(`make test`, or .venv/bin/python -m pytest)")
        cmd = [str(self.jupyter), "lab", "--no-browser",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}",
               "--LabApp.expose_app_in_browser=True",  # window.jupyterapp for the harness
               f"--FileCheckpoints.root_dir={self.env['SRLEARN_CHECKPOINTS_DIR']}"]  # no .ipynb_checkpoints in the repo
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self.proc = start_group(cmd, env=self.env, cwd=self.root, log=self.log)
        wait_for_http(f"{self.url}/api/status?token={self.token}", self.proc, timeout, self.log)
        return self

    def stop(self) -> list[int]:
        if self.proc is None:
            return []
        if self.proc.poll() is None:
            try:  # let the server shut its kernels down, then stop the server
                for k in self.api("/api/kernels") or []:
                    self.api(f"/api/kernels/{k['id']}", method="DELETE")
            except (OSError, urllib.error.URLError, ValueError):
                pass
        return stop_group(self.proc)


# --------------------------------------------------------------------------------------------
# the browser harness
# --------------------------------------------------------------------------------------------

@dataclass
class NotebookReport:
    path: str
    problems: list[str] = field(default_factory=list)
    stdout: str = ""  # every stdout stream output of the notebook, in order
    console: list[str] = field(default_factory=list)  # the page's console errors (for diagnosis only)
    main_widgets: int = 0
    images: int = 0
    widget_views: int = 0
    seconds: float = 0.0
    phases: dict = field(default_factory=dict)  # seconds per step: kernel, run, widgets, ...
    screenshot: Path | None = None
    server_log: Path | None = None  # JupyterLab's log: kernel stderr, e.g. exceptions in widget callbacks

    def describe(self) -> str:
        lines = [f"{self.path}: {len(self.problems)} problem(s) in the browser after {self.seconds:.1f} s "
                 f"{self.phases} (screenshot: {self.screenshot}; server log: {self.server_log}):"]
        lines += [f"  - {p}" for p in self.problems]
        if self.console:
            lines.append("  page console errors (context):")
            lines += [f"    {c[:300]}" for c in self.console[-10:]]
        return "\n".join(lines)


# Opens a notebook through JupyterLab's document manager, starts the venv's python3 kernel and
# listens to it: kernel status changes and every error message on iopub (tracebacks from cells,
# from Output widgets and from widget callbacks alike).
JS_OPEN = """async ([path, seconds]) => {
  const app = window.jupyterapp;
  const limit = (what, p) => Promise.race([p, new Promise((_, reject) => setTimeout(
      () => reject(new Error(`${what}: not done after ${seconds} s`)), seconds * 1000))]);
  const panel = await limit('opening the notebook', app.commands.execute('docmanager:open',
                                           {path, factory: 'Notebook', kernel: {name: 'python3'}}));
  const s = window.__srl = {panel, busy: 0, died: 0, errors: [], done: null, runError: null, sent: 0, answered: 0};
  app.shell.activateById(panel.id);
  await limit('loading the notebook', panel.context.ready);
  await limit('starting its kernel', panel.sessionContext.ready);
  if (!panel.sessionContext.session || !panel.sessionContext.session.kernel) throw new Error('no kernel was started');
  // run-all's promise settles at the first error reply, even when later cells still run (a cell
  // tagged raises-exception): the run is over when every execute request has its reply
  panel.sessionContext.session.kernel.anyMessage.connect((_, a) => {
    const t = a.msg.header.msg_type;
    if (t === 'execute_request' && a.direction === 'send') s.sent++;
    if (t === 'execute_reply' && a.direction === 'recv') s.answered++;
  });
  panel.sessionContext.statusChanged.connect((_, st) => {
    if (st === 'busy') s.busy++;
    if (st === 'dead' || st === 'restarting' || st === 'autorestarting') s.died++;
  });
  panel.sessionContext.iopubMessage.connect((_, msg) => {
    if (msg.header.msg_type === 'error') {
      s.errors.push({ename: msg.content.ename, evalue: msg.content.evalue,
                     parent: (msg.parent_header || {}).msg_type || '',
                     traceback: (msg.content.traceback || []).join('\\n')});
    }
  });
  return panel.id;
}"""

JS_KERNEL_IDLE = """() => { const p = window.__srl.panel;
  return p.sessionContext.session && p.sessionContext.session.kernel &&
         p.sessionContext.kernelDisplayStatus === 'idle'; }"""

JS_RUN_ALL = """() => { const s = window.__srl; window.jupyterapp.shell.activateById(s.panel.id);
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    r => { s.done = String(r); }, e => { s.done = 'error'; s.runError = String(e); }); }"""

JS_RUNNING_CELLS = """() => window.__srl.panel.content.widgets
  .map((c, i) => [i, c]).filter(([i, c]) => c.model.type === 'code' &&
        c.node.querySelector('.jp-InputPrompt') && c.node.querySelector('.jp-InputPrompt').textContent.includes('*'))
  .map(([i, c]) => i)"""

JS_SETTLED = """() => {
  const root = window.__srl.panel.content.node;
  const pending = Array.from(root.querySelectorAll('.jp-OutputArea-output')).some(
    n => n.textContent.trim().startsWith('Loading widget...') && !n.querySelector('.jupyter-widgets'));
  const loading = Array.from(root.querySelectorAll('.jp-OutputArea img')).some(i => !i.complete);
  return !pending && !loading; }"""

# Everything the checks need, from the notebook model (outputs as saved in .ipynb) and the page.
JS_COLLECT = """(args) => {
  const [controlSel, mainClass] = args;
  const s = window.__srl, nb = s.panel.content, out = {cells: [], mains: 0, controls: 0, placeholders: [],
        brokenImages: [], allImages: 0, errors: s.errors, died: s.died, dialogs: []};
  const visible = n => !!(n.offsetWidth || n.offsetHeight || n.getClientRects().length);
  nb.widgets.forEach((cell, i) => {
    const m = cell.model;
    if (m.type !== 'code') return;
    const tags = (m.getMetadata ? m.getMetadata('tags') : (m.metadata || {}).tags) || [];
    const c = {index: i, count: m.executionCount, source: m.sharedModel.getSource(), tags, outputs: []};
    for (let j = 0; j < m.outputs.length; j++) {
      const o = m.outputs.get(j).toJSON();
      const child = cell.outputArea && cell.outputArea.widgets[j];
      const node = child ? child.node : null;
      const r = {type: o.output_type, name: o.name || null, text: o.text || null,
                 ename: o.ename || null, evalue: o.evalue || null, traceback: (o.traceback || []).join('\\n'),
                 mimes: Object.keys(o.data || {}), plain: (o.data && o.data['text/plain']) || null,
                 widgetModel: (o.data && o.data['application/vnd.jupyter.widget-view+json'] || {}).model_id || null,
                 hasNode: !!node, imgs: [], widgetRendered: false, nodeText: ''};
      if (node) {
        r.imgs = Array.from(node.querySelectorAll('img')).map(im => ({complete: im.complete, w: im.naturalWidth}));
        r.widgetRendered = !!node.querySelector('.jp-OutputArea-output .jupyter-widgets');
        r.nodeText = node.textContent.trim().slice(0, 200);
        r.hidden = !visible(node);
      }
      c.outputs.push(r);
    }
    out.cells.push(c);
  });
  nb.node.querySelectorAll('.jp-OutputArea-output').forEach(n => {
    const t = n.textContent.trim();
    if ((t.startsWith('Loading widget...') || t.startsWith('Error displaying widget')) && !n.querySelector('.lm-Widget.jupyter-widgets')) {
      const cell = n.closest('.jp-Cell');
      out.placeholders.push({cell: nb.widgets.findIndex(w => w.node === cell), text: t.slice(0, 120)});
    }
  });
  nb.node.querySelectorAll('.jp-OutputArea img').forEach(im => {
    out.allImages++;
    if (!(im.complete && im.naturalWidth > 0)) {
      const cell = im.closest('.jp-Cell');
      out.brokenImages.push({cell: nb.widgets.findIndex(w => w.node === cell), src: im.src.slice(0, 60)});
    }
  });
  out.controls = nb.node.querySelectorAll(controlSel).length;
  out.mains = nb.node.querySelectorAll('.' + mainClass).length;
  document.querySelectorAll('.jp-Dialog').forEach(d => out.dialogs.push(d.textContent.trim().slice(0, 300)));
  return out; }"""

# What a main widget drives: the images and the text of its cell's output area, the main
# control(s) themselves left out (a slider's own readout changes whenever it moves).
JS_SNAPSHOT = """(el) => { const cell = el.closest('.jp-Cell'); if (!cell) return null;
  const area = cell.querySelector('.jp-OutputArea'); const clone = area.cloneNode(true);
  clone.querySelectorAll('.srlearn-main').forEach(e => e.remove());
  return JSON.stringify({imgs: Array.from(area.querySelectorAll('img')).filter(
      i => !i.closest('.srlearn-main')).map(i => i.src), text: clone.textContent}); }"""

JS_DESCRIBE_MAIN = """(el) => { const nb = window.__srl.panel.content; const cell = el.closest('.jp-Cell');
  const label = el.querySelector('.widget-label'); const h = el.querySelector('.noUi-handle');
  const sel = el.querySelector('select');
  return {cell: nb.widgets.findIndex(w => w.node === cell),
          kind: h ? 'slider' : (sel ? 'dropdown' : 'other'), classes: el.className,
          label: label ? label.textContent.trim() : '',
          now: h ? h.getAttribute('aria-valuenow') : null, max: h ? h.getAttribute('aria-valuemax') : null,
          options: sel ? sel.options.length : 0, selected: sel ? sel.selectedIndex : -1}; }"""

JS_CLOSE = """async () => {
  // dismiss dialogs left open (e.g. 'kernel restarting'): 'cancel' where there is one, else a lone 'OK'
  document.querySelectorAll('.jp-Dialog').forEach(d => {
    const buttons = d.querySelectorAll('.jp-Dialog-footer button');
    const reject = d.querySelector('.jp-Dialog-footer button.jp-mod-reject');
    if (reject) reject.click(); else if (buttons.length === 1) buttons[0].click();
  });
  const s = window.__srl; if (!s) return;
  try { s.panel.context.model.dirty = false; } catch (e) {}
  try { await Promise.race([s.panel.sessionContext.shutdown(), new Promise(r => setTimeout(r, 30000))]); } catch (e) {}
  try { s.panel.dispose(); } catch (e) {}
  window.__srl = null; }"""

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
FIGURE_AS_TEXT = re.compile(r"^<Figure size [\d.]+x[\d.]+ with \d+ Axes>$")


def _text(value) -> str:
    """nbformat text: a string or a list of strings."""
    return "".join(value) if isinstance(value, list) else (value or "")


def _tb_tail(traceback: str, n: int = 4) -> str:
    lines = [ln.rstrip() for ln in ANSI.sub("", traceback or "").splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_executed(nb: dict, source: Path, by: str, folder: str | None = None) -> Path | None:
    """Keep the executed copy of a notebook of ``notebooks/`` in ``SRLEARN_EXECUTED_DIR`` (``make test``
    sets it to build/executed) for ``make site`` / ``make slides`` and tests/test_site.py: tools/kit.py
    reuses a copy while its notebook's SHA-256 is unchanged, so no notebook runs twice. None when unset."""
    folder = folder if folder is not None else os.environ.get("SRLEARN_EXECUTED_DIR", "")
    source = Path(source).resolve()
    if not folder or source.parent != NOTEBOOKS.resolve():
        return None
    import nbformat
    nb = dict(nb)
    # JupyterLab's model writes "attachments": null and the like, which nbformat's schema rejects: drop them
    nb["cells"] = [{k: v for k, v in dict(c).items() if v is not None or k == "execution_count"}
                   for c in nb.get("cells", [])]
    meta = {k: v for k, v in dict(nb.get("metadata", {})).items() if k != "widgets"}
    meta["srlearn_executed"] = {"source_sha256": _sha(source), "mode": "quick", "by": by}
    nb["metadata"] = meta
    nbformat.validate(nbformat.from_dict(nb))  # raises, naming the field, rather than keep a copy nothing reads
    out = Path(folder) / source.name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False))
    os.replace(tmp, out)
    return out


class LabBrowser:
    """Headless Chromium on one JupyterLab page; :meth:`check_notebook` runs one notebook in it."""

    def __init__(self, server: LabServer, chromium: str, screenshots: Path = SCREENSHOTS):
        self.server, self.chromium, self.screenshots = server, chromium, Path(screenshots)
        self._pw = self.browser = self.page = None
        self.pids: set[int] = set()
        self.console: list[str] = []

    def start(self) -> "LabBrowser":
        from playwright.sync_api import sync_playwright
        before = descendants(os.getpid())
        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(executable_path=self.chromium, args=CHROMIUM_ARGS,
                                                    headless=True)
        except Exception as e:
            raise RuntimeError(f"Playwright could not start {self.chromium}: {e}") from e
        # the Playwright driver and the browser it launched: stopped by id in close() if still alive
        self.pids = descendants(os.getpid()) - before
        self._open_lab()
        return self

    def _open_lab(self) -> None:
        """A fresh page on JupyterLab (also after a notebook broke the previous one)."""
        if self.page is not None:
            try:
                self.page.close()
            except Exception:
                pass
        self.page = self.browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("crash", lambda *_: self.console.append("error: the page crashed"))
        self.page.goto(f"{self.server.url}/lab?token={self.server.token}&reset")
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=120_000)
        self.page.evaluate("async () => { await window.jupyterapp.restored; }")
        self.page.evaluate("() => { const sh = window.jupyterapp.shell; sh.collapseLeft && sh.collapseLeft();"
                           " sh.collapseRight && sh.collapseRight(); }")

    def close(self) -> list[int]:
        """Close the page, the browser and the driver; kill by id whatever of them is still alive."""
        for step in (lambda: self.browser and self.browser.close(), lambda: self._pw and self._pw.stop()):
            try:
                step()
            except Exception:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in self.pids):
            time.sleep(0.1)
        left = [p for p in self.pids if alive(p)]
        kill_pids(left)
        return left

    # -- one notebook -------------------------------------------------------------------------

    def check_notebook(self, nb_path: Path, run_timeout: float = RUN_TIMEOUT) -> NotebookReport:
        nb_path = Path(nb_path).resolve()
        rel = nb_path.relative_to(self.server.root).as_posix()
        report = NotebookReport(rel, server_log=self.server.log)
        page, t0, digest = self.page, time.monotonic(), _sha(nb_path)
        n_console, broken = len(self.console), False
        try:
            self._run(rel, report, run_timeout)
            if report.phases.get("run-all") is not None:
                BROWSER_RAN.add(nb_path)
        except Exception as e:  # the page or the harness broke: report it, give the next notebook a new page
            broken = True
            report.problems.append(f"the browser harness failed on this notebook after "
                                   f"{report.phases}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        finally:
            report.screenshot = self._screenshot(nb_path.stem)
            try:
                page.evaluate(JS_CLOSE)
            except Exception as e:
                broken = True
                report.problems.append(f"closing the notebook failed: {str(e).splitlines()[0]}")
            report.console = self.console[n_console:]
            if broken:
                try:
                    self._open_lab()
                except Exception as e:
                    report.problems.append(f"reloading JupyterLab failed too: {str(e).splitlines()[0]}")
            report.seconds = time.monotonic() - t0
        if _sha(nb_path) != digest:
            report.problems.append("the notebook file changed on disk during the browser run "
                                   "(autosave should be off): restore it with `git checkout -- " + rel + "`")
        try:  # what happened, beside the screenshot
            (self.screenshots / f"{nb_path.stem}.json").write_text(json.dumps(
                {"notebook": rel, "seconds": round(report.seconds, 1), "phases": report.phases,
                 "problems": report.problems, "main_widgets": report.main_widgets, "images": report.images,
                 "widget_views": report.widget_views, "console_errors": report.console[-20:]}, indent=1))
        except OSError:
            pass
        return report

    def _run(self, rel: str, report: NotebookReport, run_timeout: float) -> None:
        page, problems, t = self.page, report.problems, [time.monotonic()]

        def lap(name):
            t.append(time.monotonic())
            report.phases[name] = round(t[-1] - t[-2], 2)

        try:
            page.evaluate(JS_OPEN, [rel, 120])
            page.wait_for_function(JS_KERNEL_IDLE, timeout=120_000, polling=200)
        except Exception as e:
            problems.append(f"JupyterLab could not open the notebook and start its python3 kernel: "
                            f"{str(e).splitlines()[0]}")
            return
        lap("open+kernel")
        page.evaluate(JS_RUN_ALL)
        try:
            page.wait_for_function("() => { const s = window.__srl; return s.died > 0 || (s.done !== null && "
                                   "s.answered >= s.sent && s.panel.sessionContext.kernelDisplayStatus === 'idle'); }",
                                   timeout=run_timeout * 1000, polling=250)
        except Exception:
            running = page.evaluate(JS_RUNNING_CELLS)
            state = page.evaluate("() => { const s = window.__srl; return `run-all promise: ${s.done}, execute "
                                  "requests answered: ${s.answered}/${s.sent}, kernel: ${s.panel.sessionContext"
                                  ".kernelDisplayStatus}`; }")
            problems.append(f"run-all did not finish within {run_timeout:.0f} s (cells still running: "
                            f"{running}; {state}); raise SRLEARN_BROWSER_TIMEOUT or make quick mode quicker")
            page.evaluate("() => window.__srl.panel.sessionContext.session.kernel.interrupt()")
            return
        if page.evaluate("() => window.__srl.runError"):
            problems.append(f"JupyterLab's run-all command failed: {page.evaluate('() => window.__srl.runError')}")
        lap("run-all")
        if not page.evaluate("() => window.__srl.died"):  # else _check says so; nothing left to move
            self._settle()
            lap("settle")
            self._move_main_widgets(report)
            lap("main-widgets")
            self._settle()
        self._check(report, page.evaluate(JS_COLLECT, [CONTROL_SELECTOR, MAIN_CLASS]))
        lap("checks")
        if not problems:  # a clean run: keep it for the site and the decks (only when asked, see save_executed)
            try:
                save_executed(page.evaluate("() => window.__srl.panel.context.model.toJSON()"),
                              self.server.root / rel, "browser test")
            except Exception as e:
                print(f"browser test: could not keep the executed copy of {rel}: {e}")

    def _settle(self) -> None:
        try:
            self.page.wait_for_function(JS_SETTLED, timeout=SETTLE_TIMEOUT * 1000, polling=250)
        except Exception:
            pass  # what is still missing is reported by _check

    def _move_main_widgets(self, report: NotebookReport) -> None:
        page, problems = self.page, report.problems
        panel = page.evaluate("() => window.__srl.panel.id")
        mains = page.locator(f"[id='{panel}'] .{MAIN_CLASS}")
        report.main_widgets = mains.count()
        for k in range(report.main_widgets):
            main = mains.nth(k)
            d = main.evaluate(JS_DESCRIBE_MAIN)
            name = f"main widget {k + 1} ({d['kind']} {d['label']!r} in cell {d['cell']})"
            before = main.evaluate(JS_SNAPSHOT)
            if before is None:
                problems.append(f"{name} is not inside a notebook cell's output")
                continue
            busy = page.evaluate("() => window.__srl.busy")
            if d["kind"] == "slider":
                at_max = d["now"] is not None and d["max"] is not None and float(d["now"]) >= float(d["max"])
                handle = main.locator(".noUi-handle").first
                handle.scroll_into_view_if_needed()
                handle.focus()
                page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
            elif d["kind"] == "dropdown":
                if d["options"] < 2:
                    problems.append(f"{name} has {d['options']} option(s): nothing to choose")
                    continue
                main.locator("select").select_option(index=(d["selected"] + 1) % d["options"])
            else:
                problems.append(f"{name} is not a slider or a dropdown (classes: {d['classes']}): mark an "
                                f"IntSlider/FloatSlider/SelectionSlider or a Dropdown with add_class('{MAIN_CLASS}')")
                continue
            try:
                page.wait_for_function(f"() => window.__srl.busy > {busy} && "
                                       "window.__srl.panel.sessionContext.kernelDisplayStatus === 'idle'",
                                       timeout=WIDGET_TIMEOUT * 1000, polling=100)
            except Exception:
                sent = page.evaluate("() => window.__srl.busy") > busy
                problems.append(f"{name}: " + ("the kernel was still busy " if sent else
                                "moving it sent nothing to the kernel within ") + f"{WIDGET_TIMEOUT:.0f} s")
                continue
            after, deadline = before, time.monotonic() + 5
            while after == before and time.monotonic() < deadline:  # outputs land before idle; allow render
                after = main.evaluate(JS_SNAPSHOT)
                if after == before:
                    time.sleep(0.2)
            if after == before:
                problems.append(f"{name}: moving it did not change the output of its cell (same images, "
                                f"same text): it must drive an Output/interactive output in the same cell")

    def _check(self, report: NotebookReport, info: dict) -> None:
        problems = report.problems
        if info["died"]:
            problems.append("the kernel died or restarted during the run (out of memory? a crash in native "
                            "code? os._exit?); the cells after it were not run")
        model_errors, widget_cells, image_cells = set(), set(), set()
        not_run = []
        for c in info["cells"]:
            where = f"cell {c['index']}" + (f" (In [{c['count']}])" if c["count"] else "")
            first = next((ln for ln in c["source"].splitlines() if ln.strip()), "")[:80]
            if c["count"] is None and c["source"].strip():
                not_run.append(c["index"])
            for o in c["outputs"]:
                if o["type"] == "error":
                    model_errors.add((o["ename"], o["evalue"]))
                    if "raises-exception" not in c["tags"]:  # the tag nbclient and JupyterLab honour
                        problems.append(f"{where} raised {o['ename']}: {o['evalue']}  [source: {first!r}; "
                                        f"traceback ends: {_tb_tail(o['traceback'])}]")
                if o["type"] == "stream" and o["name"] == "stdout":
                    report.stdout += _text(o["text"])
                images = [m for m in o["mimes"] if m.startswith("image/")]
                if images:
                    report.images += 1
                    if not o["hasNode"] or not any(im["complete"] and im["w"] > 0 for im in o["imgs"]):
                        image_cells.add(c["index"])
                        problems.append(f"{where}: an {images[0]} output is not shown as a loaded image in the "
                                        f"page (the image did not load, or was not rendered)")
                elif o["mimes"] == ["text/plain"] and FIGURE_AS_TEXT.match(_text(o["plain"]).strip()):
                    problems.append(f"{where}: a matplotlib figure was shown as text {_text(o['plain']).strip()!r}, "
                                    "not as an image (is the inline backend active? is MPLBACKEND set?)")
                if o["widgetModel"]:
                    report.widget_views += 1
                    if not o["hasNode"] or (not o["widgetRendered"] and not o.get("hidden")):
                        widget_cells.add(c["index"])
                        problems.append(f"{where}: an ipywidgets view is not rendered "
                                        f"(page shows {o['nodeText'][:80]!r})")
        if not_run:
            problems.append(f"code cells {not_run} were not run "
                            f"(run-all stops at the first error, or when the kernel dies)")
        # the page itself, inside widgets too (an Output widget's figure is not in the notebook model)
        for p in info["placeholders"]:
            if p["cell"] not in widget_cells:
                problems.append(f"cell {p['cell']}: widget placeholder {p['text']!r} instead of a control")
        for im in info["brokenImages"]:
            if im["cell"] not in image_cells:
                problems.append(f"cell {im['cell']}: an image did not load (naturalWidth 0, src {im['src'][:40]!r}...)")
        for e in info["errors"]:
            if (e["ename"], e["evalue"]) not in model_errors:
                where = "while moving a widget" if e["parent"] == "comm_msg" else "inside a widget output"
                problems.append(f"{e['ename']}: {e['evalue']} raised {where}; traceback ends: "
                                f"{_tb_tail(e['traceback'])}")
        if info["controls"] and not info["mains"]:
            problems.append(f"the notebook shows {info['controls']} ipywidgets control(s) but none is marked as "
                            f"its main widget: call widget.add_class('{MAIN_CLASS}') on the slider or dropdown "
                            f"the browser test should move (see tests/test_browser.py)")
        for d in info["dialogs"]:
            problems.append(f"a dialog is open in JupyterLab: {d!r}")

    def _screenshot(self, stem: str) -> Path | None:
        """The whole notebook: the viewport is made as tall as the notebook (at most 15000 px a shot;
        a taller notebook gets ``<stem>-2.png``, ``<stem>-3.png``, ... for the parts below)."""
        page, most = self.page, 15000
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / f"{stem}.png"
        for old in [path, *self.screenshots.glob(f"{stem}-[0-9]*.png")]:
            old.unlink(missing_ok=True)
        scroll = ("(top) => { const p = window.__srl && window.__srl.panel; if (!p) return 900;"
                  " const outer = p.content.node.querySelector('.jp-WindowedPanel-outer') || p.content.node;"
                  " outer.scrollTop = top; return outer.scrollHeight; }")
        try:
            height = page.evaluate(scroll, 0) + 200
            view = int(min(max(height, 900), most))
            page.set_viewport_size({"width": 1280, "height": view})
            top, part = 0, 1
            while True:
                page.evaluate(scroll, top)
                page.wait_for_timeout(300)  # one layout pass of JupyterLab (not an assertion)
                page.screenshot(path=str(path if part == 1 else self.screenshots / f"{stem}-{part}.png"))
                top += view - 400  # the shots overlap by a few lines
                if top + 400 >= height or part >= 20:
                    return path
                part += 1
        except Exception:
            return path if path.exists() else None
        finally:
            try:
                page.set_viewport_size({"width": 1280, "height": 900})
            except Exception:
                pass
