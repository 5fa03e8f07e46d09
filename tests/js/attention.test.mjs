import { test } from "node:test";
import assert from "node:assert/strict";

import { EXAMPLE, attention, causalMask, zeroPattern, zeroReasons } from "../../assets/explorers/attention.js";
import { assertClose, fixtures, needsFixtures } from "./fixtures.mjs";

const withGrad = { v: EXAMPLE.v, gradOut: EXAMPLE.gradOut };

test("the causal mask is lower triangular, aligned at the top left", () => {
  assert.deepEqual(causalMask(2, 3), [[true, false, false], [true, true, false]]);
});

test("the example: rows sum to 1, masked weights and gradients are exactly 0", () => {
  for (const scaled of [false, true]) {
    const free = attention(EXAMPLE.q, EXAMPLE.k, { causal: false, scaled, ...withGrad });
    const masked = attention(EXAMPLE.q, EXAMPLE.k, { causal: true, scaled, ...withGrad });
    for (const r of [free, masked]) {
      r.weights.forEach((row) => assertClose(row.reduce((s, p) => s + p, 0), 1, { atol: 1e-15 }));
      // Each row of the scores' gradient sums to 0 (softmax's Jacobian rows do).
      r.gradScores.forEach((row) => assertClose(row.reduce((s, g) => s + g, 0), 0, { atol: 1e-15 }));
    }
    // Zero at every masked entry, and at query 0's only key: a softmax over one
    // key is 1 whatever its score, so that score's gradient is 0 too.
    const expected = causalMask(4).map((row) => row.map((allowed) => !allowed));
    expected[0][0] = true;
    assert.deepEqual(zeroPattern(masked.gradScores), expected);
    assert.ok(zeroPattern(free.gradScores).flat().every((z) => !z), "no zeros without the mask");
    assert.equal(masked.weights[0][0], 1);
    const reasons = zeroReasons(masked);
    assert.equal(reasons[0][0], "weight 1");
    assert.deepEqual(reasons[3], [null, null, null, null]);
    assert.equal(reasons.flat().filter((r) => r === "masked").length, 6);
  }
  // The example is chosen so that the mask matters: some query's largest score is ahead of it.
  const raw = attention(EXAMPLE.q, EXAMPLE.k, { scaled: false }).scores;
  assert.ok(raw.some((row, i) => row.indexOf(Math.max(...row)) > i));
  // Scaling by 1/√d = 1/2 flattens the weights: the largest weight shrinks.
  const sharp = attention(EXAMPLE.q, EXAMPLE.k, { scaled: false }).weights.flat();
  const flat = attention(EXAMPLE.q, EXAMPLE.k, { scaled: true }).weights.flat();
  assert.ok(Math.max(...flat) < Math.max(...sharp));
});

test("large scores saturate the softmax: unmasked weights of exactly 0 and 1", () => {
  const r = attention([[100, 0]], [[10, 0], [0, 0]], { scaled: false, v: [[1], [2]], gradOut: [[1]] });
  assert.deepEqual(r.weights, [[1, 0]]);
  assert.deepEqual(zeroReasons(r), [["weight 1", "weight 0"]]);
});

test("bad inputs get clear messages", () => {
  assert.throws(() => attention([[1, 2]], [[1, 2, 3]]), /K row 0 has 3 entries, expected 2/);
  assert.throws(() => attention([[1, NaN]], [[1, 2]]), /Q\[0\]\[1\] is NaN/);
  assert.throws(() => attention([[1]], [[1]], { v: [[1], [2]], gradOut: [[1]] }), /V has 2 rows but there are 1 keys/);
});

test("weights, output and the scores' gradient agree with backprop.attention", { skip: needsFixtures }, () => {
  const cases = fixtures.attention;
  assert.ok(cases.length >= 20 && cases.some((c) => c.causal) && cases.some((c) => !c.scaled));
  for (const c of cases) {
    const label = `${c.q.length}x${c.k.length}, d ${c.q[0].length}, causal ${c.causal}, scaled ${c.scaled}`;
    const r = attention(c.q, c.k, { causal: c.causal, scaled: c.scaled, v: c.v, gradOut: c.grad_out });
    assertClose(r.weights, c.weights, { what: `${label}: weights` });
    assertClose(r.output, c.output, { what: `${label}: output` });
    assertClose(r.gradScores, c.grad_scores, { what: `${label}: dS` });
    // Exactly zero where the library's is exactly zero, and nowhere else.
    assert.deepEqual(zeroPattern(r.gradScores), c.grad_scores_zero, `${label}: zero pattern`);
  }
});
