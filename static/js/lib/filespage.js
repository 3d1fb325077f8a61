// The file pages' kit (wafer maps, time series, inspection photos), as lib/csvpage.js is the
// sensor page's: bring files (picker, drop zone, the sample), the server's check with its
// status line, errors and the files it left out, a failed load that keeps the batch already
// loaded, Predict (an upload with progress and Cancel, CSRF header as every page POST),
// stale results and the errors the server names. A page gives only what is its own: how a
// check answer is reviewed, what the predict form adds and how results are drawn.
import { bindFilesPicker, checkFiles, fetchSample, filesForm, renderRejected, showLoadFailure } from "./files.js";
import { postWithProgress, progressBox } from "./upload.js";
import { $, announce, clearError, MB, parseJSON, showError } from "./util.js";

export const STILL_CHECKING = "The file is still being checked; Predict when it is loaded.";

/** Wire a file page. ``cfg``: {checkUrl, predictUrl, extensions, maxMb, single (the page
 *  takes one file), noun ({one, many}: rejected lists), sample: {url, name, type, hint},
 *  loadFirst (Predict with nothing loaded), staleText (results after a model change)}.
 *  ``hooks``: review(body, name, files) fills step 2 and returns what was loaded ("3 maps");
 *  refuse?(checked) a message when Predict must not go; fields(checked, name) the predict
 *  form's fields; work?(checked) {what, waiting}: the progress texts; accept?(body) whether an
 *  HTTP 200 answer holds results (default: it has predictions); showResults(body);
 *  hideResults?(); onModelChange?(). Returns {load(files, fields), predict(), markStale(text), el,
 *  files, name, checked, result, checking}. */
export function createFilesPage(cfg, hooks) {
  const el = {
    input: $("file-input"), dropzone: $("dropzone"), sample: $("sample-button"), loadStatus: $("load-status"),
    loadError: $("load-error"), reviewEmpty: $("review-empty"), review: $("review"), predict: $("predict-button"),
    predictError: $("predict-error"), results: $("results"), stale: $("results-stale"), model: $("model-select"),
    checkRejected: $("check-rejected"),
  };
  const state = { files: null, name: "", checked: null, result: null, checking: 0, seq: 0 };
  const progress = progressBox({ box: $("predict-progress"), bar: $("predict-bar"), text: $("predict-progress-text"),
    cancel: $("predict-cancel") });

  function failLoad(message, problems = []) {
    showLoadFailure({ errorBox: el.loadError, status: el.loadStatus }, message, problems,
      state.files ? state.name : null);
  }

  function hideResults() {
    state.result = null;
    if (el.stale) el.stale.hidden = true;
    el.results.hidden = true;
    hooks.hideResults?.();
  }

  /** Check ``files`` on the server (with the extra check ``fields``); the batch they replace
   *  stays until the server has read them, and only the latest load counts. */
  async function load(files, fields = {}) {
    clearError(el.loadError);
    const seq = ++state.seq;
    state.checking += 1;
    let check;
    try {
      check = await checkFiles(files, { checkUrl: cfg.checkUrl, extensions: cfg.extensions, maxMb: cfg.maxMb,
        status: el.loadStatus, busy: el.sample, fields });
    } finally {
      state.checking -= 1;
    }
    if (seq !== state.seq) return; // a later load replaced this one
    if (!check.ok) { failLoad(check.message, check.problems); return; }
    state.files = files;
    state.name = check.name;
    state.checked = check.body;
    hideResults();
    clearError(el.predictError);
    el.reviewEmpty.hidden = true;
    el.review.hidden = false;
    if (el.checkRejected) renderRejected(el.checkRejected, check.body.rejected ?? [], { stage: "check", noun: cfg.noun });
    const loaded = hooks.review(check.body, check.name, files);
    el.loadStatus.textContent = `Loaded ${check.name}: ${loaded}.`;
    announce(el.loadStatus.textContent);
  }

  bindFilesPicker({ input: el.input, dropzone: el.dropzone,
    onFiles: (files) => load(cfg.single ? files.slice(0, 1) : files) });
  el.sample.addEventListener("click", async () => {
    clearError(el.loadError);
    let file;
    try {
      file = await fetchSample(cfg.sample.url, cfg.sample.name, cfg.sample.type);
    } catch (err) {
      failLoad(`The sample could not be fetched (${err.message}). Try again, or ${cfg.sample.hint}.`);
      return;
    }
    await load([file]);
  });

  function markStale(text = cfg.staleText) {
    if (!state.result || !el.stale || !text) return;
    el.stale.textContent = text;
    el.stale.hidden = false;
  }
  el.model?.addEventListener("change", () => { hooks.onModelChange?.(); markStale(); });

  function settle() { progress.stop(); el.predict.disabled = false; }

  function predict() {
    clearError(el.predictError);
    if (state.checking) {
      showError(el.predictError, STILL_CHECKING);
      return;
    }
    if (!state.files) {
      showError(el.predictError, cfg.loadFirst);
      el.input.focus();
      return;
    }
    const refused = hooks.refuse?.(state.checked);
    if (refused) { showError(el.predictError, refused); return; }
    const form = filesForm(state.files, hooks.fields(state.checked, state.name));
    const work = hooks.work?.(state.checked) ?? {};
    const uploading = work.what ? `Uploading ${work.what}` : "Uploading";
    const batch = state.files;
    el.predict.disabled = true;
    const xhr = postWithProgress(cfg.predictUrl, form, {
      onProgress: (loaded, total) => progress.progress(Math.round((100 * loaded) / total),
        `${uploading}: ${(loaded / MB).toFixed(1)} of ${(total / MB).toFixed(1)} MB`),
      onUploaded: () => progress.waiting(work.waiting ?? "Working…"),
      onDone: (status, text) => {
        settle();
        let body = null;
        try { body = parseJSON(text); } catch { body = null; }
        if (status === 200 && body && (hooks.accept ? hooks.accept(body) : !!body.predictions)) {
          state.result = body;
          if (el.stale) el.stale.hidden = true;
          hooks.showResults(body);
          // other files were loaded while these were scored: the results are the earlier ones'
          if (state.files !== batch) markStale("These results are for the files loaded before; press Predict to score the ones loaded now.");
          return;
        }
        const message = body?.message ?? `The server answered HTTP ${status}; try again.`;
        showError(el.predictError, message, body?.problems ?? []);
        announce(`Prediction failed: ${message}`);
      },
      onError: () => { settle(); showError(el.predictError, "Could not reach the server; try again."); },
      onAbort: () => { settle(); announce("Prediction cancelled."); },
    });
    progress.start(xhr, `${uploading}…`);
  }
  el.predict.addEventListener("click", predict);

  return {
    load, predict, markStale, el,
    get files() { return state.files; },
    get name() { return state.name; },
    get checked() { return state.checked; },
    get result() { return state.result; },
    get checking() { return state.checking > 0; },
  };
}
