// A 2-D convolution with one input and one output channel, its input gradient
// and im2col / col2im, for the explorer of post 11. Mirrors backprop.conv
// (which the fixtures extend to dilation by spreading the kernel out).
// Plain ES2020 module: no dependencies, no DOM.
//
// Sizes: image h × w, kernel kh × kw, one stride s, padding p and dilation d
// for both directions. Kernel entry (u, v) of the window of output (i, j)
// reads padded-image row i·s + u·d, that is input row i·s + u·d − p:
//
//   y[i, j] = Σ_{u, v} w[u, v] · x[i·s + u·d − p, j·s + v·d − p]   (0 outside x)
//   ho = ⌊(h + 2p − d·(kh − 1) − 1) / s⌋ + 1                        (wo likewise)
//   ∂L/∂x[r, t] = Σ over the (i, j, u, v) that read x[r, t] of ∂L/∂y[i, j] · w[u, v]

export const LIMITS = {
  h: [1, 8],
  w: [1, 8],
  kh: [1, 5],
  kw: [1, 5],
  stride: [0, 4],
  padding: [0, 3],
  dilation: [0, 3],
};

const NAMES = {
  h: "image height",
  w: "image width",
  kh: "kernel height",
  kw: "kernel width",
  stride: "stride",
  padding: "padding",
  dilation: "dilation",
};

export class ConvError extends Error {
  constructor(message) {
    super(message);
    this.name = "ConvError";
  }
}

// Every size a whole number within LIMITS; throws ConvError naming the one at
// fault. Stride and dilation 0 pass here: plan() explains why they give no output.
export function checkSizes(sizes) {
  if (sizes === null || typeof sizes !== "object") {
    throw new ConvError("sizes must be an object {h, w, kh, kw, stride, padding, dilation}");
  }
  const out = {};
  for (const [key, [lo, hi]] of Object.entries(LIMITS)) {
    const value = sizes[key];
    if (value === undefined) throw new ConvError(`the ${NAMES[key]} is missing`);
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new ConvError(`the ${NAMES[key]} must be a number, got ${String(value)}`);
    }
    if (!Number.isInteger(value)) {
      throw new ConvError(`the ${NAMES[key]} must be a whole number, got ${value}`);
    }
    if (value < lo || value > hi) {
      throw new ConvError(`the ${NAMES[key]} must be between ${lo} and ${hi} here, got ${value}`);
    }
    out[key] = value;
  }
  return out;
}

// The span of a dilated kernel: d − 1 gaps between neighbouring entries.
export function span(k, dilation) {
  return dilation * (k - 1) + 1;
}

export function outputSize(n, k, stride, padding, dilation) {
  return Math.floor((n + 2 * padding - span(k, dilation)) / stride) + 1;
}

// Output size, or the rule that fails, in words. Never throws for sizes that
// pass checkSizes.
export function plan(input) {
  const z = checkSizes(input);
  const base = { sizes: z, paddedH: z.h + 2 * z.padding, paddedW: z.w + 2 * z.padding };
  if (z.stride === 0) {
    return { ...base, ok: false, rule: "stride",
      message: "No output: the stride must be at least 1. With stride 0 the window never moves, " +
        "so there is no next window and no way to count the outputs." };
  }
  if (z.dilation === 0) {
    return { ...base, ok: false, rule: "dilation",
      message: "No output: the dilation must be at least 1. Dilation d puts the kernel's " +
        "entries d pixels apart; with 0 every entry would read the same pixel." };
  }
  const spanH = span(z.kh, z.dilation);
  const spanW = span(z.kw, z.dilation);
  for (const [what, k, sp, n, padded] of [
    ["rows", z.kh, spanH, z.h, base.paddedH],
    ["columns", z.kw, spanW, z.w, base.paddedW],
  ]) {
    if (sp > padded) {
      const spread = z.dilation > 1 ? `${k} entries ${z.dilation} apart span ${sp}` : `it spans ${sp}`;
      return { ...base, ok: false, rule: "size", spanH, spanW,
        message: `No output: the kernel does not fit. In ${what}, ${spread}, but the padded image ` +
          `has ${n} + 2 × ${z.padding} = ${padded}: the kernel must be no larger than the padded image.` };
    }
  }
  const outH = outputSize(z.h, z.kh, z.stride, z.padding, z.dilation);
  const outW = outputSize(z.w, z.kw, z.stride, z.padding, z.dilation);
  const formula = (n, sp) =>
    `⌊(${n} + 2 × ${z.padding} − ${sp}) / ${z.stride}⌋ + 1`;
  return { ...base, ok: true, rule: null, spanH, spanW, outH, outW,
    message: `Output ${outH} × ${outW}: height ${formula(z.h, spanH)} = ${outH}, ` +
      `width ${formula(z.w, spanW)} = ${outW}.` };
}

function requireOk(p) {
  if (!p.ok) throw new ConvError(p.message);
  return p;
}

