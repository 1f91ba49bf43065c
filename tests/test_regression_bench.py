"""benchmarks/regression.py runs on its own and prints its table (a smoke test: no
timing is asserted)."""
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "regression.py"


def test_help_and_a_small_case():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "--quick" in out.stdout and "--dask" in out.stdout
    out = subprocess.run([sys.executable, str(SCRIPT), "--cases", "iris", "--no-step", "--threads", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("# ") and "scikit-learn" in lines[0]
    rows = [ln for ln in lines if ln.startswith("iris ")]
    assert len(rows) == 4  # ours f64 and f32, lbfgs, newton-cholesky
    for row in rows:  # every model reaches the same objective on iris (J gap column)
        assert float(row.split()[-3]) < 1e-4
    bad = subprocess.run([sys.executable, str(SCRIPT), "--cases", "mnistt"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "unknown case" in bad.stderr
