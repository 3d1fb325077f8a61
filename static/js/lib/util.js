// Small helpers every module page uses: lookup, escaping, number formats, messages.

export const $ = (id) => document.getElementById(id);
export const MB = 1024 * 1024;

/** JSON.parse that also accepts the bare NaN/Infinity Python's json module may write. */
export function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch (err) {
    return JSON.parse(text.replace(/-?\bInfinity\b|\bNaN\b/g, "null"));
  }
}

/** The page's config, handed over by the server in <script type="application/json" id="page-config">. */
export function readConfig(id = "page-config") {
  return parseJSON($(id).textContent);
}

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);
/** Escaped text that may wrap after _ - . / when longer than 12 characters (file names), never
 *  in the middle of a word; short ids such as "Wafer-12" stay whole. */
export const breakable = (s) => (String(s).length > 12 ? esc(s).replace(/([_\-./\\])/g, "$1<wbr>")
  : `<span class="nowrap">${esc(s)}</span>`);
export const int = (n) => Number(n).toLocaleString("en-US");
/** "1 row", "3 rows", "1,200 rows" (``many`` for an irregular plural), as Python's plural(). */
export const count = (n, one, many = `${one}s`) => `${int(n)} ${Number(n) === 1 ? one : many}`;
export const pct = (x) => `${(100 * x).toFixed(1)}%`;
export const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
export const fmtThreshold = (v) => Number(v).toFixed(4);

/** Tell screen-reader users what changed (the #announcer live region). */
export function announce(text) {
  const el = $("announcer");
  if (!el) return;
  el.textContent = "";
  setTimeout(() => { el.textContent = text; }, 30);
}

/** "file, row 3, column Sensor-7" for a problem from the server. */
export function where(p) {
  return [p.file, p.row ? `row ${p.row}` : null, p.column ? `column ${p.column}` : null]
    .filter(Boolean).join(", ");
}

/** Show a message and the located problems in an alert element. */
export function showError(el, message, problems = []) {
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

export function clearError(el) { el.hidden = true; el.innerHTML = ""; }

export const ICON_FAULT = '<svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" focusable="false">'
  + '<path d="M8 1.5 15 14.5H1z" fill="currentColor"/><path d="M8 6v4.2" stroke="#fff" stroke-width="1.8" '
  + 'stroke-linecap="round"/><circle cx="8" cy="12.3" r="1" fill="#fff"/></svg>';
export const ICON_OK = '<svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" focusable="false">'
  + '<circle cx="8" cy="8" r="6.5" fill="none" stroke="currentColor" stroke-width="1.6"/>'
  + '<path d="m5 8.2 2 2 4-4.2" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" '
  + 'stroke-linejoin="round"/></svg>';

// A JSON request from a page: same-origin cookies, marked as fetch (the server answers JSON, not
// a page); a non-2xx answer throws an Error with the server's message and its located problems.
export async function getJSON(url, options = {}) {
  const response = await fetch(url, {
    credentials: "same-origin", ...options,
    headers: { "X-Requested-With": "fetch", Accept: "application/json", ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.message || `the server answered ${response.status}`);
    error.problems = body.problems || [];
    throw error;
  }
  return body;
}