function checkGrid(name, grid, rows, cols) {
  if (!Array.isArray(grid) || grid.length !== rows) {
    throw new ConvError(`${name} must have ${rows} rows, got ${Array.isArray(grid) ? grid.length : typeof grid}`);
  }
  grid.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== cols) {
      throw new ConvError(`${name} row ${i} must have ${cols} entries`);
    }
    row.forEach((value, j) => {
      if (!Number.isFinite(value)) throw new ConvError(`${name}[${i}][${j}] is ${value}, not a finite number`);
    });
  });
}

function checkEntry(name, i, j, rows, cols) {
  if (!(Number.isInteger(i) && Number.isInteger(j) && i >= 0 && j >= 0 && i < rows && j < cols)) {
    throw new ConvError(`${name} (${i}, ${j}) is outside the ${rows} × ${cols} grid`);
  }
}

function zeros(rows, cols) {
  return Array.from({ length: rows }, () => new Array(cols).fill(0));
}

// Small whole numbers for the page, so that every sum can be read and checked
// by hand; no zeros, so every term of a sum shows.
const X_CYCLE = [3, -1, 2, 1, -2, 4, 1, -3, 2];
const W_CYCLE = [1, -1, 2, 1, -2, 1, 3, -1, 2, -2, 1];
const G_CYCLE = [1, -2, 2, 1, -1, 3];

export function example(input) {
  const p = requireOk(plan(input));
  const z = p.sizes;
  const grid = (rows, cols, cycle, step) =>
    Array.from({ length: rows }, (_, i) =>
      Array.from({ length: cols }, (_, j) => cycle[(i * step + j) % cycle.length]));
  return { x: grid(z.h, z.w, X_CYCLE, 4), w: grid(z.kh, z.kw, W_CYCLE, 3), g: grid(p.outH, p.outW, G_CYCLE, 2) };
}

// The input pixel kernel entry (u, v) of window (i, j) reads, in input
// coordinates (negative or past the edge: padding).
export function source(sizes, i, j, u, v) {
  const { stride: s, padding: p, dilation: d, h, w } = sizes;
  const row = i * s + u * d - p;
  const col = j * s + v * d - p;
  return { row, col, inPadding: row < 0 || col < 0 || row >= h || col >= w };
}

// The receptive field of output (i, j): one term per kernel entry, in the
// kernel's reading order, with the input value it meets (0 in the padding).
export function outputEntry(input, x, w, i, j) {
  const p = requireOk(plan(input));
  const z = p.sizes;
  checkGrid("x", x, z.h, z.w);
  checkGrid("w", w, z.kh, z.kw);
  checkEntry("output entry", i, j, p.outH, p.outW);
  const terms = [];
  for (let u = 0; u < z.kh; u++) {
    for (let v = 0; v < z.kw; v++) {
      const at = source(z, i, j, u, v);
      const xv = at.inPadding ? 0 : x[at.row][at.col];
      terms.push({ u, v, ...at, x: xv, w: w[u][v], product: xv * w[u][v] });
    }
  }
  return { i, j, terms, value: terms.reduce((sum, t) => sum + t.product, 0) };
}

export function forward(input, x, w) {
  const p = requireOk(plan(input));
  return Array.from({ length: p.outH }, (_, i) =>
    Array.from({ length: p.outW }, (_, j) => outputEntry(input, x, w, i, j).value));
}

// Every output input pixel (r, t) fed, with the kernel entry it met there: the
// terms of ∂L/∂x[r, t] = Σ ∂L/∂y[i, j] · w[u, v]. Outputs in reading order.
export function inputEntry(input, w, g, r, t) {
  const p = requireOk(plan(input));
  const z = p.sizes;
  checkGrid("w", w, z.kh, z.kw);
  checkGrid("∂L/∂y", g, p.outH, p.outW);
  checkEntry("input entry", r, t, z.h, z.w);
  const terms = [];
  for (let i = 0; i < p.outH; i++) {
    for (let j = 0; j < p.outW; j++) {
      for (let u = 0; u < z.kh; u++) {
        for (let v = 0; v < z.kw; v++) {
          const at = source(z, i, j, u, v);
          if (at.row === r && at.col === t) {
            terms.push({ i, j, u, v, g: g[i][j], w: w[u][v], product: g[i][j] * w[u][v] });
          }
        }
      }
    }
  }
  return { r, t, terms, value: terms.reduce((sum, term) => sum + term.product, 0) };
}

// ∂L/∂x for every pixel, as sums over the outputs each pixel fed.
export function gradInput(input, w, g) {
  const z = checkSizes(input);
  return Array.from({ length: z.h }, (_, r) =>
    Array.from({ length: z.w }, (_, t) => inputEntry(input, w, g, r, t).value));
}

