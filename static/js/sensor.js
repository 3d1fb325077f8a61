// FabLens sensor page: bring a CSV, review and edit it, predict, explore the threshold, download.
//
// The table lives in JS arrays (one Float64Array of values per row, text only where a cell is
// not a plain number), so 10,000 x 591 stays light; only the current page of 50 rows is in the
// DOM. Edits are written into those arrays, so they survive paging, a failed prediction and any
// threshold change. Predict sends the current (edited) table back as CSV text.

/** JSON.parse that also accepts the bare NaN/Infinity Python's json module may write. */
function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch (err) {
    return JSON.parse(text.replace(/-?\bInfinity\b|\bNaN\b/g, "null"));
  }
}

const cfg = parseJSON(document.getElementById("sensor-config").textContent);
const PAGE_SIZE = 50;
const MB = 1024 * 1024;
const LABEL_COLUMNS = ["Good/Bad", "Pass/Fail"];
const NUMBER = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

export class CsvError extends Error {}

/** Parse RFC 4180 CSV text; calls onRow(fields) for each record. Handles quotes, "" escapes,
 *  commas and newlines inside quotes, CRLF/LF/CR line ends and a leading BOM. */
export function parseCSV(text, onRow) {
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let row = [];
  let record = 1;
  while (i < n) {
    let field;
    if (text.charCodeAt(i) === 34) { // opening quote
      let j = i + 1;
      field = "";
      for (;;) {
        const q = text.indexOf('"', j);
        if (q < 0) throw new CsvError(`record ${record}: a quoted field is never closed`);
        if (text.charCodeAt(q + 1) === 34) { field += text.slice(j, q + 1); j = q + 2; continue; }
        field += text.slice(j, q);
        i = q + 1;
        break;
      }
      // tolerate stray characters after the closing quote (as pandas does): keep them
      let k = i;
      while (k < n) { const c = text.charCodeAt(k); if (c === 44 || c === 10 || c === 13) break; k++; }
      if (k > i) { field += text.slice(i, k); i = k; }
    } else {
      let j = i;
      while (j < n) { const c = text.charCodeAt(j); if (c === 44 || c === 10 || c === 13) break; j++; }
      field = text.slice(i, j);
      i = j;
    }
    row.push(field);
    if (i >= n) break;
    const c = text.charCodeAt(i);
    if (c === 44) { // comma
      i++;
      if (i >= n) row.push("");
      continue;
    }
    i += c === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1; // line end
    onRow(row);
    row = [];
    record++;
  }
  if (row.length) onRow(row);
}

