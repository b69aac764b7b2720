"""The study-group kit: tags, student copies, review decks, executed notebooks and the static site.

    python tools/kit.py tag        write the deck/exercise tags of tools/kit_manifest.py and the guarded
                                   first cell into notebooks/*.ipynb (idempotent; keeps ids; no outputs)
    python tools/kit.py execute    run every notebook in quick mode into build/executed/ (a copy whose
                                   recorded source hash still matches is reused, not run again)
    python tools/kit.py student    build/student/: exercise functions become stubs with a hint, the
                                   "same as the package" assertions become srlearn.check calls
    python tools/kit.py slides     build/slides/NAME.slides.html: reveal.js decks of the deck-tagged cells
                                   (from build/executed/ when a fresh copy is there, so figures show)
    python tools/kit.py site       build/site/: a static site (mkdocs + mkdocs-jupyter) of the executed
                                   notebooks, docs/ and the README

The Makefile targets ``student``, ``slides`` and ``site`` call these. This script does not import srlearn:
it reads and writes notebooks (nbformat) and calls nbclient, nbconvert and mkdocs.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from kit_manifest import DECK, EXERCISES  # noqa: E402

DECK_TAG, EXERCISE_TAG = "deck", "exercise"
GUARD_ID = "setup-check"
GUARD_SOURCE = '''\
# Setup check: this notebook needs the srlearn package (this repository) in the kernel's environment.
try:
    import srlearn
except ImportError as error:
    class SetupNeeded(Exception):
        def _render_traceback_(self):  # IPython shows this text instead of a traceback
            return [str(self)]
    raise SetupNeeded(
        f"This kernel cannot import srlearn ({error}).\\n"
        "From the repository root, either run\\n"
        "    make lab            (sets up .venv on first use and opens JupyterLab on notebooks/)\\n"
        "or install the package into this kernel's environment:\\n"
        "    pip install -e .\\n"
        "then restart the kernel (Kernel > Restart Kernel) and run the notebook again.") from None
print(f"srlearn {srlearn.__version__} | mode {srlearn.mode()} | device {srlearn.device()}")'''


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_atomic(nb, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        nbformat.write(nb, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


# ---------------------------------------------------------------------------------------------------
# tag: the manifest into the notebooks, and the guarded first cell
# ---------------------------------------------------------------------------------------------------

def tag_notebook(path: Path) -> bool:
    """Apply the manifest's tags and the guard cell to ``path``; return whether the file changed."""
    stem = path.stem
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    ids = {c.get("id") for c in nb.cells}
    wanted = {DECK_TAG: set(DECK.get(stem, [])), EXERCISE_TAG: set(EXERCISES.get(stem, {}))}
    for tag, cell_ids in wanted.items():
        missing = sorted(cell_ids - ids)
        if missing:
            raise SystemExit(f"{path.name}: tools/kit_manifest.py names cells {missing} for '{tag}', which the "
                             f"notebook does not have (a cell id changed?): fix the manifest")
    for cell in nb.cells:
        t = [x for x in tags(cell) if x not in wanted]
        t += [tag for tag, cell_ids in wanted.items() if cell.get("id") in cell_ids]
        if t:
            cell.metadata["tags"] = t
        else:
            cell.metadata.pop("tags", None)
    guard = [c for c in nb.cells if c.get("id") == GUARD_ID]
    if guard:
        guard[0].source = GUARD_SOURCE
        if nb.cells[0] is not guard[0]:
            nb.cells.remove(guard[0])
            nb.cells.insert(0, guard[0])
    else:
        cell = nbformat.v4.new_code_cell(GUARD_SOURCE)
        cell.id = GUARD_ID
        nb.cells.insert(0, cell)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.validate(nb)
    if nbformat.writes(nb) == before:
        return False
    write_atomic(nb, path)
    return True


# ---------------------------------------------------------------------------------------------------
# student copies
# ---------------------------------------------------------------------------------------------------

ASSERT_CALLS = ("assert_close", "assert_allclose")


def _call_name(func) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _offsets(source: str) -> list[int]:
    starts, total = [], 0
    for line in source.splitlines(keepends=True):
        starts.append(total)
        total += len(line)
    starts.append(total)
    return starts


