// A pager (previous / page number / next) for a list shown pageSize items at a time.
import { clamp, int } from "./util.js";

/** Fill ``nav`` with pager controls; ``onGo(page)`` is called with the 0-based page wanted.
 *  ``noun`` names the list for screen readers ("preview"), ``itemLabel`` the items ("Rows");
 *  ``place`` tells a second pager of the same list apart ("bottom"). */
export function makePager(nav, { noun, itemLabel, pageSize, onGo, place = "" }) {
  const id = nav.id;
  const at = place ? `, ${place}` : "";
  nav.innerHTML = `
    <span class="pager-range" id="${id}-range"></span>
    <button type="button" class="button button-small" data-go="prev">&lsaquo; Previous<span class="visually-hidden"> ${noun} page${at}</span></button>
    <label for="${id}-input">Page<span class="visually-hidden"> of the ${noun}${at}</span></label>
    <input type="number" id="${id}-input" min="1" step="1" value="1">
    <span id="${id}-count"></span>
    <button type="button" class="button button-small" data-go="next">Next<span class="visually-hidden"> ${noun} page${at}</span> &rsaquo;</button>`;
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
      pages = Math.max(1, Math.ceil(total / pageSize));
      current = page;
      input.max = pages;
      input.value = page + 1;
      nav.querySelector(`#${id}-count`).textContent = `of ${int(pages)}`;
      const start = total ? page * pageSize + 1 : 0;
      nav.querySelector(`#${id}-range`).textContent =
        `${itemLabel} ${int(start)}–${int(Math.min(total, (page + 1) * pageSize))} of ${int(total)}`;
      prev.disabled = page <= 0;
      next.disabled = page >= pages - 1;
    },
  };
}
