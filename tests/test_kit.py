"""The study-group kit (tools/kit.py): tags, guarded first cell, checkers, student copies, decks, site.

Fast tests check the pieces; the ``notebook``-marked ones execute the *beginning* of each notebook:
its student copy up to the first exercise cell, which must stop there with the checker's ❌ message (not a
NameError or a traceback), and its "checked solution" (assertions turned into ``srlearn.check``, nothing
stubbed) up to its last exercise cell, which must pass with ✅. The full solution notebooks are run by
tests/test_notebooks.py and tests/test_browser.py.
"""
from __future__ import annotations

import builtins
import importlib.util
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import srlearn
from srlearn.exercise import CheckFailed, ExerciseNotDone, check, ensure, todo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
_spec = importlib.util.spec_from_file_location("kit", ROOT / "tools" / "kit.py")
kit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kit)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


# ---- the checker ----------------------------------------------------------------------------------

def test_check_passes_with_a_tick_and_is_exported_as_srlearn_check(capsys):
    assert srlearn.check is check
    assert check("my_thing", lambda: torch.ones(3) + 1e-9, torch.ones(3))
    assert capsys.readouterr().out.startswith("✅ my_thing matches the package")
    assert check("numpy", np.arange(4.0), np.arange(4.0), atol=0, rtol=0, quiet=True)


