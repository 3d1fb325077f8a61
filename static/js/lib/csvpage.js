// The three steps of a CSV module page (UX.md): bring a file, review and edit it, predict and
// explore the results. A module's page script supplies only what is its own (``hooks``):
// how a result row looks, which columns its results CSV has, what the check summary says.
//
// The element ids are those of templates/module_page.html.
import { writeCSV, formulaGuard } from "./csv.js";
import { downloadText } from "./download.js";
import { buildTable, createGrid } from "./grid.js";
import { makePager } from "./pager.js";
import { createThresholdControl } from "./threshold.js";
import { bindFilePicker, checkOnServer, postWithProgress, precheckCSV, progressBox } from "./upload.js";
import { initApiBox } from "./apibox.js";
import { $, announce, clamp, clearError, fmtThreshold, int, MB, parseJSON, pct, showError } from "./util.js";

const PAGE_SIZE = 50;

/**
 * ``cfg``: the page config from the server (models with their false-alarm curves, limits,
 * rules, URLs). ``hooks``:
 *   noun: {one, many, id}          what an item is called ("wafer", "wafers", "wafer id")
 *   checkSummary(body)             text for the server's check of an uploaded file
 *   modelInfo(model)               text under the model picker
 *   isProbability(model)           the score is a probability (the slider runs 0..1)
 *   scoreKey(model)                the prediction field that decides
 *   renderRow(prediction, ctx)     <td> cells of one result row; ctx: {fault, scoreKey}
 *   csv: {columns, row(prediction, ctx)}   the results CSV; ctx: {fault, threshold, resp}
 *   onResults(resp)                fill the module's own summary cards
 */
