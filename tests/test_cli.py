"""The softmaxkit command line, run as `python -m softmaxkit` subprocesses."""
import csv
import os
import io
import json
import subprocess
import sys

import numpy as np
import pytest

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "softmaxkit", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def assert_user_error(res, *needles):
    """Exit status 2, one line on stderr, no traceback."""
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("softmaxkit: error: ")
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def assert_png(path, min_width=300):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4) and img.shape[1] >= min_width


# ---------------------------------------------------------------------------- explain


def test_explain_article_example_with_label():
    res = run("explain", "1.5", "0.8", "-0.2", "--label", "0")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for s in ("logit z", "z - max", "exp(z - max)", "probability p", "log p",
              "0.5954972685", "0.295715192", "0.1087875396",  # SPEC probabilities
              "4.48169", "2.22554", "0.818731", "7.52596",  # exps and their sum
              "cross-entropy = -log p[0]", "0.5183584772", "-0.4045027315"):
        assert s in out, s


def test_explain_overflow_and_underflow_show_the_naive_result():
    res = run("explain", "123", "456", "789")
    assert res.returncode == 0, res.stderr
    assert "5.752744057e-290" in res.stdout and "2.398487869e-145" in res.stdout
    assert "overflows float64" in res.stdout and "[0, 0, nan]" in res.stdout
    res = run("explain", "-1000", "-1000", "-1000")  # negative numbers as positionals
    assert res.returncode == 0, res.stderr
    assert "0.3333333333" in res.stdout and "divides 0 by 0" in res.stdout
    res = run("explain", "-1e3", "-5e2", "--temperature", "1e2")  # exponent notation too
    assert res.returncode == 0, res.stderr
    assert "temperature T = 100" in res.stdout


def test_explain_probabilities_sigmoid_float32(tmp_path):
    res = run("explain", "0.34", "0.46", "0.20", "--probabilities", "--label", "0")
    assert res.returncode == 0, res.stderr
    assert "-0.66" in res.stdout and "0.46" in res.stdout  # SPEC: gradient p - y
    res = run("explain", "--sigmoid", "2", "3", "5", "6")
    assert res.returncode == 0, res.stderr
    for v in ("0.8807970779778823", "0.9525741268224334", "0.9933071490757153", "0.9975273768433653"):
        assert v in res.stdout
    res = run("explain", "50", "89", "--float32")
    assert "exp(89) overflows float32" in res.stdout and "5.18471e+21" in res.stdout


def test_explain_sample_actions():
    """SPEC concept 13: sampling an action from the softmax of action scores."""
    res = run("explain", "1.5", "0.8", "-0.2", "--sample", "20000", "--seed", "3")
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip().splitlines()[-1]
    assert line.startswith("sampled 20000 classes from softmax (seed 3): counts [")
    freq = [float(v) for v in line.split("frequencies [")[1].rstrip("]").split(", ")]
    np.testing.assert_allclose(freq, [0.5954972685, 0.2957151920, 0.1087875396], atol=0.015)


def test_explain_plot(tmp_path):
    png = tmp_path / "bars.png"
    res = run("explain", "2", "1", "0.5", "--plot", png)
    assert res.returncode == 0, res.stderr
    assert f"plot written to {png}" in res.stdout
    assert_png(png)


