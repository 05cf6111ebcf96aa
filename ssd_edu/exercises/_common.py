"""What every exercise checker shares: a failure a student can act on, and a runner of cases.

A checker is ``check_<exercise>(student_fn)``. It calls the student's function on hand-made and
random cases, compares with the library (the single source of truth), and either prints how many
cases passed or raises :class:`ExerciseFailure` saying which case failed, what was expected, what
came back, and (for the mistakes students usually make) a hint naming the likely mistake.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

import torch


class ExerciseFailure(AssertionError):
    """A checker's verdict: the message says which case, what was expected and what came back."""


def refuse_library(fn: Callable[..., Any], exercise: str, *library: Any) -> None:
    """Fail when the answer handed in is one of ``library`` or a function that calls one.

    A checker compares with the library, so the library's own function (or a thin wrapper around
    it) would pass every case and teach nothing. The answer's code is read, not run: every name
    it uses (module attributes and closures included, nested functions too) is looked up, and if
    one of them is a library function of this exercise, the answer is refused with a message.
    """
    found = _calls(fn, library)
    if found is not None:
        raise ExerciseFailure(
            f"{exercise}: this answer is the library's own {found} (or a function that calls it). "
            "The checker compares with that function, so it would pass without teaching anything: "
            "write the rule yourself (other helpers, such as box_iou, are fine where the exercise "
            "says so)."
        )


def _calls(fn: Any, library: tuple) -> str | None:
    """The name of the library object ``fn`` is or uses, or ``None``."""
    targets = {id(obj): getattr(obj, "__qualname__", repr(obj)) for obj in library}
    seen = [fn, getattr(fn, "func", None), getattr(fn, "__wrapped__", None)]  # partial, wraps
    if isinstance(fn, (types.MethodType, functools.partial)) or not hasattr(fn, "__code__"):
        seen.append(getattr(fn, "__func__", None))
        seen.append(type(fn))  # an instance of a library class
    code = getattr(fn, "__code__", None)
    names: set[str] = set()
    stack = [code] if code is not None else []
    while stack:  # the function's code and every code object nested in it
        c = stack.pop()
        names |= set(c.co_names) | set(c.co_freevars)
        stack += [k for k in c.co_consts if isinstance(k, types.CodeType)]
    scope = dict(getattr(fn, "__globals__", {}))
    closure = zip(getattr(code, "co_freevars", ()), getattr(fn, "__closure__", None) or ())
    scope |= {name: cell.cell_contents for name, cell in closure}
    used = [scope[n] for n in names if n in scope]
    used += [getattr(m, n) for m in used if isinstance(m, types.ModuleType) for n in names
             if hasattr(m, n)]  # fmt: skip
    for obj in seen + used:
        if id(obj) in targets:
            return targets[id(obj)]
    return None


def call_student(fn: Callable[..., Any], case: str, *args: Any, **kwargs: Any) -> Any:
    """Call the student's function, turning the untouched stub and crashes into clear failures."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise ExerciseFailure(
            "not implemented yet: replace `raise NotImplementedError()` with your solution"
        ) from None
    except Exception as e:  # noqa: BLE001 - any crash is reported with the case that caused it
        raise ExerciseFailure(f"case '{case}': your function raised {type(e).__name__}: {e}") from e


def expect_close(
    case: str,
    got: Any,
    expected: torch.Tensor,
    hint: str = "",
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """Fail unless ``got`` is a tensor of ``expected``'s shape and values."""
    if not isinstance(got, torch.Tensor):
        raise ExerciseFailure(f"case '{case}': expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(expected.shape):
        raise ExerciseFailure(
            f"case '{case}': expected shape {list(expected.shape)}, got {list(got.shape)}"
        )
    if not torch.allclose(got.double(), expected.double(), atol=atol, rtol=rtol, equal_nan=False):
        # a NaN counts as the largest difference, so the message points at it
        diff = (got.double() - expected.double()).abs().nan_to_num(nan=float("inf"))
        where = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if diff.numel() else ()
        msg = (
            f"case '{case}': values differ (largest difference {float(diff.max()):.4g} at index "
            f"{where}: expected {float(expected.double()[where]):.6g}, "
            f"got {float(got.double()[where]):.6g})"
        )
        raise ExerciseFailure(msg + (f"\nhint: {hint}" if hint else ""))


def expect_equal(case: str, got: Any, expected: torch.Tensor, hint: str = "") -> None:
    """Fail unless ``got`` equals ``expected`` exactly (indices, masks)."""
    if not isinstance(got, torch.Tensor):
        raise ExerciseFailure(f"case '{case}': expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(expected.shape) or not torch.equal(
        got.to(expected.dtype), expected
    ):
        msg = f"case '{case}': expected {expected.tolist()}, got {got.tolist()}"
        if expected.numel() > 20:
            msg = (
                f"case '{case}': expected shape {list(expected.shape)} with "
                f"{int(expected.to(torch.int64).sum())} set/summed, got shape {list(got.shape)} "
                f"with {int(got.to(torch.int64).sum())}"
            )
        raise ExerciseFailure(msg + (f"\nhint: {hint}" if hint else ""))


def passed(name: str, n_cases: int) -> None:
    print(f"{name}: all {n_cases} cases passed")
