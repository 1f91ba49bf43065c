"""SciPy's own tests of logsumexp, softmax, log_softmax, expit and log_expit, run
from the installed SciPy against softmaxkit (tests/peers/scipy_plugin.py rebinds
the functions those test modules use). Complex cases aside, every one must pass."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

scipy = pytest.importorskip("scipy")

PEERS = Path(__file__).resolve().parent / "peers"


def test_scipy_logsumexp_and_logit_suites_pass_against_softmaxkit(tmp_path):
    tests = Path(scipy.__file__).parent / "special" / "tests"
    files = [tests / "test_logsumexp.py", tests / "test_logit.py"]
    if not all(f.exists() for f in files):
        pytest.skip("this SciPy was installed without its tests")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PEERS)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "scipy_plugin",
         "-W", "ignore::DeprecationWarning", *map(str, files)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )
    tail = res.stdout[-3000:] + res.stderr[-2000:]
    summary = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", summary)) else 0
    assert res.returncode == 0 and "failed" not in summary, tail
    assert passed >= 60, tail  # SciPy 1.17 has 70 real-valued cases here
