// Galvana's live web view: the runs table, and a run's measured current against the
// twin's prediction and its band, fed by the run's server-sent event stream.
// The API key is entered once and kept in this tab's session storage; every request
// sends it as a bearer token (so the stream is read with fetch, which can send headers).
"use strict";

const API = "/api/v1";
const view = {
  // State the page exposes for tests and for the curious (window.galvanaView).
  runsShown: 0, runId: null, state: null, points: 0, predicted: 0, lastSeq: 0,
  posteriorVersion: 0, streamOpen: false, errors: 0,
};
window.galvanaView = view;

const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem("galvana.key") || "";
let runsTimer = null;
let streamAbort = null;
let plot = null;
let run = null;          // the run shown: its record
let data = null;         // {t, I, pred, lo, hi, bySeq}
let redrawPending = false;

function headers(extra) {
  return Object.assign({ Authorization: "Bearer " + key }, extra || {});
}

function showError(message) {
  const el = $("error");
  if (!message) { el.hidden = true; return; }
  el.textContent = message; el.hidden = false; view.errors += 1;
}

async function api(path, options) {
  const response = await fetch(API + path, Object.assign({ headers: headers() }, options || {}));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body.error && body.error.message) || response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

// --- the runs table ---------------------------------------------------------------

function fmtProgress(p) { return p === null || p === undefined ? "" : `${Math.round(p * 100)} %`; }

async function refreshRuns() {
  try {
    const page = await api("/runs?limit=50");
    const body = $("runs").querySelector("tbody");
    body.replaceChildren(...page.items.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.run = r.id;
      for (const text of [r.id, r.name, r.state, r.samples, fmtProgress(r.progress), r.created]) {
        const td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
      }
      tr.addEventListener("click", () => { location.hash = "#run/" + r.id; });
      return tr;
    }));
    view.runsShown = page.items.length;
    $("connection").textContent = `${page.total} runs`;
    showError(null);
  } catch (err) { showError(err.message); }
}

// --- a run ----------------------------------------------------------------------

function newData() { return { t: [], I: [], pred: [], lo: [], hi: [], bySeq: new Map() }; }

function makePlot() {
  const el = $("plot");
  el.replaceChildren();
  const opts = {
    width: Math.max(el.clientWidth - 16, 400), height: 360,
    scales: { x: { time: false } },
    axes: [{ label: "t / s" }, { label: "I / µA" }],
    series: [
      {},
      { label: "measured", stroke: "#1f5fa8", width: 1, points: { show: false } },
      { label: "twin", stroke: "#d9480f", width: 1.5, points: { show: false } },
      { label: "band low", stroke: "rgba(217,72,15,0.25)", points: { show: false } },
      { label: "band high", stroke: "rgba(217,72,15,0.25)", points: { show: false } },
    ],
    bands: [{ series: [4, 3], fill: "rgba(217,72,15,0.12)" }],
  };
  plot = new uPlot(opts, [[], [], [], [], []], el);
}

function scheduleRedraw() {
  if (redrawPending) return;
  redrawPending = true;
  requestAnimationFrame(() => {
    redrawPending = false;
    if (plot && data) plot.setData([data.t, data.I, data.pred, data.lo, data.hi]);
  });
}

function onSamples(msg) {
  const start = data.t.length;
  for (let k = 0; k < msg.t.length; k++) {
    data.t.push(msg.t[k]);
    data.I.push(msg.I[k] === null ? null : msg.I[k] * 1e6);
    data.pred.push(null); data.lo.push(null); data.hi.push(null);
  }
  data.bySeq.set(msg.seq, start);
  view.points = data.t.length;
  $("run-samples").textContent = String(view.points);
  scheduleRedraw();
}

function onPrediction(msg) {
  const start = data.bySeq.get(msg.seq);
  if (start === undefined) return;
  for (let k = 0; k < msg.predicted.length; k++) {
    const p = msg.predicted[k], b = msg.band[k];
    if (p === null) continue;
    data.pred[start + k] = p * 1e6;
    data.lo[start + k] = b === null ? null : (p - b) * 1e6;
    data.hi[start + k] = b === null ? null : (p + b) * 1e6;
    view.predicted += 1;
  }
  scheduleRedraw();
}

function fmt(x) { return x === null || x === undefined ? "" : Number(x).toPrecision(4); }

