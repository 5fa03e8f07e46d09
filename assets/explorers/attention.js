// Attention weights softmax(Q Kᵀ · scale) with an optional causal mask, and
// the gradient of the scores, for the explorer of post 12. Mirrors
// backprop.attention for one head. Plain ES2020 module: no dependencies, no DOM.
//
//   S = Q Kᵀ · scale        scale = 1/√d, or 1 without scaling
//   S_ij = −∞ where the causal mask hides key j from query i (j > i)
//   P = softmax of each row of S
//   out = P V,  dP = dOut Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P))
// Masked entries have P = 0 exactly, so dS is exactly 0 there.

// A small example: 4 positions, d = 4, values of dimension 2, and an upstream
// gradient dOut. The queries and keys are chosen so that each query's best
// key lies ahead of it, which the causal mask then hides.
export const EXAMPLE = {
  q: [
    [1.0, 0.5, -0.5, 0.0],
    [0.0, 1.5, 0.5, -1.0],
    [-1.0, 0.0, 1.0, 0.5],
    [0.5, -0.5, 0.0, 1.5],
  ],
  k: [
    [0.5, 0.0, 1.0, -0.5],
    [1.5, 0.5, -0.5, 0.0],
    [0.0, 1.5, 0.0, -1.0],
    [-1.0, 0.5, 1.5, 0.5],
  ],
  v: [
    [1.0, 0.0],
    [0.0, 1.0],
    [1.0, 1.0],
    [-1.0, 0.5],
  ],
  gradOut: [
    [0.5, -1.0],
    [1.0, 0.5],
    [-0.5, 1.0],
    [1.0, 1.0],
  ],
};

function checkMatrix(name, m, cols) {
  if (!Array.isArray(m) || m.length === 0 || !m.every((row) => Array.isArray(row))) {
    throw new Error(`${name} must be a non-empty list of rows`);
  }
  const width = cols === undefined ? m[0].length : cols;
  m.forEach((row, i) => {
    if (row.length !== width) {
      throw new Error(`${name} row ${i} has ${row.length} entries, expected ${width}`);
    }
    row.forEach((x, j) => {
      if (!Number.isFinite(x)) throw new Error(`${name}[${i}][${j}] is ${x}, not a finite number`);
    });
  });
}

export function causalMask(lq, lk = lq) {
  const mask = [];
  for (let i = 0; i < lq; i++) {
    const row = [];
    for (let j = 0; j < lk; j++) row.push(j <= i);
    mask.push(row);
  }
  return mask;
}

function matmulT(a, b) {
  // a (n, d) times b (m, d) transposed: (n, m)
  return a.map((row) => b.map((col) => row.reduce((s, x, t) => s + x * col[t], 0)));
}

// Scores, weights, output and gradients for one head.
// options: {causal: boolean, scaled: boolean, gradOut: upstream gradient, v}
export function attention(q, k, options = {}) {
  const { causal = false, scaled = true } = options;
  checkMatrix("Q", q);
  const d = q[0].length;
  checkMatrix("K", k, d);
  const lq = q.length;
  const lk = k.length;
  const scale = scaled ? 1 / Math.sqrt(d) : 1;
  const mask = causal ? causalMask(lq, lk) : null;
  const raw = matmulT(q, k);
  const scores = raw.map((row, i) => row.map((s, j) => (mask && !mask[i][j] ? -Infinity : s * scale)));
  const weights = scores.map((row) => {
    const m = Math.max(...row);
    const e = row.map((s) => Math.exp(s - m)); // exp(−∞) = 0: masked keys get weight 0
    const total = e.reduce((p, x) => p + x, 0);
    return e.map((x) => x / total);
  });
  const result = { d, scale, mask, scores, weights };
  if (options.v !== undefined && options.gradOut !== undefined) {
    const v = options.v;
    checkMatrix("V", v);
    if (v.length !== lk) throw new Error(`V has ${v.length} rows but there are ${lk} keys`);
    const dv = v[0].length;
    checkMatrix("dOut", options.gradOut, dv);
    if (options.gradOut.length !== lq) {
      throw new Error(`dOut has ${options.gradOut.length} rows but there are ${lq} queries`);
    }
    const gradWeights = matmulT(options.gradOut, v); // dOut Vᵀ: (lq, lk)
    result.output = weights.map((row) => v[0].map((_, c) => row.reduce((s, p, j) => s + p * v[j][c], 0)));
    result.gradWeights = gradWeights;
    result.gradScores = weights.map((row, i) => {
      const dot = row.reduce((s, p, j) => s + p * gradWeights[i][j], 0);
      return row.map((p, j) => p * (gradWeights[i][j] - dot));
    });
  }
  return result;
}

// Where the scores' gradient is exactly zero, entry by entry.
export function zeroPattern(matrix) {
  return matrix.map((row) => row.map((x) => x === 0));
}

// Why each entry of dS is exactly zero, or null where it is not:
// "masked" (the mask hides the key: P = 0), "weight 0" (not masked, but the
// weight underflowed to exactly 0) or "weight 1" (the row puts all its weight
// on this key, and a softmax of one term does not change with its score).
export function zeroReasons(result) {
  if (!result.gradScores) throw new Error("zeroReasons needs the gradient: pass v and gradOut to attention()");
  return result.gradScores.map((row, i) =>
    row.map((g, j) => {
      if (g !== 0) return null;
      if (result.mask && !result.mask[i][j]) return "masked";
      const p = result.weights[i][j];
      if (p === 0) return "weight 0";
      if (p === 1) return "weight 1";
      return "cancels"; // dP_ij equals the row's average: possible, not generic
    }),
  );
}
