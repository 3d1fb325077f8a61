// CSV reading and writing. The formula guard for downloads comes from the server's rule
// (config.formula_triggers and config.number_pattern), so page and server write the same file.

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

/** A number for a CSV cell, to 6 significant digits; "" when missing. */
export function csvNumber(v) {
  return v == null || Number.isNaN(v) ? "" : Number(Number(v).toPrecision(6));
}

/** The server's formula guard as a function on text cells: a cell starting with one of
 *  ``triggers`` that is not a plain number gets a leading apostrophe. */
export function formulaGuard(triggers, numberPattern) {
  const number = new RegExp(numberPattern);
  return (text) => (text && triggers.includes(text[0]) && !number.test(text) ? `'${text}` : text);
}

/** A CSV file from a header and rows of cells; text cells go through ``guard``. */
export function writeCSV(header, rows, guard) {
  const text = (v) => csvField(typeof v === "string" ? guard(v) : v);
  const lines = [header.map(text).join(",")];
  for (const row of rows) lines.push(row.map(text).join(","));
  return lines.join("\n") + "\n";
}