@pytest.mark.parametrize(
    "args, needles",
    [
        (["explain", "1", "x"], ["not a number: 'x'"]),
        (["explain", "1", "2", "--temperature", "0"], ["temperature must be a finite number > 0"]),
        (["explain", "1", "2", "--label", "7"], ["--label must be a class index in 0..1"]),
        (["explain", "0.5", "0.6", "--probabilities"], ["summing to 1"]),
        (["explain", "1", "--plot", "/no/such/dir/x.png"], ["--plot", "does not exist"]),
        (["explain"], ["required: VALUE"]),
        (["explain", "1", "--bogus"], ["unrecognized arguments: --bogus"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ],
)
def test_explain_user_errors(args, needles):
    assert_user_error(run(*args), *needles)


# ---------------------------------------------------------------------------- train, predict


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    res = run("train", "--data", "digits", "--out", d / "model.npz", "--report", d / "report")
    return d, res


def test_train_digits_with_report(digits_model):
    d, res = digits_model
    assert res.returncode == 0, res.stderr
    assert "train 1347, test 450 (stratified)" in res.stdout
    assert f"model written to {d / 'model.npz'}" in res.stdout
    assert "report written to" in res.stdout
    # progress bar with loss and accuracy on stderr
    assert "iter " in res.stderr and " loss " in res.stderr and " acc " in res.stderr
    metrics = json.loads((d / "report" / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.96 and metrics["n_test"] == 450
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in res.stdout
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 450
    assert np.trace(cm) / 450 == pytest.approx(metrics["test_accuracy"])
    assert len(metrics["history"]["loss"]) == metrics["n_iter"]
    # the test split measured at every iteration: a curve ending at the reported values
    h = metrics["history"]
    assert len(h["test_loss"]) == len(h["test_accuracy"]) == metrics["n_iter"]
    assert h["test_loss"][-1] == pytest.approx(metrics["test_log_loss"], rel=1e-9)
    assert h["test_accuracy"][-1] == pytest.approx(metrics["test_accuracy"])
    assert h["test_loss"][0] > 2 * h["test_loss"][-1]
    assert_png(d / "report" / "training_curves.png")
    assert_png(d / "report" / "confusion_matrix.png")


def test_predict_digits_to_stdout_and_file(digits_model):
    d, res = digits_model
    assert res.returncode == 0
    res = run("predict", "--model", d / "model.npz", "--data", "digits")
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(io.StringIO(res.stdout)))
    assert rows[0] == ["prediction"] + [f"p_{k}" for k in range(10)]
    assert len(rows) == 1798
    P = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-5)
    assert all(int(r[0]) == int(np.argmax([float(v) for v in r[1:]])) for r in rows[1:])
    acc = float(res.stderr.split("accuracy ")[1].split()[0])
    assert acc > 0.97  # 3/4 of the rows were seen in training
    out = d / "pred.csv"
    res = run("predict", "--model", d / "model.npz", "--data", "digits", "--output", out)
    assert res.returncode == 0 and res.stdout == ""
    assert "1797 predictions written to" in res.stderr
    assert out.read_text() == "\n".join(",".join(r) for r in rows) + "\n"


def test_train_and_predict_csv_with_string_labels(tmp_path, rng):
    n = 120
    X = rng.normal(size=(n, 2)) * 0.5
    y = np.array(["cat", "dog", "emu"])[np.arange(n) % 3]
    X[y == "dog"] += [3, 0]
    X[y == "emu"] += [0, 3]
    lines = ["w,h,animal"] + [f"{a * 10 + 50:.4f},{b - 7:.4f},{c}" for (a, b), c in zip(X, y)]
    (tmp_path / "zoo.csv").write_text("\n".join(lines) + "\n")
    res = run("train", "--data", "zoo.csv", "--label-column", "animal", "--solver", "adam",
              "--epochs", "40", "--quiet", "--out", "zoo.npz", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "fit: adam" in res.stdout and "epoch " not in res.stderr  # --quiet
    acc = float(res.stdout.split("test accuracy ")[1].split(",")[0])
    assert acc >= 0.9
    # new rows: features only, columns in another order; raw (unstandardised) values
    (tmp_path / "new.csv").write_text("h,w\n-7,50\n-4,50\n-7,80\n")
    res = run("predict", "--model", "zoo.npz", "--data", "new.csv", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    preds = [r.split(",")[0] for r in res.stdout.strip().splitlines()[1:]]
    assert res.stdout.startswith("prediction,p_cat,p_dog,p_emu")
    assert preds == ["cat", "emu", "dog"]


def test_train_npz_and_idx(tmp_path, rng):
    from test_datasets import write_idx

    images = rng.integers(0, 50, size=(60, 3, 3)).astype(np.uint8)
    labels = (np.arange(60) % 2).astype(np.uint8)
    images[labels == 1, 1, 1] = 255
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, compress=True)
    res = run("train", "--data", "train-images-idx3-ubyte.gz", "--solver", "sgd", "--epochs", "20",
              "--out", "m.npz", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "60 samples, 9 features, 2 classes" in res.stdout
    assert "test accuracy 1.0000" in res.stdout
    np.savez(tmp_path / "x.npz", X=images.reshape(60, 9)[:4])
    res = run("predict", "--model", "m.npz", "--data", "x.npz", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert [r.split(",")[0] for r in res.stdout.splitlines()[1:]] == ["0", "1", "0", "1"]


def test_train_and_predict_user_errors_subprocess(tmp_path, digits_model):
    d, _ = digits_model
    assert_user_error(run("train", "--data", "nope.csv", "--out", "m.npz", cwd=tmp_path),
                      "nope.csv: no such file")
    (tmp_path / "broken.npz").write_bytes((d / "model.npz").read_bytes()[:300])
    assert_user_error(run("predict", "--model", "broken.npz", "--data", "digits", cwd=tmp_path),
                      "broken.npz: not a readable softmaxkit model file")


def test_train_and_predict_user_errors_in_process(tmp_path, digits_model, capsys, monkeypatch):
    """The same error path as the subprocess runs, without an interpreter start each."""
    from softmaxkit.app.cli import main

    d, _ = digits_model
    monkeypatch.chdir(tmp_path)

    def check(argv, *needles):
        status = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert_user_error(subprocess.CompletedProcess(argv, status, "", err), *needles)

    (tmp_path / "bad.csv").write_text("a,b,y\n1,2,0\n3,oops,1\n")
    check(["train", "--data", "bad.csv", "--out", "m.npz"],
          "bad.csv: line 3, column 'b': non-numeric value 'oops'")
    check(["train", "--data", "digits", "--out", "m.npz", "--solver", "newton"], "invalid choice: 'newton'")
    check(["train", "--data", "digits"], "--out")
    check(["train", "--epochs", "ten", "--out", "m.npz"], "invalid int value: 'ten'")
    check(["train", "--epochs", "0", "--out", "m.npz"], "--epochs must be an int in the range [1, inf), got 0")
    check(["train", "--alpha", "-1", "--out", "m.npz"], "--alpha must be")
    np.savez(tmp_path / "reg.npz", X=np.ones((6, 2)), y=np.linspace(0, 1, 6))
    check(["train", "--data", "reg.npz", "--out", "m.npz"],
          "reg.npz: the labels must be classes, got continuous values")
    (tmp_path / "three.csv").write_text("a,b,c\n1,2,3\n")
    check(["predict", "--model", d / "model.npz", "--data", "three.csv"],
          "three.csv: has 3 columns, the model expects 64 feature columns")
    check(["predict", "--model", "missing.npz", "--data", "digits"], "missing.npz: no such file")
    assert not (tmp_path / "m.npz").exists()


# ---------------------------------------------------------------------------- help, bench


@pytest.mark.parametrize("command", [[], ["explain"], ["train"], ["predict"]])
def test_help_everywhere_with_examples(command):
    res = run(*command, "--help")
    assert res.returncode == 0, res.stderr
    assert "usage: softmaxkit" in res.stdout and "examples:" in res.stdout


def test_no_command_is_a_usage_error():
    res = run()
    assert res.returncode == 2 and "usage: softmaxkit" in res.stderr


def test_bench_forwards_its_arguments(tmp_path):
    res = run("bench", "--help")
    assert res.returncode == 0 and "--quick" in res.stdout
    out = tmp_path / "bench.json"
    res = run("bench", "--quick", "--no-torch", "--threads", "1", "--json", out)
    assert res.returncode == 0, res.stderr
    assert "softmax" in res.stdout and "cross_entropy" in res.stdout
    assert json.loads(out.read_text())


# ---------------------------------------------------------------------------- trust off the happy path


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run main() in-process in tmp_path: (status, stdout, stderr)."""
    from softmaxkit.app.cli import main

    monkeypatch.chdir(tmp_path)

    def call(*argv):
        status = main([str(a) for a in argv])
        out = capsys.readouterr()
        return status, out.out, out.err

    return call


def user_error(result, *needles):
    status, _, err = result
    assert_user_error(subprocess.CompletedProcess([], status, "", err), *needles)


def wine_files(tmp_path):
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    np.savez(tmp_path / "wine.npz", X=X, y=y)
    lines = [",".join([f"f{i}" for i in range(13)] + ["label"])]
    lines += [",".join(map(str, row)) + f",{label}" for row, label in zip(X, y)]
    (tmp_path / "wine.csv").write_text("\n".join(lines) + "\n")


def test_train_never_overwrites_its_input(cli, tmp_path):
    import os

    wine_files(tmp_path)
    (tmp_path / "link.npz").symlink_to(tmp_path / "wine.npz")
    os.link(tmp_path / "wine.csv", tmp_path / "hard.csv")
    before = {f: (tmp_path / f).read_bytes() for f in ("wine.npz", "wine.csv")}
    for data, out in (("wine.npz", "wine.npz"), ("wine.csv", "wine.csv"), ("wine.npz", "link.npz"),
                      ("wine.csv", "hard.csv"), ("wine.npz", "./sub/../wine.npz")):
        (tmp_path / "sub").mkdir(exist_ok=True)
        user_error(cli("train", "--data", data, "--out", out, "--quiet"),
                   f"--out {out} is the --data file: refusing to overwrite an input")
    assert {f: (tmp_path / f).read_bytes() for f in before} == before
    assert not (tmp_path / "m.npz").exists()


def test_idx_labels_file_is_an_input_too(cli, tmp_path):
    from test_datasets import write_idx

    write_idx(tmp_path / "t-images-idx3-ubyte", np.arange(32, dtype=np.uint8).reshape(8, 2, 2))
    write_idx(tmp_path / "t-labels-idx1-ubyte", np.arange(8, dtype=np.uint8) % 2)
    user_error(cli("train", "--data", "t-images-idx3-ubyte", "--out", "t-labels-idx1-ubyte"),
               "--out t-labels-idx1-ubyte is the --labels file")
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "metrics.json").symlink_to(tmp_path / "t-images-idx3-ubyte")
    user_error(cli("train", "--data", "t-images-idx3-ubyte", "--out", "m.npz", "--report", "rep"),
               "--report metrics.json rep/metrics.json is the --data file")


def test_predict_never_overwrites_its_inputs(cli, tmp_path, digits_model):
    d, _ = digits_model
    wine_files(tmp_path)
    model = tmp_path / "model.npz"
    model.write_bytes((d / "model.npz").read_bytes())
    before = model.read_bytes()
    user_error(cli("predict", "--model", "model.npz", "--data", "digits", "--output", "model.npz"),
               "--output model.npz is the --model file")
    user_error(cli("predict", "--model", "model.npz", "--data", "wine.csv", "--output", "wine.csv"),
               "--output wine.csv is the --data file")
    assert model.read_bytes() == before


def test_outputs_are_written_atomically(cli, tmp_path, monkeypatch):
    """An interrupted save leaves the old file whole and no temporary behind."""
    from softmaxkit import SoftmaxRegression

    wine_files(tmp_path)
    (tmp_path / "m.npz").write_bytes(b"the old model")

    def broken_save(self, path, **kw):
        with open(path, "wb") as fh:
            fh.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(SoftmaxRegression, "save", broken_save)
    status, _, err = cli("train", "--data", "wine.npz", "--out", "m.npz", "--quiet")
    assert status == 130 and err.strip().splitlines()[-1] == "softmaxkit: interrupted"
    assert (tmp_path / "m.npz").read_bytes() == b"the old model"
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]


def test_continuous_label_column_is_one_early_line(cli, tmp_path, rng):
    rows = ["a,b,x"] + [f"{u:.6f},{v:.6f},{w:.6f}" for u, v, w in rng.normal(size=(200, 3))]
    (tmp_path / "reg.csv").write_text("\n".join(rows) + "\n")
    status, out, err = cli("train", "--data", "reg.csv", "--out", "m.npz")
    user_error((status, out, err), "reg.csv: label column 'x' looks continuous: 200 distinct float values")
    assert out == ""  # before anything else happened


def test_predict_foreign_model_and_missing_feature_column(cli, tmp_path):
    rows = ["sepal_length,sepal_width,petal_length,petal_width,species"]
    rng = np.random.default_rng(0)
    for i in range(60):
        k = i % 3
        rows.append(",".join(f"{v:.3f}" for v in rng.normal(k, 0.3, 4)) + f",s{k}")
    (tmp_path / "iris.csv").write_text("\n".join(rows) + "\n")
    status, _, err = cli("train", "--data", "iris.csv", "--out", "iris.npz", "--quiet")
    assert status == 0, err
    user_error(cli("predict", "--model", "iris.csv", "--data", "iris.csv"),
               "--model iris.csv: not a softmaxkit model file")
    three = [",".join(r.split(",")[:3] + r.split(",")[4:]) for r in rows]  # no petal_width
    (tmp_path / "three.csv").write_text("\n".join(three) + "\n")
    user_error(cli("predict", "--model", "iris.npz", "--data", "three.csv"),
               "three.csv: missing feature column petal_width")
    np.savez(tmp_path / "other.npz", X=np.ones((2, 2)))
    user_error(cli("predict", "--model", "other.npz", "--data", "iris.csv"),
               "--model other.npz: not a softmaxkit model file (an .npz archive holding X)")


def test_predict_says_which_rows_it_measured(digits_model):
    d, _ = digits_model
    res = run("predict", "--model", d / "model.npz", "--data", "digits")
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("accuracy ")
    assert "on all 1797 labelled rows of digits, including the 1347 it was trained on" in line
    assert "held-out test accuracy at training: 0.9" in line


def test_model_files_with_bad_fields_are_one_line(cli, tmp_path, digits_model):
    import zipfile

    d, _ = digits_model
    with zipfile.ZipFile(d / "model.npz") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}

    def variant(name, **replace):
        with zipfile.ZipFile(tmp_path / name, "w") as zf:
            for n, data in members.items():
                zf.writestr(n, replace.get(n[:-4], data))
        return name

    from test_io import npy_bytes

    bad_params = variant("params.npz", params_json=npy_bytes(np.array("[1, 2]")))
    user_error(cli("predict", "--model", bad_params, "--data", "digits"),
               "--model params.npz: not a readable softmaxkit model file")
    huge = variant("huge.npz", coef=npy_bytes(np.zeros((10, 64)), shape=(10**6, 10**7)))
    user_error(cli("predict", "--model", huge, "--data", "digits"),
               "--model huge.npz: not a readable softmaxkit model file", "declares shape (1000000, 10000000)")
    nan_mean = variant("nan.npz", mean=npy_bytes(np.full(64, np.nan)))
    user_error(cli("predict", "--model", nan_mean, "--data", "digits"), "nan.npz")


def test_os_errors_and_numeric_overflow_are_one_line(cli, tmp_path, digits_model):
    d, _ = digits_model
    wine_files(tmp_path)
    long = "a" * 300
    user_error(cli("explain", "1", "2", "--plot", f"{long}.png"), "File name too long")
    user_error(cli("predict", "--model", d / "model.npz", "--data", "digits", "--output", f"{long}.csv"),
               "File name too long")
    user_error(cli("train", "--data", "wine.npz", "--out", "m.npz", "--solver", "adam",
                   "--learning-rate", "1e308", "--quiet"),
               "adam diverged", "lower --learning-rate")
    user_error(cli("train", "--data", "wine.npz", "--out", "m.npz", "--epochs", "9" * 20),
               "--epochs must be an int in the range [1, 2147483647]")
    user_error(cli("train", "--data", "wine.npz", "--out", "m.npz", "--alpha", "inf"),
               "--alpha must be a finite number")
    user_error(cli("train", "--data", "wine.npz", "--out", "m.npz", "--test-size", "0.99"),
               "--test-size 0.99 leaves 1 training row(s) of 178, fewer than the 3 classes")
    user_error(cli("explain", "1", "2", "--sample", str(10**12)), "--sample")


def test_bench_errors_are_one_line():
    res = run("bench", "--sections", "bogus", "--quick")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "softmaxkit bench: error: --sections: unknown section(s) bogus; choose from "
        "softmax, ce, regression, linear-ce (see 'softmaxkit bench --help')"]


def test_bench_without_a_checkout_says_where_the_benchmarks_live(cli, monkeypatch):
    from softmaxkit.app import bench

    monkeypatch.setattr(bench, "find_benchmarks", lambda: None)
    user_error(cli("bench", "--quick"), "the benchmarks live in the repository's benchmarks/ folder")


@pytest.mark.parametrize("suffix, magic", [(".png", PNG), (".svg", b"<?xml"), (".pdf", b"%PDF"),
                                           (".jpg", b"\xff\xd8\xff"), (".JPEG", b"\xff\xd8\xff")])
def test_plot_format_follows_the_suffix(cli, tmp_path, suffix, magic):
    status, out, err = cli("explain", "1", "2", "3", "--plot", f"bars{suffix}")
    assert status == 0, err
    assert (tmp_path / f"bars{suffix}").read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["bars.gif", "bars", "bars.png.txt"])
def test_plot_unknown_suffix_is_refused(cli, tmp_path, name):
    user_error(cli("explain", "1", "2", "--plot", name), f"--plot {name}: cannot tell the image format",
               "use .png, .svg, .pdf or .jpg")
    assert not (tmp_path / name).exists()


def test_every_option_has_help_text():
    import argparse

    from softmaxkit.app.cli import _subparsers, build_parser

    parser = build_parser()
    checked = 0
    for p in [parser, *_subparsers(parser).values()]:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help is not argparse.SUPPRESS, (p.prog, action.dest)
            checked += 1
    assert checked >= 30


def test_messages_speak_the_options(cli, tmp_path):
    wine_files(tmp_path)
    status, out, err = cli("train", "--data", "wine.npz", "--out", "m.npz", "--epochs", "2",
                           "--no-standardize", "--quiet")
    assert status == 0, err
    note = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(note) == 1, err
    assert "2 iterations (--epochs)" in note[0] and "increase --epochs or drop --no-standardize" in note[0]
    assert "max_iter" not in err and "standardise" not in err


@pytest.mark.parametrize("argv, hint", [
    (["train", "--epocs", "3", "--out", "m.npz"], "unrecognized arguments: --epocs 3 (did you mean --epochs?)"),
    (["train", "--learning_rate", "0.1", "--out", "m.npz"], "(did you mean --learning-rate?)"),
    (["predict", "--modle", "m.npz"], "(did you mean --model?)"),
    (["trian"], "invalid choice: 'trian'"),
    (["trian"], "(did you mean train?)"),
    (["train", "--solver", "adm", "--out", "m.npz"], "(did you mean adam?)"),
])
def test_mistyped_options_get_a_suggestion(cli, argv, hint):
    user_error(cli(*argv), hint)


def test_plots_thin_ticks_mark_the_label_and_name_their_axes(tmp_path):
    import softmaxkit as smk
    from softmaxkit.app.plots import plot_training_curves

    fig = smk.explain(np.arange(-20.0, 21.0), label=3).plot()
    left, right = fig.axes[:2]
    for ax in (left, right):
        assert len(ax.get_xticks()) <= 12  # 41 bars: about ten ticks, not 41 overlapping
    assert not right.texts  # no value labels above 41 bars
    colours = {tuple(b.get_facecolor()) for b in right.patches}
    assert len(colours) == 2  # the label's bar stands out
    assert right.get_legend().get_texts()[0].get_text() == "label: class 3"
    few = smk.explain([1.5, 0.8, -0.2]).plot()
    assert len(few.axes[1].texts) == 3 and list(few.axes[1].get_xticks()) == [0, 1, 2]
    sig = smk.explain_sigmoid([2, 3, 5, 6]).plot()
    assert all(ax.get_xlabel() == "input index i" for ax in sig.axes)
    hist = {"loss": [1.0, 0.5, 0.3, 0.25], "accuracy": [0.5, 0.8, 0.9, 0.95]}
    fig = plot_training_curves(hist, tmp_path / "c.png", xlabel="epoch (adam)",
                               test={"loss": 0.3, "accuracy": 0.9})
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xlabel() == acc_ax.get_xlabel() == "epoch (adam)"
    assert "test log-loss, final model: 0.3000" in [t.get_text() for t in loss_ax.get_legend().get_texts()]
    fig.canvas.draw()
    labels = [t.get_text() for t in loss_ax.get_yticklabels() if t.get_text()]
    assert labels and all("e" not in s and "$" not in s for s in labels), labels  # 0.5, not 5e-01
    hist["test_loss"] = [1.1, 0.6, 0.4, 0.35]
    fig = plot_training_curves(hist)
    assert "test log-loss" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]  # a curve


def test_bench_finds_the_checkout_from_any_directory(tmp_path):
    """softmaxkit installed from this checkout (editable) runs its benchmarks/."""
    from softmaxkit.app import bench

    from pathlib import Path

    folder = bench.find_benchmarks()
    assert folder == Path(__file__).resolve().parents[1] / "benchmarks"
    res = run("bench", "--help", cwd=tmp_path)
    assert res.returncode == 0 and "--sections" in res.stdout
