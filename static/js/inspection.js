// FabLens inspection page: the glue between the page kit (static/js/lib/) and part photos.
// Limits, models, thresholds and what a threshold means come from the page config; the photos
// (as the model sees them) and the heatmaps (PNG, coloured by the server) come from the server.
import { bindFilesPicker, checkFiles, fetchSample, filesForm, renderRejected, showLoadFailure } from "./lib/files.js";
import { createGallery } from "./lib/gallery.js";
import { initApiBox } from "./lib/apibox.js";
import { createThresholdControl, isFlagged } from "./lib/threshold.js";
import { postWithProgress, progressBox } from "./lib/upload.js";
import { $, announce, breakable, clearError, count, esc, fmtThreshold, ICON_FAULT, ICON_OK, int, MB, parseJSON, pct, readConfig, showError } from "./lib/util.js";

const cfg = readConfig();
const noun = { one: "photo", many: "photos" };
const state = { files: null, sourceName: "", checked: null, result: null, opened: null };
const el = {
  input: $("file-input"), dropzone: $("dropzone"), sample: $("sample-button"), loadStatus: $("load-status"),
  loadError: $("load-error"), reviewEmpty: $("review-empty"), review: $("review"), fileSummary: $("file-summary"),
  checkSummary: $("check-summary"), predict: $("predict-button"), predictError: $("predict-error"),
  results: $("results"), stale: $("results-stale"), meaning: $("threshold-meaning"), download: $("download-button"),
  downloadFlagged: $("download-flagged"), downloadNote: $("download-note"), flaggedOnly: $("results-flagged-only"),
  search: $("results-search"), count: $("results-count"), modelInfo: $("model-info"), modelSelect: $("model-select"),
  opacity: $("heat-opacity"), checkRejected: $("check-rejected"), resultsRejected: $("results-rejected"),
};
const modelOf = (name) => cfg.models.find((m) => m.name === name) ?? cfg.models[0];
function describeModel() {
  const m = modelOf(el.modelSelect.value);
  el.modelInfo.textContent = `${m.version}: a photo scoring ${fmtThreshold(m.threshold)} or more is flagged defective; `
    + `${pct(m.false_alarm_rate)} of held-out good photos (as taken and turned) score that high (false alarms; `
    + `target ${pct(m.target_far)}).`;
}
el.modelSelect.addEventListener("change", () => { describeModel(); if (state.result) el.stale.hidden = false,
  el.stale.textContent = "The model changed: predict again to see its results."; });
describeModel();
const modelsLink = $("models-link");
if (modelsLink && cfg.models_url) { modelsLink.hidden = false; modelsLink.href = cfg.models_url; }

const jpeg = (b64) => `data:image/jpeg;base64,${b64}`;
const png = (b64) => `data:image/png;base64,${b64}`;
const notesText = (notes) => (notes?.length ? notes.join("; ") : "used as sent");

// -- step 1 and 2: bring photos, review them as the model will see them -------------------------
const reviewGallery = createGallery({ list: $("review-gallery"), pagerTop: $("review-pager") }, {
  noun, card: (item) => `<figure class="photo-stack"><img src="${jpeg(item.image_jpeg_base64)}" alt="Photo ${esc(item.name)}"></figure>`
    + `<span class="card-name">${breakable(item.name)}</span>`
    + `<span class="card-sub">${item.original_size[0]} × ${item.original_size[1]} ${esc(item.mode)}; ${esc(notesText(item.notes))}</span>`,
});

function failLoad(message, problems = []) {
  showLoadFailure({ errorBox: el.loadError, status: el.loadStatus }, message, problems,
    state.files ? state.sourceName : null);
}