/** One CSV field, quoted when it has to be. */
export function csvField(value) {
  const s = value == null ? "" : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Build the in-memory table from CSV text. */
function buildTable(text, fileName) {
  let header = null;
  let ncol = 0;
  const rows = [];
  parseCSV(text, (fields) => {
    if (fields.length === 1 && fields[0].trim() === "") return; // blank line
    if (header === null) { header = fields; ncol = fields.length; return; }
    const vals = new Float64Array(ncol);
    let textCells = null;
    for (let j = 1; j < ncol; j++) {
      const s = j < fields.length ? fields[j] : "";
      if (s === "") { vals[j] = NaN; continue; }
      const v = +s;
      if (Number.isFinite(v) && NUMBER.test(s)) { vals[j] = v; continue; }
      vals[j] = NaN;
      (textCells ??= new Map()).set(j, s);
    }
    rows.push({ orig: rows.length + 1, id: fields[0] ?? "", vals, text: textCells, edits: null });
  });
  if (header === null) throw new CsvError("the file is empty");
  const labelCol = header.findIndex((h) => LABEL_COLUMNS.includes(h.trim()));
  return { fileName, header, rows, labelCol, problems: [], problemCells: new Map(), check: null };
}

function cellText(row, j) {
  if (j === 0) return row.id;
  const t = row.text?.get(j);
  if (t !== undefined) return t;
  const v = row.vals[j];
  return v === v ? String(v) : "";
}

function writeCell(row, j, s) {
  if (j === 0) { row.id = s; return; }
  const v = +s;
  if (s === "") { row.vals[j] = NaN; row.text?.delete(j); }
  else if (Number.isFinite(v) && NUMBER.test(s)) { row.vals[j] = v; row.text?.delete(j); }
  else { row.vals[j] = NaN; (row.text ??= new Map()).set(j, s); }
}

function isValidCell(j, s) {
  if (j === 0) return s.trim() !== "";
  return s.trim() === "" || (NUMBER.test(s) && Number.isFinite(+s));
}

/** The current table (edits applied, removed rows left out) as CSV text. */
function tableToCSV(data) {
  const ncol = data.header.length;
  const lines = new Array(data.rows.length + 1);
  lines[0] = data.header.map(csvField).join(",");
  const cells = new Array(ncol);
  for (let r = 0; r < data.rows.length; r++) {
    const row = data.rows[r];
    cells[0] = csvField(row.id);
    for (let j = 1; j < ncol; j++) {
      const t = row.text?.get(j);
      if (t !== undefined) cells[j] = csvField(t);
      else { const v = row.vals[j]; cells[j] = v === v ? String(v) : ""; }
    }
    lines[r + 1] = cells.join(",");
  }
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// small helpers
// ---------------------------------------------------------------------------------------------

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);
const int = (n) => Number(n).toLocaleString("en-US");
const pct = (x) => `${(100 * x).toFixed(1)}%`;
const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

function fmtScore(v) { return v == null || Number.isNaN(v) ? "–" : v.toFixed(3); }
function fmtThreshold(v) { return Number(v).toFixed(4); }
function fmtValue(v) {
  if (v == null || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  return v.toFixed(a >= 1000 ? 1 : a >= 100 ? 2 : a >= 1 ? 3 : 4);
}
function fmtCSVNumber(v) {
  if (v == null || Number.isNaN(v)) return "";
  return String(Number(Number(v).toPrecision(6)));
}

function announce(text) {
  const el = $("announcer");
  el.textContent = "";
  setTimeout(() => { el.textContent = text; }, 30);
}

function where(p) {
  return [p.file, p.row ? `row ${p.row}` : null, p.column ? `column ${p.column}` : null]
    .filter(Boolean).join(", ");
}

function showError(el, message, problems = []) {
  el.hidden = false;
  let html = `<p>${esc(message)}</p>`;
  const listed = problems.filter((p) => p.message && p.message !== message);
  if (listed.length) {
    html += `<ul class="problem-list">${listed.map((p) => {
      const w = where(p);
      return `<li>${w ? `<span class="problem-where">${esc(w)}</span>: ` : ""}${esc(p.message)}</li>`;
    }).join("")}</ul>`;
  }
  el.innerHTML = html;
}
function clearError(el) { el.hidden = true; el.innerHTML = ""; }

const ICON_FAULT = '<svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" focusable="false">'
  + '<path d="M8 1.5 15 14.5H1z" fill="currentColor"/><path d="M8 6v4.2" stroke="#fff" stroke-width="1.8" '
  + 'stroke-linecap="round"/><circle cx="8" cy="12.3" r="1" fill="#fff"/></svg>';
const ICON_OK = '<svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" focusable="false">'
  + '<circle cx="8" cy="8" r="6.5" fill="none" stroke="currentColor" stroke-width="1.6"/>'
  + '<path d="m5 8.2 2 2 4-4.2" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" '
  + 'stroke-linejoin="round"/></svg>';

// ---------------------------------------------------------------------------------------------
// state
// ---------------------------------------------------------------------------------------------

const state = {
  data: null, // the table being reviewed (see buildTable)
  page: 0,
  cols: [1, 0], // data columns rendered in the preview (inclusive)
  active: { i: 0, c: 0 }, // the grid's keyboard position: row index in data.rows, column (-1 = remove)
  editing: null, // {td, i, c, before}
  lastRemoved: null, // {row, i} for Undo
  loading: false,
  xhr: null,
  result: null, // {resp, model, scoreKey, threshold, order, page, customThreshold}
};

const el = {
  fileInput: $("file-input"), dropzone: $("dropzone"), sample: $("sample-button"),
  loadStatus: $("load-status"), loadError: $("load-error"),
  reviewEmpty: $("review-empty"), review: $("review"), fileSummary: $("file-summary"),
  checkSummary: $("check-summary"), problems: $("problems"), problemsTitle: $("problems-title"),
  problemList: $("problem-list"), grid: $("preview"), gridWrap: $("preview-wrap"),
  undoBox: $("undo-box"), undoText: $("undo-text"), undo: $("undo-button"),
  model: $("model-select"), modelInfo: $("model-info"), predict: $("predict-button"),
  progress: $("predict-progress"), progressBar: $("predict-bar"), progressText: $("predict-progress-text"),
  cancel: $("predict-cancel"), predictError: $("predict-error"),
  results: $("results"), stale: $("results-stale"), resultsBody: $("results-body"),
  range: $("threshold-range"), number: $("threshold-number"), reset: $("threshold-reset"),
  meaning: $("threshold-meaning"), scoreName: $("threshold-score-name"), download: $("download-button"),
};

// ---------------------------------------------------------------------------------------------
// pagers
// ---------------------------------------------------------------------------------------------

function makePager(nav, noun, onGo) {
  const id = nav.id;
  nav.innerHTML = `
    <span class="pager-range" id="${id}-range"></span>
    <button type="button" class="button button-small" data-go="prev">&lsaquo; Previous<span class="visually-hidden"> ${noun} page</span></button>
    <label for="${id}-input">Page<span class="visually-hidden"> of the ${noun}</span></label>
    <input type="number" id="${id}-input" min="1" step="1" value="1">
    <span id="${id}-count"></span>
    <button type="button" class="button button-small" data-go="next">Next<span class="visually-hidden"> ${noun} page</span> &rsaquo;</button>`;
  const input = nav.querySelector("input");
  const prev = nav.querySelector('[data-go="prev"]');
  const next = nav.querySelector('[data-go="next"]');
  let current = 0;
  let pages = 1;
  prev.addEventListener("click", () => onGo(current - 1));
  next.addEventListener("click", () => onGo(current + 1));
  input.addEventListener("change", () => {
    const p = parseInt(input.value, 10);
    if (!Number.isFinite(p)) { input.value = current + 1; return; }
    const target = clamp(p, 1, pages) - 1;
    if (target !== current) onGo(target); // Enter, then blur, both end here: render once
    else input.value = current + 1;
  });
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); input.dispatchEvent(new Event("change")); } });
  return {
    update(page, total) {
      pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
      current = page;
      input.max = pages;
      input.value = page + 1;
      nav.querySelector(`#${id}-count`).textContent = `of ${int(pages)}`;
      const start = total ? page * PAGE_SIZE + 1 : 0;
      nav.querySelector(`#${id}-range`).textContent =
        `${noun === "results" ? "Wafers" : "Rows"} ${int(start)}–${int(Math.min(total, (page + 1) * PAGE_SIZE))} of ${int(total)}`;
      prev.disabled = page <= 0;
      next.disabled = page >= pages - 1;
    },
  };
}

const previewPager = makePager($("preview-pager"), "preview", (p) => goToPage(p));
const resultsPager = makePager($("results-pager"), "results", (p) => {
  if (!state.result) return;
  state.result.page = clamp(p, 0, Math.ceil(state.result.order.length / PAGE_SIZE) - 1);
  renderResults();
});

// ---------------------------------------------------------------------------------------------
// step 1: bring data
// ---------------------------------------------------------------------------------------------

function looksBinary(bytes) {
  if (bytes.length >= 4 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return true;
  if (bytes.length >= 2 && ((bytes[0] === 0x50 && bytes[1] === 0x4b) || (bytes[0] === 0x1f && bytes[1] === 0x8b)
    || (bytes[0] === 0xff && bytes[1] === 0xd8))) return true;
  return bytes.includes(0);
}

async function checkOnServer(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const res = await fetch(cfg.check_url, {
      method: "POST", body: form, headers: { "X-Requested-With": "fetch", Accept: "application/json" },
    });
    let body = null;
    try { body = await res.json(); } catch { body = null; }
    return { ok: res.ok, status: res.status, body };
  } catch (err) {
    return { ok: false, status: 0, body: null, networkError: String(err) };
  }
}

