// FabLens time-series page: the glue between the page kit (static/js/lib/) and machine histories.
// The server reads and scores the file; this script shows what it read, draws each machine with
// plotly.js (served by the app) and re-decides flags when the threshold moves (score >= threshold,
// the server's rule; the downloads are re-decided by the server).
import { createFilesPage } from "./lib/filespage.js";
import { fillSelect } from "./lib/gallery.js";
import { initApiBox } from "./lib/apibox.js";
import { renderWarnings } from "./lib/insights.js";
import { createResultsTable } from "./lib/results.js";
import { createThresholdControl, isFlagged } from "./lib/threshold.js";
import { $, announce, count, esc, fmtThreshold, ICON_FAULT, ICON_OK, int, pct, readConfig } from "./lib/util.js";

const cfg = readConfig();
const state = { machine: null, sensors: cfg.sensors.slice(0, 4) };
const el = {
  fileSummary: $("file-summary"), checkSummary: $("check-summary"),
  results: $("results"), download: $("download-button"), downloadFlagged: $("download-flagged"),
  downloadNote: $("download-note"), model: $("model-select"), modelInfo: $("model-info"),
  machineColumn: $("machine-column"), timeColumn: $("time-column"), columns: $("ts-columns"),
};
const modelsLink = $("models-link");
if (modelsLink && cfg.models_url) { modelsLink.hidden = false; modelsLink.href = cfg.models_url; }
initApiBox($("api"), cfg.detect_url);
const modelOf = (name) => cfg.models.find((m) => m.name === name) ?? cfg.models[0];
function describeModel() {
  const m = modelOf(el.model.value);
  const val = m.metrics?.val ?? {};
  const rule = m.name === cfg.rul_model && m.flag_rule ? m.flag_rule.replace(/^flag /, "flags a window ")
    : `flags a window when its score reaches ${fmtThreshold(m.threshold)} (${pct(m.false_alarm_rate)} of healthy validation windows)`;
  el.modelInfo.textContent = `${m.version}: ${rule}. Validation F1 ${val.f1 ?? "–"}, ROC-AUC ${val.roc_auc ?? "–"}.`;
}
describeModel();

// -- steps 1 to 3: the file-page kit; here, what the server read and the column choices ------------
function columnChoices() {
  if (!page.checked || page.checked.layout !== "csv") return {};
  return { machine_column: el.machineColumn.value || null, time_column: el.timeColumn.value || null };
}

function review(c, name) {
  el.fileSummary.textContent = `${name}: ${int(c.n_rows)} rows, ${int(c.n_machines)} machines, ${c.sensors.length} sensor columns `
    + `(${c.layout === "cmapss" ? "C-MAPSS text layout" : `CSV; machine column “${c.machine_column}”, time column “${c.time_column}”${c.dated ? " (dates)" : ""}`}).`;
  const missing = c.missing_sensors.length;
  el.checkSummary.className = `check-summary ${missing ? "check-warn" : "check-ok"}`;
  el.checkSummary.textContent = missing
    ? `The models need ${missing} sensor column(s) this file lacks: ${c.missing_sensors.join(", ")}. Pick other columns, or fix the header.`
    : `Checked by the server: time increases within every machine and no value is missing.`
      + (c.warnings.length ? ` ${c.warnings.length} machine(s) are shorter than the ${cfg.window}-cycle window; their windows are padded with their first row.` : "");
  el.columns.hidden = c.layout !== "csv";
  if (c.layout === "csv") {
    const all = [c.machine_column, c.time_column, ...c.sensors];
    for (const [select, value] of [[el.machineColumn, c.machine_column], [el.timeColumn, c.time_column]]) {
      select.innerHTML = all.map((n) => `<option value="${esc(n)}"${n === value ? " selected" : ""}>${esc(n)}</option>`).join("");
    }
  }
  $("machines-read-body").innerHTML = c.machines.slice(0, 200).map((m) => `<tr><td>${esc(m.machine_id)}</td>`
    + `<td class="num">${int(m.n_cycles)}${m.short ? " (short)" : ""}</td><td class="num">${m.first_cycle}</td><td class="num">${m.last_cycle}</td></tr>`).join("");
  return `${int(c.n_rows)} rows of ${int(c.n_machines)} machines`;
}

