// FabLens wafer-map page: the glue between the page kit (static/js/lib/) and wafer maps.
// Classes, die codes, limits, the default needs-review level and what it means all come from
// the page config; the maps come back from the server packed (lib/gridcanvas.js).
import { renderRejected } from "./lib/files.js";
import { createFilesPage } from "./lib/filespage.js";
import { createGallery, fillSelect } from "./lib/gallery.js";
import { drawGrid, gridRows, unpackGrid } from "./lib/gridcanvas.js";
import { initApiBox } from "./lib/apibox.js";
import { renderClassLabels } from "./lib/insights.js";
import { isFlagged } from "./lib/threshold.js";
import { $, announce, breakable, count, esc, fmtThreshold, ICON_FAULT, ICON_OK, int, pct, readConfig } from "./lib/util.js";
import { withCsrf } from "./lib/csrf.js";

const cfg = readConfig();

const noun = { one: "map", many: "maps" };
const state = { level: cfg.review_level, opened: null };
const el = {
  fileSummary: $("file-summary"), checkSummary: $("check-summary"), results: $("results"),
  range: $("threshold-range"), number: $("threshold-number"),
  reset: $("threshold-reset"), meaning: $("threshold-meaning"), download: $("download-button"),
  downloadFlagged: $("download-flagged"), downloadNote: $("download-note"), reviewOnly: $("results-flagged-only"),
  classFilter: $("class-filter"), search: $("results-search"), count: $("results-count"), modelInfo: $("model-info"),
  resultsRejected: $("results-rejected"),
};
const labelsEl = { panel: $("labels-panel"), title: $("labels-title"), matrix: $("confusion"), rates: $("labels-rates") };
const model = cfg.models[0];
el.modelInfo.textContent = `${model.version}: ${cfg.classes.length} classes; a map whose confidence is below `
  + `${fmtThreshold(cfg.review_level)} is flagged "needs review".`;
const modelsLink = $("models-link");
if (modelsLink && cfg.models_url) { modelsLink.hidden = false; modelsLink.href = cfg.models_url; }

// -- drawing ------------------------------------------------------------------------------------
const unpacked = new WeakMap(); // packed map -> cells
function cellsOf(packed) {
  if (!unpacked.has(packed)) unpacked.set(packed, unpackGrid(packed));
  return unpacked.get(packed);
}
function paint(li, item) {
  const canvas = li.querySelector("canvas");
  if (canvas && item.map) drawGrid(canvas, cellsOf(item.map), item.map.rows, item.map.cols);
}
const size = (m) => `${m.rows} × ${m.cols} dies`;

// -- steps 1 to 3: the file-page kit; here, what the server read and what Predict sends ------------
const reviewGallery = createGallery({ list: $("review-gallery"), pagerTop: $("review-pager") }, {
  noun, card: (item) => `<canvas width="96" height="96" role="img" aria-label="Map ${esc(item.name)}"></canvas>`
    + `<span class="card-name">${breakable(item.name)}</span><span class="card-sub">${size(item.map)}</span>`,
  draw: paint,
});

const page = createFilesPage({
  checkUrl: cfg.check_url, predictUrl: cfg.predict_url, extensions: cfg.map_extensions, maxMb: cfg.max_upload_mb, noun,
  sample: { url: cfg.sample_url, name: "fablens_wafermap_sample.csv", type: "text/csv", hint: "upload your own maps" },
  loadFirst: "Load maps first: choose files in step 1, or try the sample.",
  staleText: "The model changed since these results: press Predict to score again.",
}, {
  review(body, name) {
    const kinds = Object.entries(body.read).map(([k, n]) => `${int(n)} ${k}`).join(", ");
    const rejected = body.rejected ?? [];
    el.fileSummary.textContent = `${name}: ${count(body.n_maps, "map")}.`;
    el.checkSummary.className = rejected.length ? "check-summary" : "check-summary check-ok";
    el.checkSummary.textContent = rejected.length
      ? `Checked by the server: the maps shown are readable (${kinds}); ${count(rejected.length, "file")} left out, listed below.`
      : `Checked by the server: every map is readable (${kinds}).`;
    reviewGallery.show(body.maps);
    return count(body.n_maps, "map");
  },
  refuse: (checked) => (checked.n_maps > cfg.max_maps
    ? `${int(checked.n_maps)} maps is more than the ${int(cfg.max_maps)} one prediction may hold. Send fewer files.` : null),
  fields(checked, name) {
    const custom = Math.abs(state.level - cfg.review_level) > 1e-12;
    return { include_maps: 1, source_name: name, model: $("model-select").value, review_level: custom ? state.level : null };
  },
  work: (checked) => ({ what: count(checked.n_maps, "map"), waiting: `Classifying ${count(checked.n_maps, "map")}…` }),
  showResults,
});

