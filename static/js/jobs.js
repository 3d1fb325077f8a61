// The Jobs page (templates/jobs.html): start a training or batch-scoring job. A file from this
// computer is sent in parts (POST /api/v1/uploads, then each part at its offset, resuming from
// what the server has after a failed part), then the job is started (POST /api/v1/jobs) and the
// page goes to the job's own page, which shows its progress.
import { withCsrf } from "./lib/csrf.js";

const form = document.getElementById("job-form");

async function answer(response) {
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) throw new Error(body?.message || `the server answered ${response.status}`);
  return body;
}

function post(url, body, headers = { "Content-Type": "application/json" }) {
  return fetch(url, { method: "POST", headers: withCsrf({ ...headers, "X-Requested-With": "fetch" }),
                      body, credentials: "same-origin" });
}

async function upload(file, partBytes, show) {
  const opened = await answer(await post("/api/v1/uploads",
    JSON.stringify({ name: file.name, size: file.size })));
  let at = 0;
  const part = Math.max(1, Math.min(partBytes - 4096, opened.part_bytes - 4096));
  let retries = 0;
  while (at < file.size) {
    show(at, file.size);
    const response = await post(`/api/v1/uploads/${opened.id}?offset=${at}`,
      file.slice(at, at + part), { "Content-Type": "application/octet-stream" });
    if (response.ok) {
      at = (await response.json()).received;
      retries = 0;
    } else if (retries < 3) {  // resume from what the server holds
      retries += 1;
      at = (await answer(await fetch(`/api/v1/uploads/${opened.id}`,
        { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" }))).received;
    } else {
      await answer(response);
    }
  }
  show(file.size, file.size);
  return opened.id;
}

function chosen(name) {
  return form.querySelector(`input[name="${name}"]:checked`)?.value;
}

function refresh() {
  const kind = chosen("kind");
  const data = chosen("data");
  document.getElementById("train-fields").hidden = kind !== "train";
  document.getElementById("score-fields").hidden = kind !== "score";
  const shared = form.querySelector('input[name="data"][value="shared"]');
  shared.disabled = kind === "score";
  document.getElementById("data-shared-label").hidden = kind === "score";
  if (kind === "score" && data === "shared") {
    form.querySelector('input[name="data"][value="upload"]').checked = true;
  }
  const now = chosen("data");
  document.getElementById("upload-field").hidden = now !== "upload";
  const input = document.getElementById("input-field");
  if (input) input.hidden = now !== "input";
  const option = document.getElementById("job-module").selectedOptions[0];
  const noBatch = kind === "score" && option?.dataset.batch !== "1";
  document.getElementById("batch-note").hidden = !noBatch;
  document.getElementById("job-start").disabled = noBatch;
}

async function start(event) {
  event.preventDefault();
  const error = document.getElementById("job-error");
  const button = document.getElementById("job-start");
  error.hidden = true;
  button.disabled = true;
  try {
    const body = { kind: chosen("kind"), module: document.getElementById("job-module").value };
    if (body.kind === "train") {
      const text = document.getElementById("job-options").value.trim() || "{}";
      try { body.options = JSON.parse(text); } catch {
        throw new Error("the training options are not JSON, e.g. {\"epochs\": 2}");
      }
    } else {
      const model = document.getElementById("job-model").value.trim();
      const threshold = document.getElementById("job-threshold").value.trim();
      if (model) body.model = model;
      if (threshold) {
        body.threshold = Number(threshold.replace(",", "."));
        if (!Number.isFinite(body.threshold)) throw new Error("the threshold must be a number");
      }
    }
    const data = chosen("data");
    if (data === "upload") {
      const file = document.getElementById("job-file").files[0];
      if (!file) throw new Error("choose a file first");
      const box = document.getElementById("upload-progress");
      const bar = document.getElementById("upload-bar");
      const count = document.getElementById("upload-count");
      box.hidden = false;
      body.upload = await upload(file, Number(form.dataset.partBytes), (done, total) => {
        bar.max = total; bar.value = done;
        count.textContent = `${(done / 1048576).toFixed(1)} of ${(total / 1048576).toFixed(1)} MB sent`;
      });
    } else if (data === "input") {
      body.input = document.getElementById("job-input").value.trim();
    }
    const job = await answer(await post("/api/v1/jobs", JSON.stringify(body)));
    window.location.assign(job.url);
  } catch (exc) {
    error.textContent = exc.message;
    error.hidden = false;
    button.disabled = false;
  }
}

if (form) {
  form.addEventListener("change", refresh);
  form.addEventListener("submit", start);
  refresh();
}
