"""The explorer page in a real browser: Playwright driving the system's headless chromium.

Enable locally with ``apt-get install -y chromium`` (Debian) or point
``SOFTMAXKIT_CHROMIUM`` at a Chromium/Chrome binary; the tests skip, saying so, when
no browser is found. Playwright's own browser download (``playwright install``) is
never used. The server is uvicorn on 127.0.0.1 in a thread. Screenshots are saved
in the test's tmp folder and, when ``SOFTMAXKIT_SCREENSHOTS`` names a folder, there
too (the CI artefacts).
"""
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

import softmaxkit as smk

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def find_chromium():
    env = os.environ.get("SOFTMAXKIT_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium found for the browser tests: install it (Debian: apt-get install -y "
    "chromium) or set SOFTMAXKIT_CHROMIUM to a Chromium/Chrome binary",
)


@pytest.fixture(scope="module")
def server_url():
    from softmaxkit.app.explore.server import create_app, stop_runs
    from softmaxkit.app.explore_cmd import bind_socket

    app = create_app(max_train_seconds=60)
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        assert time.monotonic() - t0 < 30, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(timeout=10)
    stop_runs(app)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server_url, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors, requests = [], []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: requests.append(r.url))
    pg.goto(server_url)
    pg.wait_for_selector("#steps td.p")
    yield pg
    context.close()
    assert not errors, errors
    # offline by construction: nothing but this server (and data: URLs) was asked for
    assert all(u.startswith(server_url) or u.startswith("data:") for u in requests), requests


def shot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = os.environ.get("SOFTMAXKIT_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(out) / path.name)
    return path


def displayed(page, selector):
    return [float(v) for v in page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.value)")]


def test_temperature_slider_probabilities_match_softmaxkit(page, tmp_path):
    logits = np.array([2.0, 1.0, 0.1, -1.0])
    for t in (2.5, 0.35, 1.0, 5.0):
        page.locator("#temperature").fill(str(t))
        page.wait_for_function(
            "t => Number(document.getElementById('steps').dataset.temperature) === t", arg=t)
        assert page.inner_text("#temperature-value") == f"{t:.2f}"
        probs = displayed(page, "#steps td.p")
        assert_allclose(probs, smk.softmax(logits, temperature=t), rtol=1e-15, atol=0)
        # and the text shown is those numbers, rounded
        texts = [float(x) for x in page.eval_on_selector_all("#steps td.p", "els => els.map(e => e.textContent)")]
        assert_allclose(texts, probs, rtol=1e-7)
        if t == 0.35:
            shot(page, tmp_path, "explorer-temperature")
    # the label's gradient p - y, cross-entropy and bars
    page.select_option("#label", "1")
    page.wait_for_function("document.getElementById('steps').dataset.label === '1'")
    grad = displayed(page, "#steps td.grad")
    expect = smk.softmax(logits, temperature=5.0)
    expect[1] -= 1
    assert_allclose(grad, expect, rtol=1e-14)
    ce = float(page.get_attribute("#cross-entropy", "data-value"))
    assert ce == pytest.approx(float(smk.cross_entropy(logits / 5.0, 1)), rel=1e-14)
    assert page.locator("#probs-chart rect.bar-prob").count() == 4


def test_naive_vs_stable_and_bad_input_message(page, tmp_path):
    page.click("button[data-preset='123 456 789']")
    page.wait_for_function("document.getElementById('steps').dataset.logits === '123 456 789'")
    naive = page.eval_on_selector_all("#steps td.naive-p", "els => els.map(e => e.textContent)")
    assert naive == ["0", "0", "nan"]
    assert page.locator("#steps td.naive-p.bad").count() == 3
    assert_allclose(displayed(page, "#steps td.p"), [5.7527440570e-290, 2.3984878688e-145, 1.0], rtol=1e-10)
    assert "overflows" in page.inner_text("#naive-problem")
    shot(page, tmp_path, "explorer-overflow")
    # a typo is a message on the page, from the server's JSON error
    page.fill("#logits-text", "1 abc 3")
    page.click("#apply-logits")
    page.wait_for_selector("#error:not([hidden])")
    assert "logits[1] must be a number" in page.inner_text("#error")
    shot(page, tmp_path, "explorer-error")
    page.fill("#logits-text", "2, 3, 5")
    page.press("#logits-text", "Enter")
    page.wait_for_selector("#error", state="hidden")
    assert_allclose(displayed(page, "#steps td.p"), [0.0420100661, 0.1141951994, 0.8437947345], rtol=1e-9)


def test_dragging_a_bar_changes_the_logit(page):
    bar = page.locator("#logits-chart rect.bar-logit").nth(3)
    box = bar.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y - 150, steps=8)
    page.mouse.up()
    page.wait_for_timeout(300)
    page.wait_for_function("!document.getElementById('steps').dataset.logits.endsWith(' -1')")
    logits = [float(v) for v in page.get_attribute("#steps", "data-logits").split()]
    assert logits[:3] == [2.0, 1.0, 0.1] and logits[3] > 0  # dragged from -1 up past 0
    assert [float(v) for v in page.input_value("#logits-text").split()] == logits
    assert_allclose(displayed(page, "#steps td.p"), smk.softmax(np.array(logits)), rtol=1e-15)


def test_two_class_view(page):
    page.locator("#z0").fill("-1")
    page.locator("#z1").fill("1.5")
    page.wait_for_function("document.getElementById('z1-value').textContent === '1.5'")
    page.wait_for_function(
        "Math.abs(Number(document.getElementById('sigmoid-value').dataset.value) - 0.924) < 0.01")
    s = float(page.get_attribute("#sigmoid-value", "data-value"))
    p1 = float(page.get_attribute("#softmax2-value", "data-value"))
    assert s == pytest.approx(float(smk.sigmoid(2.5)), rel=1e-15)
    assert p1 == pytest.approx(float(smk.softmax(np.array([-1.0, 1.5]))[1]), rel=1e-15)


def test_training_curves_weights_confusion_and_mistakes_appear(page, tmp_path):
    page.fill("#epochs", "6")
    page.click("#train-start")
    page.wait_for_function("document.getElementById('train-status').dataset.status === 'done'",
                           timeout=90_000)
    for chart in ("#loss-chart", "#acc-chart"):
        lines = page.locator(f"{chart} polyline")
        assert lines.count() == 2
        assert [lines.nth(i).get_attribute("data-points") for i in range(2)] == ["6", "6"]
    assert page.locator("#weights canvas").count() == 10
    assert page.locator("#confusion table.confusion tr").count() == 11
    assert page.locator("#mistakes .mistake").count() >= 1
    assert "epoch 6/6" in page.inner_text("#train-status")
    shot(page, tmp_path, "explorer-trained")


def test_training_can_be_cancelled(page):
    page.fill("#epochs", "200")
    page.click("#train-start")
    page.wait_for_function("Number(document.getElementById('train-status').dataset.epochs || 0) >= 1",
                           timeout=60_000)
    page.click("#train-cancel")
    page.wait_for_function("document.getElementById('train-status').dataset.status === 'cancelled'",
                           timeout=20_000)
    assert "cancelled after" in page.inner_text("#train-status")
    assert page.is_enabled("#train-start")
