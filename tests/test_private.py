"""Each private library name rnnbench relies on still exists in the installed version."""

from __future__ import annotations

import importlib.util

import pytest

from rnnbench._private import PRIVATE, resolve

NAMES = [(lib, name) for lib, names in PRIVATE.items() for name in names]


@pytest.mark.parametrize(("library", "name"), NAMES, ids=[n for _, n in NAMES])
def test_private_name_still_exists(library, name):
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")
    resolve(name)  # raises when the installed library dropped it


def test_every_entry_says_why():
    assert all(len(reason) > 40 for names in PRIVATE.values() for reason in names.values())


def test_resolve_fails_on_a_missing_name():
    with pytest.raises(AttributeError, match="'nope' is gone"):
        resolve("optuna.storages:RDBStorage.nope")
