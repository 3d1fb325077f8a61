// The home page's dashboard: fetch GET /api/v1/dashboard?days=N (webapp/dashboard.py) and fill
// each ready module's panel (templates/index.html): versions, headline metric, runs and flagged
// share per day, drift per run, the recent flag rate against its target, registry events.
// Charts come from plotly.js, served by the app; every number also sits in a table and a link.
import { $, count, esc, int, pct } from "./lib/util.js";

const root = $("dashboard");
const FONT = { family: "system-ui, sans-serif", size: 12 };
const BLUE = "#0b5cad";
const ORANGE = "#a54a00";
const GREY = "#5c5c5c";
const CONFIG = { displayModeBar: false, responsive: true };

const part = (panel, name) => panel.querySelector(`[data-part="${name}"]`);
const num = (x, digits = 3) => (x == null ? "–" : Number(x).toFixed(digits));
const runLink = (id, text) => `<a href="${esc(root.dataset.history)}?run=${encodeURIComponent(id)}">${esc(text)}</a>`;
const when = (iso) => (iso ? esc(iso.slice(0, 16).replace("T", " ")) + " UTC" : "–");

function setStat(el, value, sub) {
  el.querySelector(".stat-value").innerHTML = value;
  let line = el.querySelector(".stat-sub");
  if (!line) {
    line = document.createElement("span");
    line.className = "stat-sub";
    el.append(line);
  }
  line.innerHTML = sub || "";
}

function versionText(m) {
  const v = m.version || {};
  if (!v.live) return "Version unknown";
  const source = v.live_source === "registry" ? "set live in the registry" : "the committed release";
  const serving = v.serving && v.serving !== v.live
    ? ` · this worker still serves <code>${esc(v.serving)}</code>` : "";
  return `Live <a href="${esc(root.dataset.registry)}#registry-${esc(m.name)}"><code>${esc(v.live)}</code></a> (${source})${serving}`;
}

function headlineStat(m) {
  const h = m.headline;
  if (!h) return ["–", "no evaluation recorded"];
  const ci = h.ci ? ` (95% CI ${num(h.ci[0])}–${num(h.ci[1])})` : "";
  const value = `<a href="${esc(m.models_url || root.dataset.models)}">${num(h.value)}</a>`;
  return [value, `${esc(h.label)} of ${esc(h.model)}${ci}, ${esc(h.protocol)}${h.counts.length ? ` (${esc(h.counts.join(", "))})` : ""}`];
}

function flagRateStat(m) {
  const f = m.flag_rate;
  const models = `${esc(root.dataset.models)}#recalibration-${esc(m.name)}-${esc(f ? f.model : "")}`;
  if (!f) return ["–", "no runs yet"];
  if (!f.rows || f.rate == null) {
    return ["–", `no comparable run at the default threshold${f.left_out.length ? ` (${count(f.left_out.length, "labelled run")} left out)` : ""}`];
  }
  const target = f.review ? "validation sent to review" : "false-alarm target";
  const check = f.check
    ? ` (95% ${pct(f.check.low)}–${pct(f.check.high)}): <strong>${esc(f.check.verdict)}</strong>` : "";
  const expected = f.expected == null ? "" : ` vs ${pct(f.expected)} ${target}`;
  return [`<a href="${models}">${pct(f.rate)}</a>`,
    `${count(f.flagged, "item")} flagged of ${int(f.rows)} in ${count(f.runs.length, "run")}${expected}${check}`];
}

function eventText(e) {
  const who = e.user ? ` by ${esc(e.user)}` : "";
  const why = e.reason ? `: “${esc(e.reason)}”` : "";
  const version = e.version ? `<code>${esc(e.version)}</code>` : "";
  const what = {
    live: `${version} made live`,
    threshold: `threshold of ${esc(e.model || "a model")} ${num(e.previous, 4)} → ${num(e.value, 4)} (version ${version}${e.base_version ? ` from <code>${esc(e.base_version)}</code>` : ""})`,
    shadow: `${version} attached as shadow candidate`,
    detach: `shadow candidate ${version} detached`,
  }[e.kind] || `${esc(e.kind)} ${version}`;
  return `<time datetime="${esc(e.created || "")}">${when(e.created)}</time> ${what}${who}${why}`;
}

function tables(m) {
  const days = m.daily.filter((d) => d.runs);
  const dayRows = days.map((d) => `<tr><th scope="row">${esc(d.date)}</th><td class="num">${int(d.runs)}</td><td class="num">${int(d.items)}</td><td class="num">${int(d.flagged)}</td><td class="num">${d.flagged_share == null ? "–" : pct(d.flagged_share)}</td></tr>`).join("");
  const pts = m.drift.points.slice(-50).reverse();
  const driftRows = pts.map((p) => `<tr><th scope="row">${runLink(p.run, `run ${p.run}`)}</th><td>${when(p.created)}</td><td class="num">${num(p.value)}</td><td>${p.alert ? "alert" : ""}</td></tr>`).join("");
  return `<table class="data-table"><caption>Days with runs</caption><thead><tr><th scope="col">Day (UTC)</th><th scope="col" class="num">Runs</th><th scope="col" class="num">Items</th><th scope="col" class="num">Flagged</th><th scope="col" class="num">Flagged share</th></tr></thead><tbody>${dayRows || '<tr><td colspan="5">No runs.</td></tr>'}</tbody></table>`
    + `<table class="data-table"><caption>Drift, newest first${m.drift.points.length > 50 ? " (latest 50)" : ""}</caption><thead><tr><th scope="col">Run</th><th scope="col">When</th><th scope="col" class="num">${esc(m.drift.statistic || "value")}</th><th scope="col">Level</th></tr></thead><tbody>${driftRows || '<tr><td colspan="4">No drift recorded.</td></tr>'}</tbody></table>`;
}