function failLoad(message, problems = []) {
  const keep = state.data ? ` Nothing was loaded; ${state.data.fileName} is still in the table below.` : "";
  showError(el.loadError, message + keep, problems);
  el.loadStatus.textContent = "";
  announce(`Upload failed: ${message}`);
}

async function loadFile(file) {
  if (!file || state.loading) return;
  clearError(el.loadError);
  const name = file.name || "upload.csv";
  if (!/\.(csv|txt)$/i.test(name)) {
    failLoad(`${name}: not a CSV file. Upload a comma-separated .csv file with a header row (the template shows the layout).`);
    return;
  }
  if (file.size > cfg.max_upload_mb * MB) {
    failLoad(`${name} is ${(file.size / MB).toFixed(1)} MB, more than the ${cfg.max_upload_mb} MB limit. Split the file and try again.`);
    return;
  }
  if (file.size === 0) { failLoad(`${name}: the file is empty.`); return; }
  const head = new Uint8Array(await file.slice(0, 4096).arrayBuffer());
  if (looksBinary(head)) {
    failLoad(`${name}: not a CSV file (it looks like binary data). Upload a comma-separated .csv file with a header row.`);
    return;
  }

  state.loading = true;
  el.sample.disabled = true;
  el.loadStatus.textContent = `Reading ${name} (${(file.size / MB).toFixed(1)} MB) and checking it on the server…`;
  try {
    const checking = checkOnServer(file);
    await new Promise((r) => setTimeout(r, 0)); // let the status paint before parsing
    let table = null;
    let parseError = null;
    try { table = buildTable(await file.text(), name); } catch (err) { parseError = err; }
    const check = await checking;
    const problems = check.body?.problems ?? [];

    if (check.status === 413 || check.status === 415) {
      failLoad(check.body?.message ?? `${name} was refused (HTTP ${check.status}).`, problems);
      return;
    }
    if (parseError) {
      failLoad(`${name}: ${parseError.message}.`, problems);
      return;
    }
    if (!table.rows.length) { failLoad(`${name}: the file has a header but no data rows.`); return; }
    if (check.status === 400 && !problems.some((p) => p.row)) {
      // a problem with the whole file (columns, id column, unreadable): nothing to fix cell by cell
      failLoad(check.body?.message ?? `${name} could not be read.`, problems);
      return;
    }

    table.check = check;
    state.data = table;
    state.page = 0;
    state.active = { i: 0, c: 0 };
    state.editing = null;
    state.lastRemoved = null;
    el.undoBox.hidden = true;
    setProblems(problems, "file");
    hideResults();
    clearError(el.predictError);
    el.reviewEmpty.hidden = true;
    el.review.hidden = false;
    renderCheckSummary();
    renderPreview();
    updateSummary();
    el.loadStatus.textContent = `Loaded ${name}: ${int(table.rows.length)} rows.`;
    announce(`Loaded ${name}: ${table.rows.length} rows${problems.length ? `, ${problems.length} problems listed` : ""}.`);
  } finally {
    state.loading = false;
    el.sample.disabled = false;
  }
}

