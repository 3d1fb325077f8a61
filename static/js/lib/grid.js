// The editable, paged CSV grid of step 2 ("Review and edit").
//
// The table lives in JS arrays (one Float64Array of values per row, text only where a cell is
// not a plain number), so 10,000 x 591 stays light; only the current page of rows, and across
// only the columns near the view, are in the DOM. Edits are written into those arrays, so they
// survive paging, a failed prediction and any threshold change. The first column is the id.
import { csvField, CsvError, parseCSV } from "./csv.js";
import { makePager } from "./pager.js";
import { announce, clamp, count, esc, int, where } from "./util.js";

// ---------------------------------------------------------------------------------------------
// the table model
// ---------------------------------------------------------------------------------------------

/** Build the in-memory table from CSV text. ``rules``: {numberPattern, labelColumns} from the
 *  server (what counts as a number, which columns are labels). */
export function buildTable(text, fileName, rules) {
  const number = new RegExp(rules.numberPattern);
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
      if (Number.isFinite(v) && number.test(s)) { vals[j] = v; continue; }
      vals[j] = NaN;
      (textCells ??= new Map()).set(j, s);
    }
    rows.push({ orig: rows.length + 1, id: fields[0] ?? "", vals, text: textCells, edits: null });
  });
  if (header === null) throw new CsvError("the file is empty");
  const labelCol = header.findIndex((h) => (rules.labelColumns ?? []).includes(h.trim()));
  return { fileName, header, rows, labelCol, number, problems: [], problemCells: new Map(), removed: 0 };
}

function cellText(row, j) {
  if (j === 0) return row.id;
  const t = row.text?.get(j);
  if (t !== undefined) return t;
  const v = row.vals[j];
  return v === v ? String(v) : "";
}

/** A cell as a number (NaN when empty or not a number); the id column (0) is read from its text. */
export function cellNumber(data, row, j) {
  if (j !== 0) return row.vals[j];
  const s = row.id.trim();
  return s !== "" && data.number.test(s) ? +s : NaN;
}

function writeCell(data, row, j, s) {
  if (j === 0) { row.id = s; return; }
  const v = +s;
  if (s === "") { row.vals[j] = NaN; row.text?.delete(j); }
  else if (Number.isFinite(v) && data.number.test(s)) { row.vals[j] = v; row.text?.delete(j); }
  else { row.vals[j] = NaN; (row.text ??= new Map()).set(j, s); }
}

function isValidCell(data, j, s) {
  if (j === 0) return s.trim() !== "";
  return s.trim() === "" || (data.number.test(s) && Number.isFinite(+s));
}

