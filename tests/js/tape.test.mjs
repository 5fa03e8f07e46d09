import { test } from "node:test";
import assert from "node:assert/strict";

import {
  ExpressionError,
  PRESETS,
  backward,
  build,
  describe,
  formatTensor,
  layers,
  parseValues,
  tape,
  toNested,
  unbroadcast,
} from "../../assets/explorers/tape.js";
import { assertClose, fixtures, needsFixtures } from "./fixtures.mjs";

const names = (nodes) => nodes.map((n) => n.name);

test("values are read as Python writes numbers and lists", () => {
  const v = parseValues("x = 2, w = [1, -2.5, 1e-3]; M = [[1, 2], [3, 4],]");
  assert.deepEqual([...v.keys()], ["x", "w", "M"]);
  assert.deepEqual(v.get("x"), { shape: [], data: [2] });
  assert.deepEqual(v.get("w"), { shape: [3], data: [1, -2.5, 0.001] });
  assert.deepEqual(v.get("M").shape, [2, 2]);
});

test("bad values and expressions get a message that says what is wrong", () => {
  const cases = [
    [() => parseValues(""), /give at least one/],
    [() => parseValues("x = "), /expected a number, found the end/],
    [() => parseValues("x = 1, x = 2"), /x is given twice/],
    [() => parseValues("x = [[1], [2, 3]]"), /row 1 of x has 2 entries, row 0 has 1/],
    [() => parseValues("x = [[[1]]]"), /at most 2 levels of brackets/],
    [() => parseValues("x = [1, 2, 3, 4, 5, 6, 7]"), /x has 7 entries; at most 6/],
    [() => parseValues("exp = 1"), /exp is a function/],
    [() => parseValues("u1 = 1"), /kept for the results of operations/],
    [() => parseValues("x = 1 y = 2"), /"," or ";" between two values, found "y"/],
    [() => parseValues("x = $"), /"\$" at position 5 is not allowed/],
    [() => build("", "x = 1"), /the expression is empty/],
    [() => build("x / 2", "x = 1"), /\/ at position 3 is not one of the operations/],
    [() => build("x ** 2", "x = 1"), /\*\* at position 3 is not one of the operations/],
    [() => build("x +", "x = 1"), /expected a name, a number or \(, found the end/],
    [() => build("(x + 1", "x = 1"), /expected "\)"/],
    [() => build("+x", "x = 1"), /expected a name, a number, \( or −, found "\+" at position 1/],
    [() => build("x y", "x = 1, y = 2"), /expected an operation .* found "y" at position 3/],
    [() => build("tanh(x)", "x = 1"), /tanh is not a function here; the functions are relu, exp, log, sum/],
    [() => build("x + y", "x = 1"), /y has no value; add it to the values, e.g. y = 1/],
    [() => build("log(x - 2)", "x = 1"), /log needs positive numbers, but its input has −1 at position 0/],
    [() => build("x", "x = [1, 2]"), /starts from a scalar .* shape \(2,\); wrap it in sum/],
    [() => build("2 * 3", "x = 1"), /uses no name, so there is nothing to differentiate/],
    [() => build("exp(2) * x", "x = 1"), /exp\(2\) has only numbers inside/],
    [() => build("sum(w + x)", "w = [1, 2], x = [1, 2, 3]"), /a \+ b: shapes \(2,\) and \(3,\) do not broadcast/],
    [() => build("sum(x @ y)", "x = [1, 2], y = [1, 2]"), /a @ b needs a of shape \(\.\.\., k\) and a matrix b of shape \(k, m\)/],
  ];
  for (const [run, pattern] of cases) {
    assert.throws(run, (error) => {
      assert.ok(error instanceof ExpressionError, String(error));
      assert.match(error.message, pattern);
      return true;
    });
  }
});

test("Python's precedence: unary minus, then * and @, then + and −, left to right", () => {
  const g = build("-x * 2 - -3", "x = 1.5");
  assert.deepEqual(tape(g).map(describe), ["x", "u1 = x * −1", "u2 = u1 * 2", "u3 = u2 − −3"]);
  assert.equal(g.root.value.data[0], -1.5 * 2 + 3);
  assert.deepEqual(build("x - 1 - 2", "x = 5").root.value.data, [2]);
  assert.deepEqual(build("x + 2 * x", "x = 5").root.value.data, [15]);
});

test("a value used twice by one operation gets both contributions, and they add", () => {
  const r = backward(build("x * x", "x = 3"));
  assert.equal(r.steps.length, 1);
  const [first, second] = r.steps[0].contributions;
  assert.equal(first.parent, second.parent);
  assert.equal(first.before, null); // nothing had reached x before this step
  assert.deepEqual([first.value.data, second.value.data], [[3], [3]]);
  assert.deepEqual([first.localValue.data, second.localValue.data], [[3], [3]]);
  // The second contribution is added to the first.
  assert.deepEqual([first.after.data, second.before.data, second.after.data], [[3], [3], [6]]);
  assert.equal(r.steps[0].received.get(first.parent).length, 2);
});

test("x * y + exp(x): x's two contributions arrive at different steps", () => {
  const g = build("x * y + exp(x)", "x = 0.5, y = -2");
  const r = backward(g);
  assert.deepEqual(names(r.order), ["x", "u2", "y", "u1", "u3"]);
  const x = g.leaves.find((n) => n.name === "x");
  const counts = r.steps.map((s) => (s.received.get(x) || []).length);
  // Replayed u3, then u1 = x * y (which sends y = −2), then u2 = exp(x).
  assert.deepEqual(r.steps.map((s) => s.node.name), ["u3", "u1", "u2"]);
  assert.deepEqual(counts, [0, 1, 2]);
  assertClose(r.gradients.get(x).data, [-2 + Math.exp(0.5)], { rtol: 1e-15 });
  // The step that completes x shows the sum so far and what is added to it.
  const last = r.steps[2].contributions.find((c) => c.parent === x);
  assert.deepEqual(last.before.data, [-2]);
  assertClose(last.value.data, [Math.exp(0.5)], { rtol: 1e-15 });
});

test("a broadcast scalar's gradient sums over the copies", () => {
  assert.deepEqual(unbroadcast({ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }, []).data, [21]);
  assert.deepEqual(unbroadcast({ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }, [3]).data, [5, 7, 9]);
  assert.deepEqual(unbroadcast({ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }, [2, 1]).data, [6, 15]);
  const r = backward(build("sum(w * x + b)", "w = [1, -2, 0.5], x = [2, 1, -1], b = 0.5"));
  const add = r.steps.find((s) => s.node.op === "+");
  const toB = add.contributions.find((c) => c.parent.name === "b");
  assert.ok(toB.summedBroadcast);
  assert.deepEqual(toB.value.data, [3]);
});

test("formatting and drawing helpers", () => {
  assert.equal(formatTensor({ shape: [2, 2], data: [1, -2, 0, 0.123456] }), "[[1, −2], [0, 0.1235]]");
  assert.deepEqual(toNested({ shape: [], data: [4] }), 4);
  const g = build("sum(relu(x @ W + b))", PRESETS[3].values);
  const depth = layers(g);
  assert.equal(depth.get(g.root), 4);
  assert.ok(g.nodes.every((n) => n.parents.every((p) => depth.get(p) < depth.get(n))));
  // `-2` leaves no stray constant 2 in the graph.
  assert.deepEqual(build("x * -2", "x = 1").nodes.map((n) => n.name), ["x", "−2", "u1"]);
});

test("the presets' tapes and every node's gradient agree with backprop.autograd", { skip: needsFixtures }, () => {
  const cases = fixtures.tape;
  for (const preset of PRESETS) {
    const found = cases.some((c) => c.expression === preset.expression && c.values === preset.values);
    assert.ok(found, `preset ${preset.key} is not in the fixtures: add it to TAPE_PRESETS`);
  }
  assert.ok(cases.length > PRESETS.length);
  for (const c of cases) {
    const g = build(c.expression, c.values);
    const r = backward(g);
    assert.deepEqual(names(r.order), c.tape, `${c.expression}: the tape`);
    for (const node of r.order) {
      const expected = c.nodes[node.name];
      const what = `${c.expression}: ${node.name}`;
      assert.equal(node.op, expected.op, `${what}: op`);
      assertClose(toNested(node.value), expected.value, { what: `${what}: value` });
      assertClose(toNested(r.gradients.get(node)), expected.grad, { what: `${what}: gradient` });
    }
    // Replaying the steps: each input's contributions add up to its gradient.
    const last = r.steps[r.steps.length - 1].received;
    for (const leaf of g.leaves) {
      const sum = last.get(leaf).reduce((s, p) => s.map((v, k) => v + p.value.data[k]), leaf.value.data.map(() => 0));
      assertClose(sum, [c.nodes[leaf.name].grad].flat(Infinity), { what: `${c.expression}: ${leaf.name}, summed` });
    }
  }
});
