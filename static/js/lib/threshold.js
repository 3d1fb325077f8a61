// The threshold control: a slider plus a number field, a reset, and what the threshold means.
// What a threshold means comes from the server: each model's false-alarm curve (threshold ->
// share of normal validation items flagged). The page only reads values off that curve.
import { fmtThreshold } from "./util.js";

/** Piecewise-linear interpolation in (xs, ys), xs ascending, clamped to the end values
 *  (numpy.interp's rule, so the page reads the curve exactly as the server does). */
export function interp(x, xs, ys) {
  const n = xs.length;
  if (!n) return NaN;
  if (x < xs[0]) return ys[0];
  if (x >= xs[n - 1]) return ys[n - 1];
  let lo = 0;
  let hi = n - 1; // xs[lo] <= x < xs[hi]
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (xs[mid] <= x) lo = mid; else hi = mid; }
  const slope = (ys[hi] - ys[lo]) / (xs[hi] - xs[lo]);
  return slope * (x - xs[lo]) + ys[lo];
}

/** The one decision rule, as the server's (pipelines/core/thresholds.py ``flagged``): a score at
 *  or above the threshold is flagged, or with ``below`` (the page config's ``decision.below``,
 *  a confidence under a needs-review level) a score under it. A missing score never is. */
export const isFlagged = (score, threshold, below = false) =>
  score != null && (below ? score < threshold : score >= threshold);

/** Share of normal validation items flagged at threshold ``t``, read off the server's curve. */
export const falseAlarmRate = (curve, t) => interp(t, curve.thresholds, curve.rates);

function niceCeil(x) {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return Math.ceil(x / p * 2) / 2 * p;
}

/** Bind the controls; ``onChange(t)`` runs on every change. Call ``setModel`` after a prediction. */
export function createThresholdControl({ range, number, reset, scoreName }, onChange) {
  let model = null; // {threshold (default), curve, max}
  let current = null;
  const control = {
    get value() { return current; },
    get isDefault() { return model && Math.abs(current - model.threshold) < 5e-5; },
    get isCustom() { return model && Math.abs(current - model.threshold) > 1e-12; },
    /** A new model or result: the default threshold, the score's name and the slider's range
     *  (0..1 for probabilities; up to the largest score seen, rounded up, otherwise). */
    setModel({ threshold, curve, label, probability, scores = [] }) {
      let max = 1;
      if (!probability) {
        let top = Math.max(threshold, curve.thresholds[curve.thresholds.length - 1] ?? 0);
        for (const s of scores) if (s > top) top = s;
        max = niceCeil(top * 1.05);
      }
      model = { threshold, curve };
      range.min = 0;
      range.max = max;
      range.step = max / 1000;
      number.min = 0;
      number.step = max <= 2 ? 0.001 : 0.01;
      scoreName.textContent = label;
    },
    set(t, source = null) {
      if (!model || !Number.isFinite(t)) return;
      current = t;
      if (source !== range) range.value = String(t);
      if (source !== number) number.value = fmtThreshold(t);
      range.setAttribute("aria-valuetext", fmtThreshold(t));
      reset.disabled = control.isDefault;
      onChange(t);
    },
    falseAlarmRate(t = current) { return falseAlarmRate(model.curve, t); },
    reset() { control.set(model.threshold); },
  };
  range.addEventListener("input", () => control.set(parseFloat(range.value), range));
  number.addEventListener("input", () => {
    const t = parseFloat(number.value);
    if (Number.isFinite(t)) control.set(t, number);
  });
  number.addEventListener("change", () => {
    if (!Number.isFinite(parseFloat(number.value)) && current !== null) number.value = fmtThreshold(current);
  });
  return control;
}