async function loadSample() {
  clearError(el.loadError);
  el.loadStatus.textContent = "Fetching the sample…";
  try {
    const res = await fetch(cfg.sample_url, { headers: { "X-Requested-With": "fetch" } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const blob = await res.blob();
    await loadFile(new File([blob], "fablens_sensor_sample.csv", { type: "text/csv" }));
  } catch (err) {
    failLoad(`The sample could not be fetched (${err.message}). Try again, or upload your own file.`);
  }
}

el.fileInput.addEventListener("change", async () => {
  const file = el.fileInput.files[0];
  await loadFile(file);
  el.fileInput.value = ""; // so picking the same file again reloads it
});
el.sample.addEventListener("click", loadSample);

// drag and drop; a drop anywhere else must not navigate away from the page (and lose edits)
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());
el.dropzone.addEventListener("dragenter", (e) => { e.preventDefault(); el.dropzone.classList.add("is-over"); });
el.dropzone.addEventListener("dragover", (e) => { e.preventDefault(); el.dropzone.classList.add("is-over"); });
el.dropzone.addEventListener("dragleave", (e) => {
  if (!el.dropzone.contains(e.relatedTarget)) el.dropzone.classList.remove("is-over");
});
el.dropzone.addEventListener("drop", (e) => {
  e.preventDefault();
  el.dropzone.classList.remove("is-over");
  const files = e.dataTransfer?.files;
  if (files?.length > 1) { failLoad("Drop one CSV file at a time."); return; }
  if (files?.length) loadFile(files[0]);
});

// ---------------------------------------------------------------------------------------------
// step 2: review, problems, editable preview
// ---------------------------------------------------------------------------------------------

/** Record problems from the server. ``rowsAre``: "file" (rows of the uploaded file) or
 *  "table" (positions in the edited table that was sent to predict). */
function setProblems(problems, rowsAre) {
  const d = state.data;
  d.problemCells = new Map();
  d.problems = problems.map((p) => {
    const q = { ...p, file: p.file ?? d.fileName };
    if (p.row && rowsAre === "table") q.row = d.rows[p.row - 1]?.orig ?? p.row;
    q.col = p.column != null ? d.header.findIndex((h) => h === p.column || h.trim() === p.column) : -1;
    if (q.col < 0 && p.column != null && d.header[0].trim() === "" && /^(id|unnamed: 0)$/i.test(p.column)) q.col = 0;
    if (q.row && q.col >= 0) d.problemCells.set(`${q.row}:${q.col}`, q);
    return q;
  });
  renderProblems();
}

function renderProblems() {
  const d = state.data;
  const open = d.problems.filter((p) => !p.fixed);
  if (!d.problems.length) { el.problems.hidden = true; el.problemList.innerHTML = ""; return; }
  el.problems.hidden = false;
  el.problemsTitle.textContent = open.length
    ? `${open.length} problem${open.length === 1 ? "" : "s"} in ${d.fileName}: fix ${open.length === 1 ? "it" : "them"} in the table (cells marked ⚠) or in the file, then predict.`
    : `All listed problems in ${d.fileName} were edited; press Predict to check again.`;
  el.problemList.innerHTML = d.problems.map((p, k) => {
    const w = where(p);
    const show = p.row && p.col >= 0 && d.rows.some((r) => r.orig === p.row)
      ? ` <button type="button" class="button button-small" data-problem="${k}">Show cell<span class="visually-hidden"> row ${p.row}, ${esc(p.column)}</span></button>` : "";
    const fixed = p.fixed ? ' <span class="check-ok">edited</span>' : "";
    return `<li${p.fixed ? ' class="is-fixed"' : ""}>${w ? `<span class="problem-where">${esc(w)}</span>: ` : ""}${esc(p.message)}${fixed}${show}</li>`;
  }).join("");
}

el.problemList.addEventListener("click", (e) => {
  const btn = e.target.closest("[data-problem]");
  if (!btn) return;
  const p = state.data.problems[+btn.dataset.problem];
  const i = state.data.rows.findIndex((r) => r.orig === p.row);
  if (i < 0) return;
  state.page = Math.floor(i / PAGE_SIZE);
  state.active = { i, c: p.col };
  renderPreview();
  focusCell(i, p.col);
});

function renderCheckSummary() {
  const { check, fileName } = state.data;
  const b = check.body;
  el.checkSummary.className = "check-summary";
  if (check.ok && b) {
    el.checkSummary.classList.add("check-ok");
    el.checkSummary.textContent = `Checked by the server: ${int(b.n_rows)} rows, ${b.layout} layout, `
      + `${int(b.n_missing)} empty cells (filled in before scoring), ${b.has_labels ? "with" : "no"} label column.`;
  } else if (check.status === 400) {
    el.checkSummary.textContent = `The server found problems in ${fileName}; they are listed below.`;
  } else {
    el.checkSummary.textContent = `The server check did not answer${check.status ? ` (HTTP ${check.status})` : ""}; `
      + "the file is shown as read in the browser and is checked again when you predict.";
  }
}

function countEdits() {
  let n = 0;
  for (const row of state.data.rows) if (row.edits) n += row.edits.size;
  return n;
}

function updateSummary() {
  const d = state.data;
  const removed = d.removed ?? 0;
  const edits = countEdits();
  const parts = [`<span id="row-count">${int(d.rows.length)} rows</span> × ${int(d.header.length)} columns`];
  if (removed > 0) parts.push(`${int(removed)} removed`);
  if (edits) parts.push(`${int(edits)} cell${edits === 1 ? "" : "s"} edited`);
  el.fileSummary.innerHTML = `${esc(d.fileName)}: ${parts.join(" · ")}`;
}

// The preview renders only the current page of rows and, across, only the columns near the
// visible part (plus a buffer): fixed column widths keep the scroll width exact, and two spacer
// cells stand in for the columns left out. Widths come from the stylesheet's variables.
const gridStyle = getComputedStyle(document.documentElement);
const px = (name, fallback) => parseFloat(gridStyle.getPropertyValue(name)) || fallback;
const RM_W = px("--grid-rm-w", 84);
const ID_W = px("--grid-id-w", 136);
const COL_W = px("--grid-col-w", 96);
const COL_BUFFER = 8;

/** Data columns (1-based, inclusive) in view now, without the buffer. */
function columnsInView() {
  const last = state.data.header.length - 1;
  const wrap = el.gridWrap;
  const width = wrap.clientWidth || 1200;
  const a = Math.floor(wrap.scrollLeft / COL_W) + 1;
  const b = Math.ceil((wrap.scrollLeft + width - RM_W - ID_W) / COL_W);
  return [clamp(a, 1, Math.max(1, last)), clamp(b, 1, last)];
}

function renderPreview() {
  const d = state.data;
  const ncol = d.header.length;
  const last = ncol - 1;
  const total = d.rows.length;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  state.page = clamp(state.page, 0, pages - 1);
  const start = state.page * PAGE_SIZE;
  const end = Math.min(total, start + PAGE_SIZE);
  const hasProblems = d.problemCells.size > 0;
  const [va, vb] = columnsInView();
  const ca = clamp(va - COL_BUFFER, 1, Math.max(1, last));
  const cb = clamp(vb + COL_BUFFER, 0, last); // cb < ca when the file has no data columns
  state.cols = [ca, cb];
  const leftW = (ca - 1) * COL_W;
  const rightW = Math.max(0, (last - cb) * COL_W);

  const cols = [`<colgroup><col style="width:${RM_W}px"><col style="width:${ID_W}px">`];
  if (leftW) cols.push(`<col style="width:${leftW}px">`);
  for (let j = ca; j <= cb; j++) cols.push(`<col style="width:${COL_W}px">`);
  if (rightW) cols.push(`<col style="width:${rightW}px">`);
  cols.push("</colgroup>");
  const spacerL = leftW ? '<td class="spacer" aria-hidden="true"></td>' : "";
  const spacerR = rightW ? '<td class="spacer" aria-hidden="true"></td>' : "";

  const idName = d.header[0].trim() || "(wafer id)";
  const head = [`<thead><tr aria-rowindex="1"><th scope="col" class="col-rm" aria-colindex="1">Row</th>`
    + `<th scope="col" class="col-id" aria-colindex="2" title="${esc(idName)}">${esc(idName)}</th>`
    + (leftW ? '<th class="spacer" aria-hidden="true"></th>' : "")];
  for (let j = ca; j <= cb; j++) {
    const name = d.header[j].trim() || `(column ${j + 1})`;
    head.push(`<th scope="col" aria-colindex="${j + 2}"${j === d.labelCol ? ' class="col-label"' : ""} title="${esc(name)}">${esc(name)}</th>`);
  }
  head.push(rightW ? '<th class="spacer" aria-hidden="true"></th>' : "", "</tr></thead><tbody>");
  const parts = [cols.join(""), head.join("")];

  const cell = (row, j, cls, text) => {
    let title = "";
    if (row.edits?.has(j)) {
      cls += " is-edited";
      const was = row.edits.get(j);
      title = `edited; was ${was === "" ? "empty" : was}`;
    }
    if (hasProblems) {
      const p = d.problemCells.get(`${row.orig}:${j}`);
      if (p) { cls += " is-problem"; title = (title ? title + "; " : "") + p.message; }
    }
    return `<td data-c="${j}" aria-colindex="${j + 2}"${cls ? ` class="${cls.trim()}"` : ""}`
      + `${title ? ` title="${esc(title)}"` : ""}>${text}</td>`;
  };

  for (let i = start; i < end; i++) {
    const row = d.rows[i];
    const cells = [`<tr data-i="${i}" aria-rowindex="${i + 2}"><td class="col-rm" data-c="-1" aria-colindex="1">`
      + `<span class="rownum">${row.orig}</span><button type="button" class="remove-row" tabindex="-1" `
      + `title="Remove this row" aria-label="Remove row ${row.orig} (${esc(row.id)})">✕</button></td>`
      + cell(row, 0, "col-id", esc(row.id)) + spacerL];
    for (let j = ca; j <= cb; j++) {
      const t = row.text?.get(j);
      let text;
      if (t !== undefined) text = esc(t);
      else { const v = row.vals[j]; text = v === v ? String(v) : ""; }
      cells.push(cell(row, j, j === d.labelCol ? "col-label" : "", text));
    }
    cells.push(spacerR, "</tr>");
    parts.push(cells.join(""));
  }
  parts.push("</tbody>");
  el.grid.setAttribute("aria-rowcount", total + 1);
  el.grid.setAttribute("aria-colcount", ncol + 1);
  el.grid.style.width = `${RM_W + ID_W + last * COL_W}px`;
  el.grid.innerHTML = parts.join("");
  previewPager.update(state.page, total);

  // keep one tab stop in the grid
  if (state.active.i < start || state.active.i >= end) state.active = { i: start, c: state.active.c };
  const target = cellTarget(state.active.i, state.active.c) ?? cellTarget(state.active.i, 0);
  if (target) target.setAttribute("tabindex", "0");
}

/** Re-render when scrolling sideways leaves the rendered columns; focus stays where it was. */
let scrollQueued = false;
el.gridWrap.addEventListener("scroll", () => {
  if (scrollQueued || !state.data) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    const [va, vb] = columnsInView();
    const [ca, cb] = state.cols;
    if (va >= ca && vb <= cb) return;
    const focused = el.grid.contains(document.activeElement) ? { ...state.active } : null;
    if (state.editing) commitEdit(false);
    renderPreview();
    if (focused) cellTarget(focused.i, focused.c)?.focus({ preventScroll: true });
  });
}, { passive: true });

