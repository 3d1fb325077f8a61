// FabLens inspection page: the glue between the page kit (static/js/lib/) and part photos.
// Limits, models, thresholds and what a threshold means come from the page config; the photos
// (as the model sees them) and the heatmaps (PNG, coloured by the server) come from the server.
import { renderRejected } from "./lib/files.js";
import { createFilesPage } from "./lib/filespage.js";
import { createGallery } from "./lib/gallery.js";
import { initApiBox } from "./lib/apibox.js";
import { createThresholdControl, isFlagged } from "./lib/threshold.js";
import { $, announce, breakable, count, esc, fmtThreshold, ICON_FAULT, ICON_OK, int, pct, readConfig } from "./lib/util.js";

const cfg = readConfig();
const noun = { one: "photo", many: "photos" };
const state = { opened: null };
const el = {
  fileSummary: $("file-summary"), checkSummary: $("check-summary"),
  results: $("results"), meaning: $("threshold-meaning"), download: $("download-button"),
  downloadFlagged: $("download-flagged"), downloadNote: $("download-note"), flaggedOnly: $("results-flagged-only"),
  search: $("results-search"), count: $("results-count"), modelInfo: $("model-info"), modelSelect: $("model-select"),
  opacity: $("heat-opacity"), resultsRejected: $("results-rejected"),
};
const modelOf = (name) => cfg.models.find((m) => m.name === name) ?? cfg.models[0];
function describeModel() {
  const m = modelOf(el.modelSelect.value);
  el.modelInfo.textContent = `${m.version}: a photo scoring ${fmtThreshold(m.threshold)} or more is flagged defective; `
    + `${pct(m.false_alarm_rate)} of held-out good photos (as taken and turned) score that high (false alarms; `
    + `target ${pct(m.target_far)}).`;
}
describeModel();
const modelsLink = $("models-link");
if (modelsLink && cfg.models_url) { modelsLink.hidden = false; modelsLink.href = cfg.models_url; }

const jpeg = (b64) => `data:image/jpeg;base64,${b64}`;
const png = (b64) => `data:image/png;base64,${b64}`;
const notesText = (notes) => (notes?.length ? notes.join("; ") : "used as sent");

// -- steps 1 to 3: the file-page kit; here, the photos as the model will see them ----------------
const reviewGallery = createGallery({ list: $("review-gallery"), pagerTop: $("review-pager") }, {
  noun, card: (item) => `<figure class="photo-stack"><img src="${jpeg(item.image_jpeg_base64)}" alt="Photo ${esc(item.name)}"></figure>`
    + `<span class="card-name">${breakable(item.name)}</span>`
    + `<span class="card-sub">${item.original_size[0]} × ${item.original_size[1]} ${esc(item.mode)}; ${esc(notesText(item.notes))}</span>`,
});

const page = createFilesPage({
  checkUrl: cfg.check_url, predictUrl: cfg.predict_url, extensions: cfg.image_extensions, maxMb: cfg.max_upload_mb, noun,
  sample: { url: cfg.sample_url, name: "fablens_inspection_sample.zip", type: "application/zip", hint: "upload your own photos" },
  loadFirst: "Load photos first: choose images in step 1, or try the sample.",
  staleText: "The model changed: predict again to see its results.",
}, {
  review(body, name) {
    const n = body.n_images;
    const converted = body.images.filter((im) => im.notes.length).length;
    const rejected = body.rejected ?? [];
    el.fileSummary.textContent = `${name}: ${int(n)} ${n === 1 ? "photo" : "photos"}.`;
    el.checkSummary.className = rejected.length ? "check-summary" : "check-summary check-ok";
    el.checkSummary.textContent = (rejected.length
      ? `Checked by the server: the photos shown are readable, ${count(rejected.length, "file")} left out (listed below)`
      : "Checked by the server: every photo is readable")
      + (converted ? `; ${int(converted)} converted or resized to ${cfg.image_size} × ${cfg.image_size}.` : ".");
    reviewGallery.show(body.images);
    return count(n, "photo");
  },
  fields(checked, name) {
    const custom = page.result && threshold.isCustom && page.result.model === el.modelSelect.value;
    return { heatmap: 1, source_name: name, model: el.modelSelect.value, threshold: custom ? threshold.value : null };
  },
  work: (checked) => ({ what: count(checked.n_images, "photo"), waiting: `Inspecting ${count(checked.n_images, "photo")}…` }),
  onModelChange: describeModel,
  showResults,
});

// -- results ------------------------------------------------------------------------------------
const isDefective = (p) => isFlagged(p.anomaly_score, threshold.value, cfg.decision.below);
const opacity = () => parseFloat(el.opacity.value);
const previewOf = (k) => page.checked.images[k]?.image_jpeg_base64;
const resultGallery = createGallery({ list: $("results-gallery"), pagerTop: $("results-pager"),
  pagerBottom: $("results-pager-bottom"), count: el.count }, {
  noun, label: "Open photo", card: (p, k) => {
    const flag = isDefective(p)
      ? `<span class="decision decision-fault">${ICON_FAULT}defective</span>`
      : `<span class="decision decision-ok">${ICON_OK}good</span>`;
    return `<figure class="photo-stack"><img src="${jpeg(previewOf(k))}" alt="">`
      + `<img class="photo-heat" src="${png(p.heatmap_png_base64)}" alt="Heatmap of ${esc(p.name)}" style="opacity:${opacity()}"></figure>`
      + `<span class="card-name">${breakable(p.name)}</span>`
      + `<span class="card-score">score ${fmtThreshold(p.anomaly_score)} vs ${fmtThreshold(threshold.value)}</span>`
      + `${flag}${p.converted ? `<span class="card-sub">${esc(notesText(p.notes))}</span>` : ""}`;
  },
  onOpen: openPhoto,
});
el.opacity.addEventListener("input", () => {
  document.querySelectorAll("#results-gallery .photo-heat").forEach((img) => { img.style.opacity = String(opacity()); });
});

