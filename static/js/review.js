// The review queue's overview: progress, the next items and the conflicts (from the queue API,
// in the server's order), import of a COCO file, a retraining job, and the chart of the measured
// savings (the recorded simulation, handed over in the page config).
import { $, announce, esc, getJSON, int, readConfig, showError } from "./lib/util.js";
import { withCsrf } from "./lib/csrf.js";
import { drawGrid, unpackGrid } from "./lib/gridcanvas.js";

const cfg = readConfig();

function thumbnail(item) {
  if (item.map) return `<canvas class="rq-thumb" width="56" height="56" data-item="${item.id}" role="img" aria-label="map ${esc(item.name)}"></canvas>`;
  return `<img class="rq-thumb" src="${esc(item.image_url)}" alt="photo ${esc(item.name)}" width="56" height="56" loading="lazy">`;
}

function drawThumbs(table, items) {
  for (const item of items) {
    if (!item.map) continue;
    const canvas = table.querySelector(`canvas[data-item="${item.id}"]`);
    if (canvas) drawGrid(canvas, unpackGrid(item.map), item.map.rows, item.map.cols);
  }
}

function said(item) {
  if (cfg.module === "wafermap") return Number(item.score).toFixed(3);
  return `${Number(item.score).toFixed(3)} (${Number(item.threshold).toFixed(3)})`;
}

async function fillNext() {
  const table = $("rq-next");
  const data = await getJSON(`${cfg.queue_url}?module=${encodeURIComponent(cfg.module)}&state=pending&limit=20`);
  $("rq-progress-text").textContent = data.progress;
  $("rq-bar").max = Math.max(1, data.counts.total);
  $("rq-bar").value = data.counts.reviewed;
  $("rq-start").hidden = data.counts.pending === 0;
  const body = table.tBodies[0];
  body.innerHTML = data.items.length ? data.items.map((item, k) => `<tr>
      <td class="num">${int(k + 1)}</td><td>${thumbnail(item)}</td><td class="ellipsis" title="${esc(item.name)}">${esc(item.name)}</td>
      <td>${item.run_url ? `<a href="${esc(item.run_url)}">run ${int(item.run_id)}</a>` : "–"}</td>
      <td>${esc(item.predicted ?? "–")}</td><td class="num">${said(item)}</td>
      <td class="num">${Number(item.uncertainty).toFixed(3)}</td>
      <td><a href="${esc(item.url)}">Open<span class="visually-hidden"> ${esc(item.name)}</span></a></td></tr>`).join("")
    : `<tr class="empty-row"><td colspan="8">Nothing to review: every stored ${esc(cfg.noun)} is labelled. Predict more on the module page to fill the queue.</td></tr>`;
  drawThumbs(table, data.items);
  return data;
}

async function fillConflicts() {
  const table = $("rq-conflicts");
  const data = await getJSON(`${cfg.queue_url}?module=${encodeURIComponent(cfg.module)}&state=conflict&limit=50`);
  const body = table.tBodies[0];
  body.innerHTML = data.items.length ? data.items.map((item) => `<tr>
      <td>${thumbnail(item)}</td><td class="ellipsis" title="${esc(item.name)}">${esc(item.name)}</td>
      <td>${Object.entries(item.annotators).map(([user, label]) => `${esc(user)}: <strong>${esc(label)}</strong>`).join("; ")}</td>
      <td><a href="${esc(item.url)}&state=conflict">${cfg.can_annotate ? "Settle" : "Open"}<span class="visually-hidden"> ${esc(item.name)}</span></a></td></tr>`).join("")
    : '<tr class="empty-row"><td colspan="4">No conflicts.</td></tr>';
  drawThumbs(table, data.items);
}

function bindImport() {
  const form = $("rq-import");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("rq-import-file").files[0];
    const out = $("rq-import-result");
    if (!file) { out.textContent = "Choose a COCO JSON file first."; return; }
    const data = new FormData();
    data.append("file", file);
    out.textContent = "Importing…";
    try {
      const done = await getJSON(`${cfg.import_url}?module=${encodeURIComponent(cfg.module)}`, {
        method: "POST", headers: withCsrf(), body: data,
      });
      out.textContent = `Imported ${int(done.images)} images: ${int(done.annotations_added)} labels added, `
        + `${int(done.already_there)} already here, ${int(done.items_added)} new ${cfg.nouns}.`;
      announce(out.textContent);
      await Promise.all([fillNext(), fillConflicts()]);
    } catch (err) {
      out.textContent = "";
      showError($("rq-error"), err.message, err.problems);
    }
  });
}

function bindRetrain() {
  const form = $("rq-retrain");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = $("rq-retrain-result");
    out.textContent = "Starting…";
    try {
      const job = await getJSON(cfg.retrain_url, {
        method: "POST", headers: withCsrf({ "Content-Type": "application/json" }),
        body: JSON.stringify({ module: cfg.module, options: { epochs: Number($("rq-epochs").value), epoch_size: Number($("rq-epoch-size").value) } }),
      });
      out.innerHTML = `Training job ${int(job.id)} started on the shared data plus ${int(job.labelled)} labelled maps: `
        + `<a href="${esc(job.url)}">follow it on its page</a>. Its model will be a candidate in the registry.`;
      announce(`training job ${job.id} started`);
    } catch (err) {
      out.textContent = "";
      showError($("rq-error"), err.message, err.problems);
    }
  });
}

function chart() {
  const s = cfg.simulation;
  const box = $("rq-chart");
  if (!s || !box) return;
  const style = getComputedStyle(document.documentElement);
  const draw = () => {
    if (!window.Plotly) return;
    const traces = [
      ["random", "random sampling", style.getPropertyValue("--c-off").trim() || "#5c5c5c", "dot"],
      ["margin_diverse", "the queue's order", style.getPropertyValue("--c-normal").trim() || "#0b5cad", "solid"],
    ].filter(([key]) => s.strategies[key]).map(([key, name, color, dash]) => ({
      x: s.strategies[key].labels, y: s.strategies[key].macro_f1, name, mode: "lines+markers",
      line: { color, dash }, hovertemplate: "%{x:,} labels: %{y:.3f}<extra>" + name + "</extra>",
    }));
    const xs = traces.flatMap((t) => t.x);
    traces.push({ x: [Math.min(...xs), Math.max(...xs)], y: [s.target_macro_f1, s.target_macro_f1], name: "95% of all labels",
      mode: "lines", line: { color: style.getPropertyValue("--c-flag").trim() || "#a54a00", dash: "dash", width: 1 }, hoverinfo: "skip" });
    window.Plotly.newPlot(box, traces, {
      margin: { l: 56, r: 16, t: 8, b: 44 }, height: 300,
      xaxis: { type: "log", title: { text: "labels" } }, yaxis: { title: { text: "val macro-F1" } },
      legend: { orientation: "h", y: -0.25 },
    }, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"] });
  };
  if (window.Plotly) draw(); else window.addEventListener("load", draw);
}

async function start() {
  bindImport();
  bindRetrain();
  chart();
  try {
    await Promise.all([fillNext(), fillConflicts()]);
  } catch (err) {
    showError($("rq-error"), err.message, err.problems);
  }
}

start();