/** Make sure data column ``c`` is rendered, scrolling it into view when it is not. */
function ensureColumn(c) {
  if (c < 1 || (c >= state.cols[0] && c <= state.cols[1])) return;
  const wrap = el.gridWrap;
  const room = (wrap.clientWidth || 1200) - RM_W - ID_W;
  wrap.scrollLeft = Math.max(0, (c - 1) * COL_W - (room - COL_W) / 2);
  renderPreview();
}

function goToPage(p, focusRow = null) {
  const pages = Math.max(1, Math.ceil(state.data.rows.length / PAGE_SIZE));
  state.page = clamp(p, 0, pages - 1);
  if (focusRow !== null) state.active = { i: focusRow, c: state.active.c };
  renderPreview();
  announce(`Preview page ${state.page + 1} of ${pages}`);
}

/** The focusable element of a grid cell: the remove button for column -1, else the cell. */
function cellTarget(i, c) {
  const td = el.grid.querySelector(`tr[data-i="${i}"] > [data-c="${c}"]`);
  if (!td) return null;
  return c === -1 ? td.querySelector("button") : td;
}

function focusCell(i, c) {
  ensureColumn(c);
  if (c <= 0 && el.gridWrap.scrollLeft > 0) { // the id column: show the first sensors beside it
    el.gridWrap.scrollLeft = 0;
    renderPreview();
  }
  const old = el.grid.querySelector('[tabindex="0"]');
  if (old) { if (old.tagName === "BUTTON") old.setAttribute("tabindex", "-1"); else old.removeAttribute("tabindex"); }
  state.active = { i, c };
  const target = cellTarget(i, c);
  if (!target) return;
  target.setAttribute("tabindex", "0");
  target.focus({ preventScroll: true });
  keepVisible(c === -1 ? target.parentElement : target);
}

/** Scroll the cell into view without letting the sticky columns or header cover it. */
function keepVisible(td) {
  const wrap = el.gridWrap;
  const w = wrap.getBoundingClientRect();
  const r = td.getBoundingClientRect();
  const idCell = el.grid.querySelector("thead .col-id");
  const stickyRight = idCell && !td.classList.contains("col-id") && !td.classList.contains("col-rm")
    ? idCell.getBoundingClientRect().right : w.left;
  const headBottom = el.grid.tHead ? el.grid.tHead.getBoundingClientRect().bottom : w.top;
  if (r.left < stickyRight) wrap.scrollLeft -= stickyRight - r.left + 4;
  else if (r.right > w.right - 16) wrap.scrollLeft += r.right - w.right + 20;
  if (r.top < headBottom) wrap.scrollTop -= headBottom - r.top + 2;
  else if (r.bottom > w.bottom - 16) wrap.scrollTop += r.bottom - w.bottom + 20;
}

function startEdit(td, initial = null) {
  if (state.editing) commitEdit(false);
  const i = +td.parentElement.dataset.i;
  const c = +td.dataset.c;
  state.active = { i, c };
  state.editing = { td, i, c, before: cellText(state.data.rows[i], c) };
  td.setAttribute("contenteditable", "plaintext-only");
  if (td.contentEditable !== "plaintext-only") td.setAttribute("contenteditable", "true");
  td.setAttribute("tabindex", "0");
  if (initial !== null) td.textContent = initial;
  td.focus({ preventScroll: true });
  keepVisible(td);
  const range = document.createRange();
  range.selectNodeContents(td);
  if (initial !== null) range.collapse(false);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}

function commitEdit(keepFocus, cancel = false) {
  const ed = state.editing;
  if (!ed) return;
  state.editing = null;
  const { td, i, c, before } = ed;
  td.removeAttribute("contenteditable");
  const row = state.data.rows[i];
  const value = cancel ? before : td.textContent.replace(/[\r\n]+/g, " ").trim();
  if (value !== before) setCell(row, c, value);
  paintCell(td, row, c);
  if (keepFocus) td.focus({ preventScroll: true });
}

