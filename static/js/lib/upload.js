// Bringing files in: picking or dropping them, first checks in the browser, the server's
// check, and posting with an upload progress bar.
import { bindFilesPicker } from "./files.js";
import { csrfToken, withCsrf } from "./csrf.js";

/** True for bytes that are clearly not text: a NUL byte, or a start listed in the server's
 *  ``signatures`` (config.binary_signatures). */
export function looksBinary(bytes, signatures) {
  if (signatures.some((sig) => sig.length <= bytes.length && sig.every((b, k) => bytes[k] === b))) return true;
  return bytes.includes(0);
}

/** Checks before reading a file, with the server's rules (config.csv_extensions,
 *  config.spreadsheet_extensions, config.max_upload_mb and config.binary_signatures). Returns {refused, binary}: ``refused`` a
 *  message saying what to fix (or null); ``binary`` true when the bytes are not text, so the
 *  page must not parse them itself and waits for the server's normalised ``csv`` instead (an
 *  Excel workbook, when the server accepts those). */
export async function precheckFile(file, cfg) {
  const name = file.name || "upload.csv";
  const lower = name.toLowerCase();
  const mb = 1024 * 1024;
  const extensions = acceptedExtensions(cfg);
  const accepted = extensions.join(", ");
  if (!extensions.some((ext) => lower.endsWith(ext))) {
    return { refused: `${name}: not a CSV file. Upload a file ending in ${accepted} with a header row (the template shows the layout).`, binary: false };
  }
  if (file.size > cfg.max_upload_mb * mb) {
    return { refused: `${name} is ${(file.size / mb).toFixed(1)} MB, more than the ${cfg.max_upload_mb} MB limit. Split the file and try again.`, binary: false };
  }
  if (file.size === 0) return { refused: `${name}: the file is empty.`, binary: false };
  if ((cfg.spreadsheet_extensions ?? []).some((ext) => lower.endsWith(ext))) return { refused: null, binary: true };
  const head = new Uint8Array(await file.slice(0, 4096).arrayBuffer());
  return { refused: null, binary: looksBinary(head, cfg.binary_signatures) };
}

/** Every file ending the server takes: text tables, then spreadsheets. */
export function acceptedExtensions(cfg) {
  return [...cfg.csv_extensions, ...(cfg.spreadsheet_extensions ?? [])];
}

/** POST a file to a check endpoint; resolves to {ok, status, body} (never throws). */
export async function checkOnServer(url, file) {
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const res = await fetch(url, {
      method: "POST", body: form, headers: withCsrf({ "X-Requested-With": "fetch", Accept: "application/json" }),
    });
    let body = null;
    try { body = await res.json(); } catch { body = null; }
    return { ok: res.ok, status: res.status, body };
  } catch (err) {
    return { ok: false, status: 0, body: null, networkError: String(err) };
  }
}

/** Wire a file input and a drop zone to ``onFile(file)`` (the multi-file picker of files.js,
 *  so a drop elsewhere on the page never navigates away and loses edits). ``onMany(files)`` is
 *  called when several files are dropped on a page that takes one. */
export function bindFilePicker({ input, dropzone, onFile, onMany }) {
  bindFilesPicker({ input, dropzone,
    onFiles: (files) => (files.length > 1 && onMany ? onMany(files) : onFile(files[0])) });
}

/** POST ``form`` with progress; handlers: onProgress(loaded, total), onUploaded(),
 *  onDone(status, text), onError(), onAbort(). Returns the XMLHttpRequest (for abort()). */
export function postWithProgress(url, form, handlers) {
  const xhr = new XMLHttpRequest();
  xhr.open("POST", url);
  xhr.setRequestHeader("X-Requested-With", "fetch");
  xhr.setRequestHeader("Accept", "application/json");
  const token = csrfToken();
  if (token) xhr.setRequestHeader("X-CSRFToken", token);
  xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) handlers.onProgress?.(e.loaded, e.total); });
  xhr.upload.addEventListener("load", () => handlers.onUploaded?.());
  xhr.addEventListener("load", () => handlers.onDone(xhr.status, xhr.responseText));
  xhr.addEventListener("error", () => handlers.onError?.());
  xhr.addEventListener("abort", () => handlers.onAbort?.());
  xhr.send(form);
  return xhr;
}

/** A progress box (<progress>, a status line, a Cancel button) driven by postWithProgress. */
export function progressBox({ box, bar, text, cancel }) {
  let xhr = null;
  cancel.addEventListener("click", () => xhr?.abort());
  return {
    start(request, message) { xhr = request; box.hidden = false; bar.value = 0; text.textContent = message; },
    progress(percent, message) { bar.value = percent; text.textContent = message; },
    waiting(message) { bar.removeAttribute("value"); text.textContent = message; }, // indeterminate
    stop(message = "") { xhr = null; box.hidden = true; text.textContent = message; },
  };
}
