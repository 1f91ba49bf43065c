"""The command line's calibration (issue 13): train's report shows ECE and a
reliability diagram; calibrate stores a temperature that predict then applies."""
from __future__ import annotations

import json

import numpy as np
import pytest

import softmaxkit as smk
from softmaxkit.app import cli


def _main(*args: str) -> int:
    return cli.main(list(args))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cal")
    assert _main("train", "--data", "digits", "--out", str(folder / "m.npz"),
                 "--report", str(folder / "rep")) == 0
    return folder


def test_train_report_has_ece_and_reliability_diagram(trained):
    metrics = json.loads((trained / "rep" / "metrics.json").read_text())
    png = trained / "rep" / "test_reliability.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 0 <= metrics["test_ece"] <= 1
    assert metrics["calibration"]["reliability_png"] == str(png)
    # the ECE the report gives is the one of the test split's probabilities
    assert metrics["test_ece"] == pytest.approx(metrics["calibration"]["ece"])
    assert "_test_proba" not in metrics


def test_calibrate_then_predict_applies_the_temperature(trained, capsys):
    out = trained / "m-cal.npz"
    assert _main("calibrate", "--model", str(trained / "m.npz"), "--data", "digits",
                 "--out", str(out)) == 0
    model = smk.SoftmaxRegression.load(out)
    cal = model.metadata_["calibration"]
    t = cal["temperature"]
    assert 0 < t < 10 and cal["nll_after"] <= cal["nll_before"]
    capsys.readouterr()
    assert _main("predict", "--model", str(out), "--data", "digits") == 0
    rows = [line.split(",") for line in capsys.readouterr().out.strip().splitlines()[1:]]
    proba = np.array([[float(v) for v in r[1:]] for r in rows])
    X = smk.datasets.load_digits().X
    want = smk.softmax(model.predict_log_proba(X) / t)
    np.testing.assert_allclose(proba, want, rtol=1e-5, atol=1e-9)
    assert not np.allclose(proba, model.predict_proba(X), rtol=1e-3)


def test_calibrate_and_explore_are_commands(capsys):
    for command in ("calibrate", "explore"):
        try:
            code = _main(command, "--help")
        except SystemExit as exc:  # argparse's --help
            code = exc.code
        assert code == 0
        assert command in capsys.readouterr().out
