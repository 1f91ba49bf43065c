"""The explorer's JSON API through Starlette's TestClient, and `softmaxkit explore`
as a real server on 127.0.0.1 (no other network)."""
import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import softmaxkit as smk

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
from starlette.testclient import TestClient  # noqa: E402

from softmaxkit.app.explore.server import (  # noqa: E402
    MAX_BODY_BYTES,
    MAX_CLASSES,
    create_app,
    stop_runs,
)


def num(v):
    """The API's JSON floats, with "NaN"/"Infinity" strings for non-finite ones."""
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(v, v) \
        if isinstance(v, str) else v


@pytest.fixture
def client():
    app = create_app(max_train_seconds=20)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    stop_runs(app)


def test_page_and_static_files_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    # everything the page loads comes from this server: no CDN, works offline
    for ref in ("/static/style.css", "/static/app.js"):
        assert ref in page.text
        assert client.get(ref).status_code == 200
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
    assert client.get("/api/health").json() == {"ok": True, "version": smk.__version__}


def test_softmax_matches_softmaxkit(client):
    z, t = [1.5, 0.8, -0.2], 1.7
    r = client.post("/api/softmax", json={"logits": z, "temperature": t, "label": 0})
    assert r.status_code == 200
    d = r.json()
    p = smk.softmax(np.array(z), temperature=t)
    assert d["probabilities"] == p.tolist()  # exactly: same computation, JSON round-trips floats
    assert d["log_probabilities"] == smk.log_softmax(np.array(z), temperature=t).tolist()
    assert d["cross_entropy"] == pytest.approx(float(smk.cross_entropy(np.array(z) / t, 0)), rel=1e-15)
    grad = p.copy()
    grad[0] -= 1
    assert_allclose(d["gradient"], grad, rtol=1e-15)
    assert d["hardmax"] == [1.0, 0.0, 0.0] and d["prediction"] == 0
    assert d["entropy"] == pytest.approx(float(smk.entropy(p)), rel=1e-14)
    assert d["logsumexp"] == pytest.approx(float(smk.logsumexp(np.array(z) / t)), rel=1e-15)
    assert d["temperature"] == t and d["dtype"] == "float64"
    assert d["naive"]["problem"] is None


def test_the_articles_overflow_example(client):
    d = client.post("/api/softmax", json={"logits": [123, 456, 789]}).json()
    assert_allclose(d["probabilities"], [5.7527440570e-290, 2.3984878688e-145, 1.0], rtol=1e-10)
    naive = [num(v) for v in d["naive"]["probabilities"]]
    assert naive[:2] == [0.0, 0.0] and math.isnan(naive[2])
    assert d["naive"]["exp"][2] == "Infinity" and d["naive"]["sum"] == "Infinity"
    assert "overflows" in d["naive"]["problem"]
    assert d["cross_entropy"] is None and d["gradient"] is None
    # float32: exp(89) overflows there but not in float64
    d32 = client.post("/api/softmax", json={"logits": [50, 89], "dtype": "float32"}).json()
    assert d32["naive"]["exp"][1] == "Infinity"
    d64 = client.post("/api/softmax", json={"logits": [50, 89]}).json()
    assert d64["naive"]["problem"] is None


def test_two_class_sigmoid_equals_softmax(client):
    d = client.post("/api/two_class", json={"logits": [0.5, 2.0], "temperature": 2.0}).json()
    assert d["difference"] == 0.75
    assert d["sigmoid"][1] == pytest.approx(float(smk.sigmoid(0.75)), rel=1e-15)
    assert_allclose(d["softmax"], smk.softmax(np.array([0.5, 2.0]), temperature=2.0), rtol=1e-15)
    assert d["max_abs_difference"] < 1e-15
    assert len(d["curve"]["x"]) == len(d["curve"]["sigmoid"]) == 81
    assert_allclose(d["curve"]["sigmoid"], smk.sigmoid(np.array(d["curve"]["x"])))
    r = client.post("/api/two_class", json={"logits": [0.0, 1e6], "temperature": 1e-303})
    assert r.status_code == 422 and "must be finite" in r.json()["error"]
    r = client.post("/api/two_class", json={"logits": [1, 2, 3]})
    assert r.status_code == 422 and "exactly 2 numbers, got 3" in r.json()["error"]


