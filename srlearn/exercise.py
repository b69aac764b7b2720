"""Checkers for the student copies of the notebooks (``make student``).

A student copy replaces each exercise function's body by ``raise srlearn.exercise.todo(name, hint)`` and
each "same as the package" assertion of its cell by ``srlearn.check(name, lambda: mine, reference)``:

    >>> srlearn.check("my_soca", lambda: my_soca(feats, params)[0], soca_pkg(feats))
    ✅ my_soca matches the package (max |difference| 2.4e-08)

A wrong answer stops the cell with one readable line (``❌ my_soca does not match the package: ...``)
instead of a traceback; so does a stub that is not written yet. The solution notebooks keep their
plain ``torch.testing.assert_close`` lines; the checks accept the same tolerances (``rtol``, ``atol``).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["check", "ensure", "todo", "ExerciseNotDone", "CheckFailed"]


class _Friendly(AssertionError):
    """An error IPython shows as its message alone (no traceback): the message says what to do."""

    def _render_traceback_(self):  # IPython's hook for custom error display
        return [str(self)]


class CheckFailed(_Friendly):
    """The student's result differs from the package's."""


class ExerciseNotDone(_Friendly, NotImplementedError):
    """A stub that the student has not written yet was called."""


def todo(name: str, hint: str = "") -> ExerciseNotDone:
    """The exception a stub raises: ``raise srlearn.exercise.todo("my_se", "squeeze, excite, scale")``."""
    return ExerciseNotDone(f"❌ {name} is not written yet: replace the `raise` line in its body with your code, "
                           f"then run the cell again." + (f"\n   Hint: {hint}" if hint else ""))


def _as_tensor(x, name: str, what: str):
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, (np.ndarray, np.generic, float, int, list, tuple)):
        try:
            return torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as e:
            raise CheckFailed(f"❌ {name}: {what} is a {type(x).__name__} that is not numeric ({e})") from None
    if x is None:
        raise CheckFailed(f"❌ {name} returned None: did the function end without `return`?")
    raise CheckFailed(f"❌ {name}: {what} is a {type(x).__name__}; expected a tensor or an array")


def check(name: str, mine, reference, *, rtol: float | None = None, atol: float | None = None,
          quiet: bool = False) -> bool:
    """Compare the student's result ``mine`` (a value, or a callable that returns it) with ``reference``.

    Prints ``✅ name matches the package`` and returns True, or raises :class:`CheckFailed` whose message
    says what differs (shape, dtype, how much and where). ``rtol``/``atol``: as ``torch.testing.assert_close``
    (its defaults for the dtype when both are None; when only one is given the other is 0).
    """
    if callable(mine) and not isinstance(mine, (torch.Tensor, np.ndarray)):
        try:
            mine = mine()
        except ExerciseNotDone:
            raise
        except Exception as e:  # the student's code raised: say which exercise and what, in one line
            raise CheckFailed(f"❌ {name} raised {type(e).__name__}: {e}") from e
    a = _as_tensor(mine, name, "your result")
    b = _as_tensor(reference, name, "the reference")
    if a.shape != b.shape:
        raise CheckFailed(f"❌ {name} has shape {tuple(a.shape)}, the package gives {tuple(b.shape)}: "
                          f"check which dimensions you reduce, concatenate or reshape")
    if a.is_floating_point() != b.is_floating_point() or a.is_complex() != b.is_complex():
        raise CheckFailed(f"❌ {name} has dtype {a.dtype}, the package gives {b.dtype}")
    if rtol is None and atol is not None:
        rtol = 0.0
    if atol is None and rtol is not None:
        atol = 0.0
    if a.dtype != b.dtype:
        a = a.to(b.dtype)
    try:
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, equal_nan=True)
    except AssertionError:
        diff = (a.double() - b.double()).abs()
        diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
        worst = int(diff.argmax()) if diff.numel() else 0
        where = tuple(int(i) for i in np.unravel_index(worst, tuple(a.shape))) if a.dim() else ()
        bad = int((~torch.isclose(a.double(), b.double(), rtol=rtol if rtol is not None else 1.3e-6,
                                  atol=atol if atol is not None else 1e-5, equal_nan=True)).sum())
        raise CheckFailed(
            f"❌ {name} does not match the package: {bad} of {a.numel()} values differ; the largest difference is "
            f"{float(diff.flatten()[worst]):.3g} at index {where} (yours {float(a.flatten()[worst]):.6g}, "
            f"package {float(b.flatten()[worst]):.6g})") from None
    if not quiet:
        gap = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
        print(f"✅ {name} matches the package (max |difference| {gap:.1e})")
    return True


def ensure(name: str, condition, what: str = "") -> bool:
    """A plain ``assert`` of a student copy: ``condition`` (a callable) must return a true value."""
    try:
        ok = condition() if callable(condition) else condition
    except ExerciseNotDone:
        raise
    except Exception as e:
        raise CheckFailed(f"❌ {name} raised {type(e).__name__}: {e}") from e
    if not ok:
        raise CheckFailed(f"❌ {name}: this check does not hold: {what}")
    return True