export function createCsvPage(cfg, hooks) {
  const { noun } = hooks;
  const guard = formulaGuard(cfg.formula_triggers, cfg.number_pattern);
  const el = {
    fileInput: $("file-input"), dropzone: $("dropzone"), sample: $("sample-button"),
    loadStatus: $("load-status"), loadError: $("load-error"),
    reviewEmpty: $("review-empty"), review: $("review"), checkSummary: $("check-summary"),
    model: $("model-select"), modelInfo: $("model-info"), predict: $("predict-button"),
    predictError: $("predict-error"), results: $("results"), stale: $("results-stale"),
    resultsBody: $("results-body"), meaning: $("threshold-meaning"), download: $("download-button"),
  };
  const state = { loading: false, result: null };

  const grid = createGrid({
    grid: $("preview"), wrap: $("preview-wrap"), pager: $("preview-pager"), summary: $("file-summary"),
    problems: $("problems"), problemsTitle: $("problems-title"), problemList: $("problem-list"),
    undoBox: $("undo-box"), undoText: $("undo-text"), undo: $("undo-button"),
  }, { pageSize: PAGE_SIZE, idNoun: noun.id, onChange: markStale });

  const progress = progressBox({ box: $("predict-progress"), bar: $("predict-bar"),
    text: $("predict-progress-text"), cancel: $("predict-cancel") });

  const threshold = createThresholdControl({
    range: $("threshold-range"), number: $("threshold-number"), reset: $("threshold-reset"),
    scoreName: $("threshold-score-name"),
  }, applyThreshold);
  $("threshold-reset").addEventListener("click", () => {
    if (!state.result) return;
    threshold.reset();
    announce(`Threshold reset to the default, ${fmtThreshold(threshold.value)}.`);
  });

  const resultsPager = makePager($("results-pager"), {
    noun: "results", itemLabel: noun.many[0].toUpperCase() + noun.many.slice(1), pageSize: PAGE_SIZE,
    onGo: (p) => {
      if (!state.result) return;
      state.result.page = clamp(p, 0, Math.ceil(state.result.order.length / PAGE_SIZE) - 1);
      renderResults();
    },
  });

  // -- step 1: bring data -------------------------------------------------------------------------
  function failLoad(message, problems = []) {
    const keep = grid.data ? ` Nothing was loaded; ${grid.data.fileName} is still in the table below.` : "";
    showError(el.loadError, message + keep, problems);
    el.loadStatus.textContent = "";
    announce(`Upload failed: ${message}`);
  }

  async function loadFile(file) {
    if (!file || state.loading) return;
    clearError(el.loadError);
    const name = file.name || "upload.csv";
    const refused = await precheckCSV(file, cfg);
    if (refused) { failLoad(refused); return; }
    state.loading = true;
    el.sample.disabled = true;
    el.loadStatus.textContent = `Reading ${name} (${(file.size / MB).toFixed(1)} MB) and checking it on the server…`;
    try {
      const checking = checkOnServer(cfg.check_url, file);
      await new Promise((r) => setTimeout(r, 0)); // let the status paint before parsing
      let table = null;
      let parseError = null;
      try {
        table = buildTable(await file.text(), name, { numberPattern: cfg.number_pattern, labelColumns: cfg.label_columns });
      } catch (err) { parseError = err; }
      const check = await checking;
      const problems = check.body?.problems ?? [];
      if (check.status === 413 || check.status === 415) {
        failLoad(check.body?.message ?? `${name} was refused (HTTP ${check.status}).`, problems); return;
      }
      if (parseError) { failLoad(`${name}: ${parseError.message}.`, problems); return; }
      if (!table.rows.length) { failLoad(`${name}: the file has a header but no data rows.`); return; }
      if (check.status === 400 && !problems.some((p) => p.row)) {
        // a problem with the whole file (columns, id column, unreadable): nothing to fix cell by cell
        failLoad(check.body?.message ?? `${name} could not be read.`, problems); return;
      }
      if (grid.hasChanges() && !window.confirm(`Replace ${grid.data.fileName} and lose your edits?`)) {
        el.loadStatus.textContent = `Kept ${grid.data.fileName} and your edits; ${name} was not loaded.`;
        return;
      }
      grid.load(table, problems);
      hideResults();
      clearError(el.predictError);
      el.reviewEmpty.hidden = true;
      el.review.hidden = false;
      renderCheck(check, name);
      el.loadStatus.textContent = `Loaded ${name}: ${int(table.rows.length)} rows.`;
      announce(`Loaded ${name}: ${table.rows.length} rows${problems.length ? `, ${problems.length} problems listed` : ""}.`);
    } finally {
      state.loading = false;
      el.sample.disabled = false;
    }
  }

  function renderCheck(check, fileName) {
    el.checkSummary.className = "check-summary";
    if (check.ok && check.body) {
      el.checkSummary.classList.add("check-ok");
      el.checkSummary.textContent = hooks.checkSummary(check.body);
    } else if (check.status === 400) {
      el.checkSummary.textContent = `The server found problems in ${fileName}; they are listed below.`;
    } else {
      el.checkSummary.textContent = `The server check did not answer${check.status ? ` (HTTP ${check.status})` : ""}; `
        + "the file is shown as read in the browser and is checked again when you predict.";
    }
  }

  async function loadSample() {
    clearError(el.loadError);
    el.loadStatus.textContent = "Fetching the sample…";
    try {
      const res = await fetch(cfg.sample_url, { headers: { "X-Requested-With": "fetch" } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const blob = await res.blob();
      await loadFile(new File([blob], `fablens_${cfg.module}_sample.csv`, { type: "text/csv" }));
    } catch (err) {
      failLoad(`The sample could not be fetched (${err.message}). Try again, or upload your own file.`);
    }
  }

  bindFilePicker({ input: el.fileInput, dropzone: el.dropzone, onFile: loadFile,
    onMany: () => failLoad("Drop one CSV file at a time.") });
  el.sample.addEventListener("click", loadSample);
  window.addEventListener("beforeunload", (e) => { if (grid.hasChanges()) { e.preventDefault(); e.returnValue = ""; } });

  // -- step 3: predict ----------------------------------------------------------------------------
  const modelByName = (name) => cfg.models.find((m) => m.name === name) ?? cfg.models[0];
  const renderModelInfo = () => { el.modelInfo.textContent = hooks.modelInfo(modelByName(el.model.value)); };
  el.model.addEventListener("change", () => {
    renderModelInfo();
    if (state.result && state.result.model.name !== el.model.value) {
      markStale(`These results are from ${state.result.model.name}. Press Predict to score with ${el.model.value}.`);
    } else if (state.result) {
      el.stale.hidden = true;
    }
  });
  renderModelInfo();

  function setBusy(busy) {
    el.predict.disabled = busy;
    el.predict.setAttribute("aria-busy", String(busy));
  }

  function predict() {
    clearError(el.predictError);
    grid.commit();
    const d = grid.data;
    if (!d) {
      showError(el.predictError, "Load a file first: choose a CSV in step 1, or try the sample.");
      el.fileInput.focus();
      return;
    }
    if (!d.rows.length) { showError(el.predictError, "Every row was removed. Undo a removal or load a file."); return; }
    const blob = new Blob([grid.toCSV()], { type: "text/csv" });
    if (blob.size > cfg.max_upload_mb * MB) {
      showError(el.predictError, `The table is ${(blob.size / MB).toFixed(1)} MB as CSV, more than the ${cfg.max_upload_mb} MB limit. Remove rows or split the file.`);
      return;
    }
    const modelName = el.model.value;
    const form = new FormData();
    form.append("file", blob, d.fileName);
    form.append("model", modelName);
    const r = state.result;
    const keepThreshold = r && r.model.name === modelName && threshold.isCustom ? threshold.value : null;
    if (keepThreshold !== null) form.append("threshold", String(keepThreshold));
    const n = d.rows.length;
    setBusy(true);
    const xhr = postWithProgress(cfg.predict_url, form, {
      onProgress: (loaded, total) => progress.progress(Math.round((100 * loaded) / total),
        `Uploading ${int(n)} ${noun.many}: ${(loaded / MB).toFixed(1)} of ${(total / MB).toFixed(1)} MB`),
      onUploaded: () => progress.waiting(`Scoring ${int(n)} ${noun.many} with ${modelName}…`),
      onDone: (status, text) => {
        progress.stop();
        setBusy(false);
        let body = null;
        try { body = parseJSON(text); } catch { body = null; }
        if (status === 200 && body?.predictions) { showResults(body); return; }
        let message = body?.message ?? `The server answered HTTP ${status}. Your table is unchanged; try again`;
        if (!/[.!?]$/.test(message)) message += ".";
        const problems = body?.problems ?? [];
        if (problems.some((p) => p.row)) {
          grid.setProblems(problems, "table");
          showError(el.predictError, `${message} Your edits are kept: the problems are listed and marked in step 2.`);
        } else {
          showError(el.predictError, `${message} Your edits are kept.`, problems);
        }
        announce(`Prediction failed: ${message}`);
      },
      onError: () => {
        progress.stop();
        setBusy(false);
        showError(el.predictError, "Could not reach the server. Your table and edits are unchanged; try again.");
      },
      onAbort: () => {
        progress.stop();
        setBusy(false);
        announce("Prediction cancelled. Your table is unchanged.");
      },
    });
    progress.start(xhr, `Uploading ${int(n)} ${noun.many}…`);
  }
  el.predict.addEventListener("click", predict);

  // -- results ------------------------------------------------------------------------------------
  function hideResults() {
    state.result = null;
    el.results.hidden = true;
    el.stale.hidden = true;
  }

  function markStale(text) {
    if (!state.result) return;
    el.stale.textContent = text;
    el.stale.hidden = false;
  }

  const isFault = (p) => p[state.result.scoreKey] >= threshold.value;

  function showResults(resp) {
    const model = modelByName(resp.model);
    const scoreKey = hooks.scoreKey(model);
    const preds = resp.predictions;
    const order = preds.map((_, k) => k);
    const score = (k) => preds[k][scoreKey] ?? -Infinity;
    order.sort((a, b) => score(b) - score(a) || a - b);
    state.result = { resp, model, scoreKey, order, page: 0 };
    threshold.setModel({ threshold: resp.default_threshold, curve: model.far_curve, label: model.score.replace(/_/g, " "),
      probability: hooks.isProbability(model), scores: preds.map((p) => p[scoreKey]) });
    $("card-scored").textContent = int(resp.n_rows);
    $("card-model").textContent = resp.model;
    $("card-version").textContent = resp.model_version;
    hooks.onResults(resp);
    el.stale.hidden = true;
    el.results.hidden = false;
    threshold.set(resp.threshold);
    announce(`Scored ${resp.n_rows} ${noun.many}; ${countFlagged()} flagged.`);
    el.results.scrollIntoView({ block: "start" });
    if (document.activeElement === document.body || document.activeElement === el.predict) {
      el.results.focus({ preventScroll: true }); // keyboard users continue from the results
    }
  }

  function countFlagged() {
    let n = 0;
    for (const p of state.result.resp.predictions) if (isFault(p)) n++;
    return n;
  }

  function applyThreshold(t) {
    const r = state.result;
    if (!r) return;
    const n = r.resp.predictions.length;
    const flagged = countFlagged();
    $("card-flagged").textContent = int(flagged);
    $("card-flagged-share").textContent = `${pct(n ? flagged / n : 0)} of the ${noun.many} scored`;
    $("card-threshold").textContent = fmtThreshold(t);
    $("card-threshold-sub").textContent = threshold.isDefault ? `the default (${pct(r.model.target_far)} false-alarm target)`
      : `custom; default ${fmtThreshold(r.resp.default_threshold)}`;
    el.meaning.innerHTML = `At this threshold about <strong>${pct(threshold.falseAlarmRate(t))}</strong> of good ${noun.many} are flagged (validation data). `
      + `In this file <strong>${int(flagged)} of ${int(n)}</strong> ${noun.many} score ${fmtThreshold(t)} or more and are flagged.`;
    renderResults();
  }

  function renderResults() {
    const r = state.result;
    if (!r) return;
    const preds = r.resp.predictions;
    const pages = Math.max(1, Math.ceil(r.order.length / PAGE_SIZE));
    r.page = clamp(r.page, 0, pages - 1);
    const start = r.page * PAGE_SIZE;
    const end = Math.min(r.order.length, start + PAGE_SIZE);
    const html = [];
    for (let k = start; k < end; k++) {
      const p = preds[r.order[k]];
      const fault = isFault(p);
      html.push(`<tr${fault ? ' class="is-fault"' : ""}>${hooks.renderRow(p, { fault, scoreKey: r.scoreKey })}</tr>`);
    }
    el.resultsBody.innerHTML = html.join("");
    resultsPager.update(r.page, r.order.length);
  }

  el.download.addEventListener("click", () => {
    const r = state.result;
    if (!r) return;
    const rows = r.resp.predictions.map((p) => hooks.csv.row(p, { fault: isFault(p), threshold: threshold.value, resp: r.resp }));
    const base = (grid.data?.fileName ?? cfg.module).replace(/\.[^.]+$/, "");
    downloadText(writeCSV(hooks.csv.columns, rows, guard), `${base}_results.csv`);
    announce(`Downloading ${rows.length} result rows.`);
  });

  initApiBox($("api"), cfg.predict_url);
  return { grid, threshold };
}
