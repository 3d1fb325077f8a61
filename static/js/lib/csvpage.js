// The three steps of a CSV module page (UX.md): bring a file, review and edit it, predict and
// explore the results. A module's page script supplies only what is its own (``hooks``):
// its noun, what the check summary says and the module's own result columns.
//
// The element ids are those of templates/module_page.html. Every rule the server owns (what
// counts as a number, which columns are labels, which files are accepted, the score columns,
// what a threshold means, the results CSV) comes from the page config or the server's answers.
import { buildTable, cellNumber, createGrid } from "./grid.js";
import { createThresholdControl, isFlagged } from "./threshold.js";
import { acceptedExtensions, bindFilePicker, checkOnServer, postWithProgress, precheckFile, progressBox } from "./upload.js";
import { initApiBox } from "./apibox.js";
import { createResultsTable } from "./results.js";
import { describeDetected, renderDrift, renderLabels, renderWarnings } from "./insights.js";
import { alignColumns, createRangeView } from "./rangeview.js";
import { $, announce, breakable, clearError, count, esc, fmtThreshold, ICON_FAULT, ICON_OK, int, MB, parseJSON, pct, showError } from "./util.js";

const PAGE_SIZE = 50;

const titleCase = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const scoreLabel = (key) => titleCase(String(key).replace(/_/g, " "));
const sentence = (s) => { const t = String(s).trim(); return titleCase(t) + (/[.!?]$/.test(t) ? "" : "."); };
const fmtScore = (v) => (v == null || Number.isNaN(v) ? "–" : Number(v).toFixed(3));

/** The models the page offers: those the server does not mark ``shown: false``. */
export const shownModels = (cfg) => cfg.models.filter((m) => m.shown !== false);

/** A model's one-line description under the picker, from its config (score_meaning, threshold_note). */
export function describeModel(m) {
  const meaning = m.score_meaning ? String(m.score_meaning).trim() : "";
  const parts = [`${m.version}${meaning ? `: ${meaning}${/[.!?]$/.test(meaning) ? "" : "."}` : "."}`];
  parts.push(`Default threshold ${fmtThreshold(m.threshold)}.`);
  if (m.threshold_note) parts.push(sentence(m.threshold_note));
  else if (m.false_alarm_rate != null) parts.push(`It flags ${pct(m.false_alarm_rate)} of good items in validation (target ${pct(m.target_far)}).`);
  return parts.join(" ");
}

/** The score's range decides the slider: the server's ``score_range`` when it sends one. */
const isUnitScore = (m) => (Array.isArray(m.score_range) ? m.score_range[0] === 0 && m.score_range[1] === 1
  : m.role === "classifier");

/**
 * ``cfg``: the page config from the server (models with their false-alarm curves, limits,
 * rules, URLs). ``hooks``:
 *   noun: {one, many, id}          what an item is called ("wafer", "wafers", "wafer id")
 *   checkSummary(body)             text for the server's check of an uploaded file
 *   columns(resp)                  the module's own result columns (see results.js), after the scores
 *   onResults(resp)                fill the module's own summary cards
 *   modelInfo(model)               optional: text under the model picker (default describeModel)
 */
