// softmax explorer: draws what the softmaxkit JSON API computes (plain SVG and canvas,
// no library, nothing fetched from outside this server).
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ helpers

// The API sends non-finite floats as the strings "NaN", "Infinity", "-Infinity".
function num(v) {
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  return v;
}

function fmt(v, digits = 6) {
  v = num(v);
  if (v === null || v === undefined) return "";
  if (typeof v !== "number") return String(v);  // a typo, shown as typed
  if (Number.isNaN(v)) return "nan";
  if (v === Infinity) return "inf";
  if (v === -Infinity) return "-inf";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) return v.toExponential(Math.max(digits - 3, 2));
  return String(Number(v.toPrecision(digits)));
}

function showError(message) {
  const box = $("error");
  if (message) {
    box.textContent = "Error: " + message;
    box.hidden = false;
  } else {
    box.hidden = true;
    box.textContent = "";
  }
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    showError("the server does not answer (" + e.message + ")");
    throw e;
  }
  let data;
  try {
    data = await resp.json();
  } catch (e) {
    data = {error: "HTTP " + resp.status + " (not JSON)"};
  }
  if (!resp.ok) {
    showError(data.error || ("HTTP " + resp.status));
    throw new Error(data.error);
  }
  return data;
}

function el(tag, attrs = {}, parent = null, text = null) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

const W = 420, H = 240, PAD = {l: 44, r: 10, t: 14, b: 26};

// Bars with a zero line: values[i] for i in 0..n-1 on the range [lo, hi].
function barChart(svg, values, lo, hi, opts = {}) {
  clear(svg);
  const n = values.length, iw = W - PAD.l - PAD.r, ih = H - PAD.t - PAD.b;
  const y = (v) => PAD.t + ih * (hi - Math.max(lo, Math.min(hi, v))) / (hi - lo);
  for (let k = 0; k <= 4; k++) {
    const v = lo + (hi - lo) * k / 4;
    el("line", {x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: "grid"}, svg);
    el("text", {x: PAD.l - 4, y: y(v) + 4, "text-anchor": "end"}, svg, fmt(v, 3));
  }
  const slot = iw / n, bw = Math.max(4, slot * 0.62);
  const bars = [];
  values.forEach((raw, i) => {
    const v = num(raw);
    const x = PAD.l + slot * i + (slot - bw) / 2;
    const y0 = y(0), y1 = Number.isFinite(v) ? y(v) : y0;
    const rect = el("rect", {x, y: Math.min(y0, y1), width: bw, height: Math.max(1, Math.abs(y1 - y0)),
      class: opts.cls + (opts.label === i ? " label" : ""), "data-index": i}, svg);
    bars.push(rect);
    el("text", {x: x + bw / 2, y: H - 8, "text-anchor": "middle"}, svg, String(i));
    const ty = v >= 0 ? Math.min(y0, y1) - 3 : Math.max(y0, y1) + 11;
    if (n <= 12) el("text", {x: x + bw / 2, y: ty, "text-anchor": "middle"}, svg, fmt(v, 3));
  });
  el("line", {x1: PAD.l, x2: W - PAD.r, y1: y(0), y2: y(0), class: "axis"}, svg);
  return {bars, y, invert: (py) => hi - (py - PAD.t) * (hi - lo) / ih};
}

// Lines: series = [{values, cls}], x from 1..xmax.
function lineChart(svg, series, lo, hi, xmax, legend) {
  clear(svg);
  const iw = W - PAD.l - PAD.r, ih = H - PAD.t - PAD.b;
  const x = (i) => PAD.l + iw * (xmax <= 1 ? 0.5 : (i - 1) / (xmax - 1));
  const y = (v) => PAD.t + ih * (hi - v) / (hi - lo);
  for (let k = 0; k <= 4; k++) {
    const v = lo + (hi - lo) * k / 4;
    el("line", {x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: "grid"}, svg);
    el("text", {x: PAD.l - 4, y: y(v) + 4, "text-anchor": "end"}, svg, fmt(v, 3));
  }
  el("text", {x: W - PAD.r, y: H - 8, "text-anchor": "end"}, svg, "epoch " + xmax);
  el("text", {x: PAD.l, y: H - 8}, svg, "1");
  series.forEach((s) => {
    if (!s.values.length) return;
    const pts = s.values.map((v, i) => `${x(i + 1).toFixed(1)},${y(num(v)).toFixed(1)}`).join(" ");
    el("polyline", {points: pts, class: s.cls, "data-points": s.values.length}, svg);
  });
  legend.forEach((name, i) => {
    el("line", {x1: W - 110, x2: W - 92, y1: PAD.t + 8 + 14 * i, y2: PAD.t + 8 + 14 * i,
      class: series[i].cls}, svg);
    el("text", {x: W - 88, y: PAD.t + 12 + 14 * i}, svg, name);
  });
}