@pytest.mark.parametrize("body, status, needle", [
    ('{"logits": [NaN]}', 400, "NaN is not a JSON number"),
    ('{"logits": [1, Infinity]}', 400, "Infinity is not a JSON number"),
    ('{"logits": [1e400]}', 422, "logits[0] = inf"),
    ('{"logits": [1, "a", 3]}', 422, "logits[1] must be a number, got 'a'"),
    ('{"logits": [1, true]}', 422, "logits[1] must be a number"),
    ('{"logits": [2e6]}', 422, "|z| <= 1e+06"),
    ('{"logits": "1 2 3"}', 422, "'logits' must be a list of numbers"),
    ('{"logits": []}', 422, f"1 to {MAX_CLASSES} numbers, got 0"),
    ("{}", 422, "'logits' is required"),
    ("", 422, "'logits' is required"),
    ("not json", 400, "malformed JSON"),
    ("[" * 30000 + "]" * 30000, 400, "malformed JSON"),
    (b'{"logits": [1, 2]}\xff', 400, "malformed JSON"),
    ("[1, 2]", 422, "must be a JSON object"),
    ('{"logits": [1, 2], "temperature": 0}', 422, "'temperature' must be in (0.0"),
    ('{"logits": [1, 2], "temperature": -1}', 422, "'temperature'"),
    ('{"logits": [1, 2], "temperature": "hot"}', 422, "'temperature' must be a number"),
    ('{"logits": [1, 2], "label": 2}', 422, "'label' must be in [0, 1], got 2"),
    ('{"logits": [1, 2], "label": 0.5}', 422, "'label' must be an integer"),
    ('{"logits": [1, 2], "dtype": "float16"}', 422, "'dtype' must be 'float64' or 'float32'"),
    ('{"logits": [1e6, 2], "temperature": 1e-303}', 422, "logits / temperature must be finite"),
])
def test_bad_requests_get_a_clear_json_4xx(client, body, status, needle):
    r = client.post("/api/softmax", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)
_fields = st.fixed_dictionaries({}, optional={
    "logits": _json | st.lists(st.floats(-1e7, 1e7) | st.integers(-10, 10), max_size=70),
    "temperature": _json | st.floats(0, 1e7), "label": _json | st.integers(-2, 70),
    "dtype": _json | st.sampled_from(["float32", "float64"]),
})


_valid = st.fixed_dictionaries(
    {"logits": st.lists(st.floats(-1e6, 1e6) | st.integers(-1000, 1000), min_size=1, max_size=3)},
    optional={"temperature": st.floats(1e-3, 100.0), "dtype": st.sampled_from(["float32", "float64"])},
)


@given(body=_valid | _fields | _json, path=st.sampled_from(["/api/softmax", "/api/two_class"]))
@settings(max_examples=80)
def test_any_json_gets_an_answer_never_a_500(body, path):
    client = _PROPERTY_CLIENT
    r = client.post(path, json=body)
    event(f"status {r.status_code}")
    assert r.status_code in (200, 400, 413, 422), (r.status_code, r.text)
    if r.status_code != 200:
        assert isinstance(r.json()["error"], str) and r.json()["error"]
    else:
        d = r.json()
        p = np.array([num(v) for v in d.get("probabilities", d.get("softmax"))], dtype=float)
        assert np.isfinite(p).all() and abs(p.sum() - 1) < 1e-5


_PROPERTY_CLIENT = TestClient(create_app(), raise_server_exceptions=True)


