// One item's values against the training range of every feature (the per-wafer view): a
// compact strip of all features and a sortable, filterable list, in a modal dialog that
// closes with Escape and gives focus back to the button that opened it. The training profile
// ({features, p01, p99, median, missing_rate}) is fetched once, the first time it is needed.
import { sortableHead, sortIndices } from "./sorting.js";
import { esc, int } from "./util.js";

/** For each profile feature, the table column holding it (-1 when none): by name first, then,
 *  when the columns left over match the features left over one for one, by position.
 *  ``skip``: column indices that are not features (id, labels, extra columns). */
export function alignColumns(header, features, skip = new Set()) {
  const map = new Int32Array(features.length).fill(-1);
  const byName = new Map();
  header.forEach((h, j) => { if (!skip.has(j)) byName.set(String(h).trim(), j); });
  const used = new Set();
  features.forEach((f, i) => {
    const j = byName.get(f);
    if (j !== undefined) { map[i] = j; used.add(j); }
  });
  const freeCols = header.map((_, j) => j).filter((j) => !skip.has(j) && !used.has(j));
  const freeFeats = features.map((_, i) => i).filter((i) => map[i] < 0);
  if (freeFeats.length && freeCols.length === freeFeats.length) freeFeats.forEach((i, t) => { map[i] = freeCols[t]; });
  return map;
}