function setCell(row, c, value) {
  const d = state.data;
  const before = cellText(row, c);
  row.edits ??= new Map();
  if (!row.edits.has(c)) row.edits.set(c, before);
  else if (row.edits.get(c) === value) row.edits.delete(c);
  if (!row.edits.size) row.edits = null;
  writeCell(row, c, value);
  const key = `${row.orig}:${c}`;
  const p = d.problemCells.get(key);
  if (isValidCell(c, value)) {
    if (p) { if (p.message) p.fixed = true; d.problemCells.delete(key); renderProblems(); }
  } else if (!p) {
    d.problemCells.set(key, { message: c === 0 ? "the wafer id is empty" : `'${value}' is not a number`, local: true });
  }
  updateSummary();
  markStale("The table was edited after these results were computed. Press Predict to score the edited table.");
  announce(`${d.header[c].trim() || "wafer id"}, row ${row.orig}: ${value === "" ? "empty" : value}`);
}

function paintCell(td, row, c) {
  const d = state.data;
  td.textContent = cellText(row, c);
  const titles = [];
  td.classList.toggle("is-edited", !!row.edits?.has(c));
  if (row.edits?.has(c)) { const was = row.edits.get(c); titles.push(`edited; was ${was === "" ? "empty" : was}`); }
  const p = d.problemCells.get(`${row.orig}:${c}`);
  td.classList.toggle("is-problem", !!p);
  if (p) titles.push(p.message);
  if (titles.length) td.title = titles.join("; "); else td.removeAttribute("title");
}

function removeRow(i) {
  const d = state.data;
  if (state.editing) commitEdit(false);
  const [row] = d.rows.splice(i, 1);
  d.removed = (d.removed ?? 0) + 1;
  state.lastRemoved = { row, i };
  el.undoText.textContent = `Removed row ${row.orig} (${row.id}).`;
  el.undoBox.hidden = false;
  const newI = Math.min(i, d.rows.length - 1);
  state.active = { i: Math.max(newI, 0), c: -1 };
  renderPreview();
  renderProblems();
  updateSummary();
  markStale("Rows were removed after these results were computed. Press Predict to score the edited table.");
  if (d.rows.length) focusCell(state.active.i, -1);
  announce(`Removed row ${row.orig}. ${d.rows.length} rows left.`);
}

el.undo.addEventListener("click", () => {
  const last = state.lastRemoved;
  if (!last || !state.data) return;
  state.data.rows.splice(last.i, 0, last.row);
  state.data.removed -= 1;
  state.lastRemoved = null;
  el.undoBox.hidden = true;
  state.page = Math.floor(last.i / PAGE_SIZE);
  state.active = { i: last.i, c: -1 };
  renderPreview();
  renderProblems();
  updateSummary();
  focusCell(last.i, -1);
  announce(`Row ${last.row.orig} is back.`);
});

el.grid.addEventListener("click", (e) => {
  const btn = e.target.closest(".remove-row");
  if (btn) { removeRow(+btn.closest("tr").dataset.i); return; }
  const td = e.target.closest("td[data-c]");
  if (!td || td.dataset.c === "-1" || td.isContentEditable) return;
  startEdit(td);
});

el.grid.addEventListener("focusout", (e) => {
  if (state.editing && e.target === state.editing.td) commitEdit(false);
});

el.grid.addEventListener("keydown", (e) => {
  const d = state.data;
  if (!d) return;
  if (state.editing) {
    if (e.key === "Enter") { e.preventDefault(); commitEdit(true); }
    else if (e.key === "Escape") { e.preventDefault(); commitEdit(true, true); }
    return;
  }
  const target = e.target.closest("td[data-c]");
  if (!target) return;
  const i = +target.parentElement.dataset.i;
  const c = +target.dataset.c;
  const ncol = d.header.length;
  const start = state.page * PAGE_SIZE;
  const end = Math.min(d.rows.length, start + PAGE_SIZE);
  const move = (ni, nc) => {
    e.preventDefault();
    nc = clamp(nc, -1, ncol - 1);
    if (ni < 0 || ni >= d.rows.length) return;
    if (ni < start || ni >= end) { state.active = { i: ni, c: nc }; goToPage(Math.floor(ni / PAGE_SIZE)); }
    focusCell(ni, nc);
  };
  switch (e.key) {
    case "ArrowRight": move(i, c + 1); return;
    case "ArrowLeft": move(i, c - 1); return;
    case "ArrowDown": move(i + 1, c); return;
    case "ArrowUp": move(i - 1, c); return;
    case "Home": move(e.ctrlKey ? start : i, e.ctrlKey ? c : 0); return;
    case "End": move(e.ctrlKey ? end - 1 : i, e.ctrlKey ? c : ncol - 1); return;
    case "PageDown": move(Math.min(d.rows.length - 1, i + PAGE_SIZE), c); return;
    case "PageUp": move(Math.max(0, i - PAGE_SIZE), c); return;
    default: break;
  }
  if (c === -1) return; // the remove button handles Enter and Space itself
  if (e.key === "Enter" || e.key === "F2") { e.preventDefault(); startEdit(target); return; }
  if (e.key.length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey) { e.preventDefault(); startEdit(target, e.key); }
});

// ---------------------------------------------------------------------------------------------
// step 3: predict
// ---------------------------------------------------------------------------------------------

function modelByName(name) { return cfg.models.find((m) => m.name === name) ?? cfg.models[0]; }

function renderModelInfo() {
  const m = modelByName(el.model.value);
  const cv = m.cv ?? {};
  const metrics = [cv.roc_auc != null ? `ROC AUC ${cv.roc_auc.toFixed(3)}` : null,
    cv.pr_auc != null ? `PR AUC ${cv.pr_auc.toFixed(3)}` : null].filter(Boolean).join(", ");
  el.modelInfo.textContent = `${m.version}: scores ${m.score === "fault_probability" ? "the probability that a wafer fails" : "how unusual a wafer looks (anomaly score)"}. `
    + `Default threshold ${fmtThreshold(m.threshold)}, set for about ${pct(m.target_far)} false alarms on good wafers.`
    + (metrics ? ` Cross-validated ${metrics}.` : "");
}
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
  el.progress.hidden = !busy;
}

