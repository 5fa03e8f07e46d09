import { test } from "node:test";
import assert from "node:assert/strict";

import {
  MAX_DIMS,
  ShapeError,
  applyUnbroadcast,
  broadcast,
  explain,
  parseShape,
  unbroadcastPlan,
} from "../../assets/explorers/broadcasting.js";
import { assertClose, fixtures, needsFixtures } from "./fixtures.mjs";

test("parseShape reads the ways a shape is written", () => {
  assert.deepEqual(parseShape("(3, 4)"), [3, 4]);
  assert.deepEqual(parseShape(" ( 3 ,4 ) "), [3, 4]);
  assert.deepEqual(parseShape("(4,)"), [4]);
  assert.deepEqual(parseShape("4"), [4]);
  assert.deepEqual(parseShape("[2, 3, 1]"), [2, 3, 1]);
  assert.deepEqual(parseShape("2 3 4"), [2, 3, 4]);
  assert.deepEqual(parseShape("()"), []);
  assert.deepEqual(parseShape("(0, 3)"), [0, 3]);
});

test("parseShape rejects malformed shapes with a message that says what is wrong", () => {
  const cases = [
    ["(3,,4)", /size number 2 is missing/],
    ["-1", /size -1 is negative/],
    ["(3, -2)", /size -2 is negative/],
    ["abc", /"abc" is not a size/],
    ["(2.5, 3)", /2\.5 is not a whole number/],
    ["1e3", /1e3 is not a whole number/],
    ["(1, 2, 3, 4, 5)", new RegExp(`has 5 dimensions; this explorer takes at most ${MAX_DIMS}`)],
    ["", /is empty/],
    ["   ", /is empty/],
    ["(3, 4", /brackets do not match/],
    ["3, 4]", /brackets do not match/],
    ["(3, 4]", /brackets do not match/],
    ["((3, 4))", /nested brackets/],
    ["(,)", /size number 1 is missing/],
    ["99999999999", /too large/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => parseShape(text, "A"), (error) => {
      assert.ok(error instanceof ShapeError, `${text}: ${error}`);
      assert.match(error.message, pattern, `message for ${JSON.stringify(text)}`);
      assert.match(error.message, /^A/, "the message names the input");
      return true;
    });
  }
  assert.throws(() => parseShape(42), ShapeError);
});

test("explain reports parse errors instead of throwing", () => {
  const result = explain("(3,,4)", "(4,)");
  assert.equal(result.ok, false);
  assert.equal(result.parseError, true);
  assert.match(result.message, /^A "\(3,,4\)": size number 2 is missing/);
});

test("the bias: (N, n_out) with (n_out,) stretches the bias over the rows", () => {
  const r = broadcast([4, 3], [3]);
  assert.equal(r.ok, true);
  assert.deepEqual(r.result, [4, 3]);
  assert.deepEqual(
    r.columns.map((c) => [c.addedB, c.stretchedB, c.stretchedA]),
    [[true, true, false], [false, false, false]],
  );
  assert.deepEqual(r.backward.b.dropped, [0]);
  assert.deepEqual(r.backward.b.kept, []);
  assert.deepEqual(r.backward.a.summed, []);
});

test("a failing pair names both sizes and the rule", () => {
  const r = broadcast([2, 3], [4]);
  assert.equal(r.ok, false);
  assert.equal(r.result, null);
  assert.equal(r.failures.length, 1);
  assert.equal(r.failures[0].rule, "3 and 4 differ, neither is 1");
  assert.equal(r.failures[0].negativeAxis, -1);
  assert.match(r.message, /\(2, 3\) and \(4,\) do not broadcast: at axis -1/);
});

test("stretched size-1 axes are kept with size 1, added axes dropped", () => {
  const plan = unbroadcastPlan([2, 3, 4], [3, 1]);
  assert.deepEqual(plan.dropped, [0]);
  assert.deepEqual(plan.kept, [2]);
  // A size-1 axis of the result is not summed: summing it changes nothing.
  assert.deepEqual(unbroadcastPlan([2, 1], [1, 1]).kept, [0]);
  assert.throws(() => unbroadcastPlan([3], [2, 3]), ShapeError);
  assert.throws(() => unbroadcastPlan([3, 4], [2, 4]), ShapeError);
});

test("applyUnbroadcast sums a small example by hand", () => {
  // grad of shape (2, 3); the input had shape (1, 3): sum the rows.
  const plan = unbroadcastPlan([2, 3], [1, 3]);
  assert.deepEqual(applyUnbroadcast([1, 2, 3, 10, 20, 30], plan), [11, 22, 33]);
  // The input had shape (2, 1): sum each row.
  assert.deepEqual(applyUnbroadcast([1, 2, 3, 10, 20, 30], unbroadcastPlan([2, 3], [2, 1])), [6, 60]);
  assert.throws(() => applyUnbroadcast([1, 2], plan), ShapeError);
});

test("shapes, failures and unbroadcast agree with torch and backprop", { skip: needsFixtures }, () => {
  const cases = fixtures.broadcasting;
  assert.ok(cases.length > 50 && cases.some((c) => !c.ok) && cases.some((c) => c.ok));
  for (const c of cases) {
    const r = explain(c.a, c.b);
    const label = `${c.a} with ${c.b}`;
    assert.equal(r.parseError, false, `${label}: ${r.message}`);
    assert.equal(r.ok, c.ok, `${label}: ${r.message}`);
    if (!c.ok) {
      // The first clash from the left is the one the library reports.
      assert.deepEqual([r.failures[0].sizeA, r.failures[0].sizeB], c.first_clash, label);
      assert.match(r.message, new RegExp(`${c.first_clash[0]} and ${c.first_clash[1]} differ, neither is 1`));
      continue;
    }
    assert.deepEqual(r.result, c.result, label);
    for (const name of ["a", "b"]) {
      const got = applyUnbroadcast(c.grad, r.backward[name]);
      assertClose(got, c[`grad_${name}`], { what: `${label}: grad_${name}` });
    }
  }
});