const page = createFilesPage({
  checkUrl: cfg.check_url, predictUrl: cfg.predict_url, extensions: cfg.extensions, maxMb: cfg.max_upload_mb, single: true,
  noun: { one: "machine", many: "machines" },
  sample: { url: cfg.sample_url, name: "fablens_timeseries_sample.csv", type: "text/csv", hint: "upload your own file" },
  loadFirst: "Load a file first: choose one in step 1, or try the sample.",
  staleText: "The model changed since these results: press Predict to score again.",
}, {
  review,
  fields: () => ({ model: el.model.value, values: 1, ...columnChoices() }),
  work: (checked) => ({ waiting: `Scoring ${int(checked.n_rows)} cycles…` }),
  accept: () => true,
  onModelChange: describeModel,
  showResults,
});

for (const select of [el.machineColumn, el.timeColumn]) {
  select.addEventListener("change", () => { if (page.files) page.load(page.files, columnChoices()); });
}

// -- results ----------------------------------------------------------------------------------------
const table = createResultsTable({
  head: $("results-head"), body: $("results-body"), pagerTop: $("results-pager"), pagerBottom: $("results-pager-bottom"),
  flaggedOnly: $("results-flagged-only"), search: $("results-search"), count: $("results-count"),
}, { pageSize: 25, noun: { one: "machine", many: "machines" }, onOpen: (k) => openMachine(k) });

const flagsAt = (m, t) => m.scores.reduce((n, s) => n + (isFlagged(s, t, cfg.decision.below) ? 1 : 0), 0);
const firstFlag = (m, t) => { const i = m.scores.findIndex((s) => isFlagged(s, t, cfg.decision.below)); return i < 0 ? null : m.cycles[i]; };

const threshold = createThresholdControl({
  range: $("threshold-range"), number: $("threshold-number"), reset: $("threshold-reset"), scoreName: $("threshold-score-name"),
}, () => redecide());
$("threshold-reset").addEventListener("click", () => threshold.reset());

function columns() {
  return [
    { key: "machine", label: "Machine", value: (m) => m.machine_id,
      cell: (m, ctx) => `<td><button type="button" class="link-button" data-open="${ctx.k}">${ctx.fault ? ICON_FAULT : ICON_OK} ${esc(m.machine_id)}</button>`
        + `${m.in_sample ? ' <span class="badge badge-insample" title="An engine of the training file: its scores are in-sample.">in-sample</span>' : ""}</td>` },
    { key: "cycles", label: "Cycles", numeric: true, value: (m) => m.n_cycles, cell: (m) => `<td class="num">${int(m.n_cycles)}</td>` },
    { key: "flagged", label: "Flagged cycles", numeric: true, value: (m) => m.n_now,
      cell: (m) => `<td class="num">${m.n_now ? `<span class="flag-text">${int(m.n_now)}</span>` : "0"}</td>` },
    { key: "first", label: "First flagged cycle", numeric: true, value: (m) => m.first_now ?? Infinity,
      cell: (m) => `<td class="num">${m.first_now ?? "–"}</td>` },
    { key: "rul", label: "RUL now", sub: "cycles, at the last cycle", numeric: true, value: (m) => m.last_rul,
      cell: (m) => `<td class="num">${m.last_rul.toFixed(0)}</td>` },
    { key: "score", label: "Highest score", numeric: true, value: (m) => m.max_score ?? -Infinity,
      cell: (m) => `<td class="num">${m.max_score == null ? "–" : m.max_score.toFixed(4)}</td>` },
  ];
}

