"""Fixtures shared by the test modules."""

from __future__ import annotations

import types

import pytest
import torch


def _copy_of(fn):
    """A new function with ``fn``'s code: the same rule, but not the library's object.

    The exercise checkers refuse the library's own functions (and functions that call them); a
    copy of the code is what a student who wrote the rule out correctly hands in.
    """
    return types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )


@pytest.fixture
def copy_of():
    """:func:`_copy_of`, as a fixture (``tests/browser`` has a conftest of its own, so a plain
    ``from conftest import ...`` would find whichever was imported first)."""
    return _copy_of


@pytest.fixture
def one_thread():
    """torch on one thread for the test: tiny convolutions run faster so, far faster on a busy
    machine (``pytestmark = pytest.mark.usefixtures("one_thread")`` in a module)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def _shapes_start_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("shapes_start")


@pytest.fixture
def quick_shapes_start(monkeypatch, _shapes_start_dir):
    """``--init-from shapes``, the small model's default on one's own data, trains the shapes
    model for 800 iterations the first time; in tests it trains 2, once per session, in a
    temporary folder (the cached checkpoint's checks run as in real use)."""
    from ssd_edu.cli import shapes_start

    monkeypatch.setattr(shapes_start, "START_ITERS", 2)
    monkeypatch.setattr(shapes_start, "START_DIR", _shapes_start_dir)
    return _shapes_start_dir / "checkpoint.pt"
