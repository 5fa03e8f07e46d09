import { test } from "node:test";
import assert from "node:assert/strict";

import { crossEntropy, logsumexp, shiftLogits, softmax } from "../../assets/explorers/softmax.js";
import { assertClose, fixtures, needsFixtures } from "./fixtures.mjs";

test("softmax is stable where the naive formula overflows", () => {
  const p = softmax([1000, 0, -1000]);
  assert.ok(p.every(Number.isFinite));
  assertClose(p, [1, 0, 0], { atol: 1e-300, rtol: 0 });
  assert.equal(logsumexp([1000, 1000]), 1000 + Math.log(2));
  const r = crossEntropy([1000, 0, -1000], 2);
  assert.equal(r.loss, 2000); // −log p_2 = 1000 − (−1000), not infinity
});

test("the gradient sums to zero and shifting the logits changes nothing", () => {
  const logits = [2, 1, 0.1, -1];
  for (const temperature of [0.3, 1, 4]) {
    const r = crossEntropy(logits, 1, temperature);
    assertClose(r.gradSum, 0, { atol: 1e-15 });
    assertClose(r.gradLogits, r.gradScores.map((g) => g / temperature));
    for (const shift of [-3.25, 7.5, 100]) {
      const s = crossEntropy(shiftLogits(logits, shift), 1, temperature);
      assertClose(s.probs, r.probs, { what: `probs, shift ${shift}` });
      assertClose(s.loss, r.loss, { what: `loss, shift ${shift}` });
      assertClose(s.gradLogits, r.gradLogits, { what: `gradient, shift ${shift}` });
    }
  }
});

test("bad inputs get clear messages", () => {
  assert.throws(() => softmax([]), /non-empty/);
  assert.throws(() => softmax([1, NaN]), /logit 1 is NaN/);
  assert.throws(() => softmax([1, 2], 0), /temperature must be a positive number/);
  assert.throws(() => crossEntropy([1, 2], 2), /target 2 is not a class index: there are 2 classes/);
  assert.throws(() => shiftLogits([1], Infinity), /shift must be a finite number/);
});

test("probabilities, loss and both gradients agree with backprop and autograd", { skip: needsFixtures }, () => {
  const cases = fixtures.softmax;
  assert.ok(cases.length >= 50);
  for (const c of cases) {
    const label = `logits ${c.logits}, T ${c.temperature}, target ${c.target}`;
    const r = crossEntropy(c.logits, c.target, c.temperature);
    assertClose(r.probs, c.probs, { what: `${label}: probs` });
    assertClose(r.loss, c.loss, { what: `${label}: loss` });
    assertClose(r.gradScores, c.grad_scores, { what: `${label}: ∂loss/∂(z/T)` });
    assertClose(r.gradLogits, c.grad_logits, { what: `${label}: ∂loss/∂z` });
  }
});
