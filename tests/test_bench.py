"""The benchmark suite's plumbing (tiny --quick shapes): tables, Markdown, JSON, the
entry points and argument errors. No timing assertions: numbers at these sizes mean
nothing."""
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the benchmarks live in the checkout, not the package
    sys.path.insert(0, str(ROOT))

from benchmarks import harness, run, sections  # noqa: E402

SOFTMAX_OPS = {"softmax", "log_softmax", "logsumexp", "sigmoid", "softmax_backward",
               "log_softmax_backward"}


def test_quick_run_writes_table_markdown_and_json(tmp_path, capsys):
    md, js = tmp_path / "bench.md", tmp_path / "bench.json"
    argv = ["--quick", "--threads", "1,2", "--sections", "softmax,ce,linear-ce",
            "--linear-ce-threads", "2", "--markdown", str(md), "--json", str(js)]
    assert run.main(argv) == 0
    report = json.loads(js.read_text())

    machine = report["machine"]
    for key in ("date", "cpu", "cores", "numpy", "scipy", "softmaxkit", "python"):
        assert machine[key], key
    assert machine["cores"] >= 1

    rows = report["kernels"]
    shapes = [list(s) for s in sections.QUICK_SHAPES]
    softmax_rows = [r for r in rows if r["section"] == "softmax"]
    # every op x shape x dtype x thread count, once
    keys = {(r["op"], tuple(r["shape"]), r["dtype"], r["threads"]) for r in softmax_rows}
    assert len(keys) == len(softmax_rows) == len(SOFTMAX_OPS) * len(shapes) * 2 * 2
    assert {r["op"] for r in softmax_rows} == SOFTMAX_OPS
    ce_rows = [r for r in rows if r["section"] == "ce"]
    assert {r["op"] for r in ce_rows} == {"cross_entropy", "cross_entropy_and_grad"}
    assert len(ce_rows) == 2 * len(shapes) * 2
    torch_installed = machine["torch"] is not None
    for r in rows:
        assert r["time_s"] > 0 and r["baseline_s"] > 0
        assert math.isclose(r["ratio_to_baseline"], r["time_s"] / r["baseline_s"])
        assert r["baseline"] == ("read" if r["op"] in ("logsumexp", "cross_entropy") else "copy")
        assert (r["torch_s"] is not None) == torch_installed
        if r["op"] in ("softmax", "log_softmax", "logsumexp", "sigmoid"):
            assert math.isclose(r["speedup_vs_scipy"], r["scipy_s"] / r["time_s"])
        else:
            assert r["scipy_s"] is None and r["speedup_vs_scipy"] is None
    # SciPy is single-threaded: timed once per op and shape, shared by the thread rows
    for op in ("softmax", "sigmoid"):
        pair = [r["scipy_s"] for r in softmax_rows if r["op"] == op and r["shape"] == shapes[0]
                and r["dtype"] == "float32"]
        assert len(pair) == 2 and pair[0] == pair[1]

    linear = report["linear_ce"]
    assert {r["op"] for r in linear} >= {"unfused", "fused"}
    assert {r["threads"] for r in linear} == {2}
    for r in linear:
        if r["op"] in ("unfused", "fused"):
            assert r["extra_bytes"] > 0 and r["memory_vs_unfused"] > 0
    unfused = [r for r in linear if r["op"] == "unfused"]
    assert all(r["time_vs_unfused"] == 1.0 and r["memory_vs_unfused"] == 1.0 for r in unfused)

    text = md.read_text()
    assert text.startswith("# softmaxkit benchmark")
    assert "| function | shape | dtype | threads |" in text
    assert "## Fused linear + cross-entropy" in text
    table_lines = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table_lines) == len(rows) + 1 + len(linear) + 1  # rows plus two headers
    assert machine["cpu"] in text

    out = capsys.readouterr().out
    assert "softmaxkit ms" in out and "peak extra MiB" in out
    assert out.count("cross_entropy_and_grad") == len(shapes) * 2


def test_no_torch_leaves_its_columns_empty(tmp_path):
    js = tmp_path / "b.json"
    assert run.main(["--quick", "--threads", "1", "--sections", "softmax", "--no-torch",
                       "--json", str(js)]) == 0
    report = json.loads(js.read_text())
    assert report["kernels"] and report["linear_ce"] == []
    assert all(r["torch_s"] is None and r["speedup_vs_torch"] is None for r in report["kernels"])


