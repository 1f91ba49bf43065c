"""The softmax explorer: a small Starlette app whose JSON API computes with softmaxkit.

Every number the page shows comes from this API (one implementation of the math,
on the server); the page only draws. The API (documented in docs/explorer.md):

==========================  ==========================================================
``GET  /``                  the page (static/index.html, app.js, style.css)
``GET  /api/health``        ``{"ok": true, "version": ...}``
``POST /api/softmax``       logits, temperature, true class -> every step, naive and stable
``POST /api/two_class``     two logits -> sigmoid of their difference beside softmax
``POST /api/train``         start training softmax regression on the bundled digits
``GET  /api/train/{id}``    the run's progress: curves, weights, confusion, mistakes
``POST /api/train/{id}/cancel``  stop the run
==========================  ==========================================================

Requests are JSON objects; errors are ``{"error": "<message>"}`` with a 4xx status
(400 malformed JSON, 404 unknown run, 413 body too large, 422 invalid values).
Floats that are not finite (the naive formula's ``inf`` and ``nan``) are sent as
the strings ``"Infinity"``, ``"-Infinity"`` and ``"NaN"`` (JSON has no such numbers).
"""
from __future__ import annotations

import json
import math
import numbers
import threading
import time
import uuid
from pathlib import Path
from typing import Any, cast

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import softmaxkit as smk

__all__ = ["create_app", "ApiError", "MAX_BODY_BYTES", "MAX_CLASSES", "MAX_EPOCHS"]

STATIC = Path(__file__).resolve().parent / "static"

MAX_BODY_BYTES = 64 * 1024  # a request body larger than this is refused (413) unread
MAX_CLASSES = 64            # logits per request
MAX_ABS_LOGIT = 1e6         # |z| above this is refused: nothing to learn there, and it keeps
                            # the naive column's overflow story readable
MAX_EPOCHS = 200
MAX_DELAY = 1.0             # seconds the trainer may pause between epochs (to watch it)
MAX_RUNS_KEPT = 4


class ApiError(Exception):
    """A bad request: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------- JSON in and out


def _jsonable(v: Any) -> Any:
    """NumPy values and non-finite floats as JSON (non-finite floats as strings)."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "Infinity" if f > 0 else "-Infinity"
        return f
    return v


def _ok(payload: dict, status: int = 200) -> JSONResponse:
    return JSONResponse(_jsonable(payload), status_code=status)


def _reject_constant(name: str):
    raise ApiError(400, f"malformed JSON: {name} is not a JSON number")


