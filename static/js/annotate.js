// The review page: one item at a time from the queue (GET /api/v1/active-learning/queue), its
// details and the live model's explanation (GET .../items/<id>?explain=1), a label by keyboard
// (1..n pick, Enter confirms, arrows move), and for photos the defect outlined with boxes or a
// brush. The server decides states, order and progress; this page only shows them.
import { $, announce, clearError, esc, getJSON, int, readConfig, showError } from "./lib/util.js";
import { withCsrf } from "./lib/csrf.js";
import { drawGrid, unpackGrid } from "./lib/gridcanvas.js";

const cfg = readConfig();
const itemUrl = (id) => cfg.item_url.replace("{id}", String(id));
let ids = [];
let index = -1;
let item = null;
let busy = false;

function setProgress(data) {
  $("an-progress").textContent = data.progress;
  $("an-bar").max = Math.max(1, data.counts.total);
  $("an-bar").value = data.counts.reviewed;
}

async function fetchQueue() {
  const url = `${cfg.queue_url}?module=${encodeURIComponent(cfg.module)}&state=${encodeURIComponent(cfg.state)}&limit=50`;
  const data = await getJSON(url);
  setProgress(data);
  const known = new Set(ids);
  const fresh = data.items.map((i) => i.id).filter((id) => !known.has(id));
  ids.push(...fresh);
  return fresh.length;
}

// -- regions (photos) ------------------------------------------------------------------------------
const regions = { boxes: [], mask: null, maskPainted: false, tool: "box", start: null, live: null };

function resetRegions(width, height, from = null) {
  regions.boxes = from ? from.boxes.map((b) => b.slice()) : [];
  regions.mask = document.createElement("canvas");
  regions.mask.width = width; regions.mask.height = height;
  regions.maskPainted = false;
  if (from && from.mask_png_base64) {
    const img = new Image();
    img.onload = () => {
      const ctx = regions.mask.getContext("2d");
      ctx.drawImage(img, 0, 0);
      // the stored mask is grey (255 = defect): keep it as alpha in the painting colour
      const data = ctx.getImageData(0, 0, width, height);
      for (let i = 0; i < data.data.length; i += 4) {
        const on = data.data[i] > 0;
        data.data.set(on ? [213, 94, 0, 255] : [0, 0, 0, 0], i);
      }
      ctx.putImageData(data, 0, 0);
      regions.maskPainted = true;
      drawRegions();
    };
    img.src = `data:image/png;base64,${from.mask_png_base64}`;
  }
  drawRegions();
}

