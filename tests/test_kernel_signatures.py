"""Kernels compile one specialisation per signature, never one for a literal constant.

A counter started at ``0`` and then passed to another kernel is typed ``Literal[int](0)`` when
numba's type inference first meets the call, and the callee compiles once for that literal and
once more for ``int64`` (0.2-1 s each on an empty cache; docs/architecture.md, "The first
run"). Checked in a fresh process on an empty numba cache: kernels loaded from a cache are not
typed again, so only a cold compile shows the signatures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_PROBE = r"""
import importlib, json, pkgutil
import numpy as np
from numba import types
from numba.core.registry import CPUDispatcher

import alphaforge
from alphaforge.data.validate_common import strided_zscore
from alphaforge.factors import ic
from alphaforge.factors.expr import kernels, ops_nb

rng = np.random.default_rng(3)
x = rng.normal(size=4000)
x[::97] = np.nan
strided_zscore(x, 400, 100, 50, 0.0)  # the validators' outlier statistic
f = rng.normal(size=(60, 300))
f[::7, ::5] = np.nan
kernels.cross_section(f, ops_nb.CS_RANK, 0)  # rows wider than COUNT_ROW: the sorted path
kernels.cross_section(f[:, :40], ops_nb.CS_RANK, 0)  # the counted path
ic.cross_section(f, rng.normal(size=(1, 60, 300)), 5)  # IC, RankIC and quantiles
ic.rank_autocorrelation(f, 1)

found = {}
for pkg in ("alphaforge.data", "alphaforge.factors", "alphaforge.engine"):
    root = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(root.__path__, pkg + "."):
        if not info.name.endswith("_nb"):
            continue
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == info.name:
                for sig in obj.signatures:
                    if any(isinstance(t, types.Literal) for t in sig):
                        found.setdefault(f"{info.name}.{name}", []).append(str(sig))
print(json.dumps(found))
"""


def test_no_kernel_compiles_a_literal_specialisation(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    literal = json.loads(done.stdout.strip().splitlines()[-1])
    assert literal == {}, f"kernels compiled for a literal argument: {literal}"