async def _body(request: Request) -> dict:
    """The request's JSON object, read up to MAX_BODY_BYTES."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body too large ({declared} bytes; at most {MAX_BODY_BYTES})")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"request body too large (over {MAX_BODY_BYTES} bytes)")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ApiError(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, f"the request must be a JSON object, got {type(data).__name__}")
    return data


def _number(data: dict, key: str, default: Any = None, *, lo: float | None = None,
            hi: float | None = None, integer: bool = False, open_lo: bool = False) -> Any:
    """``data[key]`` as a finite number in [lo, hi] (ApiError 422 otherwise)."""
    if key not in data or data[key] is None:
        if default is None:
            raise ApiError(422, f"'{key}' is required")
        return default
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ApiError(422, f"'{key}' must be a number, got {v!r}")
    if integer and not (isinstance(v, int) or float(v).is_integer()):
        raise ApiError(422, f"'{key}' must be an integer, got {v!r}")
    if not math.isfinite(v):
        raise ApiError(422, f"'{key}' must be finite, got {v!r}")
    if lo is not None and (v < lo or (open_lo and v == lo)) or hi is not None and v > hi:
        rng = f"{'(' if open_lo else '['}{lo}, {hi}]"
        raise ApiError(422, f"'{key}' must be in {rng}, got {v!r}")
    return int(v) if integer else float(v)


def _logits(data: dict, key: str = "logits", *, n: int | None = None) -> list[float]:
    if key not in data:
        raise ApiError(422, f"'{key}' is required: a list of numbers")
    z = data[key]
    if not isinstance(z, list):
        raise ApiError(422, f"'{key}' must be a list of numbers, got {type(z).__name__}")
    if n is not None and len(z) != n:
        raise ApiError(422, f"'{key}' must hold exactly {n} numbers, got {len(z)}")
    if not 1 <= len(z) <= MAX_CLASSES:
        raise ApiError(422, f"'{key}' must hold 1 to {MAX_CLASSES} numbers, got {len(z)}")
    for i, v in enumerate(z):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ApiError(422, f"{key}[{i}] must be a number, got {v!r}")
        if not math.isfinite(v) or abs(v) > MAX_ABS_LOGIT:
            raise ApiError(422, f"{key}[{i}] = {v!r}: logits must be finite numbers with "
                                f"|z| <= {MAX_ABS_LOGIT:g}")
    return [float(v) for v in z]


# ---------------------------------------------------------------- softmax


async def api_softmax(request: Request) -> Response:
    data = await _body(request)
    z = _logits(data)
    t = _number(data, "temperature", 1.0, lo=0.0, hi=1e6, open_lo=True)
    label = data.get("label")
    if label is not None:
        label = _number(data, "label", integer=True, lo=0, hi=len(z) - 1)
    dtype = data.get("dtype", "float64")
    if dtype not in ("float64", "float32"):
        raise ApiError(422, f"'dtype' must be 'float64' or 'float32', got {dtype!r}")
    try:
        e = smk.explain(z, label=label, temperature=t, dtype=np.dtype(dtype))
    except (ValueError, TypeError) as exc:
        raise ApiError(422, str(exc)) from None
    out = {
        "logits": e.logits, "temperature": e.temperature, "dtype": e.dtype, "label": e.label,
        "scaled": e.scaled, "max": e.max, "shifted": e.shifted, "exp_shifted": e.exp_shifted,
        "sum_exp_shifted": e.sum_exp_shifted, "probabilities": e.probabilities,
        "log_probabilities": e.log_probabilities, "logsumexp": e.logsumexp,
        "hardmax": e.hardmax, "entropy": e.entropy,
        "naive": {"exp": e.naive_exp, "sum": e.naive_sum, "probabilities": e.naive_probabilities,
                  "problem": e.naive_problem},
        "plain_normalisation": e.plain_normalisation,
        "cross_entropy": e.loss, "gradient": e.gradient, "squared_loss": e.squared_loss,
        "prediction": int(np.argmax(e.probabilities)),
    }
    return _ok(out)


async def api_two_class(request: Request) -> Response:
    data = await _body(request)
    z = _logits(data, n=2)
    t = _number(data, "temperature", 1.0, lo=0.0, hi=1e6, open_lo=True)
    d = (z[1] - z[0]) / t
    if not (math.isfinite(z[0] / t) and math.isfinite(z[1] / t) and math.isfinite(d)):
        raise ApiError(422, f"logits / temperature must be finite, got {z} / {t!r}")
    p = smk.softmax(np.array(z), temperature=t)
    sig = smk.sigmoid(np.array([-d, d]))  # [1 - sigmoid(d), sigmoid(d)]
    grid = np.linspace(-10.0, 10.0, 81)
    return _ok({
        "logits": z, "temperature": t, "difference": d, "sigmoid": sig, "softmax": p,
        "max_abs_difference": float(np.max(np.abs(p - sig))),
        "curve": {"x": grid, "sigmoid": smk.sigmoid(grid)},
    })


# ---------------------------------------------------------------- training


class TrainingRun:
    """Softmax regression on the digits in a thread, one epoch at a time.

    Bounded by ``epochs`` and by the server's ``max_seconds``; :meth:`cancel` stops
    it before the next epoch. ``snapshot()`` is a consistent copy of its state.
    """

    def __init__(self, params: dict, max_seconds: float):
        self.id = uuid.uuid4().hex[:12]
        self.params = params
        self.max_seconds = max_seconds
        self.status = "running"
        self.message: str | None = None
        self.history: dict[str, list[float]] = {
            "epoch": [], "train_loss": [], "test_loss": [], "train_accuracy": [],
            "test_accuracy": []}
        self.weights: list[list[float]] | None = None
        self.confusion: list[list[int]] | None = None
        self.misclassified: list[dict[str, Any]] = []
        self.n_train = self.n_test = 0
        self.started = time.monotonic()
        self.elapsed = 0.0
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"smk-train-{self.id}", daemon=True)

    def start(self) -> "TrainingRun":
        self.thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "id": self.id, "status": self.status, "message": self.message,
                "params": dict(self.params), "elapsed": self.elapsed,
                "n_train": self.n_train, "n_test": self.n_test,
                "history": {k: list(v) for k, v in self.history.items()},
                "weights": self.weights, "confusion": self.confusion,
                "misclassified": list(self.misclassified),
                "classes": list(range(10)),
            }

    def _finish(self, status: str, message: str | None = None) -> None:
        with self._lock:
            self.status, self.message = status, message
            self.elapsed = time.monotonic() - self.started

    def _run(self) -> None:
        try:
            self._train()
        except Exception as exc:  # reported to the page; the server keeps serving
            self._finish("error", f"{type(exc).__name__}: {exc}")

    def _train(self) -> None:
        from sklearn.model_selection import train_test_split

        p = self.params
        X, y = smk.datasets.load_digits()
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=p["test_size"], stratify=y,
                                                  random_state=p["seed"])
        self.n_train, self.n_test = len(y_tr), len(y_te)
        model = smk.SoftmaxRegression(
            alpha=p["alpha"], solver=p["solver"], learning_rate=p["learning_rate"],
            batch_size=p["batch_size"], standardize=True, random_state=p["seed"])
        classes = np.arange(10)
        for epoch in range(1, p["epochs"] + 1):
            if self._cancel.is_set():
                return self._finish("cancelled", f"cancelled after {epoch - 1} epochs")
            if time.monotonic() - self.started > self.max_seconds:
                return self._finish("timeout", f"stopped at the time limit of "
                                               f"{self.max_seconds:g} s after {epoch - 1} epochs")
            model.partial_fit(X_tr, y_tr, classes=classes)
            z_tr, z_te = model.decision_function(X_tr), model.decision_function(X_te)
            loss_tr = float(smk.cross_entropy(z_tr, y_tr))
            loss_te = float(smk.cross_entropy(z_te, y_te))
            if not (math.isfinite(loss_tr) and math.isfinite(loss_te)):
                return self._finish("error", f"the loss diverged at epoch {epoch} (try a "
                                             "smaller learning rate)")
            pred_te = np.argmax(z_te, axis=1)
            confusion = np.zeros((10, 10), dtype=np.int64)
            np.add.at(confusion, (y_te, pred_te), 1)
            wrong = np.flatnonzero(pred_te != y_te)[:40]
            probs = smk.softmax(z_te[wrong], axis=-1)
            mistakes = [{"index": int(i), "pixels": X_te[i].astype(int).tolist(),
                         "true": int(y_te[i]), "predicted": int(pred_te[i]),
                         "probabilities": pr.tolist()} for i, pr in zip(wrong, probs)]
            with self._lock:
                h = self.history
                h["epoch"].append(epoch)
                h["train_loss"].append(loss_tr)
                h["test_loss"].append(loss_te)
                h["train_accuracy"].append(float(np.mean(np.argmax(z_tr, axis=1) == y_tr)))
                h["test_accuracy"].append(float(np.mean(pred_te == y_te)))
                self.weights = model.coef_.tolist()
                self.confusion = confusion.tolist()
                self.misclassified = mistakes
                self.elapsed = time.monotonic() - self.started
            if p["delay"] > 0 and self._cancel.wait(p["delay"]):
                return self._finish("cancelled", f"cancelled after {epoch} epochs")
        self._finish("done", f"{p['epochs']} epochs")


def _train_params(data: dict) -> dict:
    solver = data.get("solver", "sgd")
    if solver not in ("sgd", "adam"):
        raise ApiError(422, f"'solver' must be 'sgd' or 'adam', got {solver!r}")
    return {
        "solver": solver,
        "epochs": _number(data, "epochs", 30, lo=1, hi=MAX_EPOCHS, integer=True),
        "learning_rate": _number(data, "learning_rate", 0.05, lo=0.0, hi=10.0, open_lo=True),
        "batch_size": _number(data, "batch_size", 32, lo=1, hi=1024, integer=True),
        "alpha": _number(data, "alpha", 1e-4, lo=0.0, hi=100.0),
        "test_size": _number(data, "test_size", 0.25, lo=0.1, hi=0.5),
        "seed": _number(data, "seed", 0, lo=0, hi=2**31 - 1, integer=True),
        "delay": _number(data, "delay", 0.05, lo=0.0, hi=MAX_DELAY),
    }


def _runs(request: Request) -> dict:
    return request.app.state.runs


async def api_train_start(request: Request) -> Response:
    params = _train_params(await _body(request))
    state = request.app.state
    with state.runs_lock:
        for run in state.runs.values():  # one run at a time: a new one stops the old
            run.cancel()
        run = TrainingRun(params, state.max_train_seconds)
        state.runs[run.id] = run
        while len(state.runs) > MAX_RUNS_KEPT:
            state.runs.pop(next(iter(state.runs)))
    run.start()
    return _ok({"id": run.id, "status": "running", "params": params,
                "max_seconds": state.max_train_seconds}, status=202)


def _get_run(request: Request) -> TrainingRun:
    run = _runs(request).get(request.path_params["run_id"])
    if run is None:
        raise ApiError(404, f"no training run {request.path_params['run_id']!r}")
    return run


async def api_train_status(request: Request) -> Response:
    return _ok(_get_run(request).snapshot())


def api_train_cancel(request: Request) -> Response:
    # A plain function: Starlette runs it in its thread pool, so waiting for the
    # trainer to stop (at most one epoch, milliseconds on the digits) never blocks
    # the event loop.
    run = _get_run(request)
    run.cancel()
    run.thread.join(timeout=5.0)
    return _ok(run.snapshot())


# ---------------------------------------------------------------- app


async def api_health(request: Request) -> Response:
    return _ok({"ok": True, "version": smk.__version__})


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def _api_error(request: Request, exc: Exception) -> Response:
    err = cast(ApiError, exc)  # registered for ApiError only
    return JSONResponse({"error": err.message}, status_code=err.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    err = cast(HTTPException, exc)  # registered for HTTPException only
    return JSONResponse({"error": err.detail}, status_code=err.status_code)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not a bad request: still JSON, so the page can show it.
    return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)


def create_app(*, max_train_seconds: float = 60.0) -> Starlette:
    """The explorer's ASGI app (serve it with uvicorn, or test it with TestClient).

    Parameters
    ----------
    max_train_seconds : float, default 60
        Wall-clock limit of one training run; it stops with status "timeout".
    """
    routes = [
        Route("/", index),
        Route("/api/health", api_health),
        Route("/api/softmax", api_softmax, methods=["POST"]),
        Route("/api/two_class", api_two_class, methods=["POST"]),
        Route("/api/train", api_train_start, methods=["POST"]),
        Route("/api/train/{run_id}", api_train_status),
        Route("/api/train/{run_id}/cancel", api_train_cancel, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected})
    app.state.runs = {}
    app.state.runs_lock = threading.Lock()
    app.state.max_train_seconds = float(max_train_seconds)
    return app


def stop_runs(app: Starlette) -> None:
    """Cancel every training run of ``app`` and wait for their threads."""
    for run in list(app.state.runs.values()):
        run.cancel()
    for run in list(app.state.runs.values()):
        run.thread.join(timeout=5.0)
