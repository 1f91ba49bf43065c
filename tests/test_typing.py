"""The public API is typed: mypy --strict on a user's script sees no error."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_on_user_script():
    script = ROOT / "tests" / "typing" / "user_script.py"
    env = dict(os.environ, MYPYPATH=str(ROOT / "src"))
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent",
         "--cache-dir", os.devnull, str(script)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_sees_real_types():
    """reveal_type of public calls is not Any (a typed API, not an untyped one)."""
    src = (
        "import numpy as np\nimport softmaxkit as smk\n"
        "reveal_type(smk.softmax(np.zeros(3)))\n"
        "reveal_type(smk.cross_entropy_and_grad(np.zeros((2, 3)), [0, 1]))\n"
        "reveal_type(smk.CrossEntropyLoss().loss_gradient)\n"
    )
    env = dict(os.environ, MYPYPATH=str(ROOT / "src"))
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
         "--cache-dir", os.devnull, "-c", src],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )
    out = res.stdout
    reveals = [line for line in out.splitlines() if "Revealed type" in line]
    assert len(reveals) == 3, out + res.stderr
    for line in reveals:
        revealed = line.split("Revealed type is", 1)[1].strip()
        assert revealed != '"Any"', line
    assert "numpy.ndarray" in reveals[0] and "floating" in reveals[0], reveals[0]
    assert reveals[1].count("numpy.ndarray") >= 2, reveals[1]
    assert "def (raw: numpy.ndarray" in reveals[2] and "-> tuple[float" in reveals[2], reveals[2]