def _replace(source: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, text in sorted(edits, reverse=True):
        source = source[:start] + text + source[end:]
    return source


def _stub(node, hint: str, label: str, indent: str) -> str:
    """The stub for function ``node``: its signature, its first comment, and a raise with the hint."""
    args = ast.unparse(node.args)
    head = f"{indent}def {node.name}({args}):\n"
    body = indent + "    "
    return (f"{head}{body}# EXERCISE: write the body of {label}. Hint: {hint}\n"
            f"{body}raise srlearn.exercise.todo({label!r}, {hint!r})\n")


def _labels(tree, names, seed=None):
    """Which exercises each variable of the cell came from (``out = my_soca(...)`` -> {"my_soca"}), and
    ``refs(node)``: the exercises an expression depends on, directly or through those variables."""
    tops = {n.split(".")[0] for n in names if "=" not in n}
    labels: dict[str, set[str]] = dict(seed or {})

    def refs(node) -> set[str]:
        found = set()
        for n in ast.walk(node):
            ident = n.id if isinstance(n, ast.Name) else None
            if ident in tops:
                found.add(ident)
            elif ident in labels:
                found |= labels[ident]
        return found

    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            came = refs(node.value)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name) and came:
                        labels[n.id] = labels.get(n.id, set()) | came
    return labels, refs


def stub_cell(source: str, names: dict[str, str], where: str, stub: bool = True) -> str:
    """Stub the functions/methods in ``names`` (when ``stub``) and turn the cell's assertions into checks."""
    tree = ast.parse(source)
    starts = _offsets(source)
    lines = source.splitlines(keepends=True)

    def pos(line: int, col: int) -> int:  # ast columns count UTF-8 bytes; the cell's text counts characters
        return starts[line - 1] + len(lines[line - 1].encode("utf-8")[:col].decode("utf-8"))

    edits, seed = [], {}
    top = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for name, hint in names.items():
        if "=" in name:  # "LABEL=first..last": the top-level statements assigning first ... last
            label, span = name.split("=", 1)
            first, last = span.split("..")
            assigned = [(i, {n.id for tg in s.targets for n in ast.walk(tg) if isinstance(n, ast.Name)})
                        for i, s in enumerate(tree.body) if isinstance(s, ast.Assign)]
            i = next((i for i, v in assigned if first in v), None)
            j = next((i for i, v in reversed(assigned) if last in v), None)
            if i is None or j is None or j < i:
                raise SystemExit(f"{where}: the manifest's exercise block {name!r} (assignments of {first} ... "
                                 f"{last}) is not in this cell")
            for s in tree.body[i:j + 1]:
                for tg in getattr(s, "targets", []):
                    seed.update({n.id: {label} for n in ast.walk(tg) if isinstance(n, ast.Name)})
            if stub:
                text = (f"# EXERCISE: compute {first} ... {last} ({label}). Hint: {hint}\n"
                        f"raise srlearn.exercise.todo({label!r}, {hint!r})\n")
                edits.append((starts[tree.body[i].lineno - 1], starts[tree.body[j].end_lineno], text))
            continue
        cls, _, meth = name.partition(".")
        node = top.get(cls)
        if meth and isinstance(node, ast.ClassDef):
            node = next((m for m in node.body if isinstance(m, ast.FunctionDef) and m.name == meth), None)
        if not isinstance(node, ast.FunctionDef):
            raise SystemExit(f"{where}: the manifest's exercise {name!r} is not a function or method in this cell")
        if not stub:
            continue
        first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        comment = [ln for ln in source.splitlines()[node.lineno:node.body[0].lineno - 1] if ln.strip().startswith("#")]
        text = _stub(node, hint, name, " " * node.col_offset)
        if comment:  # keep the specification comment the solution starts with
            head, rest = text.split("\n", 1)
            text = head + "\n" + "\n".join(comment) + "\n" + rest
        edits.append((starts[first - 1], starts[node.end_lineno], text))
    _, refs = _labels(tree, names, seed)

    def label_of(node) -> str:
        came = sorted(refs(node))
        return " / ".join(came) if came else ast.unparse(node)[:60]

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node.func).split(".")[-1] in ASSERT_CALLS and len(node.args) >= 2:
            mine, ref = node.args[0], node.args[1]
            kw = [f"{k.arg}={ast.get_source_segment(source, k.value)}" for k in node.keywords]
            if _call_name(node.func).split(".")[-1] == "assert_allclose" and not any(k.arg == "rtol" for k in node.keywords):
                kw.append("rtol=1e-7")  # numpy's default, which torch's would not apply
            call = (f"srlearn.check({label_of(mine)!r}, lambda: {ast.get_source_segment(source, mine)}, "
                    f"{ast.get_source_segment(source, ref)}" + "".join(", " + k for k in kw) + ")")
            edits.append((pos(node.lineno, node.col_offset), pos(node.end_lineno, node.end_col_offset), call))
        elif isinstance(node, ast.Assert) and refs(node.test):
            cond = ast.get_source_segment(source, node.test)
            call = f"srlearn.exercise.ensure({label_of(node.test)!r}, lambda: {cond}, {cond!r})"
            edits.append((pos(node.lineno, node.col_offset), pos(node.end_lineno, node.end_col_offset), call))
    out = _replace(source, edits)
    ast.parse(out)  # a stub that does not compile is a bug here, not the student's
    return out


