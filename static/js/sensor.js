// FabLens sensor page: the glue between the page kit (static/js/lib/) and sensor results.
// Everything about bringing, editing, predicting and exploring a CSV is in lib/csvpage.js; here
// are only what is the sensor module's own: the check summary, the imputed-cells card and the
// result columns of imputed cells and the top sensors behind each decision.
import { createCsvPage } from "./lib/csvpage.js";
import { $, clamp, count, esc, int, readConfig } from "./lib/util.js";

const cfg = readConfig();

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

/** The sensor module's own result columns: imputed cells, then one per top sensor. */
function columns(resp) {
  const k = Math.max(0, ...resp.predictions.slice(0, 50).map((p) => p.top_sensors?.length ?? 0));
  const maxOf = (p) => Math.max(0, ...(p.top_sensors ?? []).map((s) => s.contribution));
  const cols = [{ key: "imputed", label: "Imputed cells", numeric: true, cls: "col-imputed", value: (p) => p.imputed_cells,
    cell: (p) => `<td class="num">${int(p.imputed_cells)}</td>` }];
  for (let t = 0; t < k; t++) {
    cols.push({ key: `top${t + 1}`, label: `Top sensor ${t + 1}`, sub: "value · training range", cls: "col-sensor",
      value: (p) => p.top_sensors?.[t]?.contribution ?? null,
      cell: (p) => sensorCell(p.top_sensors?.[t], maxOf(p)) });
  }
  return cols;
}

createCsvPage(cfg, {
  noun: { one: "wafer", many: "wafers", id: "wafer id" },
  checkSummary: (b) => `Checked by the server: ${count(b.n_rows, "row")}, ${b.layout} layout, `
    + `${int(b.n_missing)} empty cells (filled in before scoring), ${b.has_labels ? "with" : "no"} label column.`,
  columns,
  onResults(resp) { $("card-imputed").textContent = int(resp.imputed_cells); },
});
