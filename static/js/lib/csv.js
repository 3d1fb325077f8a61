// CSV reading, and writing the edited table back for the server. The results CSV is written
// only by the server (webapp/downloads.py); the page downloads it from the run's results_url.

export class CsvError extends Error {}

/** Parse RFC 4180 CSV text; calls onRow(fields) for each record. Handles quotes, "" escapes,
 *  commas and newlines inside quotes, CRLF/LF/CR line ends and a leading BOM. */
export function parseCSV(text, onRow) {
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let row = [];
  let record = 1;
  while (i < n) {
    let field;
    if (text.charCodeAt(i) === 34) { // opening quote
      let j = i + 1;
      field = "";
      for (;;) {
        const q = text.indexOf('"', j);
        if (q < 0) throw new CsvError(`record ${record}: a quoted field is never closed`);
        if (text.charCodeAt(q + 1) === 34) { field += text.slice(j, q + 1); j = q + 2; continue; }
        field += text.slice(j, q);
        i = q + 1;
        break;
      }
      // tolerate stray characters after the closing quote (as pandas does): keep them
      let k = i;
      while (k < n) { const c = text.charCodeAt(k); if (c === 44 || c === 10 || c === 13) break; k++; }
      if (k > i) { field += text.slice(i, k); i = k; }
    } else {
      let j = i;
      while (j < n) { const c = text.charCodeAt(j); if (c === 44 || c === 10 || c === 13) break; j++; }
      field = text.slice(i, j);
      i = j;
    }
    row.push(field);
    if (i >= n) break;
    const c = text.charCodeAt(i);
    if (c === 44) { // comma
      i++;
      if (i >= n) row.push("");
      continue;
    }
    i += c === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1; // line end
    onRow(row);
    row = [];
    record++;
  }
  if (row.length) onRow(row);
}

/** One CSV field, quoted when it has to be. */
export function csvField(value) {
  const s = value == null ? "" : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