def student_notebook(nb):
    """A student copy of ``nb`` (a new object): stubs in the exercise cells, checks instead of asserts."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    stem = nb.metadata.get("srlearn_stem", "")
    for cell in nb.cells:
        if EXERCISE_TAG in tags(cell) and cell.cell_type == "code":
            names = EXERCISES.get(stem, {}).get(cell.get("id"), {})
            cell.source = stub_cell(cell.source, names, f"{stem} cell {cell.get('id')}")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("srlearn_stem", None)
    return nb


def checked_solution(nb):
    """The solution with the exercise cells' assertions turned into checks and nothing stubbed."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    stem = nb.metadata.pop("srlearn_stem", "")
    for cell in nb.cells:
        if EXERCISE_TAG in tags(cell) and cell.cell_type == "code":
            names = EXERCISES.get(stem, {}).get(cell.get("id"), {})
            cell.source = stub_cell(cell.source, names, f"{stem} cell {cell.get('id')}", stub=False)
    return nb


STUDENT_NOTE = """\
**Student copy.** The cells marked *EXERCISE* are yours to write: each one's function body was replaced
by a hint and `raise srlearn.exercise.todo(...)`. Run the notebook from the top; when a cell stops with ❌,
write that function, run the cell again, and go on when it prints ✅ (your function matches the package,
the tested reference). The solutions are the notebooks in `notebooks/`.
"""


def read_stem(path: Path):
    nb = nbformat.read(path, as_version=4)
    nb.metadata["srlearn_stem"] = path.stem
    return nb


def build_student(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebook_paths():
        nb = student_notebook(read_stem(path))
        if not any(EXERCISE_TAG in tags(c) for c in nb.cells):
            continue
        note = nbformat.v4.new_markdown_cell(STUDENT_NOTE)
        note.id = "student-note"
        nb.cells.insert(1, note)
        write_atomic(nb, out / path.name)
        written.append(out / path.name)
    return written


# ---------------------------------------------------------------------------------------------------
# executed copies (quick mode), reused while the source is unchanged
# ---------------------------------------------------------------------------------------------------

def executed_copy(path: Path, executed: Path) -> Path | None:
    """``executed/NAME.ipynb`` when it was made from the current ``path``, else None."""
    copy = executed / path.name
    if not copy.exists():
        return None
    try:
        meta = nbformat.read(copy, as_version=4).metadata.get("srlearn_executed", {})
    except Exception:
        return None
    return copy if meta.get("source_sha256") == sha256(path) else None


def record_execution(nb, source: Path, seconds: float, how: str):
    nb.metadata["srlearn_executed"] = {"source_sha256": sha256(source), "mode": "quick", "by": how,
                                       "seconds": round(seconds, 1)}
    nb.metadata.pop("widgets", None)
    return nb


def execute(paths: list[Path], executed: Path, timeout: int = 900, force: bool = False) -> dict[str, float]:
    """Run each notebook top to bottom (quick mode, cwd notebooks/) into ``executed``; seconds per notebook."""
    from nbclient import NotebookClient
    env = dict(os.environ, SRLEARN_MODE="quick", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    times = {}
    for path in paths:
        if not force and executed_copy(path, executed):
            print(f"  {path.name}: reusing {executed / path.name} (source unchanged)")
            continue
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            client = NotebookClient(nb, timeout=timeout, startup_timeout=120, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent)}},
                                    record_timing=True)
            client.execute(env=dict(env, MPLCONFIGDIR=tmp, IPYTHONDIR=tmp))
        times[path.name] = time.perf_counter() - t0
        write_atomic(record_execution(nb, path, times[path.name], "tools/kit.py execute"), executed / path.name)
        print(f"  {path.name}: executed in {times[path.name]:.0f} s -> {executed / path.name}")
    return times


def cell_seconds(nb) -> list[tuple[str, float]]:
    """(cell id, seconds) of an executed notebook, from nbclient's recorded timing."""
    from datetime import datetime
    out = []
    for cell in nb.cells:
        t = cell.get("metadata", {}).get("execution", {})
        a, b = t.get("iopub.execute_input"), t.get("shell.execute_reply")
        if a and b:
            p = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
            out.append((cell.get("id"), (p(b) - p(a)).total_seconds()))
    return out


def best_copy(path: Path, executed: Path) -> Path:
    return executed_copy(path, executed) or path


