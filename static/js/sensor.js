// FabLens sensor page: the glue between the page kit (static/js/lib/) and sensor results.
// Everything about bringing, editing and predicting a CSV is in lib/csvpage.js; here are only
// what a wafer's result looks like (scores, decision, top sensors) and its results CSV.
import { csvNumber } from "./lib/csv.js";
import { createCsvPage } from "./lib/csvpage.js";
import { $, clamp, esc, fmtThreshold, ICON_FAULT, ICON_OK, int, pct, readConfig } from "./lib/util.js";

const cfg = readConfig();
const TOP = [0, 1, 2];
const SCORES = ["fault_probability", "anomaly_score"];

function fmtScore(v) { return v == null || Number.isNaN(v) ? "–" : v.toFixed(3); }
function fmtValue(v) {
  if (v == null || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  return v.toFixed(a >= 1000 ? 1 : a >= 100 ? 2 : a >= 1 ? 3 : 4);
}

/** One top sensor: a bar for its share of the push towards "fault", its value and training range. */
function sensorCell(s, maxContribution) {
  if (!s) return '<td class="sensor-cell"></td>';
  const share = maxContribution > 0 ? clamp(s.contribution / maxContribution, 0, 1) : 0;
  let out = "";
  const slack = s.low != null && s.high != null ? 1e-3 * Math.abs(s.high - s.low) : 0; // ignore rounding
  if (s.value != null && s.high != null && s.value > s.high + slack) out = ' <span class="out">▲ above</span>';
  else if (s.value != null && s.low != null && s.value < s.low - slack) out = ' <span class="out">▼ below</span>';
  const value = s.value == null ? '<span class="val">missing</span> (imputed)' : `<span class="val">${fmtValue(s.value)}</span>`;
  const range = s.low == null || s.high == null ? "no range"
    : `<span title="training range, 1st to 99th percentile">${fmtValue(s.low)} … ${fmtValue(s.high)}</span>`;
  return `<td class="sensor-cell"><div class="sensor-line"><span class="sensor-name">${esc(s.sensor)}</span>`
    + `<span class="bar" role="img" aria-label="contribution ${s.contribution.toFixed(3)}, ${Math.round(share * 100)}% of this wafer's largest">`
    + `<span style="width:${(share * 100).toFixed(1)}%"></span></span></div>`
    + `<div class="sensor-detail">${value} · ${range}${out}</div></td>`;
}

function renderRow(p, { fault, scoreKey }) {
  const tops = p.top_sensors ?? [];
  const maxC = Math.max(0, ...tops.map((s) => s.contribution));
  const score = (key) => `<td class="num${key === scoreKey ? " score-decider" : ""}">${fmtScore(p[key])}</td>`;
  const decision = fault ? `<span class="decision decision-fault">${ICON_FAULT}FAULT</span>`
    : `<span class="decision decision-ok">${ICON_OK}ok</span>`;
  return `<td class="wafer-id">${esc(p.id)}</td>${SCORES.map(score).join("")}<td>${decision}</td>`
    + `<td class="num">${int(p.imputed_cells)}</td>${TOP.map((t) => sensorCell(tops[t], maxC)).join("")}`;
}

// the results CSV: every row, with the current threshold's decisions
const csv = {
  columns: ["id", ...SCORES, "is_fault", "threshold", "model", "imputed_cells",
    ...TOP.flatMap((k) => [`top_sensor_${k + 1}`, `top_sensor_${k + 1}_contribution`, `top_sensor_${k + 1}_value`])],
  row(p, { fault, threshold, resp }) {
    const tops = p.top_sensors ?? [];
    return [p.id, ...SCORES.map((key) => csvNumber(p[key])), fault ? "True" : "False", threshold,
      resp.model_version, p.imputed_cells,
      ...TOP.flatMap((k) => (tops[k] ? [tops[k].sensor, csvNumber(tops[k].contribution), csvNumber(tops[k].value)] : ["", "", ""]))];
  },
};

function modelInfo(m) {
  const cv = m.metrics?.cv ?? {};
  const metrics = [cv.roc_auc != null ? `ROC AUC ${cv.roc_auc.toFixed(3)}` : null,
    cv.pr_auc != null ? `PR AUC ${cv.pr_auc.toFixed(3)}` : null].filter(Boolean).join(", ");
  const scores = m.score === "fault_probability" ? "the probability that a wafer fails" : "how unusual a wafer looks (anomaly score)";
  return `${m.version}: scores ${scores}. Default threshold ${fmtThreshold(m.threshold)}, set for about `
    + `${pct(m.target_far)} false alarms on good wafers.${metrics ? ` Cross-validated ${metrics}.` : ""}`;
}

createCsvPage(cfg, {
  noun: { one: "wafer", many: "wafers", id: "wafer id" },
  checkSummary: (b) => `Checked by the server: ${int(b.n_rows)} rows, ${b.layout} layout, `
    + `${int(b.n_missing)} empty cells (filled in before scoring), ${b.has_labels ? "with" : "no"} label column.`,
  modelInfo,
  isProbability: (m) => m.score === "fault_probability",
  scoreKey: (m) => m.score,
  renderRow,
  csv,
  onResults(resp) {
    $("results-id-head").textContent = resp.id_column && resp.id_column !== "id" ? resp.id_column : "Wafer";
    $("card-imputed").textContent = int(resp.imputed_cells);
  },
});