/** The current table (edits applied, removed rows left out) as CSV text. */
export function tableToCSV(data) {
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
// the grid component
// ---------------------------------------------------------------------------------------------

// Column widths come from the stylesheet's variables; fixed widths keep the scroll width exact
// and two spacer cells stand in for the columns left out.
const gridStyle = getComputedStyle(document.documentElement);
const px = (name, fallback) => parseFloat(gridStyle.getPropertyValue(name)) || fallback;
const RM_W = px("--grid-rm-w", 84);
const ID_W = px("--grid-id-w", 136);
const COL_W = px("--grid-col-w", 96);
const COL_BUFFER = 8;

/** The grid of step 2. ``el``: {grid, wrap, pager, summary, problems, problemsTitle,
 *  problemList, undoBox, undoText, undo}. ``idNoun`` names the id column ("wafer id");
 *  ``onChange(message)`` is told when an edit or a removal makes earlier results stale. */
export function createGrid(el, { pageSize = 50, idNoun = "id", onChange = () => {} } = {}) {
  const state = {
    data: null,
    page: 0,
    cols: [1, 0], // data columns rendered (inclusive)
    active: { i: 0, c: 0 }, // keyboard position: row index in data.rows, column (-1 = remove)
    editing: null, // {td, i, c, before}
    lastRemoved: null, // {row, i} for Undo
  };
  const pager = makePager(el.pager, { noun: "preview", itemLabel: "Rows", pageSize, onGo: (p) => goToPage(p) });

  // -- problems ---------------------------------------------------------------------------------
  /** Record problems from the server. ``rowsAre``: "file" (rows of the uploaded file) or
   *  "table" (positions in the edited table that was sent). */
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
    state.page = Math.floor(i / pageSize);
    state.active = { i, c: p.col };
    render();
    focusCell(i, p.col);
  });

  // -- summary ------------------------------------------------------------------------------------
  function editCount() {
    let n = 0;
    for (const row of state.data?.rows ?? []) if (row.edits) n += row.edits.size;
    return n;
  }

  function updateSummary() {
    const d = state.data;
    const edits = editCount();
    const parts = [`<span id="row-count">${count(d.rows.length, "row")}</span> × ${count(d.header.length, "column")}`];
    if (d.removed > 0) parts.push(`${int(d.removed)} removed`);
    if (edits) parts.push(`${count(edits, "cell")} edited`);
    el.summary.innerHTML = `${esc(d.fileName)}: ${parts.join(" · ")}`;
  }

  // -- rendering ------------------------------------------------------------------------------------
  /** Data columns (1-based, inclusive) in view now, without the buffer. */
  function columnsInView() {
    const last = state.data.header.length - 1;
    const width = el.wrap.clientWidth || 1200;
    const a = Math.floor(el.wrap.scrollLeft / COL_W) + 1;
    const b = Math.ceil((el.wrap.scrollLeft + width - RM_W - ID_W) / COL_W);
    return [clamp(a, 1, Math.max(1, last)), clamp(b, 1, last)];
  }

  function render() {
    const d = state.data;
    const ncol = d.header.length;
    const last = ncol - 1;
    const total = d.rows.length;
    const pages = Math.max(1, Math.ceil(total / pageSize));
    state.page = clamp(state.page, 0, pages - 1);
    const start = state.page * pageSize;
    const end = Math.min(total, start + pageSize);
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

    const idName = d.header[0].trim() || `(${idNoun})`;
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
    pager.update(state.page, total);

    // keep one tab stop in the grid
    if (state.active.i < start || state.active.i >= end) state.active = { i: start, c: state.active.c };
    const target = cellTarget(state.active.i, state.active.c) ?? cellTarget(state.active.i, 0);
    if (target) target.setAttribute("tabindex", "0");
  }

  /** Re-render when scrolling sideways leaves the rendered columns; focus stays where it was. */
  let scrollQueued = false;
  el.wrap.addEventListener("scroll", () => {
    if (scrollQueued || !state.data) return;
    scrollQueued = true;
    requestAnimationFrame(() => {
      scrollQueued = false;
      const [va, vb] = columnsInView();
      const [ca, cb] = state.cols;
      if (va >= ca && vb <= cb) return;
      const focused = el.grid.contains(document.activeElement) ? { ...state.active } : null;
      if (state.editing) commitEdit(false);
      render();
      if (focused) cellTarget(focused.i, focused.c)?.focus({ preventScroll: true });
    });
  }, { passive: true });

  /** Make sure data column ``c`` is rendered, scrolling it into view when it is not. */
  function ensureColumn(c) {
    if (c < 1 || (c >= state.cols[0] && c <= state.cols[1])) return;
    const room = (el.wrap.clientWidth || 1200) - RM_W - ID_W;
    el.wrap.scrollLeft = Math.max(0, (c - 1) * COL_W - (room - COL_W) / 2);
    render();
  }

  function goToPage(p) {
    const pages = Math.max(1, Math.ceil(state.data.rows.length / pageSize));
    state.page = clamp(p, 0, pages - 1);
    render();
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
    if (c <= 0 && el.wrap.scrollLeft > 0) { // the id column: show the first columns beside it
      el.wrap.scrollLeft = 0;
      render();
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
    const w = el.wrap.getBoundingClientRect();
    const r = td.getBoundingClientRect();
    const idCell = el.grid.querySelector("thead .col-id");
    const stickyRight = idCell && !td.classList.contains("col-id") && !td.classList.contains("col-rm")
      ? idCell.getBoundingClientRect().right : w.left;
    const headBottom = el.grid.tHead ? el.grid.tHead.getBoundingClientRect().bottom : w.top;
    if (r.left < stickyRight) el.wrap.scrollLeft -= stickyRight - r.left + 4;
    else if (r.right > w.right - 16) el.wrap.scrollLeft += r.right - w.right + 20;
    if (r.top < headBottom) el.wrap.scrollTop -= headBottom - r.top + 2;
    else if (r.bottom > w.bottom - 16) el.wrap.scrollTop += r.bottom - w.bottom + 20;
  }

  // -- editing --------------------------------------------------------------------------------------
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
    writeCell(d, row, c, value);
    const key = `${row.orig}:${c}`;
    const p = d.problemCells.get(key);
    if (isValidCell(d, c, value)) {
      if (p) { if (p.message) p.fixed = true; d.problemCells.delete(key); renderProblems(); }
    } else if (!p) {
      d.problemCells.set(key, { message: c === 0 ? `the ${idNoun} is empty` : `'${value}' is not a number`, local: true });
    }
    updateSummary();
    onChange("The table was edited after these results were computed. Press Predict to score the edited table.");
    announce(`${d.header[c].trim() || idNoun}, row ${row.orig}: ${value === "" ? "empty" : value}`);
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

  // -- removing rows --------------------------------------------------------------------------------
  function removeRow(i) {
    const d = state.data;
    if (state.editing) commitEdit(false);
    const [row] = d.rows.splice(i, 1);
    d.removed += 1;
    state.lastRemoved = { row, i };
    el.undoText.textContent = `Removed row ${row.orig} (${row.id}).`;
    el.undoBox.hidden = false;
    const newI = Math.min(i, d.rows.length - 1);
    state.active = { i: Math.max(newI, 0), c: -1 };
    render();
    renderProblems();
    updateSummary();
    onChange("Rows were removed after these results were computed. Press Predict to score the edited table.");
    if (d.rows.length) focusCell(state.active.i, -1);
    announce(`Removed row ${row.orig}. ${count(d.rows.length, "row")} left.`);
  }

  el.undo.addEventListener("click", () => {
    const last = state.lastRemoved;
    if (!last || !state.data) return;
    state.data.rows.splice(last.i, 0, last.row);
    state.data.removed -= 1;
    state.lastRemoved = null;
    el.undoBox.hidden = true;
    state.page = Math.floor(last.i / pageSize);
    state.active = { i: last.i, c: -1 };
    render();
    renderProblems();
    updateSummary();
    focusCell(last.i, -1);
    announce(`Row ${last.row.orig} is back.`);
  });

  // -- mouse and keyboard ---------------------------------------------------------------------------
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
    const start = state.page * pageSize;
    const end = Math.min(d.rows.length, start + pageSize);
    const move = (ni, nc) => {
      e.preventDefault();
      nc = clamp(nc, -1, ncol - 1);
      if (ni < 0 || ni >= d.rows.length) return;
      if (ni < start || ni >= end) { state.active = { i: ni, c: nc }; goToPage(Math.floor(ni / pageSize)); }
      focusCell(ni, nc);
    };
    switch (e.key) {
      case "ArrowRight": move(i, c + 1); return;
      case "ArrowLeft": move(i, c - 1); return;
      case "ArrowDown": move(i + 1, c); return;
      case "ArrowUp": move(i - 1, c); return;
      case "Home": move(e.ctrlKey ? start : i, e.ctrlKey ? c : 0); return;
      case "End": move(e.ctrlKey ? end - 1 : i, e.ctrlKey ? c : ncol - 1); return;
      case "PageDown": move(Math.min(d.rows.length - 1, i + pageSize), c); return;
      case "PageUp": move(Math.max(0, i - pageSize), c); return;
      default: break;
    }
    if (c === -1) return; // the remove button handles Enter and Space itself
    if (e.key === "Enter" || e.key === "F2") { e.preventDefault(); startEdit(target); return; }
    if (e.key.length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey) { e.preventDefault(); startEdit(target, e.key); }
  });

  // -- the component's interface --------------------------------------------------------------------
  return {
    get data() { return state.data; },
    /** Show a new table (and the server's problems with it); edits of the old one are gone. */
    load(data, problems = []) {
      state.data = data;
      state.page = 0;
      state.active = { i: 0, c: 0 };
      state.editing = null;
      state.lastRemoved = null;
      el.undoBox.hidden = true;
      setProblems(problems, "file");
      render();
      updateSummary();
    },
    setProblems(problems, rowsAre) { setProblems(problems, rowsAre); render(); },
    /** Finish an edit in progress (before sending the table). */
    commit() { if (state.editing) commitEdit(false); },
    toCSV() { return tableToCSV(state.data); },
    /** How many cells were edited and rows removed (recorded with the run). */
    changes() { return { editedCells: editCount(), removedRows: state.data?.removed ?? 0 }; },
    /** True when the user changed anything (edits or removed rows): ask before replacing it. */
    hasChanges() { return !!state.data && (editCount() > 0 || state.data.removed > 0); },
  };
}