# ---------------------------------------------------------------------------------------------------
# decks
# ---------------------------------------------------------------------------------------------------

def deck_notebook(nb):
    """Only the deck-tagged cells (plus a title slide when the first is not one), with slide types set."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cells = [c for c in nb.cells if DECK_TAG in tags(c)]
    for i, cell in enumerate(cells):
        first_line = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
        if cell.cell_type == "markdown":
            kind = "slide" if (i == 0 or first_line.startswith("#")) else "subslide"
        else:
            kind = "subslide"
            cell.metadata.setdefault("tags", []).append("remove_input")
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        cell.metadata["slideshow"] = {"slide_type": kind}
    nb.cells = cells
    return nb


def build_deck(path: Path, out: Path, executed: Path, reveal_prefix: str | None = None) -> Path | None:
    """``out/NAME.slides.html`` from the deck cells of ``path`` (its executed copy when fresh); None without deck."""
    src = best_copy(path, executed)
    nb = deck_notebook(nbformat.read(src, as_version=4))
    if not nb.cells:
        return None
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        deck = Path(tmp) / path.name
        nbformat.write(nb, deck)
        cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "slides", str(deck), "--output-dir", str(out),
               "--TagRemoveInputPreprocessor.enabled=True",
               "--TagRemoveInputPreprocessor.remove_input_tags=remove_input",
               "--SlidesExporter.reveal_scroll=True", "--log-level=ERROR"]
        if reveal_prefix:
            cmd.append(f"--SlidesExporter.reveal_url_prefix={reveal_prefix}")
        subprocess.run(cmd, check=True)
    written = out / f"{path.stem}.slides.html"
    print(f"  {written}: {len(nb.cells)} slides" + ("" if src != path else
          " (no fresh executed copy, so no figures: `python tools/kit.py execute` first)"))
    return written


def build_slides(out: Path, executed: Path, reveal_prefix: str | None = None) -> list[Path]:
    return [d for p in notebook_paths() if (d := build_deck(p, out, executed, reveal_prefix))]


# ---------------------------------------------------------------------------------------------------
# site
# ---------------------------------------------------------------------------------------------------

SITE_NAV_DOCS = [("The papers (reference notes)", "papers.md"), ("The SR protocol", "sr-protocol.md")]


def site_sources(dest: Path, executed: Path) -> dict:
    """Lay out the mkdocs docs_dir under ``dest``; return the nav."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "notebooks").mkdir(parents=True)
    readme = (ROOT / "README.md").read_text()
    # the README's links, from the site's root: docs/X -> X, data/README.md -> data.md
    readme = re.sub(r"\]\(docs/", "](", readme).replace("](data/README.md)", "](data.md)")
    readme = readme.replace("](leaders/README.md)", "](leaders/index.md)")
    (dest / "index.md").write_text(readme)
    nav = [{"Home": "index.md"}]
    nb_nav = []
    for path in notebook_paths():
        src = best_copy(path, executed)
        nb = nbformat.read(src, as_version=4)
        for cell in nb.cells:  # the kit's own tags are for the tools, not for readers of the site
            kept = [x for x in tags(cell) if x not in (DECK_TAG, EXERCISE_TAG)]
            if kept:
                cell.metadata["tags"] = kept
            else:
                cell.metadata.pop("tags", None)
        nbformat.write(nb, dest / "notebooks" / path.name)
        title = nb.cells
        heading = next((c.source.splitlines()[0].lstrip("# ").strip() for c in title
                        if c.cell_type == "markdown" and c.source.startswith("# ")), path.stem)
        nb_nav.append({heading: f"notebooks/{path.name}"})
    nav.append({"Notebooks": nb_nav})
    docs = ROOT / "docs"
    doc_nav = []
    for title, name in SITE_NAV_DOCS:
        if (docs / name).exists():
            shutil.copyfile(docs / name, dest / name)
            doc_nav.append({title: name})
    leaders = sorted((docs / "leaders").glob("*.md")) if (docs / "leaders").exists() else []
    if leaders:
        (dest / "leaders").mkdir()
        lead_nav = []
        for f in leaders:
            name = "index.md" if f.name == "README.md" else f.name
            shutil.copyfile(f, dest / "leaders" / name)
            first = next((ln.lstrip("# ").strip() for ln in f.read_text().splitlines() if ln.startswith("# ")), f.stem)
            lead_nav.append({first: f"leaders/{name}"})
        doc_nav.append({"Leader's guides": lead_nav})
    if (ROOT / "data" / "README.md").exists():
        shutil.copyfile(ROOT / "data" / "README.md", dest / "data.md")
        doc_nav.append({"Datasets": "data.md"})
    nav.append({"Reference": doc_nav})
    return nav


