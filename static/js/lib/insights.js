// What the server says about a file beside the scores: how it was read (``detected``), its
// warnings, how far it lies from the training data (``drift``), and, when the file carries true
// labels, how the decisions at the current threshold compare with them (a flag: renderLabels; a
// class: renderClassLabels). Every panel is hidden when the server sends nothing for it.
import { count, esc, int, pct } from "./util.js";

/** The server's one sentence on how it read a file (``detected.description``), or "". */
export function describeDetected(detected) {
  return detected && typeof detected.description === "string" ? detected.description : "";
}

/** Fill a warning box (``box`` with a <ul> ``list``) with the server's warnings; hide it when none. */
export function renderWarnings(box, list, warnings) {
  const items = (Array.isArray(warnings) ? warnings : []).filter((w) => typeof w === "string" && w.trim());
  box.hidden = !items.length;
  list.innerHTML = items.map((w) => `<li>${esc(w)}</li>`).join("");
}

const fmt = (v) => {
  if (v == null || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  return v.toFixed(a >= 1000 ? 1 : a >= 100 ? 2 : a >= 1 ? 3 : 4);
};

/** The drift panel from the response's ``drift``: {share_outside, share_imputed, top_drifted}. */
export function renderDrift(el, drift, noun) {
  const ok = drift && typeof drift === "object" && Number.isFinite(drift.share_outside);
  el.panel.hidden = !ok;
  if (!ok) return;
  const imputed = Number.isFinite(drift.share_imputed)
    ? ` <strong>${pct(drift.share_imputed)}</strong> of the sensor values are missing and were imputed.` : "";
  el.summary.innerHTML = `<strong>${pct(drift.share_outside)}</strong> of this file's values lie outside the training data's `
    + `1st–99th percentile range (on training-like data about 2% do).${imputed}`;
  // whether a file is unusual is the server's call (a warning), never a cut-off restated here
  el.panel.classList.toggle("is-unusual", drift.unusual === true || !!drift.warning);
  const top = Array.isArray(drift.top_drifted) ? drift.top_drifted : [];
  el.table.hidden = !top.length;
  el.body.innerHTML = top.map((d) => `<tr><th scope="row">${esc(d.sensor)}</th>`
    + `<td class="num">${pct(d.share_outside)}</td><td class="num">${fmt(d.median)}</td>`
    + `<td class="num">${fmt(d.train_p01)} … ${fmt(d.train_p99)}</td></tr>`).join("");
  el.note.textContent = top.length ? `The sensors whose values in this file fall outside the training range most often; `
    + `scores of ${noun.many} far from the training data are less reliable.` : "";
}

/** Counts of true/false positives/negatives at the current decisions; rows without a label are counted apart. */
export function confusion(items, isFault) {
  const c = { tp: 0, fn: 0, fp: 0, tn: 0, unlabelled: 0 };
  for (const p of items) {
    const y = p.label;
    if (y !== 0 && y !== 1) { c.unlabelled++; continue; }
    const f = isFault(p);
    if (y === 1) { if (f) c.tp++; else c.fn++; } else if (f) c.fp++; else c.tn++;
  }
  return c;
}

/** The labels panel: a confusion matrix with the catch rate (recall) and false-alarm rate. */
export function renderLabels(el, labels, items, isFault, noun) {
  const ok = labels && typeof labels === "object" && items.some((p) => p.label === 0 || p.label === 1);
  el.panel.hidden = !ok;
  if (!ok) return;
  const c = confusion(items, isFault);
  const pos = labels.positive ?? "fail";
  const neg = labels.negative ?? `not ${pos}`;
  const col = labels.column ? ` (column “${esc(labels.column)}”)` : "";
  el.title.innerHTML = `Against the labels in the file${col}`;
  const cellHtml = (n, what, cls) => `<td class="num ${cls}"><span class="cm-n">${int(n)}</span><span class="cm-what">${what}</span></td>`;
  el.matrix.innerHTML = `<caption class="visually-hidden">Decisions at the current threshold against the file's labels</caption>`
    + `<thead><tr><td></td><th scope="col">Labelled ${esc(pos)}</th><th scope="col">Labelled ${esc(neg)}</th></tr></thead>`
    + `<tbody><tr><th scope="row">Flagged</th>${cellHtml(c.tp, "caught", "cm-good")}${cellHtml(c.fp, "false alarms", "cm-bad")}</tr>`
    + `<tr><th scope="row">Not flagged</th>${cellHtml(c.fn, "missed", "cm-bad")}${cellHtml(c.tn, "correctly passed", "cm-good")}</tr></tbody>`;
  const rate = (a, b) => (a + b ? pct(a / (a + b)) : "–");
  el.rates.innerHTML = `Catch rate (recall): <strong id="catch-rate">${rate(c.tp, c.fn)}</strong> of the ${int(c.tp + c.fn)} `
    + `${esc(pos)} ${noun.many} are flagged. False-alarm rate: <strong id="false-alarm-rate">${rate(c.fp, c.tn)}</strong> `
    + `of the ${int(c.fp + c.tn)} ${esc(neg)} ${noun.many} are flagged.`
    + (c.unlabelled ? ` ${int(c.unlabelled)} ${noun.many} without a label are left out.` : "");
}

/** The labels panel for a classifier (the server's ``labels``: n_labelled, n_unlabelled,
 *  classes, accuracy, macro_f1, confusion_matrix with rows the true class and columns the
 *  predicted one): accuracy, macro-F1 and the matrix. Classes neither labelled nor predicted
 *  (an all-zero row and column) are left out of the table. */
export function renderClassLabels(el, labels, noun) {
  const classes = labels?.classes;
  const m = labels?.confusion_matrix;
  const ok = Array.isArray(classes) && Array.isArray(m) && m.length === classes.length
    && labels.n_labelled > 0;
  el.panel.hidden = !ok;
  el.matrix.classList.toggle("confusion-classes", !!ok);
  if (!ok) return;
  const keep = classes.map((_, k) => k).filter((k) => m[k].some((n) => n > 0) || m.some((row) => row[k] > 0));
  el.title.textContent = "Against the labels in the file";
  const cell = (i, j) => {
    const n = m[i][j];
    const cls = n === 0 ? "cm-zero" : i === j ? "cm-hit" : "cm-miss";
    return `<td class="num ${cls}">${int(n)}</td>`;
  };
  el.matrix.innerHTML = `<caption>${esc(noun.many[0].toUpperCase() + noun.many.slice(1))} by true class (rows) `
    + `and predicted class (columns)</caption>`
    + `<thead><tr><td class="cm-corner" aria-hidden="true">true ↓ predicted →</td>`
    + `${keep.map((j) => `<th scope="col"><span class="visually-hidden">Predicted </span>${esc(classes[j])}</th>`).join("")}</tr></thead>`
    + `<tbody>${keep.map((i) => `<tr><th scope="row"><span class="visually-hidden">True </span>${esc(classes[i])}</th>`
      + `${keep.map((j) => cell(i, j)).join("")}</tr>`).join("")}</tbody>`;
  const left = classes.length - keep.length;
  const are = (n) => (n === 1 ? "is" : "are");
  el.rates.innerHTML = `Accuracy: <strong id="labels-accuracy">${pct(labels.accuracy)}</strong>, macro-F1: `
    + `<strong id="labels-macro-f1">${Number(labels.macro_f1).toFixed(3)}</strong> (mean of the `
    + `${count(labels.macro_classes, "class", "classes")} labelled or predicted), over `
    + `${count(labels.n_labelled, `labelled ${noun.one}`, `labelled ${noun.many}`)}.`
    + (labels.n_unlabelled ? ` ${count(labels.n_unlabelled, noun.one, noun.many)} without a label `
      + `${are(labels.n_unlabelled)} left out.` : "")
    + (left ? ` ${count(left, "class", "classes")} neither labelled nor predicted ${are(left)} not shown.` : "");
}