const fmt = (v) => {
  if (v == null || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  return v.toFixed(a >= 1000 ? 1 : a >= 100 ? 2 : a >= 1 ? 3 : 4);
};

const STATUS = {
  above: { order: 3, text: "▲ above", cls: "rv-out" },
  below: { order: 3, text: "▼ below", cls: "rv-out" },
  missing: { order: 1, text: "missing (imputed)", cls: "rv-missing" },
  in: { order: 0, text: "in range", cls: "rv-in" },
  none: { order: 0, text: "no range", cls: "rv-missing" },
};

/** Each feature's value and where it lies against the profile; ``labels`` (the server's
 *  names of the features as the file writes them) name the rows when given. */
export function compareToProfile(profile, values, labels = null) {
  return profile.features.map((feature, i) => {
    const name = labels?.[i] ?? feature;
    const v = values[i];
    const lo = profile.p01?.[i];
    const hi = profile.p99?.[i];
    const med = profile.median?.[i];
    const width = Number.isFinite(hi - lo) ? Math.max(hi - lo, 1e-12) : NaN;
    let status = "in";
    let outside = 0; // how far outside the band, in band widths
    if (v == null || Number.isNaN(v)) status = "missing";
    else if (!Number.isFinite(lo) || !Number.isFinite(hi)) status = "none";
    else if (v > hi + 1e-9 * Math.abs(hi)) { status = "above"; outside = (v - hi) / width; }
    else if (v < lo - 1e-9 * Math.abs(lo)) { status = "below"; outside = (lo - v) / width; }
    return { i, name, value: v, lo, hi, med, status, outside, missingRate: profile.missing_rate?.[i] };
  });
}

/** An SVG strip: one mark per feature at its position in the training band (grey), orange when outside. */
function stripSvg(rows) {
  const n = rows.length;
  const H = 64;
  // the band [0, 1] sits in the middle; values up to 0.6 band widths beyond it are drawn, further ones clipped
  const y = (u) => (H - 6) - ((Math.max(-0.6, Math.min(1.6, u)) + 0.6) / 2.2) * (H - 12);
  const band = `<rect x="0" y="${y(1).toFixed(1)}" width="${n}" height="${(y(0) - y(1)).toFixed(1)}" class="rv-band"/>`;
  const marks = [];
  for (const r of rows) {
    if (r.status === "missing" || r.status === "none") {
      marks.push(`<rect x="${r.i}" y="${H - 4}" width="1" height="4" class="rv-mark-missing"/>`);
      continue;
    }
    const u = (r.value - r.lo) / Math.max(r.hi - r.lo, 1e-12);
    const yy = y(u);
    const out = r.status !== "in";
    marks.push(`<rect x="${r.i}" y="${(yy - (out ? 3 : 1.5)).toFixed(1)}" width="1" height="${out ? 6 : 3}" class="${out ? "rv-mark-out" : "rv-mark"}"/>`);
  }
  return `<svg viewBox="0 0 ${n} ${H}" preserveAspectRatio="none" width="100%" height="${H}" aria-hidden="true" focusable="false">${band}${marks.join("")}</svg>`;
}

const COLUMNS = [
  { key: "name", label: "Sensor", value: (r) => r.i },
  { key: "value", label: "Value", numeric: true, value: (r) => r.value },
  { key: "lo", label: "Training 1st pct", numeric: true, value: (r) => r.lo },
  { key: "med", label: "Median", numeric: true, value: (r) => r.med },
  { key: "hi", label: "Training 99th pct", numeric: true, value: (r) => r.hi },
  { key: "status", label: "Where", value: (r) => STATUS[r.status].order * 1e6 + r.outside },
  { key: "outside", label: "Outside by", sub: "band widths", numeric: true, value: (r) => (r.outside > 0 ? r.outside : null) },
];

/**
 * ``el``: {dialog, title, summary, strip, outOnly, search, head, body, count, status, close}.
 * ``profileUrl``: GET → the training profile. Returns {open({title, values(profile), opener, note})}.
 */
export function createRangeView(el, { profileUrl, noun }) {
  let profile = null; // a promise, kept once it resolves
  let rows = [];
  let opener = null;
  let order = [];
  const head = sortableHead(el.head, COLUMNS, { onSort: (key, desc) => sortRows(key, desc) });

  function getProfile() {
    profile ??= fetch(profileUrl, { headers: { Accept: "application/json" } }).then((res) => {
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return res.json();
    }).catch((err) => { profile = null; throw err; });
    return profile;
  }

  function sortRows(key, descending) {
    const col = COLUMNS.find((c) => c.key === key);
    order = sortIndices(rows.map((_, t) => t), (t) => col.value(rows[t]), descending);
    renderList();
  }

  function renderList() {
    const q = el.search.value.trim().toLowerCase();
    const onlyOut = el.outOnly.checked;
    const html = [];
    for (const t of order) {
      const r = rows[t];
      if (onlyOut && r.status !== "above" && r.status !== "below") continue;
      if (q && !r.name.toLowerCase().includes(q)) continue;
      const s = STATUS[r.status];
      html.push(`<tr class="${s.cls}"><th scope="row">${esc(r.name)}</th><td class="num">${r.status === "missing" ? "–" : fmt(r.value)}</td>`
        + `<td class="num">${fmt(r.lo)}</td><td class="num">${fmt(r.med)}</td><td class="num">${fmt(r.hi)}</td>`
        + `<td>${s.text}</td><td class="num">${r.outside > 0 ? r.outside.toFixed(2) : ""}</td></tr>`);
    }
    el.body.innerHTML = html.join("") || `<tr><td colspan="${COLUMNS.length}">No sensors match.</td></tr>`;
    el.count.textContent = `${int(html.length)} of ${int(rows.length)} sensors listed.`;
  }

  el.outOnly.addEventListener("change", renderList);
  el.search.addEventListener("input", renderList);
  el.strip.addEventListener("click", (e) => {
    const box = el.strip.getBoundingClientRect();
    const i = Math.floor(((e.clientX - box.left) / box.width) * rows.length);
    const r = rows[i];
    if (!r) return;
    el.outOnly.checked = false;
    el.search.value = r.name;
    renderList();
  });
  el.close.addEventListener("click", () => el.dialog.close());
  el.dialog.addEventListener("close", () => { opener?.focus(); opener = null; });

  async function open({ title, values, labels = null, opener: from, note = "" }) {
    opener = from ?? document.activeElement;
    el.title.textContent = title;
    el.summary.textContent = "";
    el.strip.innerHTML = "";
    el.body.innerHTML = "";
    el.count.textContent = "";
    el.status.textContent = "Loading the training range…";
    if (!el.dialog.open) el.dialog.showModal();
    let prof;
    try {
      prof = await getProfile();
    } catch (err) {
      el.status.textContent = `The training range could not be loaded (${err.message}). Close and try again.`;
      return;
    }
    if (!el.dialog.open) return;
    const vals = values(prof);
    if (!vals) {
      el.status.textContent = `This ${noun.one}'s values could not be matched to the model's sensors.`;
      return;
    }
    el.status.textContent = note;
    rows = compareToProfile(prof, vals, labels);
    const nOut = rows.filter((r) => r.status === "above" || r.status === "below").length;
    const nMissing = rows.filter((r) => r.status === "missing").length;
    el.summary.innerHTML = `<strong>${int(nOut)}</strong> of ${int(rows.length)} sensors lie outside the training range `
      + `(1st–99th percentile of the training ${noun.many}); <strong>${int(nMissing)}</strong> are missing and were imputed.`;
    el.strip.innerHTML = stripSvg(rows);
    el.strip.setAttribute("aria-label", `${nOut} of ${rows.length} sensors outside the training range`);
    el.outOnly.checked = nOut > 0;
    el.search.value = "";
    head.set("status", true);
    order = sortIndices(rows.map((_, t) => t), (t) => COLUMNS[5].value(rows[t]), true);
    renderList();
  }

  return { open };
}