function showResults(resp) {
  const m = modelOf(resp.model);
  el.results.hidden = false;
  threshold.setModel({ threshold: resp.default_threshold, curve: m.far_curve, label: `${resp.model} score`,
    probability: false, scores: resp.machines.map((x) => x.max_score ?? 0) });
  el.download.hidden = el.downloadFlagged.hidden = !resp.results_url;
  el.downloadNote.hidden = !!resp.results_url;
  $("card-model").textContent = resp.model;
  $("card-version").textContent = resp.model_version;
  renderWarnings($("results-warnings"), $("results-warning-list"), resp.warnings ?? []);
  $("card-machines").textContent = int(resp.machines.length);
  const low = resp.machines.reduce((a, b) => (b.last_rul < a.last_rul ? b : a), resp.machines[0]);
  $("card-rul").textContent = low ? `${low.last_rul.toFixed(0)} cycles` : "–";
  $("card-rul-sub").textContent = low ? `machine ${low.machine_id}` : "";
  buildSensorPicks(resp.sensors);
  threshold.set(resp.threshold);
  state.machine = null;
  const first = [...resp.machines.keys()].sort((a, b) => resp.machines[b].n_flagged - resp.machines[a].n_flagged
    || resp.machines[a].last_rul - resp.machines[b].last_rul)[0];
  openMachine(first ?? 0, false);
  el.results.focus();
  announce(`Scored ${count(resp.n_rows, "cycle")} of ${count(resp.machines.length, "machine")}; ${int(resp.n_flagged)} flagged; `
    + `${count(resp.n_events, "event")} (${int(resp.n_events_new)} new).`);
}

function redecide() {
  const r = page.result;
  if (!r) return;
  const t = threshold.value;
  let flagged = 0;
  for (const m of r.machines) { m.n_now = flagsAt(m, t); m.first_now = firstFlag(m, t); flagged += m.n_now; }
  $("card-scored").textContent = int(r.n_rows);
  $("card-flagged").textContent = int(flagged);
  $("card-flagged-share").textContent = `${pct(flagged / Math.max(1, r.n_rows))} of cycles`;
  $("card-threshold").textContent = fmtThreshold(t);
  $("card-threshold-sub").textContent = threshold.isDefault ? "default" : `custom; default ${fmtThreshold(r.default_threshold)}`;
  $("card-machines-sub").textContent = `${r.machines.filter((m) => m.n_now).length} with flagged cycles`;
  $("threshold-meaning").textContent = `At ${fmtThreshold(t)}, about ${pct(threshold.falseAlarmRate(t))} of healthy validation windows `
    + `(RUL above 30) would be flagged; ${int(flagged)} of these ${int(r.n_rows)} cycles are.`;
  el.download.href = `${r.results_url}?threshold=${encodeURIComponent(String(t))}`;
  el.downloadFlagged.href = `${el.download.href}&flagged=1`;
  const isFault = (m) => m.n_now > 0;
  if (!table.shownOnce) {
    table.show(r.machines, { columns: columns(), isFault, idOf: (m) => m.machine_id, sort: { key: "flagged", descending: true } });
    table.shownOnce = true;
  } else table.refresh();
  drawCharts();
}

// -- charts (plotly.js, served by this app) -------------------------------------------------------
function buildSensorPicks(sensors) {
  state.sensors = state.sensors.filter((s) => sensors.includes(s));
  if (!state.sensors.length) state.sensors = sensors.slice(0, 4);
  $("ts-sensor-picks").innerHTML = sensors.map((s) => `<label class="check-label"><input type="checkbox" value="${esc(s)}"`
    + `${state.sensors.includes(s) ? " checked" : ""}> ${esc(s)}</label>`).join("");
}
$("ts-sensor-picks").addEventListener("change", () => {
  state.sensors = [...$("ts-sensor-picks").querySelectorAll("input:checked")].map((i) => i.value);
  drawCharts();
});

function openMachine(k, focus = true) {
  state.machine = k;
  drawCharts();
  if (focus) $("ts-charts").scrollIntoView({ block: "start" });
}

