// One job's page (templates/job.html): while the job is queued or running, its state, progress
// bar with the count, an estimate of the time left, the stage and the log are refreshed from
// GET /api/v1/jobs/<id> every second; Cancel posts to its cancel address. The result's links
// come with the page once the job has ended (it reloads then).
import { withCsrf } from "./lib/csrf.js";

const box = document.getElementById("job");
const seen = [];  // (time, done) pairs for the estimate

function text(id, value) {
  const node = document.getElementById(id);
  if (node) node.textContent = value;
}

function estimate(done, total) {
  const now = Date.now() / 1000;
  seen.push([now, done]);
  while (seen.length > 30) seen.shift();
  if (!total || seen.length < 3 || done <= seen[0][1]) return "";
  const rate = (done - seen[0][1]) / (now - seen[0][0]);
  const left = (total - done) / rate;
  if (!Number.isFinite(left) || left < 0) return "";
  return left > 90 ? `about ${Math.round(left / 60)} min left` : `about ${Math.round(left)} s left`;
}

async function poll() {
  let job;
  try {
    const response = await fetch(`${box.dataset.api}?log=200`,
      { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(String(response.status));
    job = await response.json();
  } catch {
    setTimeout(poll, 3000);
    return;
  }
  const p = job.progress;
  const bar = document.getElementById("job-bar");
  if (p.done !== null && p.done !== undefined) {
    bar.max = p.total || Math.max(p.done, 1);
    bar.value = p.done;
    text("job-count", `${p.done.toLocaleString()}${p.total ? ` of ${p.total.toLocaleString()}` : ""} ${p.unit || ""}`);
    text("job-eta", estimate(p.done, p.total));
  }
  text("job-stage", p.stage || "");
  text("job-state", job.state + (job.cancel_requested && job.state === "running" ? " (cancel asked)" : ""));
  const log = document.getElementById("job-log");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = job.log.join("\n");
  if (atEnd) log.scrollTop = log.scrollHeight;
  if (job.state !== box.dataset.state && !["queued", "running"].includes(job.state)) {
    window.location.reload();  // the result's links, as the server words them
    return;
  }
  box.dataset.state = job.state;
  setTimeout(poll, 1000);
}

async function cancel() {
  const button = document.getElementById("job-cancel");
  button.disabled = true;
  const response = await fetch(box.dataset.cancel, { method: "POST", credentials: "same-origin",
    headers: withCsrf({ "X-Requested-With": "fetch" }) });
  if (!response.ok) button.disabled = false;
}

if (box) {
  document.getElementById("job-cancel")?.addEventListener("click", cancel);
  if (["queued", "running"].includes(box.dataset.state)) poll();
}