function predict() {
  clearError(el.predictError);
  if (state.editing) commitEdit(false);
  const d = state.data;
  if (!d) {
    showError(el.predictError, "Load a file first: choose a CSV in step 1, or try the sample.");
    el.fileInput.focus();
    return;
  }
  if (!d.rows.length) { showError(el.predictError, "Every row was removed. Undo a removal or load a file."); return; }
  const csv = tableToCSV(d);
  const blob = new Blob([csv], { type: "text/csv" });
  if (blob.size > cfg.max_upload_mb * MB) {
    showError(el.predictError, `The table is ${(blob.size / MB).toFixed(1)} MB as CSV, more than the ${cfg.max_upload_mb} MB limit. Remove rows or split the file.`);
    return;
  }
  const modelName = el.model.value;
  const form = new FormData();
  form.append("file", blob, d.fileName);
  form.append("model", modelName);
  const r = state.result;
  const keepThreshold = r && r.model.name === modelName && r.customThreshold ? r.threshold : null;
  if (keepThreshold !== null) form.append("threshold", String(keepThreshold));

  const n = d.rows.length;
  const xhr = new XMLHttpRequest();
  state.xhr = xhr;
  xhr.open("POST", cfg.predict_url);
  xhr.setRequestHeader("X-Requested-With", "fetch");
  xhr.setRequestHeader("Accept", "application/json");
  setBusy(true);
  el.progressBar.value = 0;
  el.progressText.textContent = `Uploading ${int(n)} wafers…`;
  xhr.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    el.progressBar.value = Math.round((100 * e.loaded) / e.total);
    el.progressText.textContent = `Uploading ${int(n)} wafers: ${(e.loaded / MB).toFixed(1)} of ${(e.total / MB).toFixed(1)} MB`;
  });
  xhr.upload.addEventListener("load", () => {
    el.progressBar.removeAttribute("value"); // indeterminate while the server scores
    el.progressText.textContent = `Scoring ${int(n)} wafers with ${modelName}…`;
  });
  xhr.addEventListener("load", () => {
    state.xhr = null;
    setBusy(false);
    let body = null;
    try { body = parseJSON(xhr.responseText); } catch { body = null; }
    if (xhr.status === 200 && body?.predictions) {
      showResults(body, keepThreshold !== null);
      return;
    }
    let message = body?.message ?? `The server answered HTTP ${xhr.status}. Your table is unchanged; try again`;
    if (!/[.!?]$/.test(message)) message += ".";
    const problems = body?.problems ?? [];
    if (problems.some((p) => p.row)) {
      setProblems(problems, "table");
      renderPreview();
      showError(el.predictError, `${message} Your edits are kept: the problems are listed and marked in step 2.`);
    } else {
      showError(el.predictError, `${message} Your edits are kept.`, problems);
    }
    announce(`Prediction failed: ${message}`);
  });
  xhr.addEventListener("error", () => {
    state.xhr = null;
    setBusy(false);
    showError(el.predictError, "Could not reach the server. Your table and edits are unchanged; try again.");
  });
  xhr.addEventListener("abort", () => {
    state.xhr = null;
    setBusy(false);
    el.progressText.textContent = "";
    announce("Prediction cancelled. Your table is unchanged.");
  });
  xhr.send(form);
}

el.predict.addEventListener("click", predict);
el.cancel.addEventListener("click", () => state.xhr?.abort());

// ---------------------------------------------------------------------------------------------
// results
// ---------------------------------------------------------------------------------------------

/** Share of good validation wafers scoring at or above ``t`` (linear interpolation in the
 *  stored quantiles, as np.interp does on the server). */
export function falseAlarmRate(quantiles, t) {
  const q = quantiles;
  const n = q.length;
  if (!n) return NaN;
  if (t < q[0]) return 1;
  if (t >= q[n - 1]) return 0;
  let lo = 0;
  let hi = n - 1; // q[lo] <= t < q[hi]
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (q[mid] <= t) lo = mid; else hi = mid; }
  const span = q[hi] - q[lo];
  const level = (lo + (span > 0 ? (t - q[lo]) / span : 0)) / (n - 1);
  return 1 - level;
}

function niceCeil(x) {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return Math.ceil(x / p * 2) / 2 * p;
}

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

function showResults(resp, keepCustom) {
  const model = modelByName(resp.model);
  const scoreKey = model.role === "classifier" ? "fault_probability" : "anomaly_score";
  const preds = resp.predictions;
  const order = preds.map((_, k) => k);
  const score = (k) => preds[k][scoreKey] ?? -Infinity;
  order.sort((a, b) => score(b) - score(a) || a - b);
  state.result = { resp, model, scoreKey, threshold: resp.threshold, order, page: 0, customThreshold: keepCustom };

  let max = 1;
  if (scoreKey !== "fault_probability") {
    let top = Math.max(resp.default_threshold, model.quantiles[model.quantiles.length - 1] ?? 0);
    for (const p of preds) if (p[scoreKey] > top) top = p[scoreKey];
    max = niceCeil(top * 1.05);
  }
  el.range.min = 0;
  el.range.max = max;
  el.range.step = max / 1000;
  el.number.min = 0;
  el.number.step = max <= 2 ? 0.001 : 0.01;
  el.scoreName.textContent = scoreKey === "fault_probability" ? "fault probability" : "anomaly score";
  el.range.setAttribute("aria-valuetext", "");

  $("results-id-head").textContent = resp.id_column && resp.id_column !== "id" ? resp.id_column : "Wafer";
  $("card-scored").textContent = int(resp.n_rows);
  $("card-model").textContent = resp.model;
  $("card-version").textContent = resp.model_version;
  $("card-imputed").textContent = int(resp.imputed_cells);
  el.stale.hidden = true;
  el.results.hidden = false;
  applyThreshold(resp.threshold, { fromResponse: true });
  announce(`Scored ${resp.n_rows} wafers; ${countFlagged()} flagged.`);
  el.results.scrollIntoView({ block: "start" });
  if (document.activeElement === document.body || document.activeElement === el.predict) {
    el.results.focus({ preventScroll: true }); // keyboard users continue from the results
  }
}