function trend(xs, ys, n) {
  const x = xs.slice(-n);
  const y = ys.slice(-n);
  const mx = x.reduce((a, b) => a + b, 0) / x.length;
  const my = y.reduce((a, b) => a + b, 0) / y.length;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < x.length; i++) { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) ** 2; }
  const slope = sxx ? sxy / sxx : 0;
  return { x: [x[0], x[x.length - 1]], y: [my + slope * (x[0] - mx), my + slope * (x[x.length - 1] - mx)], slope };
}

const LAYOUT = { margin: { l: 56, r: 16, t: 32, b: 40 }, height: 260, showlegend: true, legend: { orientation: "h", y: -0.25 },
  font: { family: "system-ui, sans-serif", size: 12 } };

function drawCharts() {
  const r = page.result;
  if (!r || state.machine == null || !window.Plotly) return;
  const m = r.machines[state.machine];
  const t = threshold.value;
  const x = m.timestamps ?? m.cycles;
  const xTitle = m.timestamps ? r.time_column : "cycle";
  $("ts-machine-name").textContent = m.machine_id;
  $("ts-machine-summary").textContent = `${int(m.n_cycles)} cycles; ${int(m.n_now)} flagged at ${fmtThreshold(t)}`
    + `${m.first_now != null ? `, first at cycle ${m.first_now}` : ""}; estimated RUL at the last cycle: ${m.last_rul.toFixed(0)} cycles.`;
  const model = modelOf(r.model);
  const sensorTraces = state.sensors.filter((s) => m.values[s]).map((s) => {
    const mean = m.values[s].reduce((a, b) => a + b, 0) / m.values[s].length;
    const sd = Math.sqrt(m.values[s].reduce((a, b) => a + (b - mean) ** 2, 0) / m.values[s].length) || 1;
    return { x, y: m.values[s].map((v) => (v - mean) / sd), name: s, mode: "lines", type: "scatter",
      hovertemplate: `${s}: %{customdata}<extra></extra>`, customdata: m.values[s] };
  });
  Plotly.react("chart-sensors", sensorTraces, { ...LAYOUT, title: { text: "Sensors (each centred on this machine's mean, in its standard deviations)" },
    xaxis: { title: { text: xTitle } }, yaxis: { title: { text: "z" } } }, { responsive: true, displaylogo: false });
  const fx = [];
  const fy = [];
  m.scores.forEach((s, i) => { if (isFlagged(s, t, cfg.decision.below)) { fx.push(x[i]); fy.push(s); } });
  Plotly.react("chart-score", [
    { x, y: m.scores, name: `${r.model} score`, mode: "lines", type: "scatter" },
    { x: [x[0], x[x.length - 1]], y: [t, t], name: `threshold ${fmtThreshold(t)}`, mode: "lines", type: "scatter", line: { dash: "dash", color: "#b42318" } },
    { x: fx, y: fy, name: "flagged window", mode: "markers", type: "scatter", marker: { symbol: "triangle-up", size: 8, color: "#b42318" } },
  ], { ...LAYOUT, title: { text: `Anomaly score (${model.name})` }, xaxis: { title: { text: xTitle } }, yaxis: { title: { text: "score" } } },
  { responsive: true, displaylogo: false });
  const tr = trend(m.cycles, m.rul, cfg.window);
  const trX = m.timestamps ? [x[Math.max(0, x.length - cfg.window)], x[x.length - 1]] : tr.x;
  Plotly.react("chart-rul", [
    { x, y: m.rul, name: "estimated RUL", mode: "lines", type: "scatter" },
    { x: trX, y: tr.y, name: `trend: ${tr.slope.toFixed(2)} per cycle`, mode: "lines", type: "scatter", line: { dash: "dot", width: 3 } },
    { x: [x[0], x[x.length - 1]], y: [30, 30], name: "30 cycles (warning level)", mode: "lines", type: "scatter", line: { dash: "dash", color: "#b42318" } },
  ], { ...LAYOUT, title: { text: "Remaining useful life (cycles)" }, xaxis: { title: { text: xTitle } }, yaxis: { title: { text: "RUL" }, rangemode: "tozero" } },
  { responsive: true, displaylogo: false });
}
window.addEventListener("load", () => drawCharts());