// -- results ------------------------------------------------------------------------------------
const needsReview = (p) => isFlagged(p.confidence, state.level, cfg.decision.below);
const resultGallery = createGallery({ list: $("results-gallery"), pagerTop: $("results-pager"),
  pagerBottom: $("results-pager-bottom"), count: el.count }, {
  noun, label: "Open map", card: (p) => {
    const flag = needsReview(p)
      ? `<span class="decision decision-fault">${ICON_FAULT}needs review</span>`
      : `<span class="decision decision-ok">${ICON_OK}confident</span>`;
    const top = p.top3.map((t) => `<li><span>${esc(t.class)}</span><span class="num">${pct(t.probability)}</span></li>`).join("");
    return `<canvas width="96" height="96" role="img" aria-label="Map ${esc(p.name)}"></canvas>`
      + `<span class="card-name">${breakable(p.name)}</span>`
      + `<span class="card-class">${esc(p.class)}</span> <span class="card-sub">${pct(p.confidence)} sure</span>`
      + `${flag}<ol class="top3" aria-label="Top 3 classes">${top}</ol>`;
  },
  draw: paint, onOpen: openMap,
});

function applyFilters() {
  const r = page.result;
  if (!r) return;
  const cls = el.classFilter.value;
  const onlyReview = el.reviewOnly.checked;
  const q = el.search.value.trim().toLowerCase();
  const parts = [cls && `class ${cls}`, onlyReview && "needs review", q && `name contains “${q}”`].filter(Boolean);
  resultGallery.setFilter((p) => (!cls || p.class === cls) && (!onlyReview || needsReview(p))
    && (!q || String(p.name).toLowerCase().includes(q)), parts.join(", "));
}
el.classFilter.addEventListener("change", applyFilters);
el.reviewOnly.addEventListener("change", applyFilters);
el.search.addEventListener("input", applyFilters);

function setLevel(t, source = null) {
  if (!Number.isFinite(t)) return;
  state.level = Math.min(1, Math.max(0, t));
  if (source !== el.range) el.range.value = String(state.level);
  if (source !== el.number) el.number.value = fmtThreshold(state.level);
  el.range.setAttribute("aria-valuetext", fmtThreshold(state.level));
  el.reset.disabled = Math.abs(state.level - cfg.review_level) < 5e-5;
  const r = page.result;
  if (!r) return;
  const preds = r.predictions;
  const flagged = preds.reduce((n, p) => n + (needsReview(p) ? 1 : 0), 0);
  $("card-flagged").textContent = int(flagged);
  $("card-flagged-share").textContent = `${pct(preds.length ? flagged / preds.length : 0)} need review`;
  $("card-threshold").textContent = fmtThreshold(state.level);
  $("card-threshold-sub").textContent = el.reset.disabled ? "needs-review level (default)" : `custom; default ${fmtThreshold(cfg.review_level)}`;
  const v = cfg.review ?? {};
  const validation = v.val_flagged_share != null
    ? ` At the default level ${fmtThreshold(cfg.review_level)}, ${pct(v.val_flagged_share)} of validation maps were flagged;`
      + (v.val_accuracy_not_flagged != null ? ` the model was right on ${pct(v.val_accuracy_not_flagged)} of the rest` : "")
      + (v.val_accuracy_flagged != null ? ` and on ${pct(v.val_accuracy_flagged)} of the flagged ones.` : ".")
    : "";
  el.meaning.innerHTML = `Maps whose confidence is below <strong>${fmtThreshold(state.level)}</strong> need review: `
    + `<strong>${int(flagged)} of ${int(preds.length)}</strong> in these results.${esc(validation)}`;
  el.download.href = `${r.results_url}?threshold=${encodeURIComponent(String(state.level))}`;
  el.downloadFlagged.href = `${el.download.href}&flagged=1`;
  cancelAnimationFrame(state.frame);
  state.frame = requestAnimationFrame(() => resultGallery.refresh());
}
el.range.addEventListener("input", () => setLevel(parseFloat(el.range.value), el.range));
el.number.addEventListener("input", () => setLevel(parseFloat(el.number.value), el.number));
el.reset.addEventListener("click", () => { setLevel(cfg.review_level); announce(`Level reset to ${fmtThreshold(cfg.review_level)}.`); });