@pytest.mark.parametrize("argv", [
    ["--sections", "softmax,bogus"],
    ["--threads", "0"],
    ["--threads", "one"],
    ["--linear-ce-shape", "1,2"],
    ["--linear-ce-threads", "0"],
    ["--repeat", "0"],
])
def test_bad_arguments_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        run.main(["--quick"] + argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_helpers():
    calls = []
    t = harness.best_time(lambda: calls.append(1), repeat=4, budget=0.0)
    assert t >= 0 and len(calls) == 5  # one warm-up, four timed (budget 0: exact count)
    peak, arr = harness.peak_memory(lambda: np.ones(2**17))  # 1 MiB of float64
    assert peak >= arr.nbytes
    assert harness.text_table(["a", "bb"], [["xyz", "1"]]).splitlines()[0].split() == ["a", "bb"]


@pytest.mark.parametrize("cmd", [
    [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--help"],
    [sys.executable, "-m", "softmaxkit", "bench", "--help"],
])
def test_entry_points(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "--quick" in out.stdout and "--markdown" in out.stdout


def test_regression_section_reports_both_models(tmp_path):
    js, md = tmp_path / "reg.json", tmp_path / "reg.md"
    assert run.main(["--quick", "--sections", "regression", "--threads", "1",
                       "--json", str(js), "--markdown", str(md)]) == 0
    rows = json.loads(js.read_text())["regression"]
    assert [r["op"] for r in rows] == ["SoftmaxRegression()", "LogisticRegression()"]
    for r in rows:
        assert r["time_s"] > 0 and r["n_iter"] >= 1 and r["threads"] == 1
        assert r["test_accuracy"] >= 0.96  # the accuracy bar, on the same split
    # the two models agree to within one point on the same split
    assert abs(rows[0]["test_accuracy"] - rows[1]["test_accuracy"]) <= 0.01
    text = md.read_text()
    assert "## Softmax regression on digits" in text
    assert "| SoftmaxRegression() | 1 |" in text


def test_best_time_call_counts():
    calls = []
    harness.best_time(lambda: calls.append(1), repeat=3, budget=0.0, warmup=False)
    assert len(calls) == 3  # budget 0: exactly `repeat` timed calls
    calls.clear()
    harness.best_time(lambda: calls.append(1), repeat=3, budget=0.5, warmup=True)
    # fast calls repeat until MIN_SPENT of timed calls (far more than 3 + warm-up)
    assert len(calls) > 4
    slow = []
    t = harness.best_time(lambda: (slow.append(1), __import__("time").sleep(0.03)), repeat=50, budget=0.05, warmup=False)
    assert len(slow) == 2 and t >= 0.03  # the budget caps a slow measurement


def test_merge_rounds_keeps_each_best_and_recomputes_ratios():
    def row(t, base, torch_s):
        return {"section": "softmax", "op": "softmax", "shape": [4, 5], "dtype": "float32",
                "threads": 1, "time_s": t, "baseline": "copy", "baseline_s": base,
                "ratio_to_baseline": t / base, "scipy_s": None, "torch_s": torch_s,
                "speedup_vs_scipy": None, "speedup_vs_torch": torch_s / t}
    (m,) = harness.merge_rounds([[row(2.0, 1.0, 3.0)], [row(1.5, 1.2, 4.0)]])
    assert m["time_s"] == 1.5 and m["baseline_s"] == 1.0 and m["torch_s"] == 3.0
    assert m["ratio_to_baseline"] == 1.5 and m["speedup_vs_torch"] == 2.0
    assert m["scipy_s"] is None and m["speedup_vs_scipy"] is None


def test_rounds_option(tmp_path):
    js = tmp_path / "r.json"
    assert run.main(["--quick", "--sections", "softmax", "--threads", "1", "--rounds", "2",
                       "--no-torch", "--json", str(js)]) == 0
    report = json.loads(js.read_text())
    assert report["config"]["rounds"] == 2
    keys = [(r["op"], tuple(r["shape"]), r["dtype"]) for r in report["kernels"]]
    assert len(keys) == len(set(keys))  # one row per measurement, not one per round
    with pytest.raises(SystemExit):
        run.main(["--quick", "--rounds", "0"])


def test_torch_16bit_section_prints_the_kernel_columns(monkeypatch, capsys):
    # benchmarks/torch_bench.py's bf16 section at toy shapes: the public API, torch and
    # the C entry points into preallocated outputs, every row with its ratios
    pytest.importorskip("torch")
    from benchmarks import torch_bench

    monkeypatch.setattr(torch_bench, "SHAPES", [(16, 40), (3, 70)])
    torch_bench.main(["--sections", "bf16", "--repeat", "1", "--threads", "2"])
    out = capsys.readouterr().out
    rows = [r for r in out.splitlines() if r.startswith("| bfloat16") or r.startswith("| float16")]
    one_call = 2 if importlib.util.find_spec("ml_dtypes") else 1  # float16 always, bfloat16 with ml_dtypes
    assert len(rows) == 12 + 2 * one_call
    assert all(len(r.strip("|").split("|")) == 11 for r in rows)
    assert "| copy | clone | softmaxkit | torch | ours/clone | torch/ours | kernels | kernels/copy |" in out
    assert sum("CE fwd+bwd, one call" in r for r in rows) == 2 * one_call