function applyFilters() {
  if (!page.result) return;
  const only = el.flaggedOnly.checked;
  const q = el.search.value.trim().toLowerCase();
  const parts = [only && "defective", q && `name contains “${q}”`].filter(Boolean);
  resultGallery.setFilter((p) => (!only || isDefective(p)) && (!q || String(p.name).toLowerCase().includes(q)), parts.join(", "));
}
el.flaggedOnly.addEventListener("change", applyFilters);
el.search.addEventListener("input", applyFilters);

const threshold = createThresholdControl({ range: $("threshold-range"), number: $("threshold-number"),
  reset: $("threshold-reset"), scoreName: $("threshold-score-name") }, onThreshold);
$("threshold-reset").addEventListener("click", () => { threshold.reset(); announce(`Threshold reset to ${fmtThreshold(threshold.value)}.`); });

function onThreshold(t) {
  const r = page.result;
  if (!r) return;
  const preds = r.predictions;
  const flagged = preds.reduce((n, p) => n + (isDefective(p) ? 1 : 0), 0);
  $("card-flagged").textContent = int(flagged);
  $("card-flagged-share").textContent = `${pct(preds.length ? flagged / preds.length : 0)} defective`;
  $("card-threshold").textContent = fmtThreshold(t);
  $("card-threshold-sub").textContent = threshold.isDefault ? "default" : `custom; default ${fmtThreshold(r.default_threshold)}`;
  el.meaning.innerHTML = `Photos scoring <strong>${fmtThreshold(t)}</strong> or more are defective: `
    + `<strong>${int(flagged)} of ${int(preds.length)}</strong> here. On held-out good photos (as taken and turned), `
    + `about <strong>${pct(threshold.falseAlarmRate(t))}</strong> score that high (false alarms).`;
  el.download.href = `${r.results_url}?threshold=${encodeURIComponent(String(t))}`;
  el.downloadFlagged.href = `${el.download.href}&flagged=1`;
  cancelAnimationFrame(state.frame);
  state.frame = requestAnimationFrame(() => resultGallery.refresh());
}

function showResults(resp) {
  const m = modelOf(resp.model);
  $("card-scored").textContent = int(resp.n_images);
  $("card-model").textContent = resp.model;
  $("card-version").textContent = resp.model_version;
  const top = resp.predictions.reduce((a, p) => (a && a.anomaly_score >= p.anomaly_score ? a : p), null);
  $("card-top-score").textContent = top ? fmtThreshold(top.anomaly_score) : "–";
  $("card-top-score-sub").textContent = top ? top.name : "";
  renderRejected(el.resultsRejected, resp.rejected, { stage: "results", noun });
  el.download.hidden = el.downloadFlagged.hidden = !resp.results_url;
  el.downloadNote.hidden = !!resp.results_url;
  el.results.hidden = false;
  threshold.setModel({ threshold: resp.default_threshold, curve: m.far_curve, label: "anomaly score",
    scores: resp.predictions.map((p) => p.anomaly_score) });
  const order = resp.predictions.map((_, k) => k).sort((a, b) => resp.predictions[b].anomaly_score - resp.predictions[a].anomaly_score);
  resultGallery.show(resp.predictions, order);
  threshold.set(resp.threshold);
  applyFilters();
  announce(`Inspected ${count(resp.n_images, "photo")}; ${int(resp.n_anomalies)} defective.`);
  el.results.scrollIntoView({ block: "start" });
  el.results.focus({ preventScroll: true });
}

// -- one photo, large, with its heatmap --------------------------------------------------------
const view = { dialog: $("photo-view"), title: $("photo-view-title"), image: $("photo-view-image"), heat: $("photo-view-heat"),
  opacity: $("photo-view-opacity"), notes: $("photo-view-notes"), download: $("photo-view-download"), caption: $("photo-view-caption") };
$("photo-view-close").addEventListener("click", () => view.dialog.close());
view.dialog.addEventListener("close", () => state.opened?.opener?.focus());
view.opacity.addEventListener("input", () => { view.heat.style.opacity = view.opacity.value; });

function openPhoto(k, opener) {
  const p = page.result.predictions[k];
  state.opened = { p, opener };
  const verdict = isDefective(p) ? "defective" : "good";
  view.title.textContent = `${p.name}: ${verdict}, score ${fmtThreshold(p.anomaly_score)} (threshold ${fmtThreshold(threshold.value)})`;
  view.image.src = jpeg(previewOf(k));
  view.heat.src = png(p.heatmap_png_base64);
  view.opacity.value = el.opacity.value;
  view.heat.style.opacity = view.opacity.value;
  view.caption.textContent = `Heatmap coloured at the threshold it was scored at, ${fmtThreshold(p.threshold)}: yellow there, red at twice that.`;
  view.notes.textContent = `Input: ${p.original_size[0]} × ${p.original_size[1]}; ${notesText(p.notes)}.`;
  view.download.href = png(p.heatmap_png_base64);
  view.download.download = `${String(p.name).replace(/[^\w.-]+/g, "_").replace(/\.[^.]*$/, "")}_heatmap.png`;
  view.dialog.showModal();
}

initApiBox($("api"), cfg.predict_url);
