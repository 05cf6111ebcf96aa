"""Fixtures shared by the test modules."""

from __future__ import annotations

import types

import pytest


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