function countFlagged() {
  const r = state.result;
  let n = 0;
  for (const p of r.resp.predictions) if (p[r.scoreKey] >= r.threshold) n++;
  return n;
}

function applyThreshold(t, { fromResponse = false, source = null } = {}) {
  const r = state.result;
  if (!r || !Number.isFinite(t)) return;
  r.threshold = t;
  if (!fromResponse) r.customThreshold = Math.abs(t - r.resp.default_threshold) > 1e-12;
  if (source !== el.range) el.range.value = String(t);
  if (source !== el.number) el.number.value = fmtThreshold(t);
  el.range.setAttribute("aria-valuetext", fmtThreshold(t));

  const n = r.resp.predictions.length;
  const flagged = countFlagged();
  const far = falseAlarmRate(r.model.quantiles, t);
  const isDefault = Math.abs(t - r.resp.default_threshold) < 5e-5;
  $("card-flagged").textContent = int(flagged);
  $("card-flagged-share").textContent = `${pct(n ? flagged / n : 0)} of the wafers scored`;
  $("card-threshold").textContent = fmtThreshold(t);
  $("card-threshold-sub").textContent = isDefault ? `the default (${pct(r.model.target_far)} false-alarm target)`
    : `custom; default ${fmtThreshold(r.resp.default_threshold)}`;
  el.reset.disabled = isDefault;
  el.meaning.innerHTML = `At this threshold about <strong>${pct(far)}</strong> of good wafers are flagged (validation data). `
    + `In this file <strong>${int(flagged)} of ${int(n)}</strong> wafers score ${fmtThreshold(t)} or more and are flagged.`;
  renderResults();
}

el.range.addEventListener("input", () => applyThreshold(parseFloat(el.range.value), { source: el.range }));
el.number.addEventListener("input", () => {
  const t = parseFloat(el.number.value);
  if (Number.isFinite(t)) applyThreshold(t, { source: el.number });
});
el.number.addEventListener("change", () => {
  if (!Number.isFinite(parseFloat(el.number.value)) && state.result) el.number.value = fmtThreshold(state.result.threshold);
});
el.reset.addEventListener("click", () => {
  if (!state.result) return;
  applyThreshold(state.result.resp.default_threshold);
  announce(`Threshold reset to the default, ${fmtThreshold(state.result.threshold)}.`);
});

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
    const fault = p[r.scoreKey] >= r.threshold;
    const tops = p.top_sensors ?? [];
    const maxC = Math.max(0, ...tops.map((s) => s.contribution));
    const decider = (key) => (key === r.scoreKey ? " score-decider" : "");
    html.push(`<tr${fault ? ' class="is-fault"' : ""}>`
      + `<td class="wafer-id">${esc(p.id)}</td>`
      + `<td class="num${decider("fault_probability")}">${fmtScore(p.fault_probability)}</td>`
      + `<td class="num${decider("anomaly_score")}">${fmtScore(p.anomaly_score)}</td>`
      + `<td>${fault ? `<span class="decision decision-fault">${ICON_FAULT}FAULT</span>` : `<span class="decision decision-ok">${ICON_OK}ok</span>`}</td>`
      + `<td class="num">${int(p.imputed_cells)}</td>`
      + [0, 1, 2].map((t) => sensorCell(tops[t], maxC)).join("")
      + "</tr>");
  }
  el.resultsBody.innerHTML = html.join("");
  resultsPager.update(r.page, r.order.length);
}

// results CSV, built in the browser from every row with the current threshold's decisions
const CSV_COLUMNS = ["id", "fault_probability", "anomaly_score", "is_fault", "threshold", "model", "imputed_cells",
  ...[1, 2, 3].flatMap((k) => [`top_sensor_${k}`, `top_sensor_${k}_contribution`, `top_sensor_${k}_value`])];

function resultsCSV() {
  const r = state.result;
  const lines = [CSV_COLUMNS.join(",")];
  for (const p of r.resp.predictions) {
    const tops = p.top_sensors ?? [];
    const cells = [csvField(p.id), fmtCSVNumber(p.fault_probability), fmtCSVNumber(p.anomaly_score),
      p[r.scoreKey] >= r.threshold ? "True" : "False", String(r.threshold), csvField(r.resp.model_version),
      String(p.imputed_cells)];
    for (let k = 0; k < 3; k++) {
      const s = tops[k];
      cells.push(s ? csvField(s.sensor) : "", s ? fmtCSVNumber(s.contribution) : "", s ? fmtCSVNumber(s.value) : "");
    }
    lines.push(cells.join(","));
  }
  return lines.join("\n") + "\n";
}

el.download.addEventListener("click", () => {
  if (!state.result) return;
  const blob = new Blob([resultsCSV()], { type: "text/csv" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  const base = (state.data?.fileName ?? "sensor").replace(/\.[^.]+$/, "");
  a.href = url;
  a.download = `${base}_results.csv`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  announce(`Downloading ${state.result.resp.predictions.length} result rows.`);
});

// ---------------------------------------------------------------------------------------------
// API box: copy buttons and a real example request
// ---------------------------------------------------------------------------------------------

document.querySelectorAll(".copy-button").forEach((btn) => {
  btn.addEventListener("click", async () => {
    const text = $(btn.dataset.copy).textContent;
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents($(btn.dataset.copy));
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      btn.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => { btn.textContent = "Copy"; }, 2000);
  });
});

$("api").addEventListener("keydown", (e) => {
  if (e.key === "Escape" && $("api").open) { $("api").open = false; $("api").querySelector("summary").focus(); }
});

$("api-try").addEventListener("click", async () => {
  const out = $("api-response");
  const note = $("api-response-note");
  const body = $("curl-json").textContent.match(/-d '([\s\S]+)'\s*$/)[1];
  out.textContent = "Sending…";
  try {
    const res = await fetch(cfg.predict_url, {
      method: "POST", body, headers: { "Content-Type": "application/json", Accept: "application/json" },
    });
    out.textContent = `HTTP ${res.status}\n${JSON.stringify(await res.json(), null, 2)}`;
    note.textContent = "The real response from this server to the JSON example above (the run is recorded in History).";
  } catch (err) {
    out.textContent = `The request failed: ${err.message}`;
  }
});
