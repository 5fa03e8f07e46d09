import { test } from "node:test";
import assert from "node:assert/strict";

import { GRAPHS, NAMES, NEURON, TWO_PATHS, forward, gradient, nudge, nudgeCurve, paths } from "../../assets/explorers/chain.js";
import { assertClose, fixtures, needsFixtures } from "./fixtures.mjs";

test("every node name comes from the NAMES table", () => {
  const names = new Set(Object.values(NAMES));
  for (const graph of Object.values(GRAPHS)) {
    for (const node of graph.nodes) {
      assert.ok(names.has(node.name), node.name);
      for (const arg of node.args) assert.ok(names.has(arg), arg);
    }
    for (const input of Object.keys(graph.inputs)) assert.ok(names.has(input), input);
  }
});

test("the explorer names every node as post 2 does", { skip: needsFixtures }, () => {
  // fixtures.chain.names is read from the post's equations, role by role.
  assert.deepEqual({ ...NAMES }, fixtures.chain.names);
});

test("the neuron has one path per input; x + x² has two, and they add", () => {
  for (const input of Object.keys(NEURON.inputs)) assert.equal(paths(NEURON, input).length, 1, input);
  const two = paths(TWO_PATHS, NAMES.input);
  assert.equal(two.length, 2);
  assert.deepEqual(two.map((p) => p.product).sort(), [1, 2]); // 1, and 2x at x = 1
  assert.equal(gradient(TWO_PATHS, NAMES.input), 3);
});

test("the predicted change is exact to first order: the error shrinks like Δ²", () => {
  const small = nudge(NEURON, NAMES.weight, 1e-3);
  const smaller = nudge(NEURON, NAMES.weight, 1e-4);
  // L is quadratic in w: error = x² Δ² exactly, so a tenth of the nudge gives a hundredth.
  assertClose(small.error, 1.5 ** 2 * 1e-6, { rtol: 1e-6, atol: 0 });
  assertClose(smaller.error / small.error, 0.01, { rtol: 1e-3, atol: 0 });
  const curve = nudgeCurve(NEURON, NAMES.input, 1, 21);
  assert.equal(curve.length, 21);
  assertClose(curve[10].delta, 0);
  assert.equal(curve[10].actual, 0);
});

test("bad inputs get clear messages", () => {
  assert.throws(() => nudge(NEURON, "q", 0.1), /q is not an input of/);
  assert.throws(() => nudge(NEURON, NAMES.input, NaN), /finite number/);
});

test("forward values, gradients and nudges agree with autograd", { skip: needsFixtures }, () => {
  for (const [key, graph] of Object.entries(GRAPHS)) {
    const expected = fixtures.chain[key];
    assert.deepEqual(graph.inputs, expected.inputs, `${key}: the post's numbers`);
    const values = forward(graph);
    // The fixture names nodes by role, so renaming a node changes only NAMES.
    for (const [role, value] of Object.entries(expected.values)) {
      assertClose(values[NAMES[role]], value, { what: `${key}: ${role} (${NAMES[role]})` });
    }
    for (const [input, grad] of Object.entries(expected.gradients)) {
      assertClose(gradient(graph, input), grad, { what: `${key}: gradient wrt ${input}` });
      for (const [delta, change] of expected.nudges[input]) {
        const r = nudge(graph, input, delta);
        assertClose(r.actual, change, { what: `${key}: change for ${input} += ${delta}` });
        assertClose(r.predicted, grad * delta, { what: `${key}: predicted for ${input} += ${delta}` });
      }
    }
  }
});
