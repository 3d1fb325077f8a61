// Bringing several files at once (images, maps, archives): a multi-file picker and drop zone,
// first checks with the server's rules (accepted endings, the size limit), a POST of all of
// them in the form field "file", repeated, and the files the server left out.
import { announce, count, esc, MB, showError } from "./util.js";
import { withCsrf } from "./csrf.js";

/** Wire a multi-file input and a drop zone to ``onFiles(files)``; a drop elsewhere on the
 *  page does nothing (the browser would otherwise open the file and leave the page). */
export function bindFilesPicker({ input, dropzone, onFiles }) {
  input.addEventListener("change", async () => {
    const files = Array.from(input.files);
    input.value = ""; // picking the same files again reloads them
    if (files.length) await onFiles(files);
  });
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  const over = (e) => { e.preventDefault(); dropzone.classList.add("is-over"); };
  dropzone.addEventListener("dragenter", over);
  dropzone.addEventListener("dragover", over);
  dropzone.addEventListener("dragleave", (e) => {
    if (!dropzone.contains(e.relatedTarget)) dropzone.classList.remove("is-over");
  });
  dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    dropzone.classList.remove("is-over");
    const files = Array.from(e.dataTransfer?.files ?? []);
    if (files.length) onFiles(files);
  });
}

/** A message saying what to fix, or null: every file must end in one of ``extensions`` and
 *  together they must fit ``maxMb`` (both from the page config). */
export function precheckFiles(files, { extensions, maxMb }) {
  const wrong = files.filter((f) => !extensions.some((ext) => f.name.toLowerCase().endsWith(ext)));
  if (wrong.length) {
    return `${wrong[0].name}${wrong.length > 1 ? ` and ${wrong.length - 1} more` : ""}: not an accepted file. `
      + `Upload files ending in ${extensions.join(", ")}.`;
  }
  const empty = files.find((f) => f.size === 0);
  if (empty) return `${empty.name}: the file is empty.`;
  const total = files.reduce((n, f) => n + f.size, 0);
  if (total > maxMb * MB) {
    return `The files hold ${(total / MB).toFixed(1)} MB, more than the ${maxMb} MB limit. Send fewer at a time.`;
  }
  return null;
}

/** A FormData with every file in the field "file" and the ``fields`` given. */
export function filesForm(files, fields = {}) {
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  for (const [k, v] of Object.entries(fields)) if (v != null) form.append(k, String(v));
  return form;
}

/** POST ``form``; resolves to {ok, status, body} (never throws). */
export async function postForm(url, form) {
  try {
    const res = await fetch(url, { method: "POST", body: form,
      headers: withCsrf({ "X-Requested-With": "fetch", Accept: "application/json" }) });
    let body = null;
    try { body = await res.json(); } catch { body = null; }
    return { ok: res.ok, status: res.status, body };
  } catch (err) {
    return { ok: false, status: 0, body: null, networkError: String(err) };
  }
}

/** Check ``files`` on the server (``checkUrl``, with ``fields``) after the page's own first
 *  check; while it runs ``status`` says so and ``busy`` (a button, optional) is disabled.
 *  Resolves to {ok: true, name, body} or {ok: false, message, problems} (never throws). */
export async function checkFiles(files, { checkUrl, extensions, maxMb, status, busy = null,
                                          sourceName = null, fields = {} }) {
  const refused = precheckFiles(files, { extensions, maxMb });
  if (refused) return { ok: false, message: refused, problems: [] };
  const name = sourceName ?? (files.length === 1 ? files[0].name : `${files[0].name} and ${files.length - 1} more`);
  status.textContent = `Reading ${name} on the server…`;
  if (busy) busy.disabled = true;
  const check = await postForm(checkUrl, filesForm(files, fields));
  if (busy) busy.disabled = false;
  if (!check.ok) {
    return { ok: false, name, problems: check.body?.problems ?? [],
      message: check.body?.message ?? `${name} could not be read (HTTP ${check.status || "no answer"}).` };
  }
  return { ok: true, name, body: check.body };
}

/** Say a load failed without losing the page: ``kept`` names what is still shown, if any. */
export function showLoadFailure({ errorBox, status }, message, problems = [], kept = null) {
  showError(errorBox, message + (kept ? ` Nothing was loaded; ${kept} is still shown below.` : ""), problems);
  status.textContent = "";
  announce(`Upload failed: ${message}`);
}

/** The page's generated sample at ``url`` as a File named ``name``; throws on an HTTP error. */
export async function fetchSample(url, name, type) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return new File([await res.blob()], name, { type });
}

/** The files the server left out of a check or a prediction (``rejected``: [{file, reason}],
 *  each reason naming its file) in ``box`` (the kit's rejected_box), hidden when there are none.
 *  ``stage``: "check" (they will be left out) or "results" (they were). */
export function renderRejected(box, rejected, { stage, noun }) {
  const items = (Array.isArray(rejected) ? rejected : [])
    .filter((r) => r && typeof r.file === "string" && typeof r.reason === "string");
  const list = box.querySelector("ul");
  box.hidden = !items.length;
  if (!items.length) { list.innerHTML = ""; return; }
  const files = count(items.length, "file");
  box.querySelector("h3").textContent = stage === "check"
    ? `${files} cannot be read and will be left out; the other files' ${noun.many} are shown below`
    : `${files} could not be read and ${items.length === 1 ? "is" : "are"} left out of these results`;
  list.innerHTML = items.map(({ file, reason }) => (reason.startsWith(file)
    ? `<li><strong>${esc(file)}</strong>${esc(reason.slice(file.length))}</li>`
    : `<li>${esc(reason)}</li>`)).join("");
}
