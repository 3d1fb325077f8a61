// Sortable table headers (a button per column, aria-sort on the sorted one) and a stable,
// allocation-light index sort for lists of up to tens of thousands of rows.
import { esc } from "./util.js";

const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

/**
 * Sort ``indices`` (an array of item numbers) by ``value(k)``: numbers before text, missing
 * values (null, undefined, NaN, "") last in either direction, ties kept in their given order.
 * Returns a new array.
 */
export function sortIndices(indices, value, descending = false) {
  const n = indices.length;
  const keys = new Array(n);
  let numeric = true;
  for (let t = 0; t < n; t++) {
    const v = value(indices[t]);
    keys[t] = v;
    if (v != null && v !== "" && typeof v !== "number") numeric = false;
  }
  const missing = (v) => v == null || v === "" || (typeof v === "number" && Number.isNaN(v));
  const sign = descending ? -1 : 1;
  const pos = Array.from({ length: n }, (_, t) => t);
  pos.sort((a, b) => {
    const x = keys[a];
    const y = keys[b];
    const mx = missing(x);
    const my = missing(y);
    if (mx || my) return mx === my ? a - b : mx ? 1 : -1;
    let c;
    if (numeric) c = x - y;
    else if (typeof x === "number" && typeof y === "number") c = x - y;
    else c = collator.compare(String(x), String(y));
    return c ? sign * c : a - b;
  });
  return pos.map((t) => indices[t]);
}

/**
 * Render ``columns`` into ``thead`` as one header row; sortable ones get a button that sorts on
 * click, Enter or Space. ``columns``: [{key, label (text), sub (text, optional), numeric, cls,
 * sortable (default true)}]. ``onSort(key, descending)`` runs after each change.
 */
export function sortableHead(thead, columns, { onSort, label = "Sort by" }) {
  let current = { key: null, descending: false };
  const arrow = (col) => {
    if (col.key !== current.key) return "↕";
    return current.descending ? "▼" : "▲";
  };
  function render() {
    thead.innerHTML = `<tr>${columns.map((col) => {
      const cls = [col.cls, col.numeric ? "num" : ""].filter(Boolean).join(" ");
      const sorted = col.key === current.key;
      const aria = sorted ? ` aria-sort="${current.descending ? "descending" : "ascending"}"` : "";
      const sub = col.sub ? `<span class="th-sub">${esc(col.sub)}</span>` : "";
      if (col.sortable === false) return `<th scope="col"${cls ? ` class="${cls}"` : ""}>${esc(col.label)}${sub}</th>`;
      return `<th scope="col"${cls ? ` class="${cls}"` : ""}${aria}><button type="button" class="sort-button" data-sort="${esc(col.key)}" title="${esc(label)} ${esc(col.label)}">`
        + `<span class="sort-label">${esc(col.label)}</span><span class="sort-arrow" aria-hidden="true">${arrow(col)}</span>`
        + `</button>${sub}</th>`;
    }).join("")}</tr>`;
  }
  thead.addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-sort]");
    if (!btn) return;
    const col = columns.find((c) => c.key === btn.dataset.sort);
    if (!col) return;
    const descending = col.key === current.key ? !current.descending : !!col.numeric;
    current = { key: col.key, descending };
    render();
    thead.querySelector(`button[data-sort="${CSS.escape(col.key)}"]`)?.focus();
    onSort(col.key, descending);
  });
  render();
  return {
    get key() { return current.key; },
    get descending() { return current.descending; },
    /** Show ``key`` as sorted without calling onSort (the initial order). */
    set(key, descending) { current = { key, descending }; render(); },
    /** New columns (a new result); the sort is reset to ``key``. */
    setColumns(cols, key = null, descending = false) { columns = cols; current = { key, descending }; render(); },
  };
}
