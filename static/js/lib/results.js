// The results table of step 3: sort by any column, filter to flagged items, search by id,
// a pager above and below, a sticky header (CSS). Only one page of rows is ever in the DOM;
// the order is an array of item numbers, re-sorted only when the sort changes and re-filtered
// when the filter, the search or the threshold changes.
import { makePager } from "./pager.js";
import { sortableHead, sortIndices } from "./sorting.js";
import { clamp, int } from "./util.js";

/**
 * ``el``: {head, body, pagerTop, pagerBottom, flaggedOnly, search, count}. ``noun``: {one, many}.
 * ``onOpen(k, button)`` (optional) opens item ``k`` when its id button is pressed.
 */
export function createResultsTable(el, { pageSize = 50, noun, onOpen = null }) {
  const state = {
    items: [], columns: [], isFault: () => false, ids: [], // per result
    order: [], view: [], page: 0, query: "", flaggedOnly: false,
  };
  const Items = noun.many[0].toUpperCase() + noun.many.slice(1);
  const go = (p) => { state.page = p; renderPage(); };
  const pagers = [
    makePager(el.pagerTop, { noun: "results", itemLabel: Items, pageSize, onGo: go }),
    makePager(el.pagerBottom, { noun: "results", itemLabel: Items, pageSize, onGo: go, place: "bottom" }),
  ];
  const head = sortableHead(el.head, [], { onSort: (key, descending) => sortBy(key, descending) });

  function sortBy(key, descending) {
    const col = state.columns.find((c) => c.key === key);
    if (!col) return;
    const all = Array.from({ length: state.items.length }, (_, k) => k);
    state.order = sortIndices(all, (k) => col.value(state.items[k], k), descending);
    state.page = 0;
    filter();
  }

  /** Apply the flagged filter and the id search to the current order. */
  function filter() {
    const q = state.query;
    const onlyFlagged = state.flaggedOnly;
    if (!q && !onlyFlagged) state.view = state.order;
    else {
      const out = [];
      for (const k of state.order) {
        if (onlyFlagged && !state.isFault(state.items[k])) continue;
        if (q && !state.ids[k].includes(q)) continue;
        out.push(k);
      }
      state.view = out;
    }
    renderPage();
    renderCount();
  }

  function renderCount() {
    const n = state.items.length;
    const parts = [];
    if (state.flaggedOnly) parts.push("flagged only");
    if (state.query) parts.push(`id contains “${state.query}”`);
    el.count.textContent = parts.length
      ? `Showing ${int(state.view.length)} of ${int(n)} ${noun.many} (${parts.join(", ")}).`
      : `Showing all ${int(n)} ${noun.many}.`;
  }

  function renderPage() {
    const pages = Math.max(1, Math.ceil(state.view.length / pageSize));
    state.page = clamp(state.page, 0, pages - 1);
    const start = state.page * pageSize;
    const end = Math.min(state.view.length, start + pageSize);
    const html = [];
    for (let t = start; t < end; t++) {
      const k = state.view[t];
      const p = state.items[k];
      const fault = state.isFault(p);
      const ctx = { fault, k };
      const cells = state.columns.map((col) => col.cell(p, ctx)).join("");
      html.push(`<tr data-k="${k}"${fault ? ' class="is-fault"' : ""}>${cells}</tr>`);
    }
    if (!html.length) {
      html.push(`<tr class="empty-row"><td colspan="${state.columns.length}">No ${noun.many} match`
        + `${state.flaggedOnly ? " among the flagged ones" : ""}. Clear the search or the filter.</td></tr>`);
    }
    el.body.innerHTML = html.join("");
    for (const pager of pagers) pager.update(state.page, state.view.length);
  }

  el.flaggedOnly.addEventListener("change", () => {
    state.flaggedOnly = el.flaggedOnly.checked;
    state.page = 0;
    filter();
  });
  el.search.addEventListener("input", () => {
    state.query = el.search.value.trim().toLowerCase();
    state.page = 0;
    filter();
  });
  if (onOpen) {
    el.body.addEventListener("click", (e) => {
      const btn = e.target.closest("button[data-open]");
      if (btn) onOpen(+btn.dataset.open, btn);
    });
  }

  return {
    /** A new result. ``columns``: [{key, label, sub, numeric, cls, value(item, k), cell(item, ctx)}];
     *  ``sort``: {key, descending}, the first order (the deciding score, highest first). */
    show(items, { columns, isFault, idOf, sort }) {
      state.items = items;
      state.columns = columns;
      state.isFault = isFault;
      state.ids = items.map((p) => String(idOf(p)).toLowerCase());
      state.query = el.search.value.trim().toLowerCase();
      state.flaggedOnly = el.flaggedOnly.checked;
      head.setColumns(columns, sort.key, sort.descending);
      const col = columns.find((c) => c.key === sort.key);
      const all = Array.from({ length: items.length }, (_, k) => k);
      state.order = col ? sortIndices(all, (k) => col.value(items[k], k), sort.descending) : all;
      state.page = 0;
      filter();
    },
    /** Decisions changed (the threshold moved): re-filter and redraw the page in view. */
    refresh() { if (state.items.length) filter(); },
    /** Number of items currently passing the filter and search. */
    get shown() { return state.view.length; },
  };
}