function showResults(resp) {
  $("card-scored").textContent = int(resp.n_maps);
  $("card-model").textContent = resp.model;
  $("card-version").textContent = resp.model_version;
  const counts = Object.entries(resp.class_counts).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  $("card-top-class").textContent = counts[0]?.[0] ?? "–";
  $("card-top-class-sub").textContent = counts[0] ? `${int(counts[0][1])} of ${count(resp.n_maps, "map")}` : "";
  fillSelect(el.classFilter, resp.classes.map((c) => ({ value: c, label: `${c} (${int(resp.class_counts[c] ?? 0)})` })), "All classes");
  renderRejected(el.resultsRejected, resp.rejected, { stage: "results", noun });
  renderClassLabels(labelsEl, resp.labels, noun);
  el.download.hidden = el.downloadFlagged.hidden = !resp.results_url;
  el.downloadNote.hidden = !!resp.results_url;
  el.results.hidden = false;
  state.level = resp.review_level;
  const order = resp.predictions.map((_, k) => k).sort((a, b) => resp.predictions[a].confidence - resp.predictions[b].confidence);
  resultGallery.show(resp.predictions, order);
  setLevel(resp.review_level);
  applyFilters();
  const flagged = resp.predictions.filter(needsReview).length;
  announce(`Classified ${count(resp.n_maps, "map")}; ${int(flagged)} ${flagged === 1 ? "needs" : "need"} review.`);
  el.results.scrollIntoView({ block: "start" });
  el.results.focus({ preventScroll: true });
}

// -- one map: its probabilities and the region behind its class ---------------------------------
const view = { dialog: $("map-view"), title: $("map-view-title"), canvas: $("map-view-canvas"),
  saliency: $("map-view-saliency"), opacity: $("map-view-opacity"), probs: $("map-view-probs"), status: $("map-view-status") };
$("map-view-close").addEventListener("click", () => view.dialog.close());
view.dialog.addEventListener("close", () => state.opened?.opener?.focus());

function drawOpened() {
  const o = state.opened;
  if (!o) return;
  const cells = cellsOf(o.p.map);
  drawGrid(view.canvas, cells, o.p.map.rows, o.p.map.cols);
  drawGrid(view.saliency, cells, o.p.map.rows, o.p.map.cols, { heat: o.heat, opacity: parseFloat(view.opacity.value) });
}
view.opacity.addEventListener("input", drawOpened);

async function openMap(k, opener) {
  const p = page.result.predictions[k];
  state.opened = { p, opener, heat: null };
  view.title.textContent = `Map ${p.name}: ${p.class}, ${pct(p.confidence)} sure${needsReview(p) ? " (needs review)" : ""}`;
  view.probs.innerHTML = Object.entries(p.probabilities).sort((a, b) => b[1] - a[1])
    .map(([c, v]) => `<tr${c === p.class ? ' class="is-top"' : ""}><td>${esc(c)}</td><td class="num">${v.toFixed(4)}</td></tr>`).join("");
  view.status.textContent = "Finding the region behind the class…";
  view.dialog.showModal();
  drawOpened();
  try {
    const res = await fetch(cfg.explain_url, { method: "POST", headers: withCsrf({ "Content-Type": "application/json", "X-Requested-With": "fetch" }),
      body: JSON.stringify({ map: gridRows(cellsOf(p.map), p.map.rows, p.map.cols) }) });
    const body = await res.json();
    if (!res.ok) throw new Error(body?.message ?? `HTTP ${res.status}`);
    if (state.opened?.p !== p) return;
    state.opened.heat = Float64Array.from(body.saliency.flat());
    const any = state.opened.heat.some((v) => v > 0);
    view.status.textContent = any ? `Shaded: the dies whose hiding lowers the ${body.class} probability most.`
      : "No region stands out: hiding any patch of dies barely changes the class.";
    drawOpened();
  } catch (err) {
    view.status.textContent = `The region could not be computed (${err.message}).`;
  }
}

initApiBox($("api"), cfg.predict_url);
