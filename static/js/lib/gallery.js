// A paged gallery of cards (thumbnails of maps or images): pagers above and below, a filter,
// a count, and cards that open with a click or Enter. Only one page of cards is in the DOM.
import { makePager } from "./pager.js";
import { esc, int } from "./util.js";

/**
 * ``el``: {list, pagerTop, pagerBottom (optional), count (optional)}; ``noun``: {one, many}.
 * ``card(item, k)`` returns the inner HTML of item k's card; ``draw(li, item, k)`` (optional)
 * paints it after it is in the DOM (canvases); ``onOpen(k, button)`` (optional) opens item k.
 */
export function createGallery(el, { pageSize = 48, noun, card, draw = null, onOpen = null, label = "Open" }) {
  const state = { items: [], order: [], view: [], page: 0, keep: () => true, describe: "" };
  const Items = noun.many[0].toUpperCase() + noun.many.slice(1);
  const go = (p) => { state.page = p; render(); };
  const pagers = [makePager(el.pagerTop, { noun: el.list.id, itemLabel: Items, pageSize, onGo: go })];
  if (el.pagerBottom) pagers.push(makePager(el.pagerBottom, { noun: el.list.id, itemLabel: Items, pageSize, onGo: go, place: "bottom" }));

  function render() {
    const pages = Math.max(1, Math.ceil(state.view.length / pageSize));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const start = state.page * pageSize;
    const shown = state.view.slice(start, start + pageSize);
    el.list.innerHTML = shown.length ? shown.map((k) => `<li class="gallery-card" data-k="${k}">`
      + (onOpen ? `<button type="button" class="gallery-open" data-open="${k}" aria-label="${esc(label)}: ${esc(itemName(k))}">` : "<div>")
      + card(state.items[k], k) + (onOpen ? "</button>" : "</div>") + "</li>").join("")
      : `<li class="gallery-empty">No ${noun.many} match. Clear the filters.</li>`;
    if (draw) el.list.querySelectorAll("li[data-k]").forEach((li) => draw(li, state.items[+li.dataset.k], +li.dataset.k));
    for (const pager of pagers) pager.update(state.page, state.view.length);
    if (el.count) {
      el.count.textContent = state.view.length === state.items.length ? `Showing all ${int(state.items.length)} ${noun.many}.`
        : `Showing ${int(state.view.length)} of ${int(state.items.length)} ${noun.many}${state.describe ? ` (${state.describe})` : ""}.`;
    }
  }
  const itemName = (k) => String(state.items[k]?.name ?? k + 1);

  function filter() {
    state.view = state.order.filter((k) => state.keep(state.items[k], k));
    render();
  }

  if (onOpen) {
    el.list.addEventListener("click", (e) => {
      const btn = e.target.closest("button[data-open]");
      if (btn) onOpen(+btn.dataset.open, btn);
    });
  }

  return {
    /** New items, in ``order`` (indices; default as given). */
    show(items, order = null) {
      state.items = items;
      state.order = order ?? items.map((_, k) => k);
      state.page = 0;
      filter();
    },
    /** Keep the items for which ``keep(item, k)`` is true; ``describe`` says how ("class Center"). */
    setFilter(keep, describe = "") { state.keep = keep; state.describe = describe; state.page = 0; filter(); },
    /** Items changed (a level moved): filter and redraw the page in view. */
    refresh() { filter(); },
    get shown() { return state.view.length; },
  };
}

/** Fill a <select> with "All" and one option per value, with counts: [{value, label}]. */
export function fillSelect(select, options, allLabel = "All") {
  const current = select.value;
  select.innerHTML = `<option value="">${esc(allLabel)}</option>`
    + options.map((o) => `<option value="${esc(o.value)}">${esc(o.label)}</option>`).join("");
  if (options.some((o) => o.value === current)) select.value = current;
}