def site_requirements() -> list[str]:
    """The ``site`` extra of pyproject.toml (read without tomllib, which Python 3.10 lacks)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^site\s*=\s*\[(.*?)\]", text, re.S | re.M)
    if not block:
        raise SystemExit("pyproject.toml has no [project.optional-dependencies] site = [...] extra")
    return re.findall(r'"([^"]+)"', block.group(1))


# The wheel ships MathJax 2 with the STIX-Web fonts only (as Jupyter configures it): say so.
MATHJAX_LOCAL_CONFIG = """MathJax.Hub.Config({
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null},
  SVG: {font: "STIX-Web"}
});
MathJax.Ajax.loadComplete("[MathJax]/config/local/srlearn.js");
"""


def mathjax_files() -> Path | None:
    """MathJax 2 as shipped by the jupyter-server-mathjax wheel (the [site] extra), or None."""
    import importlib.util
    spec = importlib.util.find_spec("jupyter_server_mathjax")  # located, not imported (that needs jupyter_server)
    if spec is None or not spec.origin:
        return None
    static = Path(spec.origin).parent / "static"
    return static if (static / "MathJax.js").exists() else None


def build_site(out: Path, executed: Path) -> Path:
    work = out.parent / f".{out.name}-src"  # the mkdocs project: docs_dir and mkdocs.yml, beside the site
    nav = site_sources(work / "docs", executed)
    mathjax = mathjax_files()
    if mathjax is not None:  # served with the site: equations render offline too
        shutil.copytree(mathjax, work / "docs" / "mathjax")
        local = work / "docs" / "mathjax" / "config" / "local"
        local.mkdir(parents=True, exist_ok=True)
        (local / "srlearn.js").write_text(MATHJAX_LOCAL_CONFIG)
    else:
        print("  note: jupyter-server-mathjax is not installed; notebook pages load MathJax from a CDN")
    config = {
        "site_name": "srlearn: learn super-resolution papers by building them",
        "docs_dir": str(work / "docs"),
        "site_dir": str(out),
        "use_directory_urls": False,  # pages open from the file system too
        "theme": {"name": "readthedocs", "highlightjs": False},  # no CDN script
        "nav": nav,
        "markdown_extensions": ["tables", "toc", "fenced_code"],
        "plugins": ["search", {"mkdocs-jupyter": {"execute": False, "include_source": True, "ignore_h1_titles": True,
                                        "include_requirejs": False,
                                        **({"custom_mathjax_url": "../mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,local/srlearn"}
                                           if mathjax is not None else {})}}],
        "validation": {"links": {"not_found": "warn", "anchors": "info", "unrecognized_links": "info"}},
    }
    cfg = work / "mkdocs.yml"
    cfg.write_text(json.dumps(config, indent=1))  # JSON is YAML
    if out.exists():
        shutil.rmtree(out)
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "--config-file", str(cfg)], check=True)
    return out


# ---------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["tag", "execute", "student", "slides", "site", "site-requirements"])
    ap.add_argument("--out", type=Path, help="output folder (default build/<command>)")
    ap.add_argument("--executed", type=Path, default=BUILD / "executed",
                    help="executed copies to reuse/write (default build/executed)")
    ap.add_argument("--no-execute", action="store_true",
                    help="slides/site: use the executed copies that are fresh and the stored notebooks otherwise")
    ap.add_argument("--force", action="store_true", help="execute: run even when a fresh copy exists")
    ap.add_argument("--reveal-prefix", help="slides: where reveal.js is (default: nbconvert's CDN address); "
                                            "a local copy makes the decks work offline")
    a = ap.parse_args(argv)
    if a.command == "site-requirements":  # pyproject's [site] extra, for the Makefile's .venv-site
        print(" ".join(site_requirements()))  # unquoted: $(...) in the Makefile splits words only
    elif a.command == "tag":
        for p in notebook_paths():
            print(f"  {p.name}: {'tagged' if tag_notebook(p) else 'unchanged'}")
    elif a.command == "execute":
        execute(notebook_paths(), a.executed, force=a.force)
    elif a.command == "student":
        for p in build_student(a.out or BUILD / "student"):
            print(f"  {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    elif a.command == "slides":
        if not a.no_execute:
            execute(notebook_paths(), a.executed)
        build_slides(a.out or BUILD / "slides", a.executed, a.reveal_prefix)
    elif a.command == "site":
        if not a.no_execute:
            execute(notebook_paths(), a.executed)
        out = build_site(a.out or BUILD / "site", a.executed)
        print(f"  site: {out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