// ------------------------------------------------------------------ softmax panel

const state = {logits: [2, 1, 0.1, -1], temperature: 1, label: 0, dtype: "float64"};
let seq = 0, inflight = false, pending = false, dragScale = null;

function parseLogits(text) {
  const parts = text.split(/[\s,;]+/).filter((s) => s.length);
  const out = parts.map(Number);
  const bad = parts.findIndex((s, i) => !Number.isFinite(out[i]));
  if (bad >= 0) {
    // Sent as typed, so the server's message names the bad entry.
    return parts.map((s, i) => (Number.isFinite(out[i]) ? out[i] : s));
  }
  return out;
}

function fillLabelSelect() {
  const sel = $("label"), n = state.logits.length;
  const keep = state.label;
  clear(sel);
  const none = document.createElement("option");
  none.value = ""; none.textContent = "none"; sel.appendChild(none);
  for (let i = 0; i < n; i++) {
    const o = document.createElement("option");
    o.value = String(i); o.textContent = String(i); sel.appendChild(o);
  }
  state.label = keep !== null && keep < n ? keep : null;
  sel.value = state.label === null ? "" : String(state.label);
}

function logitRange() {
  if (dragScale) return dragScale;
  const m = Math.max(1, ...state.logits.filter(Number.isFinite).map(Math.abs));
  const top = Math.ceil(m * 1.25 * 10) / 10;
  return [-top, top];
}

function drawLogits() {
  const [lo, hi] = logitRange();
  const chart = barChart($("logits-chart"), state.logits, lo, hi, {cls: "bar-logit", label: state.label});
  chart.bars.forEach((bar, i) => {
    bar.addEventListener("pointerdown", (ev) => {
      ev.preventDefault();
      dragScale = [lo, hi];
      const svg = $("logits-chart");
      const move = (e) => {
        const pt = svg.createSVGPoint();
        pt.x = e.clientX; pt.y = e.clientY;
        const p = pt.matrixTransform(svg.getScreenCTM().inverse());
        const v = Math.round(chart.invert(p.y) * 100) / 100;
        state.logits[i] = Math.max(lo, Math.min(hi, v));
        $("logits-text").value = state.logits.join(" ");
        drawLogits();
        requestSoftmax();
      };
      const up = () => {
        window.removeEventListener("pointermove", move);
        window.removeEventListener("pointerup", up);
        dragScale = null;
        drawLogits();
      };
      window.addEventListener("pointermove", move);
      window.addEventListener("pointerup", up);
    });
  });
}

async function requestSoftmax() {
  if (inflight) { pending = true; return; }
  inflight = true;
  const my = ++seq;
  const body = {logits: state.logits, temperature: state.temperature, dtype: state.dtype};
  if (state.label !== null) body.label = state.label;
  try {
    const r = await api("/api/softmax", body);
    if (my === seq) { showError(null); renderSoftmax(r); }
  } catch (e) {
    // shown in the error box
  } finally {
    inflight = false;
    if (pending) { pending = false; requestSoftmax(); }
  }
  requestTwoClass();
}