function drawRegions() {
  const canvas = $("an-draw");
  if (!canvas || !item) return;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const sx = canvas.width / item.width, sy = canvas.height / item.height;
  ctx.globalAlpha = 0.45;
  ctx.imageSmoothingEnabled = false;
  if (regions.mask) ctx.drawImage(regions.mask, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
  ctx.lineWidth = 2;
  ctx.strokeStyle = getComputedStyle(canvas).getPropertyValue("--rq-box").trim() || "#d55e00";
  const all = regions.live ? [...regions.boxes, regions.live] : regions.boxes;
  for (const [x, y, w, h] of all) ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
  const n = regions.boxes.length;
  $("an-regions").textContent = `${n} box${n === 1 ? "" : "es"}${regions.maskPainted ? " and a brush mask" : ""} around the defect`;
}

function photoPoint(event) {
  const canvas = $("an-draw");
  const rect = canvas.getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * item.width;
  const y = ((event.clientY - rect.top) / rect.height) * item.height;
  return [Math.min(item.width, Math.max(0, x)), Math.min(item.height, Math.max(0, y))];
}

function paint([x, y]) {
  const ctx = regions.mask.getContext("2d");
  const radius = (Number($("an-brush").value) / 2) * (item.width / $("an-draw").getBoundingClientRect().width);
  ctx.fillStyle = "rgb(213, 94, 0)";
  ctx.beginPath(); ctx.arc(x, y, Math.max(1, radius), 0, 2 * Math.PI); ctx.fill();
  regions.maskPainted = true;
}

function bindDrawing() {
  const canvas = $("an-draw");
  if (!canvas) return;
  canvas.addEventListener("pointerdown", (event) => {
    if (!item || !cfg.can_annotate) return;
    canvas.setPointerCapture(event.pointerId);
    regions.start = photoPoint(event);
    if (regions.tool === "brush") { paint(regions.start); drawRegions(); }
    pickLabel(cfg.labels.length - 1);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!regions.start) return;
    const point = photoPoint(event);
    if (regions.tool === "brush") paint(point);
    else {
      const [x0, y0] = regions.start;
      regions.live = [Math.min(x0, point[0]), Math.min(y0, point[1]), Math.abs(point[0] - x0), Math.abs(point[1] - y0)];
    }
    drawRegions();
  });
  const end = () => {
    if (regions.live && regions.live[2] >= 1 && regions.live[3] >= 1) {
      regions.boxes.push(regions.live.map((v) => Math.round(v * 10) / 10));
    }
    regions.start = null; regions.live = null;
    drawRegions();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  document.querySelectorAll('input[name="an-tool"]').forEach((radio) => radio.addEventListener("change", () => {
    regions.tool = radio.value;
  }));
  $("an-clear").addEventListener("click", clearRegions);
  $("an-opacity").addEventListener("input", () => { $("an-heat").style.opacity = String(Number($("an-opacity").value) / 100); });
}

function clearRegions() {
  if (!item) return;
  resetRegions(item.width, item.height);
  announce("regions cleared");
}

function setTool(tool) {
  regions.tool = tool;
  const radio = document.querySelector(`input[name="an-tool"][value="${tool}"]`);
  if (radio) radio.checked = true;
  announce(tool === "box" ? "box tool" : "brush tool");
}

// -- one item --------------------------------------------------------------------------------------
function pickLabel(k) {
  const radios = document.querySelectorAll('input[name="an-label"]');
  if (k < 0 || k >= radios.length || radios[k].disabled) return;
  radios[k].checked = true;
  announce(`label ${radios[k].value}`);
}

function fact(term, value) {
  return `<dt>${esc(term)}</dt><dd>${value}</dd>`;
}

function render() {
  clearError($("an-error"));
  $("an-status").textContent = "";
  $("an-name").textContent = item.name || `item ${item.id}`;
  $("an-source").innerHTML = `Item ${int(index + 1)} of ${int(ids.length)} loaded`
    + (item.run_url ? ` · from <a href="${esc(item.run_url)}">run ${int(item.run_id)}</a>` : "")
    + (item.position ? `, ${cfg.noun} ${int(item.position)}` : "");
  const when = item.model_version ? ` (${esc(item.model_version)})` : "";
  const score = cfg.module === "wafermap"
    ? `${esc(item.predicted)} at confidence ${Number(item.score).toFixed(3)}${when}`
    : `${esc(item.predicted)}: score ${Number(item.score).toFixed(3)} against ${Number(item.threshold).toFixed(3)}, `
      + `${Number(item.details.distance ?? 0).toFixed(2)} spreads ${esc(item.details.side ?? "")}${when}`;
  $("an-facts").innerHTML = fact("When it was scored", score)
    + fact("Uncertainty", Number(item.uncertainty).toFixed(3))
    + (item.upload_label ? fact("The upload's own label", esc(item.upload_label)) : "")
    + fact("State", `${esc(item.state)}${item.label ? `: ${esc(item.label)}` : ""}`);
  const live = item.live || {};
  let chosen = item.label || item.predicted;
  if (cfg.module === "wafermap") {
    const cells = unpackGrid(item.map);
    drawGrid($("an-map"), cells, item.map.rows, item.map.cols);
    drawGrid($("an-saliency"), cells, item.map.rows, item.map.cols, { heat: live.saliency ? live.saliency.flat() : null });
    $("an-top3").innerHTML = (live.top3 || []).map((t) => `<li>${esc(t.class)} <span class="num">${(100 * t.probability).toFixed(1)}%</span></li>`).join("");
    if (!item.label && live.class) chosen = live.class;
  } else {
    item.width = item.width || item.map?.cols;
    $("an-photo").src = item.image_url;
    $("an-heat").src = live.heatmap_png_base64 ? `data:image/png;base64,${live.heatmap_png_base64}` : "";
    $("an-heat").style.opacity = String(Number($("an-opacity").value) / 100);
    $("an-top3").innerHTML = live.anomaly_score === undefined ? "" : `<li>${live.is_anomaly ? "defective" : "good"} <span class="num">score ${Number(live.anomaly_score).toFixed(3)} / ${Number(live.threshold).toFixed(3)}</span></li>`;
    const outlined = [...item.history].reverse().find((h) => h.label === cfg.labels[cfg.labels.length - 1]);
    resetRegions(item.width, item.height, item.label === cfg.labels[cfg.labels.length - 1] ? outlined : null);
  }
  document.querySelectorAll('input[name="an-label"]').forEach((radio) => { radio.checked = radio.value === chosen; });
  $("an-settle-box").hidden = !(cfg.can_annotate && item.state === "conflict");
  $("an-settle").checked = item.state === "conflict";
  $("an-history").innerHTML = item.history.length
    ? item.history.map((h) => `<li><strong>${esc(h.label)}</strong> by ${esc(h.user)}, ${esc(h.created.slice(0, 16).replace("T", " "))} UTC`
      + `${h.settles ? " (settled the conflict)" : ""}${h.source === "import" ? ` (imported by ${esc(h.recorded_by)})` : ""}`
      + `${h.boxes.length ? `, ${h.boxes.length} box${h.boxes.length === 1 ? "" : "es"}` : ""}${h.mask_png_base64 ? ", a brush mask" : ""}</li>`).join("")
    : "<li>None yet.</li>";
  $("an-prev").disabled = index <= 0;
  announce(`${cfg.noun} ${item.name || item.id}: ${item.state}`);
}

async function show(i) {
  if (i < 0 || busy) return;
  if (i >= ids.length) {
    busy = true;
    try { await fetchQueue(); } finally { busy = false; }
    if (i >= ids.length) {
      $("an-status").textContent = `No more ${cfg.nouns} in this queue.`;
      announce(`no more ${cfg.nouns}`);
      return;
    }
  }
  busy = true;
  try {
    item = await getJSON(`${itemUrl(ids[i])}?explain=1`);
    if (item.map) { item.width = item.map.cols; item.height = item.map.rows; }
    index = i;
    render();
  } catch (err) {
    showError($("an-error"), err.message, err.problems);
  } finally {
    busy = false;
  }
}

function regionsBody() {
  if (!cfg.regions) return {};
  const label = document.querySelector('input[name="an-label"]:checked')?.value;
  if (label !== cfg.labels[cfg.labels.length - 1]) return {};
  const body = {};
  if (regions.boxes.length) body.boxes = regions.boxes;
  if (regions.maskPainted) body.mask = regions.mask.toDataURL("image/png");
  return body;
}

async function confirm() {
  if (!item || busy || !cfg.can_annotate) return;
  const label = document.querySelector('input[name="an-label"]:checked')?.value;
  if (!label) { $("an-status").textContent = `Pick a label first (keys 1–${cfg.labels.length}).`; return; }
  busy = true;
  try {
    const body = { label, ...regionsBody() };
    if (!$("an-settle-box").hidden && $("an-settle").checked) body.settle = true;
    const saved = await getJSON(`${itemUrl(item.id)}/annotations`, {
      method: "POST", headers: withCsrf({ "Content-Type": "application/json" }), body: JSON.stringify(body),
    });
    setProgress(saved);
    announce(`saved: ${label}. ${saved.progress}`);
    $("an-status").textContent = `Saved: ${label}.`;
  } catch (err) {
    showError($("an-error"), err.message, err.problems);
    return;
  } finally {
    busy = false;
  }
  await show(index + 1);
}

function bindKeys() {
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    const typing = target.matches?.("input[type=text], input[type=number], input[type=file], textarea, select");
    if (typing) return;
    if (/^[1-9]$/.test(event.key)) {
      pickLabel(Number(event.key) - 1);
      event.preventDefault();
    } else if (event.key === "Enter") {
      if (target.matches?.("button, a, summary")) return; // their own action
      event.preventDefault();
      confirm();
    } else if (["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"].includes(event.key)) {
      if (target.matches?.("input[type=range]")) return;
      event.preventDefault();
      show(index + (event.key === "ArrowRight" || event.key === "ArrowDown" ? 1 : -1));
    } else if (cfg.regions && (event.key === "b" || event.key === "B")) {
      setTool("box");
    } else if (cfg.regions && (event.key === "r" || event.key === "R")) {
      setTool("brush");
    } else if (cfg.regions && (event.key === "Delete" || event.key === "Backspace")) {
      event.preventDefault();
      clearRegions();
    }
  });
  $("an-confirm").addEventListener("click", confirm);
  $("an-prev").addEventListener("click", () => show(index - 1));
  $("an-next").addEventListener("click", () => show(index + 1));
}

async function start() {
  bindKeys();
  bindDrawing();
  try {
    if (cfg.item) ids = [cfg.item];
    await fetchQueue();
  } catch (err) {
    showError($("an-error"), err.message, err.problems);
    return;
  }
  if (!ids.length) { $("an-empty").hidden = false; return; }
  $("an-layout").hidden = false;
  await show(0);
}

start();
