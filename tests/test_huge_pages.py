"""Importing alphaforge turns numpy's huge-page advice off, unless the user set numpy's switch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from alphaforge import huge_pages

_PROBE = "import numpy as np, alphaforge\nprint(np._core.multiarray._set_madvise_hugepage(False))\n"


def _advice_after_import(value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if value is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = value
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                          text=True, check=True, timeout=300)  # fmt: skip
    return done.stdout.strip()


@pytest.mark.skipif(huge_pages._setter() is None, reason="this numpy has no huge-page switch")
def test_import_turns_the_advice_off_and_respects_numpys_switch() -> None:
    assert _advice_after_import(None) == "False"
    assert _advice_after_import("1") == "True"  # the user's choice stands
    assert _advice_after_import("0") == "False"


@pytest.mark.skipif(huge_pages._setter() is None, reason="this numpy has no huge-page switch")
def test_configure_reports_what_it_changed() -> None:
    fn = huge_pages._setter()
    assert fn is not None
    before = fn(True)
    try:
        assert huge_pages.configure({}) is True  # it was on, the call turned it off
        assert fn(False) is False
        assert huge_pages.configure({"NUMPY_MADVISE_HUGEPAGE": "1"}) is None
    finally:
        fn(before)