function renderSoftmax(r) {
  const probs = r.probabilities.map(num);
  barChart($("probs-chart"), probs, 0, 1, {cls: "bar-prob", label: r.label});
  const sc = $("scalars");
  sc.innerHTML = "";
  const add = (name, v, id) => {
    const d = document.createElement("div");
    d.innerHTML = `${name} = <b id="${id}" data-value="${num(v)}">${fmt(v, 6)}</b>`;
    sc.appendChild(d);
  };
  add("prediction (argmax)", r.prediction, "prediction");
  if (r.cross_entropy !== null) add("cross-entropy −log p[y]", r.cross_entropy, "cross-entropy");
  add("entropy H(p)", r.entropy, "entropy");
  add("logsumexp(z/T)", r.logsumexp, "logsumexp");
  add("Σ exp(z/T − max)", r.sum_exp_shifted, "sum-stable");
  add("naive Σ exp(z/T)", r.naive.sum, "sum-naive");

  const t = $("steps");
  t.dataset.temperature = String(r.temperature);
  t.dataset.logits = r.logits.map(num).join(" ");
  t.dataset.label = r.label === null ? "" : String(r.label);
  const hasY = r.gradient !== null;
  let html = "<tr><th>class</th><th>z</th><th>z/T</th><th>z/T − max</th><th>exp(·)</th>" +
    "<th>p stable</th><th>naive exp(z/T)</th><th>naive p</th><th>hardmax</th>" +
    (hasY ? "<th>gradient p − y</th>" : "") + "</tr>";
  for (let i = 0; i < r.logits.length; i++) {
    const np_ = num(r.naive.probabilities[i]), ne = num(r.naive.exp[i]), p = probs[i];
    const badP = !Number.isFinite(np_) || (np_ === 0 && p > 0);
    html += `<tr class="${r.label === i ? "label" : ""}"><td>${i}</td><td>${fmt(r.logits[i])}</td>` +
      `<td>${fmt(r.scaled[i])}</td><td>${fmt(r.shifted[i])}</td><td>${fmt(r.exp_shifted[i])}</td>` +
      `<td class="p" data-value="${p}">${fmt(p, 8)}</td>` +
      `<td class="${Number.isFinite(ne) && (ne > 0 || p === 0) ? "" : "bad"}">${fmt(ne)}</td>` +
      `<td class="naive-p ${badP ? "bad" : ""}" data-value="${np_}">${fmt(np_, 8)}</td>` +
      `<td>${fmt(r.hardmax[i], 1)}</td>` +
      (hasY ? `<td class="grad" data-value="${num(r.gradient[i])}">${fmt(r.gradient[i], 6)}</td>` : "") +
      "</tr>";
  }
  t.innerHTML = html;
  $("naive-problem").textContent = r.naive.problem ? "naive formula: " + r.naive.problem : "";
}

function setLogits(values) {
  state.logits = values;
  fillLabelSelect();
  drawLogits();
  requestSoftmax();
}

// ------------------------------------------------------------------ two classes

let twoSeq = 0;
async function requestTwoClass() {
  const z = [Number($("z0").value), Number($("z1").value)];
  $("z0-value").textContent = z[0].toFixed(1);
  $("z1-value").textContent = z[1].toFixed(1);
  const my = ++twoSeq;
  let r;
  try {
    r = await api("/api/two_class", {logits: z, temperature: state.temperature});
  } catch (e) { return; }
  if (my !== twoSeq) return;
  const svg = $("sigmoid-chart");
  clear(svg);
  const iw = W - PAD.l - PAD.r, ih = H - PAD.t - PAD.b;
  const x = (v) => PAD.l + iw * (Math.max(-10, Math.min(10, v)) + 10) / 20;
  const y = (v) => PAD.t + ih * (1 - v);
  [0, 0.5, 1].forEach((v) => {
    el("line", {x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: "grid"}, svg);
    el("text", {x: PAD.l - 4, y: y(v) + 4, "text-anchor": "end"}, svg, String(v));
  });
  [-10, -5, 0, 5, 10].forEach((v) => el("text", {x: x(v), y: H - 8, "text-anchor": "middle"}, svg, String(v)));
  const pts = r.curve.x.map((xv, i) => `${x(xv).toFixed(1)},${y(r.curve.sigmoid[i]).toFixed(1)}`).join(" ");
  el("polyline", {points: pts, class: "curve"}, svg);
  el("circle", {cx: x(r.difference), cy: y(r.sigmoid[1]), r: 6, fill: "#e07b39"}, svg);
  el("line", {x1: x(r.difference), x2: x(r.difference), y1: y(0), y2: y(r.sigmoid[1]), stroke: "#e07b39",
    "stroke-dasharray": "3 3"}, svg);
  $("two-class-table").innerHTML =
    `<div>d = (z₁ − z₀)/T = <b>${fmt(r.difference)}</b></div>` +
    `<div>σ(d) = <b id="sigmoid-value" data-value="${r.sigmoid[1]}">${fmt(r.sigmoid[1], 10)}</b></div>` +
    `<div>softmax([z₀, z₁])₁ = <b id="softmax2-value" data-value="${r.softmax[1]}">${fmt(r.softmax[1], 10)}</b></div>` +
    `<div>σ(−d) = <b>${fmt(r.sigmoid[0], 10)}</b> = softmax₀ = <b>${fmt(r.softmax[0], 10)}</b></div>` +
    `<div>largest difference: <b>${fmt(r.max_abs_difference, 3)}</b></div>`;
}