async function loadFiles(files, sourceName = null) {
  clearError(el.loadError);
  const check = await checkFiles(files, { checkUrl: cfg.check_url, extensions: cfg.image_extensions,
    maxMb: cfg.max_upload_mb, status: el.loadStatus, busy: el.sample, sourceName });
  if (!check.ok) { failLoad(check.message, check.problems); return; }
  const name = check.name;
  state.files = files;
  state.sourceName = name;
  state.checked = check.body;
  hideResults();
  clearError(el.predictError);
  el.reviewEmpty.hidden = true;
  el.review.hidden = false;
  const n = check.body.n_images;
  const converted = check.body.images.filter((im) => im.notes.length).length;
  const rejected = check.body.rejected ?? [];
  el.fileSummary.textContent = `${name}: ${int(n)} ${n === 1 ? "photo" : "photos"}.`;
  el.checkSummary.className = rejected.length ? "check-summary" : "check-summary check-ok";
  el.checkSummary.textContent = (rejected.length
    ? `Checked by the server: the photos shown are readable, ${count(rejected.length, "file")} left out (listed below)`
    : "Checked by the server: every photo is readable")
    + (converted ? `; ${int(converted)} converted or resized to ${cfg.image_size} × ${cfg.image_size}.` : ".");
  renderRejected(el.checkRejected, rejected, { stage: "check", noun });
  reviewGallery.show(check.body.images);
  el.loadStatus.textContent = `Loaded ${name}: ${count(n, "photo")}.`;
  announce(`Loaded ${name}: ${count(n, "photo")}.`);
}

bindFilesPicker({ input: el.input, dropzone: el.dropzone, onFiles: (files) => loadFiles(files) });
el.sample.addEventListener("click", async () => {
  clearError(el.loadError);
  try {
    await loadFiles([await fetchSample(cfg.sample_url, "fablens_inspection_sample.zip", "application/zip")]);
  } catch (err) {
    failLoad(`The sample could not be fetched (${err.message}). Try again, or upload your own photos.`);
  }
});

// -- step 3: predict ----------------------------------------------------------------------------
const progress = progressBox({ box: $("predict-progress"), bar: $("predict-bar"), text: $("predict-progress-text"), cancel: $("predict-cancel") });

function predict() {
  clearError(el.predictError);
  if (!state.files) {
    showError(el.predictError, "Load photos first: choose images in step 1, or try the sample.");
    el.input.focus();
    return;
  }
  const n = state.checked.n_images;
  const custom = state.result && threshold.isCustom && state.result.model === el.modelSelect.value;
  const form = filesForm(state.files, { heatmap: 1, source_name: state.sourceName, model: el.modelSelect.value,
    threshold: custom ? threshold.value : null });
  el.predict.disabled = true;
  const xhr = postWithProgress(cfg.predict_url, form, {
    onProgress: (loaded, total) => progress.progress(Math.round((100 * loaded) / total),
      `Uploading ${count(n, "photo")}: ${(loaded / MB).toFixed(1)} of ${(total / MB).toFixed(1)} MB`),
    onUploaded: () => progress.waiting(`Inspecting ${count(n, "photo")}…`),
    onDone: (status, text) => {
      progress.stop();
      el.predict.disabled = false;
      let body = null;
      try { body = parseJSON(text); } catch { body = null; }
      if (status === 200 && body?.predictions) { showResults(body); return; }
      const message = body?.message ?? `The server answered HTTP ${status}; try again.`;
      showError(el.predictError, message, body?.problems ?? []);
      announce(`Prediction failed: ${message}`);
    },
    onError: () => { progress.stop(); el.predict.disabled = false; showError(el.predictError, "Could not reach the server; try again."); },
    onAbort: () => { progress.stop(); el.predict.disabled = false; announce("Prediction cancelled."); },
  });
  progress.start(xhr, `Uploading ${count(n, "photo")}…`);
}
el.predict.addEventListener("click", predict);

// -- results ------------------------------------------------------------------------------------
const isDefective = (p) => isFlagged(p.anomaly_score, threshold.value, cfg.decision.below);
const opacity = () => parseFloat(el.opacity.value);
const previewOf = (k) => state.checked.images[k]?.image_jpeg_base64;
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

function hideResults() {
  state.result = null;
  el.results.hidden = true;
}

function applyFilters() {
  if (!state.result) return;
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
  const r = state.result;
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
  state.result = resp;
  el.stale.hidden = true;
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
  const p = state.result.predictions[k];
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