function layout(extra) {
  return { margin: { l: 48, r: 48, t: 8, b: 36 }, height: 200, font: FONT, showlegend: true,
    legend: { orientation: "h", y: -0.3 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff", ...extra };
}

function drawRuns(el, m) {
  const x = m.daily.map((d) => d.date);
  const most = Math.max(...m.daily.map((d) => d.runs));
  Plotly.newPlot(el, [
    { type: "bar", name: "runs", x, y: m.daily.map((d) => d.runs), marker: { color: BLUE },
      hovertemplate: "%{x}: %{y} runs<extra></extra>" },
    { type: "scatter", mode: "lines+markers", name: "flagged share", x, yaxis: "y2",
      y: m.daily.map((d) => d.flagged_share), connectgaps: false, line: { color: ORANGE, dash: "dot" },
      marker: { symbol: "triangle-up", size: 7, color: ORANGE }, hovertemplate: "%{x}: %{y:.1%} flagged<extra></extra>" },
  ], layout({
    xaxis: { type: "date", tickformat: "%d %b" },
    yaxis: { title: { text: "runs" }, rangemode: "tozero", tickformat: ",d", ...(most <= 5 ? { dtick: 1 } : {}) },
    yaxis2: { title: { text: "flagged" }, overlaying: "y", side: "right", tickformat: ".0%", rangemode: "tozero" },
  }), CONFIG);
}

function drawDrift(el, m) {
  const d = m.drift;
  const x = d.points.map((p) => p.created);
  const traces = [{ type: "scatter", mode: "lines+markers", name: d.statistic.replaceAll("_", " "), x, y: d.points.map((p) => p.value),
    customdata: d.points.map((p) => p.run), line: { color: BLUE },
    marker: { color: d.points.map((p) => (p.alert ? ORANGE : BLUE)), symbol: d.points.map((p) => (p.alert ? "triangle-up" : "circle")), size: 7 },
    hovertemplate: "run %{customdata}: %{y:.3f}<extra></extra>" }];
  if (d.level != null && x.length) {
    traces.push({ type: "scatter", mode: "lines", name: `alert at ${num(d.level, 2)}`, x: [x[0], x[x.length - 1]],
      y: [d.level, d.level], line: { color: GREY, dash: "dash" }, hoverinfo: "skip" });
  }
  Plotly.newPlot(el, traces, layout({ xaxis: { type: "date" }, yaxis: { rangemode: "tozero" } }), CONFIG);
  el.on?.("plotly_click", (ev) => {
    const run = ev.points?.[0]?.customdata;
    if (run != null) window.location.href = `${root.dataset.history}?run=${encodeURIComponent(run)}`;
  });
}

function fill(panel, m, days) {
  part(panel, "version").innerHTML = versionText(m);
  const problem = part(panel, "problem");
  problem.hidden = !m.problem;
  problem.textContent = m.problem || "";
  setStat(part(panel, "headline"), ...headlineStat(m));
  const t = m.totals;
  setStat(part(panel, "totals"), int(t.runs), t.runs
    ? `${int(t.items)} items, ${int(t.flagged)} flagged${t.flagged_share == null ? "" : ` (${pct(t.flagged_share)})`}` : `in the last ${count(days, "day")}`);
  setStat(part(panel, "flag-rate"), ...flagRateStat(m));
  const empty = part(panel, "empty");
  const charts = part(panel, "charts");
  const hasRuns = t.runs > 0;
  empty.hidden = hasRuns;
  charts.hidden = !hasRuns;
  part(panel, "numbers").hidden = !hasRuns;
  if (!hasRuns) {
    empty.innerHTML = `No successful ${esc(m.title)} runs in the last ${count(days, "day")}. <a href="${esc(m.page)}">Score a file</a> and it shows here.`;
  }
  part(panel, "drift-caption").textContent = m.drift.statistic
    ? `Drift per run: ${m.drift.statistic.replaceAll("_", " ")} against the training data` : "Drift per run";
  part(panel, "tables").innerHTML = tables(m);
  const events = part(panel, "events");
  events.innerHTML = m.events.length ? m.events.map((e) => `<li>${eventText(e)}</li>`).join("")
    : '<li class="muted">No registry change yet: the committed release is live.</li>';
  if (!hasRuns) return;
  if (!window.Plotly) {
    part(panel, "runs-chart").textContent = "Charts need plotly.js, which this server does not serve; the numbers are below.";
    return;
  }
  drawRuns(part(panel, "runs-chart"), m);
  const drift = part(panel, "drift-chart");
  if (m.drift.points.length) drawDrift(drift, m);
  else drift.textContent = "No run in these days stored a drift figure.";
}

async function load() {
  const status = $("dash-status");
  const days = Number(root.dataset.days);
  try {
    const response = await fetch(`${root.dataset.api}?days=${encodeURIComponent(days)}`, {
      headers: { Accept: "application/json" }, credentials: "same-origin" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || response.statusText);
    for (const m of body.modules) {
      const panel = $(`dash-${m.name}`);
      if (panel) fill(panel, m, body.days);
    }
    const runs = body.modules.reduce((n, m) => n + m.totals.runs, 0);
    status.textContent = runs
      ? `${count(runs, "successful run")} from ${body.first} to ${body.last} (UTC).`
      : `No successful runs from ${body.first} to ${body.last} (UTC) yet: open a module above and score a file.`;
    root.dataset.state = "ready";
  } catch (err) {
    status.textContent = `The dashboard could not be loaded: ${err.message}`;
    status.classList.add("alert", "alert-error");
    root.dataset.state = "failed";
  }
}

if (root) {
  load();
}