export function createCsvPage(cfg, hooks) {
  const { noun } = hooks;
  const models = shownModels(cfg);
  const el = {
    fileInput: $("file-input"), dropzone: $("dropzone"), sample: $("sample-button"),
    loadStatus: $("load-status"), loadError: $("load-error"),
    reviewEmpty: $("review-empty"), review: $("review"), checkSummary: $("check-summary"),
    checkDetected: $("check-detected"), checkWarnings: $("check-warnings"), checkWarningList: $("check-warning-list"),
    model: $("model-select"), modelInfo: $("model-info"), modelsLink: $("models-link"), predict: $("predict-button"),
    predictError: $("predict-error"), results: $("results"), stale: $("results-stale"),
    meaning: $("threshold-meaning"), download: $("download-button"), downloadFlagged: $("download-flagged"),
    downloadNote: $("download-note"), warnings: $("results-warnings"), warningList: $("results-warning-list"),
    detected: $("results-detected"), inSample: $("in-sample-note"),
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

  const rangeView = cfg.profile_url ? createRangeView({
    dialog: $("item-view"), title: $("item-view-title"), summary: $("item-view-summary"), strip: $("item-view-strip"),
    outOnly: $("item-view-out"), search: $("item-view-search"), head: $("item-view-head"), body: $("item-view-body"),
    count: $("item-view-count"), status: $("item-view-status"), close: $("item-view-close"),
  }, { profileUrl: cfg.profile_url, noun }) : null;

  const table = createResultsTable({
    head: $("results-head"), body: $("results-body"), pagerTop: $("results-pager"), pagerBottom: $("results-pager-bottom"),
    flaggedOnly: $("results-flagged-only"), search: $("results-search"), count: $("results-count"),
  }, { pageSize: PAGE_SIZE, noun, onOpen: rangeView ? openItem : null });

  const labelsEl = { panel: $("labels-panel"), title: $("labels-title"), matrix: $("confusion"), rates: $("labels-rates") };
  const driftEl = { panel: $("drift-panel"), summary: $("drift-summary"), table: $("drift-table"), body: $("drift-body"), note: $("drift-note") };

  // -- step 1: bring data -------------------------------------------------------------------------
  function failLoad(message, problems = []) {
    const keep = grid.data ? ` Nothing was loaded; ${grid.data.fileName} is still in the table below.` : "";
    showError(el.loadError, message + keep, problems);
    el.loadStatus.textContent = "";
    announce(`Upload failed: ${message}`);
  }

  /** Ask before replacing an edited table; true when it may go. */
  function mayReplace(name) {
    if (!grid.hasChanges()) return true;
    if (window.confirm(`Replace ${grid.data.fileName} and lose your edits?`)) return true;
    el.loadStatus.textContent = `Kept ${grid.data.fileName} and your edits; ${name} was not loaded.`;
    return false;
  }

  const rules = { numberPattern: cfg.number_pattern, labelColumns: cfg.label_columns };

  async function loadFile(file, { confirmed = false } = {}) {
    if (!file || state.loading) return;
    clearError(el.loadError);
    const name = file.name || "upload.csv";
    const { refused, binary } = await precheckFile(file, cfg);
    if (refused) { failLoad(refused); return; }
    state.loading = true;
    el.sample.disabled = true;
    el.loadStatus.textContent = `Reading ${name} (${(file.size / MB).toFixed(1)} MB) and checking it on the server…`;
    try {
      const checking = checkOnServer(cfg.check_url, file);
      await new Promise((r) => setTimeout(r, 0)); // let the status paint before parsing
      // parse the text while the server checks it; a file the server normalises (another
      // delimiter, decimal commas, a workbook) is replaced by the server's CSV below
      let parsed = null;
      if (!binary) {
        try { parsed = { table: buildTable(await file.text(), name, rules) }; } catch (err) { parsed = { error: err }; }
      }
      const check = await checking;
      const problems = check.body?.problems ?? [];
      if (check.status === 413 || check.status === 415) {
        failLoad(check.body?.message ?? `${name} was refused (HTTP ${check.status}).`, problems); return;
      }
      const normalised = typeof check.body?.csv === "string" ? check.body.csv : null;
      if (normalised !== null) {
        try { parsed = { table: buildTable(normalised, name, rules) }; } catch (err) { parsed = { error: err }; }
      }
      if (check.status === 400 && !problems.some((p) => p.row)) {
        // a problem with the whole file (columns, id column, unreadable): nothing to fix cell by cell
        failLoad(check.body?.message ?? `${name} could not be read.`, problems); return;
      }
      if (!parsed) {
        failLoad(check.ok ? `${name} could not be read in the browser.`
          : `${name}: not a CSV file (it looks like binary data), and the server could not be asked about it. Upload a ${acceptedExtensions(cfg).join(", ")} file.`);
        return;
      }
      if (parsed.error) { failLoad(`${name}: ${parsed.error.message}.`, problems); return; }
      const data = parsed.table;
      if (!data.rows.length) { failLoad(`${name}: the file has a header but no data rows.`); return; }
      if (!confirmed && !mayReplace(name)) return;
      data.sourceName = name;
      data.converted = normalised !== null;
      grid.load(data, problems);
      hideResults();
      clearError(el.predictError);
      el.reviewEmpty.hidden = true;
      el.review.hidden = false;
      renderCheck(check, name);
      el.loadStatus.textContent = `Loaded ${name}: ${count(data.rows.length, "row")}.`;
      announce(`Loaded ${name}: ${count(data.rows.length, "row")}${problems.length ? `, ${count(problems.length, "problem")} listed` : ""}.`);
    } finally {
      state.loading = false;
      el.sample.disabled = false;
    }
  }

  function renderCheck(check, fileName) {
    el.checkSummary.className = "check-summary";
    const body = check.body ?? {};
    if (check.ok && check.body) {
      el.checkSummary.classList.add("check-ok");
      el.checkSummary.textContent = hooks.checkSummary(body);
    } else if (check.status === 400) {
      el.checkSummary.textContent = `The server found problems in ${fileName}; they are listed below.`;
    } else {
      el.checkSummary.textContent = `The server check did not answer${check.status ? ` (HTTP ${check.status})` : ""}; `
        + "the file is shown as read in the browser and is checked again when you predict.";
    }
    const detected = describeDetected(body.detected);
    el.checkDetected.textContent = detected + (typeof body.csv === "string"
      ? " The server converted it to a comma-separated table, shown below." : "");
    el.checkDetected.hidden = !el.checkDetected.textContent;
    renderWarnings(el.checkWarnings, el.checkWarningList, body.warnings);
  }

  async function loadSample() {
    if (state.loading || !mayReplace("the sample")) return;
    clearError(el.loadError);
    el.loadStatus.textContent = "Fetching the sample…";
    try {
      const res = await fetch(cfg.sample_url, { headers: { "X-Requested-With": "fetch" } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const blob = await res.blob();
      await loadFile(new File([blob], `fablens_${cfg.module}_sample.csv`, { type: "text/csv" }), { confirmed: true });
    } catch (err) {
      failLoad(`The sample could not be fetched (${err.message}). Try again, or upload your own file.`);
    }
  }

  bindFilePicker({ input: el.fileInput, dropzone: el.dropzone, onFile: loadFile,
    onMany: () => failLoad("Drop one file at a time.") });
  el.sample.addEventListener("click", loadSample);
  window.addEventListener("beforeunload", (e) => {
    if (!grid.hasChanges()) return;
    e.preventDefault();
    e.returnValue = ""; // the browser shows its own "leave site?" question
  });

  // -- step 3: predict ----------------------------------------------------------------------------
  const modelByName = (name) => cfg.models.find((m) => m.name === name) ?? models[0] ?? cfg.models[0];
  const renderModelInfo = () => {
    el.modelInfo.textContent = (hooks.modelInfo ?? describeModel)(modelByName(el.model.value));
  };
  el.model.addEventListener("change", () => {
    renderModelInfo();
    if (state.result && state.result.model.name !== el.model.value) {
      markStale(`These results are from ${state.result.model.name}. Press Predict to score with ${el.model.value}.`);
    } else if (state.result) {
      el.stale.hidden = true;
    }
  });
  renderModelInfo();
  if (el.modelsLink) {
    el.modelsLink.hidden = !cfg.models_url;
    if (cfg.models_url) el.modelsLink.href = cfg.models_url;
  }

  function setBusy(busy) {
    el.predict.disabled = busy;
    el.predict.setAttribute("aria-busy", String(busy));
  }

  function predict() {
    clearError(el.predictError);
    grid.commit();
    const d = grid.data;
    if (!d) {
      showError(el.predictError, "Load a file first: choose a file in step 1, or try the sample.");
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
    const { editedCells, removedRows } = grid.changes();
    const form = new FormData();
    // the table goes back as comma-separated text, whatever the file was; its own name is kept apart
    form.append("file", blob, `${d.fileName.replace(/\.[^.]+$/, "") || cfg.module}.csv`);
    form.append("model", modelName);
    form.append("edited_cells", String(editedCells));
    form.append("removed_rows", String(removedRows));
    form.append("source_name", d.sourceName ?? d.fileName);
    const r = state.result;
    const keepThreshold = r && r.model.name === modelName && threshold.isCustom ? threshold.value : null;
    if (keepThreshold !== null) form.append("threshold", String(keepThreshold));
    const n = d.rows.length;
    const sent = { data: d, rows: d.rows.slice() }; // the rows as sent, for the per-item view
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
        if (status === 200 && body?.predictions) { showResults(body, sent); return; }
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

  const isFault = (p) => isFlagged(p[state.result.scoreKey], threshold.value, cfg.decision.below);

  /** The kit's columns (id, extra columns, label, scores, decision) and then the module's. */
  function resultColumns(resp, scoreKey) {
    const preds = resp.predictions;
    const idHead = resp.id_column && resp.id_column !== "id" ? resp.id_column : titleCase(noun.one);
    const openable = !!rangeView;
    const cols = [{
      key: "id", label: idHead, cls: "col-id", value: (p) => p.id,
      cell: (p, { k }) => {
        const badge = p.in_sample ? ' <span class="badge badge-insample" title="This row matches a training row: its scores are in-sample.">in-sample</span>' : "";
        const id = esc(p.id);
        return openable
          ? `<td class="item-id"><button type="button" class="open-item" data-open="${k}">${id}<span class="visually-hidden">: open all sensors</span></button>${badge}</td>`
          : `<td class="item-id">${id}${badge}</td>`;
      },
    }];
    const extra = Array.isArray(resp.detected?.extra_columns) ? resp.detected.extra_columns
      : Object.keys(preds[0]?.extra ?? {});
    for (const name of extra) {
      cols.push({ key: `extra:${name}`, label: name, cls: "col-extra", value: (p) => p.extra?.[name] ?? null,
        cell: (p) => `<td class="col-extra">${breakable(p.extra?.[name] ?? "")}</td>` });
    }
    if (resp.labels) {
      const pos = resp.labels.positive ?? "fail";
      const neg = resp.labels.negative ?? `not ${pos}`;
      cols.push({ key: "label", label: "Label", sub: resp.labels.column ?? "", value: (p) => p.label,
        cell: (p) => `<td class="col-label">${p.label === 1 ? esc(pos) : p.label === 0 ? esc(neg) : "–"}</td>` });
    }
    const keys = [...new Set(models.map((m) => m.score).filter(Boolean))].filter((key) => preds.some((p) => key in p));
    if (!keys.includes(scoreKey)) keys.unshift(scoreKey);
    for (const key of keys) {
      cols.push({ key, label: scoreLabel(key), numeric: true, cls: `col-score${key === scoreKey ? " score-decider" : ""}`,
        value: (p) => p[key],
        cell: (p) => `<td class="num${key === scoreKey ? " score-decider" : ""}">${fmtScore(p[key])}</td>` });
    }
    cols.push({ key: "decision", label: "Decision", cls: "col-decision", value: (p) => p[scoreKey],
      cell: (p, { fault }) => `<td>${fault ? `<span class="decision decision-fault">${ICON_FAULT}FAULT</span>`
        : `<span class="decision decision-ok">${ICON_OK}ok</span>`}</td>` });
    return cols.concat(hooks.columns ? hooks.columns(resp) : []);
  }

  function showResults(resp, sent) {
    const model = modelByName(resp.model);
    const scoreKey = model.score;
    const preds = resp.predictions;
    state.result = { resp, model, scoreKey, sent, align: null, frame: 0 };
    threshold.setModel({ threshold: resp.default_threshold, curve: model.far_curve, label: scoreLabel(scoreKey).toLowerCase(),
      probability: isUnitScore(model), scores: preds.map((p) => p[scoreKey]) });
    $("card-scored").textContent = int(resp.n_rows);
    $("card-model").textContent = resp.model;
    $("card-version").textContent = resp.model_version;
    hooks.onResults?.(resp);
    renderWarnings(el.warnings, el.warningList, resp.warnings);
    el.detected.textContent = describeDetected(resp.detected);
    el.detected.hidden = !el.detected.textContent;
    const nIn = preds.reduce((n, p) => n + (p.in_sample === true ? 1 : 0), 0);
    el.inSample.hidden = !nIn;
    el.inSample.textContent = !nIn ? "" : `${int(nIn)} ${nIn === 1 ? `${noun.one} matches a row` : `${noun.many} match rows`} `
      + `the model was trained on (marked in-sample): ${nIn === 1 ? "its score is" : "their scores are"} in-sample and `
      + "look better than the model would do on new data.";
    renderDrift(driftEl, resp.drift, noun);
    el.stale.hidden = true;
    el.results.hidden = false;
    threshold.set(resp.threshold);
    table.show(preds, { columns: resultColumns(resp, scoreKey), isFault, idOf: (p) => p.id,
      sort: { key: scoreKey, descending: true } });
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
    $("card-threshold-sub").textContent = threshold.isDefault ? `the default (${pct(r.model.false_alarm_rate)} false alarms in validation)`
      : `custom; default ${fmtThreshold(r.resp.default_threshold)}`;
    const note = r.resp.threshold_note ?? r.model.threshold_note;
    el.meaning.innerHTML = `At this threshold about <strong>${pct(threshold.falseAlarmRate(t))}</strong> of good ${noun.many} are flagged`
      + `${note ? `: ${esc(note.replace(/[.]\s*$/, ""))}.` : " (validation data)."} `
      + `In this file <strong>${int(flagged)} of ${int(n)}</strong> ${noun.many} score ${fmtThreshold(t)} or more and are flagged.`;
    renderLabels(labelsEl, r.resp.labels, r.resp.predictions, isFault, noun);
    updateDownloads(t);
    // the table redraws once per frame however fast the slider moves
    cancelAnimationFrame(r.frame);
    r.frame = requestAnimationFrame(() => table.refresh());
  }

  /** The download links: the server writes the results CSV at the current threshold. */
  function updateDownloads(t) {
    const url = state.result?.resp.results_url;
    el.download.hidden = !url;
    el.downloadFlagged.hidden = !url;
    el.downloadNote.hidden = !!url;
    if (!url) return;
    const join = url.includes("?") ? "&" : "?";
    el.download.href = `${url}${join}threshold=${encodeURIComponent(String(t))}`;
    el.downloadFlagged.href = `${el.download.href}&flagged=1`;
  }
  el.download.addEventListener("click", () => announce(`Downloading every result row at threshold ${fmtThreshold(threshold.value)}.`));
  el.downloadFlagged.addEventListener("click", () => announce(`Downloading the flagged ${noun.many} at threshold ${fmtThreshold(threshold.value)}.`));

  // -- one item against the training range -------------------------------------------------------
  function openItem(k, button) {
    const r = state.result;
    if (!r || !rangeView) return;
    const p = r.resp.predictions[k];
    const row = r.sent.rows.length === r.resp.predictions.length ? r.sent.rows[k] : null;
    const d = r.sent.data;
    rangeView.open({
      title: `${titleCase(noun.one)} ${p.id}: every sensor against its training range`,
      opener: button,
      labels: r.resp.detected?.sensor_labels ?? null,
      note: el.stale.hidden ? "" : "Values as they are in the table now; it was edited after these results were computed.",
      values: (profile) => {
        if (!row) return null;
        if (!r.align) {
          const extra = new Set(r.resp.detected?.extra_columns ?? []);
          const skip = new Set();
          if (!r.resp.detected?.numbered_ids) skip.add(0);
          if (d.labelCol >= 0) skip.add(d.labelCol);
          d.header.forEach((h, j) => { if (extra.has(h.trim())) skip.add(j); });
          r.align = alignColumns(d.header, profile.features, skip);
        }
        return Float64Array.from(r.align, (j) => (j < 0 ? NaN : cellNumber(d, row, j)));
      },
    });
  }

  initApiBox($("api"), cfg.predict_url);
  return { grid, threshold };
}