function onPosterior(msg) {
  const body = $("parameters").querySelector("tbody");
  body.replaceChildren(...msg.parameters.map((name, k) => {
    const tr = document.createElement("tr");
    for (const text of [name, fmt(msg.median[k]), fmt(msg.q05[k]), fmt(msg.q95[k])]) {
      const td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
    }
    return tr;
  }));
  view.posteriorVersion = msg.version;
  $("posterior-version").textContent = `v${msg.version} (${msg.method})`;
}

function setState(state) {
  view.state = state;
  const el = $("run-state");
  el.textContent = state; el.className = "state " + state;
}

function log(text) {
  const li = document.createElement("li"); li.textContent = text;
  const ol = $("log"); ol.appendChild(li);
  while (ol.children.length > 200) ol.removeChild(ol.firstChild);
  ol.scrollTop = ol.scrollHeight;
}

function onEvent(event) {
  view.lastSeq = event.seq;
  const msg = event.data;
  switch (event.type) {
    case "samples": onSamples(msg); break;
    case "twin.prediction": onPrediction(msg); break;
    case "calibration.posterior": onPosterior(msg); break;
    case "run.state": setState(msg.state); log(`${event.seq} ${msg.previous} → ${msg.state}: ${msg.reason}`); break;
    case "system.note": log(`${event.seq} ${msg.level}: ${msg.text}`); break;
    default: if (event.channel !== "frames") log(`${event.seq} ${event.type}`);
  }
}

// Server-sent events read with fetch (EventSource cannot send the key).
async function stream(runId) {
  while (view.runId === runId) {
    const controller = new AbortController();
    streamAbort = controller;
    try {
      const response = await fetch(
        `${API}/runs/${encodeURIComponent(runId)}/stream?after=${view.lastSeq}`,
        { headers: headers({ Accept: "text/event-stream" }), signal: controller.signal });
      if (!response.ok) throw new Error(`${response.status}: stream refused`);
      view.streamOpen = true;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let ended = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          let name = "message", payload = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) name = line.slice(7);
            else if (line.startsWith("data: ")) payload += line.slice(6);
          }
          if (name === "end") { ended = true; continue; }
          if (name === "lagged") { log(`behind by ${JSON.parse(payload).behind} events`); continue; }
          if (payload && name !== "message") onEvent(JSON.parse(payload));
        }
      }
      view.streamOpen = false;
      if (ended) return;
    } catch (err) {
      view.streamOpen = false;
      if (controller.signal.aborted) return;
      showError(err.message);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function openRun(runId) {
  if (streamAbort) streamAbort.abort();
  Object.assign(view, { runId, points: 0, predicted: 0, lastSeq: 0, posteriorVersion: 0, state: null });
  $("runs-view").hidden = true; $("run-view").hidden = false;
  $("log").replaceChildren();
  $("parameters").querySelector("tbody").replaceChildren();
  data = newData();
  makePlot();
  try {
    run = await api(`/runs/${encodeURIComponent(runId)}`);
    $("run-name").textContent = run.name || run.id;
    $("run-id").textContent = run.id;
    $("run-progress").textContent = run.progress === null ? "" : fmtProgress(run.progress) + " done";
    setState(run.state);
  } catch (err) { showError(err.message); return; }
  stream(runId);
}

async function command(path, body) {
  try {
    const result = await api(path, {
      method: "POST", headers: headers({ "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    showError(null);
    return result;
  } catch (err) { showError(err.message); return null; }
}

$("pause").addEventListener("click", () => command(`/runs/${view.runId}/pause?immediate=true`));
$("resume").addEventListener("click", () => command(`/runs/${view.runId}/resume`));
$("estop").addEventListener("click", () => {
  const instrument = run && run.spec && typeof run.spec.instrument === "string" ? run.spec.instrument : null;
  command("/estop", { instrument, reason: "emergency stop from the web view" });
});

// --- navigation ----------------------------------------------------------------

function route() {
  const match = location.hash.match(/^#run\/(.+)$/);
  if (!key) { showError("enter an API key (galvana keys add NAME) to see the runs"); return; }
  if (match) {
    clearInterval(runsTimer); runsTimer = null;
    openRun(decodeURIComponent(match[1]));
  } else {
    if (streamAbort) streamAbort.abort();
    view.runId = null;
    $("runs-view").hidden = false; $("run-view").hidden = true;
    refreshRuns();
    clearInterval(runsTimer);
    runsTimer = setInterval(refreshRuns, 2000);
  }
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  key = $("key").value.trim();
  sessionStorage.setItem("galvana.key", key);
  $("key").value = "";
  route();
});
$("forget").addEventListener("click", () => {
  sessionStorage.removeItem("galvana.key"); key = ""; location.hash = ""; route();
});
window.addEventListener("hashchange", route);
route();