// ------------------------------------------------------------------ training

let run = null, pollTimer = null;

function divergingColor(v) {  // v in [-1, 1]: blue (-) .. white .. red (+)
  const a = Math.min(1, Math.abs(v));
  const c = Math.round(255 * (1 - a));
  return v >= 0 ? `rgb(255,${c},${c})` : `rgb(${c},${c},255)`;
}

function drawImage(canvas, values, colour) {
  const ctx = canvas.getContext("2d");
  for (let r = 0; r < 8; r++) {
    for (let c = 0; c < 8; c++) {
      ctx.fillStyle = colour(values[r * 8 + c]);
      ctx.fillRect(c, r, 1, 1);
    }
  }
}

function renderTraining(s) {
  const h = s.history, n = h.epoch.length, total = s.params.epochs;
  const status = $("train-status");
  status.dataset.status = s.status;
  status.dataset.epochs = String(n);
  const acc = n ? h.test_accuracy[n - 1] : null;
  status.textContent = `${s.status}: epoch ${n}/${total}` +
    (acc !== null ? `, test accuracy ${fmt(acc, 4)}, test loss ${fmt(h.test_loss[n - 1], 4)}` : "") +
    (s.message && s.status !== "running" ? ` (${s.message})` : "") + `, ${fmt(s.elapsed, 3)} s`;
  const losses = h.train_loss.concat(h.test_loss).map(num);
  const top = losses.length ? Math.max(...losses) * 1.05 : 1;
  lineChart($("loss-chart"), [{values: h.train_loss, cls: "train"}, {values: h.test_loss, cls: "test"}],
    0, top, Math.max(total, 2), ["train", "test"]);
  const accs = h.train_accuracy.concat(h.test_accuracy).map(num);
  const lo = accs.length ? Math.max(0, Math.floor(Math.min(...accs) * 10) / 10) : 0;
  lineChart($("acc-chart"), [{values: h.train_accuracy, cls: "train"}, {values: h.test_accuracy, cls: "test"}],
    lo, 1, Math.max(total, 2), ["train", "test"]);
  if (s.weights) {
    const box = $("weights");
    clear(box);
    s.weights.forEach((w, k) => {
      const m = Math.max(1e-12, ...w.map(Math.abs));
      const fig = document.createElement("figure");
      const cv = document.createElement("canvas");
      cv.width = 8; cv.height = 8; cv.style.width = "64px"; cv.style.height = "64px";
      drawImage(cv, w, (v) => divergingColor(v / m));
      const cap = document.createElement("figcaption");
      cap.textContent = "class " + k;
      fig.appendChild(cv); fig.appendChild(cap); box.appendChild(fig);
    });
  }
  if (s.confusion) {
    let html = '<table class="confusion"><tr><th></th>' + s.classes.map((c) => `<th>${c}</th>`).join("") + "</tr>";
    s.confusion.forEach((row, i) => {
      const tot = row.reduce((a, b) => a + b, 0) || 1;
      html += `<tr><th>${i}</th>` + row.map((v, j) => {
        const a = v / tot;
        const bg = i === j ? `rgba(59,111,182,${a})` : `rgba(224,123,57,${Math.min(1, a * 3)})`;
        return `<td style="background:${v ? bg : "#fafafa"};color:${a > 0.6 ? "#fff" : "#222"}">${v || ""}</td>`;
      }).join("") + "</tr>";
    });
    $("confusion").innerHTML = html + "</table>";
  }
  const mbox = $("mistakes");
  clear(mbox);
  s.misclassified.slice(0, 24).forEach((m) => {
    const d = document.createElement("div");
    d.className = "mistake";
    const cv = document.createElement("canvas");
    cv.width = 8; cv.height = 8; cv.style.width = "40px"; cv.style.height = "40px";
    drawImage(cv, m.pixels, (v) => { const g = Math.round(255 * (1 - v / 16)); return `rgb(${g},${g},${g})`; });
    d.appendChild(cv);
    const svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("width", "84"); svg.setAttribute("height", "40");
    m.probabilities.forEach((p, k) => {
      const hgt = Math.max(1, 32 * p);
      el("rect", {x: 2 + k * 8, y: 34 - hgt, width: 6, height: hgt,
        fill: k === m.true ? "#2e7d32" : k === m.predicted ? "#c62828" : "#9aa3ad"}, svg);
    });
    el("text", {x: 2, y: 40, "font-size": 7}, svg, "0123456789".split("").join(" "));
    d.appendChild(svg);
    const t = document.createElement("span");
    t.innerHTML = `true <b>${m.true}</b><br>said <b>${m.predicted}</b><br>p=${fmt(m.probabilities[m.predicted], 2)}`;
    d.appendChild(t);
    mbox.appendChild(d);
  });
}