def test_check_says_what_differs():
    with pytest.raises(CheckFailed, match=r"❌ my_se does not match the package: 1 of 4 values differ; the largest "
                                          r"difference is 0.5 at index \(1, 0\)"):
        check("my_se", torch.tensor([[1.0, 2.0], [3.5, 4.0]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(CheckFailed, match=r"❌ my_se has shape \(2, 3\), the package gives \(3, 2\)"):
        check("my_se", torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(CheckFailed, match="returned None: did the function end without `return`"):
        check("my_se", lambda: None, torch.zeros(1))
    with pytest.raises(CheckFailed, match=r"❌ my_se raised ZeroDivisionError"):
        check("my_se", lambda: 1 / 0, torch.zeros(1))
    with pytest.raises(CheckFailed, match="this check does not hold: x > 1"):
        ensure("my_psnr", lambda: 0 > 1, "x > 1")


def test_errors_render_as_one_message_in_ipython_and_stubs_are_not_implemented():
    err = todo("my_soca", "the mean over rows")
    assert isinstance(err, NotImplementedError) and isinstance(err, ExerciseNotDone)
    assert err._render_traceback_() == [str(err)]
    assert "❌ my_soca is not written yet" in str(err) and "Hint: the mean over rows" in str(err)
    with pytest.raises(ExerciseNotDone):  # a stub inside a check is reported as a stub, not as "raised"
        check("my_soca", lambda: (_ for _ in ()).throw(todo("my_soca")), torch.zeros(1))


# ---- stubs and rewritten assertions ---------------------------------------------------------------

SOLUTION = '''\
def my_double(x):
    # twice x
    return 2 * x

class My(nn.Module):
    def forward(self, x):
        return x + 1

out = my_double(t)
torch.testing.assert_close(out, 2 * t)            # same as the package
np.testing.assert_allclose(My()(t).numpy(), (t + 1).numpy(), atol=1e-6)
assert abs(float(my_double(t).sum()) - 2 * float(t.sum())) < 1e-6
'''


def _run(source: str) -> dict:
    import torch.nn as nn
    scope = {"srlearn": srlearn, "torch": torch, "np": np, "nn": nn, "t": torch.arange(3.0)}
    exec(compile(source, "<cell>", "exec"), scope)
    return scope


def test_stub_cell_stubs_the_exercises_and_turns_asserts_into_checks(capsys):
    names = {"my_double": "multiply by two", "My.forward": "add one"}
    student = kit.stub_cell(SOLUTION, names, "test")
    assert "return 2 * x" not in student and "return x + 1" not in student
    assert "# twice x" in student  # the specification comment stays
    assert "srlearn.check('my_double', lambda: out, 2 * t)" in student
    assert "srlearn.check('My', lambda: My()(t).numpy(), (t + 1).numpy(), atol=1e-6, rtol=1e-7)" in student
    assert "srlearn.exercise.ensure('my_double'" in student
    with pytest.raises(ExerciseNotDone, match="my_double is not written yet.*\n   Hint: multiply by two"):
        _run(student)
    solved = kit.stub_cell(SOLUTION, names, "test", stub=False)
    assert "return 2 * x" in solved and "srlearn.check(" in solved
    _run(solved)
    assert capsys.readouterr().out.count("✅") == 2
    wrong = solved.replace("return 2 * x", "return 3 * x")
    with pytest.raises(CheckFailed, match="❌ my_double does not match the package"):
        _run(wrong)
    unicode = kit.stub_cell('σ = "✓"; torch.testing.assert_close(my_double(t) * 1, 2 * t)  # ✓ Σ\n', {}, "test")
    assert unicode == 'σ = "✓"; srlearn.check(\'my_double(t) * 1\', lambda: my_double(t) * 1, 2 * t)  # ✓ Σ\n'
    inline = "a = t + 1\nb = a * 2\ntorch.testing.assert_close(b, 2 * t + 2)\n"
    block = kit.stub_cell(inline, {"my block=a..b": "add, then double"}, "test")
    assert block.startswith("# EXERCISE: compute a ... b (my block). Hint: add, then double\nraise srlearn.exercise.todo(")
    assert "srlearn.check('my block', lambda: b, 2 * t + 2)" in block
    with pytest.raises(ExerciseNotDone, match="my block is not written yet"):
        _run(block)
    _run(kit.stub_cell(inline, {"my block=a..b": ""}, "test", stub=False))
    with pytest.raises(SystemExit, match="exercise block 'x=c..d'"):
        kit.stub_cell(inline, {"x=c..d": ""}, "test")
    with pytest.raises(SystemExit, match="'my_triple' is not a function or method in this cell"):
        kit.stub_cell(SOLUTION, {"my_triple": ""}, "test")


# ---- the notebooks carry the kit's tags and the guarded first cell --------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_the_guard_cell_and_the_manifest_tags(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].get("id") == kit.GUARD_ID and nb.cells[0].source == kit.GUARD_SOURCE, (
        f"{path.name}: the first cell is not the setup check: run `python tools/kit.py tag`")
    for tag, wanted in ((kit.DECK_TAG, set(kit.DECK.get(path.stem, []))),
                        (kit.EXERCISE_TAG, set(kit.EXERCISES.get(path.stem, {})))):
        tagged = {c.get("id") for c in nb.cells if tag in kit.tags(c)}
        assert tagged == wanted, (f"{path.name}: cells tagged {tag!r} differ from tools/kit_manifest.py "
                                  f"(missing {sorted(wanted - tagged)}, extra {sorted(tagged - wanted)}): "
                                  f"run `python tools/kit.py tag`")
    assert wanted or path.stem.startswith("00"), f"{path.name} has no exercise"
    assert len(kit.deck_notebook(nb).cells) >= 10, f"{path.name}: a deck of fewer than 10 cells"


def test_guard_cell_tells_what_to_run_when_srlearn_is_missing(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_srlearn(name, *args, **kwargs):
        if name == "srlearn" or name.startswith("srlearn."):
            raise ModuleNotFoundError("No module named 'srlearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_srlearn)
    with pytest.raises(Exception) as info:
        exec(compile(kit.GUARD_SOURCE, "<guard>", "exec"), {})
    monkeypatch.setattr(builtins, "__import__", real_import)
    assert type(info.value).__name__ == "SetupNeeded"
    shown = "\n".join(info.value._render_traceback_())
    assert "make lab" in shown and "pip install -e ." in shown and "No module named 'srlearn'" in shown
    exec(compile(kit.GUARD_SOURCE, "<guard>", "exec"), {})
    assert capsys.readouterr().out.startswith(f"srlearn {srlearn.__version__} | mode ")


def test_deck_keeps_only_deck_cells_with_slide_types():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title", metadata={"tags": ["deck"]}),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("plain text", metadata={"tags": ["deck"]}),
        nbformat.v4.new_code_cell("plot()", metadata={"tags": ["deck"]})])
    deck = kit.deck_notebook(nb)
    assert [c.metadata["slideshow"]["slide_type"] for c in deck.cells] == ["slide", "subslide", "subslide"]
    assert "remove_input" in deck.cells[2].metadata["tags"] and len(nb.cells) == 4


def test_student_copies_are_written_clean(tmp_path):
    written = kit.build_student(tmp_path)
    assert {p.name for p in written} == {p.name for p in NOTEBOOKS if kit.EXERCISES.get(p.stem)}
    for p in written:
        nb = nbformat.read(p, as_version=4)
        nbformat.validate(nb)
        ex = [c for c in nb.cells if kit.EXERCISE_TAG in kit.tags(c)]
        assert ex and all("srlearn.exercise.todo(" in c.source for c in ex)
        assert not any("assert_close(" in c.source or "assert_allclose(" in c.source for c in ex)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


# ---- the beginning of every student copy, executed ------------------------------------------------

def _run_prefix(nb, upto: int, env: dict, where: Path):
    from test_notebooks import _NotebookClient
    nb = nbformat.from_dict({**nb, "cells": nb.cells[:upto + 1]})
    client = _NotebookClient(nb, timeout=600, startup_timeout=120, kernel_name="python3",
                             resources={"metadata": {"path": str(where)}})
    client.execute(env=env)
    return nb


@pytest.mark.notebook
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if kit.EXERCISES.get(p.stem)],
                         ids=[p.stem for p in NOTEBOOKS if kit.EXERCISES.get(p.stem)])
def test_student_copy_stops_at_its_first_exercise_with_the_checker_message(path, jupyter_env):
    from nbclient.exceptions import CellExecutionError
    source = kit.read_stem(path)
    exercise_at = [i for i, c in enumerate(source.cells) if kit.EXERCISE_TAG in kit.tags(c)]
    student = kit.student_notebook(source)
    with pytest.raises(CellExecutionError) as info:
        _run_prefix(student, exercise_at[0], jupyter_env, path.parent)
    error = info.value
    assert error.ename in ("ExerciseNotDone", "CheckFailed"), (
        f"{path.name}: the student copy failed before or at its first exercise with {error.ename}, not the "
        f"checker's message:\n{str(error)[-2000:]}")
    assert "❌" in error.evalue and "Hint:" in error.evalue
    solved = _run_prefix(kit.checked_solution(kit.read_stem(path)), exercise_at[-1], jupyter_env, path.parent)
    shown = "".join(o.get("text", "") for c in solved.cells for o in c.get("outputs", []))
    assert "✅" in shown and "❌" not in shown


def test_an_executed_copy_saved_by_a_test_run_is_reused_until_its_notebook_changes(tmp_path, monkeypatch):
    import browser_support as bs
    path = NOTEBOOKS[0]
    nb = nbformat.read(path, as_version=4)
    assert bs.save_executed(nb, path, "unit test", folder="") is None  # not asked: nothing kept
    saved = bs.save_executed(nb, path, "unit test", folder=str(tmp_path))
    assert saved == tmp_path / path.name and kit.executed_copy(path, tmp_path) == saved
    assert nbformat.read(saved, as_version=4).metadata["srlearn_executed"]["by"] == "unit test"
    monkeypatch.setattr(kit, "sha256", lambda p: "another notebook")  # the notebook changed since
    assert kit.executed_copy(path, tmp_path) is None
    assert bs.save_executed(nb, tmp_path / "elsewhere.ipynb", "unit test", folder=str(tmp_path)) is None
    monkeypatch.undo()
    as_jupyterlab_writes_it = {**nb, "cells": [{**c, "attachments": None} for c in nb.cells]}
    saved = bs.save_executed(as_jupyterlab_writes_it, path, "unit test", folder=str(tmp_path))
    assert kit.executed_copy(path, tmp_path) == saved


def test_a_deck_renders_as_reveal_slides_with_only_its_deck_cells(tmp_path):
    path = next(p for p in NOTEBOOKS if p.stem.startswith("01"))
    nb = nbformat.read(path, as_version=4)
    deck = kit.build_deck(path, tmp_path / "slides", tmp_path / "no-executed-copies")
    html = deck.read_text(encoding="utf-8")
    assert "reveal" in html.lower() and html.count("<section") >= len(kit.DECK[path.stem])
    in_deck = next(c for c in nb.cells if c.get("id") == "cov")       # a deck cell: its heading is on a slide
    left_out = next(c for c in nb.cells if c.get("id") == "cov-question")  # not in the deck
    assert "Covariance pooling" in html and in_deck.get("id") in kit.DECK[path.stem]
    assert left_out.source.splitlines()[0][30:70] not in html