// The same gradient as post 11 writes it: spread ∂L/∂y out by the stride
// (stride − 1 zeros between neighbours), pad it so a kernel-sized window fits
// around every position, and correlate with the flipped (dilated) kernel.
// Returns the pieces to draw: `spread`, `padded` (the part the windows of the
// input's pixels cover: window of pixel (r, t) = rows r.., cols t..),
// `flipped` (span × span, zeros between dilated entries) and `grad`.
export function fullCorrelation(input, w, g) {
  const p = requireOk(plan(input));
  const z = p.sizes;
  checkGrid("w", w, z.kh, z.kw);
  checkGrid("∂L/∂y", g, p.outH, p.outW);
  const s = z.stride;
  const spread = zeros((p.outH - 1) * s + 1, (p.outW - 1) * s + 1);
  g.forEach((row, i) => row.forEach((value, j) => { spread[i * s][j * s] = value; }));
  // Dilate the kernel, then flip it: flipped[a][b] = dilated[sh − 1 − a][sw − 1 − b].
  const dilated = zeros(p.spanH, p.spanW);
  w.forEach((row, u) => row.forEach((value, v) => { dilated[u * z.dilation][v * z.dilation] = value; }));
  const flipped = dilated.map((row, a) => row.map((_, b) => dilated[p.spanH - 1 - a][p.spanW - 1 - b]));
  // Padded-image pixel (a, b) = input (a − p, b − p) collects spread[a − α][b − β]
  // for kernel offsets (α, β); the window of input pixel (r, t) starts at row
  // r + p − (span − 1) of `spread`. `padded` holds rows from r = 0 on.
  const top = z.padding - (p.spanH - 1);
  const left = z.padding - (p.spanW - 1);
  const rows = z.h + p.spanH - 1;
  const cols = z.w + p.spanW - 1;
  const padded = Array.from({ length: rows }, (_, a) =>
    Array.from({ length: cols }, (_, b) => {
      const m = a + top;
      const n = b + left;
      const inside = m >= 0 && n >= 0 && m < spread.length && n < spread[0].length;
      return inside ? spread[m][n] : 0;
    }));
  const grad = Array.from({ length: z.h }, (_, r) =>
    Array.from({ length: z.w }, (_, t) => {
      let sum = 0;
      for (let a = 0; a < p.spanH; a++) {
        for (let b = 0; b < p.spanW; b++) sum += flipped[a][b] * padded[r + a][t + b];
      }
      return sum;
    }));
  // Where an entry of `padded` came from: output (i, j), or null for a zero.
  const origin = (a, b) => {
    const m = a + top;
    const n = b + left;
    if (m < 0 || n < 0 || m % s !== 0 || n % s !== 0) return null;
    const i = m / s;
    const j = n / s;
    return i < p.outH && j < p.outW ? { i, j } : null;
  };
  return { spread, dilated, flipped, padded, grad, origin, offset: { top, left } };
}

// im2col: one row per kernel entry (u, v), one column per window (i, j), in
// reading order: the row order of w reshaped to (1, kh·kw). Entry = the pixel
// that kernel entry meets in that window, 0 in the padding.
export function im2col(input, x) {
  const p = requireOk(plan(input));
  const z = p.sizes;
  checkGrid("x", x, z.h, z.w);
  const rows = [];
  for (let u = 0; u < z.kh; u++) for (let v = 0; v < z.kw; v++) rows.push({ u, v });
  const columns = [];
  for (let i = 0; i < p.outH; i++) for (let j = 0; j < p.outW; j++) columns.push({ i, j });
  const cells = rows.map(({ u, v }) =>
    columns.map(({ i, j }) => {
      const at = source(z, i, j, u, v);
      return { ...at, value: at.inPadding ? 0 : x[at.row][at.col] };
    }));
  return { rows, columns, cells, matrix: cells.map((row) => row.map((c) => c.value)) };
}

// The gradient of the columns: (∂L/∂cols)[(u, v), (i, j)] = w[u, v] · ∂L/∂y[i, j],
// i.e. wᵀ times the output gradient, one column per window.
export function gradCols(input, w, g) {
  const p = requireOk(plan(input));
  const z = p.sizes;
  checkGrid("w", w, z.kh, z.kw);
  checkGrid("∂L/∂y", g, p.outH, p.outW);
  return w.flat().map((wv) => g.flat().map((gv) => wv * gv));
}

// col2im: add every entry of the columns back onto the pixel im2col copied it
// from (a scatter-add); entries from the padding are dropped.
export function col2im(input, cols) {
  const p = requireOk(plan(input));
  const z = p.sizes;
  checkGrid("cols", cols, z.kh * z.kw, p.outH * p.outW);
  const out = zeros(z.h, z.w);
  cols.forEach((row, k) => {
    const u = Math.floor(k / z.kw);
    const v = k % z.kw;
    row.forEach((value, l) => {
      const at = source(z, Math.floor(l / p.outW), l % p.outW, u, v);
      if (!at.inPadding) out[at.row][at.col] += value;
    });
  });
  return out;
}