async function poll() {
  if (!run) return;
  let s;
  try {
    s = await api("/api/train/" + run);
  } catch (e) { stopPolling(); return; }
  renderTraining(s);
  if (s.status !== "running") stopPolling();
}

function stopPolling() {
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = null;
  $("train-start").disabled = false;
  $("train-cancel").disabled = true;
}

async function startTraining() {
  const body = {
    solver: $("solver").value, epochs: Number($("epochs").value),
    learning_rate: Number($("learning-rate").value), batch_size: Number($("batch-size").value),
  };
  let r;
  try { r = await api("/api/train", body); } catch (e) { return; }
  showError(null);
  run = r.id;
  $("train-start").disabled = true;
  $("train-cancel").disabled = false;
  $("train-status").dataset.status = "running";
  $("train-status").textContent = "running…";
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = setInterval(poll, 250);
}

async function cancelTraining() {
  if (!run) return;
  try { renderTraining(await api(`/api/train/${run}/cancel`, {})); } catch (e) { /* shown */ }
  stopPolling();
}

// ------------------------------------------------------------------ wiring

function init() {
  $("apply-logits").addEventListener("click", () => setLogits(parseLogits($("logits-text").value)));
  $("logits-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter") setLogits(parseLogits($("logits-text").value));
  });
  document.querySelectorAll("[data-preset]").forEach((b) => b.addEventListener("click", () => {
    $("logits-text").value = b.dataset.preset;
    setLogits(parseLogits(b.dataset.preset));
  }));
  $("temperature").addEventListener("input", () => {
    state.temperature = Number($("temperature").value);
    $("temperature-value").textContent = state.temperature.toFixed(2);
    requestSoftmax();
  });
  $("label").addEventListener("change", () => {
    state.label = $("label").value === "" ? null : Number($("label").value);
    drawLogits();
    requestSoftmax();
  });
  $("dtype").addEventListener("change", () => { state.dtype = $("dtype").value; requestSoftmax(); });
  $("z0").addEventListener("input", requestTwoClass);
  $("z1").addEventListener("input", requestTwoClass);
  $("train-start").addEventListener("click", startTraining);
  $("train-cancel").addEventListener("click", cancelTraining);
  $("logits-text").value = state.logits.join(" ");
  fillLabelSelect();
  drawLogits();
  requestSoftmax();
  lineChart($("loss-chart"), [{values: [], cls: "train"}, {values: [], cls: "test"}], 0, 1, 30, ["train", "test"]);
  lineChart($("acc-chart"), [{values: [], cls: "train"}, {values: [], cls: "test"}], 0, 1, 30, ["train", "test"]);
}

document.addEventListener("DOMContentLoaded", init);
