// Small coded grids (wafer maps, masks) drawn on a canvas, with an optional heat overlay.
// Grids travel packed: ``{rows, cols, codes}``, codes 2 bits per cell, four to a byte, the
// first cell in the lowest bits, base64 (the server's pack_grid). Colours come from the
// stylesheet: --grid-0, --grid-1, ... on the canvas (or an ancestor), so the palette is CSS.

/** The cell codes of a packed grid, row by row (Uint8Array of rows * cols). */
export function unpackGrid({ rows, cols, codes }) {
  const bytes = Uint8Array.from(atob(codes), (c) => c.charCodeAt(0));
  const out = new Uint8Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = (bytes[i >> 2] >> ((i & 3) * 2)) & 3;
  return out;
}

/** The grid as nested lists (what a JSON body holds). */
export function gridRows(cells, rows, cols) {
  const out = [];
  for (let r = 0; r < rows; r++) out.push(Array.from(cells.subarray(r * cols, (r + 1) * cols)));
  return out;
}

/** Colours for codes 0..n-1 from the CSS custom properties --grid-0... */
export function gridColours(el, n = 4) {
  const style = getComputedStyle(el);
  return Array.from({ length: n }, (_, k) => style.getPropertyValue(`--grid-${k}`).trim() || "#999");
}

function rgb(colour) {
  const probe = document.createElement("canvas").getContext("2d");
  probe.fillStyle = colour;
  const hex = probe.fillStyle; // normalised to #rrggbb
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

/** Draw ``cells`` (rows x cols codes) filling ``canvas``; ``heat`` (values >= 0, same size,
 *  optional) shades cells in the --grid-heat colour at ``opacity`` times value / max. */
export function drawGrid(canvas, cells, rows, cols, { heat = null, opacity = 0.7 } = {}) {
  const colours = gridColours(canvas).map(rgb);
  const heatColour = rgb(getComputedStyle(canvas).getPropertyValue("--grid-heat").trim() || "#000");
  const image = new ImageData(cols, rows);
  let max = 0;
  if (heat) for (const v of heat) if (v > max) max = v;
  for (let i = 0; i < cells.length; i++) {
    let [r, g, b] = colours[cells[i]] ?? [153, 153, 153];
    if (heat && max > 0 && heat[i] > 0) {
      const a = opacity * Math.min(1, heat[i] / max);
      r = r * (1 - a) + heatColour[0] * a; g = g * (1 - a) + heatColour[1] * a; b = b * (1 - a) + heatColour[2] * a;
    }
    image.data.set([r, g, b, 255], i * 4);
  }
  const ctx = canvas.getContext("2d");
  const tmp = document.createElement("canvas");
  tmp.width = cols; tmp.height = rows;
  tmp.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const scale = Math.min(canvas.width / cols, canvas.height / rows);
  const w = cols * scale, h = rows * scale;
  ctx.drawImage(tmp, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
}