def test_a_million_logits_are_refused_unread(client):
    body = json.dumps({"logits": [0.0] * 10**6})
    r = client.post("/api/softmax", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["error"]
    # and without a content-length header (streamed): still 413, read only up to the limit
    def chunks():
        for i in range(0, len(body), 4096):
            yield body[i:i + 4096].encode()
    r = client.post("/api/softmax", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and f"over {MAX_BODY_BYTES} bytes" in r.json()["error"]
    # a hundred logits fit in the body but not in the class limit
    r = client.post("/api/softmax", json={"logits": [0.0] * (MAX_CLASSES + 1)})
    assert r.status_code == 422


def test_unknown_routes_and_methods_are_json(client):
    r = client.get("/api/nothing")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = client.get("/api/softmax")
    assert r.status_code == 405 and "error" in r.json()
    r = client.get("/api/train/0123456789ab")
    assert r.status_code == 404 and "no training run" in r.json()["error"]


def wait_for(client, run_id, statuses=("done", "cancelled", "timeout", "error"), limit=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        s = client.get(f"/api/train/{run_id}").json()
        if s["status"] in statuses:
            return s
        time.sleep(0.05)
    raise AssertionError(f"training run still {s['status']} after {limit} s")


def test_training_run_reports_curves_weights_confusion_and_mistakes(client):
    r = client.post("/api/train", json={"epochs": 4, "delay": 0, "solver": "adam",
                                        "learning_rate": 0.01})
    assert r.status_code == 202
    start = r.json()
    assert start["params"]["epochs"] == 4 and start["params"]["solver"] == "adam"
    s = wait_for(client, start["id"])
    assert s["status"] == "done", s["message"]
    h = s["history"]
    assert h["epoch"] == [1, 2, 3, 4]
    for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
        assert len(h[key]) == 4 and all(math.isfinite(v) for v in h[key])
    assert h["test_accuracy"][-1] > 0.85
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert np.array(s["weights"]).shape == (10, 64)
    cm = np.array(s["confusion"])
    assert cm.shape == (10, 10) and cm.sum() == s["n_test"] == 450
    assert np.trace(cm) / cm.sum() == pytest.approx(h["test_accuracy"][-1])
    wrong = s["misclassified"]
    assert len(wrong) == min(40, cm.sum() - np.trace(cm))
    for m in wrong:
        assert m["true"] != m["predicted"] and len(m["pixels"]) == 64
        assert np.argmax(m["probabilities"]) == m["predicted"]
        assert sum(m["probabilities"]) == pytest.approx(1.0)


def test_training_is_cancellable_and_bounded(client):
    r = client.post("/api/train", json={"epochs": 200, "delay": 0.5})
    run_id = r.json()["id"]
    time.sleep(0.3)
    t0 = time.monotonic()
    s = client.post(f"/api/train/{run_id}/cancel").json()
    assert time.monotonic() - t0 < 5
    assert s["status"] == "cancelled" and "cancelled after" in s["message"]
    assert len(s["history"]["epoch"]) < 200
    # a new run stops the old one
    a = client.post("/api/train", json={"epochs": 200, "delay": 0.5}).json()["id"]
    b = client.post("/api/train", json={"epochs": 1, "delay": 0}).json()["id"]
    assert wait_for(client, a)["status"] == "cancelled"
    assert wait_for(client, b)["status"] == "done"


def test_training_time_limit():
    app = create_app(max_train_seconds=0.5)
    with TestClient(app) as c:
        run_id = c.post("/api/train", json={"epochs": 200, "delay": 0.2}).json()["id"]
        s = wait_for(c, run_id)
    assert s["status"] == "timeout" and "time limit of 0.5 s" in s["message"]
    assert 1 <= len(s["history"]["epoch"]) < 200


def test_a_failing_or_diverging_run_reports_an_error(client, monkeypatch):
    # the trainer's failure is the run's status and message; the server keeps serving
    def boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(smk.SoftmaxRegression, "partial_fit", boom)
    s = wait_for(client, client.post("/api/train", json={"epochs": 3, "delay": 0}).json()["id"])
    assert s["status"] == "error" and s["message"] == "RuntimeError: boom"
    assert client.get("/api/health").status_code == 200
    monkeypatch.undo()
    # softmaxkit's cross-entropy stays finite even for lr = 10; force a NaN loss instead
    monkeypatch.setattr(smk, "cross_entropy", lambda *a, **k: np.float64(np.nan))
    s = wait_for(client, client.post("/api/train", json={"epochs": 3, "delay": 0}).json()["id"])
    assert s["status"] == "error" and "diverged at epoch 1" in s["message"]
    assert s["history"]["epoch"] == []


@pytest.mark.parametrize("body, needle", [
    ({"epochs": 0}, "'epochs' must be in [1, 200]"),
    ({"epochs": 10**6}, "'epochs' must be in [1, 200]"),
    ({"solver": "lbfgs"}, "'solver' must be 'sgd' or 'adam'"),
    ({"learning_rate": 0}, "'learning_rate' must be in (0.0"),
    ({"batch_size": 2.5}, "'batch_size' must be an integer"),
    ({"delay": 5}, "'delay' must be in [0.0, 1.0]"),
])
def test_bad_training_requests(client, body, needle):
    r = client.post("/api/train", json=body)
    assert r.status_code == 422 and needle in r.json()["error"]


# ---------------------------------------------------------------------------- the command


def test_explore_parser_and_bad_port(capsys):
    from softmaxkit.app import explore_cmd

    parser = argparse.ArgumentParser(prog="softmaxkit")
    sub = parser.add_subparsers(dest="command")
    explore_cmd.add_parser(sub)
    args = parser.parse_args(["explore"])
    assert (args.host, args.port, args.func) == ("127.0.0.1", 0, explore_cmd.run)
    assert explore_cmd.run(parser.parse_args(["explore", "--port", "70000"])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == "softmaxkit: error: --port must be in 0..65535, got 70000"
    busy = explore_cmd.bind_socket("127.0.0.1", 0)
    try:
        port = busy.getsockname()[1]
        assert explore_cmd.run(parser.parse_args(["explore", "--port", str(port)])) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"cannot listen on 127.0.0.1:{port}" in err[0]
    finally:
        busy.close()


def test_explore_without_the_extra_says_how_to_install(monkeypatch, capsys):
    from softmaxkit.app import explore_cmd

    parser = argparse.ArgumentParser(prog="softmaxkit")
    explore_cmd.add_parser(parser.add_subparsers(dest="command"))
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ImportError
    assert explore_cmd.run(parser.parse_args(["explore"])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'softmaxkit[explore]'" in err[0]
    monkeypatch.undo()
    assert explore_cmd.run(parser.parse_args(["explore", "--max-train-seconds", "0"])) == 2
    assert "--max-train-seconds must be > 0" in capsys.readouterr().err


_SERVE = """
import argparse, sys
from softmaxkit.app import explore_cmd
p = argparse.ArgumentParser(prog="softmaxkit")
explore_cmd.add_parser(p.add_subparsers(dest="command"))
sys.exit(explore_cmd.run(p.parse_args(sys.argv[1:])))
"""


def test_explore_serves_on_a_free_loopback_port_and_stops_on_ctrl_c():
    httpx = pytest.importorskip("httpx2") if _has("httpx2") else pytest.importorskip("httpx")
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, "explore"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("softmax explorer at http://127.0.0.1:"), line
        url = line.split()[3]
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert port > 0
        r = None
        for _ in range(100):
            try:
                r = httpx.get(url + "api/health", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r is not None and r.json()["ok"] is True
        r = httpx.post(url + "api/softmax", json={"logits": [2, 3, 5]}, timeout=5)
        assert_allclose(r.json()["probabilities"], [0.0420100661, 0.1141951994, 0.8437947345], rtol=1e-9)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, proc.stderr.read()


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None
