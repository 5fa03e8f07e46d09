import { test } from "node:test";
import assert from "node:assert/strict";

import {
  ConvError,
  LIMITS,
  checkSizes,
  col2im,
  example,
  forward,
  fullCorrelation,
  gradCols,
  gradInput,
  im2col,
  inputEntry,
  outputEntry,
  plan,
} from "../../assets/explorers/conv.js";
import { assertClose, fixtures, needsFixtures } from "./fixtures.mjs";

const POST = { h: 8, w: 8, kh: 3, kw: 3, stride: 2, padding: 1, dilation: 1 };

test("output sizes: post 11's examples by hand", () => {
  assert.deepEqual([plan(POST).outH, plan(POST).outW], [4, 4]);
  const figure = plan({ ...POST, h: 5, w: 5, padding: 0 });
  assert.deepEqual([figure.outH, figure.outW], [2, 2]);
  // Dilation 2 spreads a 3 × 3 kernel over 5 × 5: (7 + 2 − 5) // 1 + 1 = 5.
  const dilated = plan({ h: 7, w: 6, kh: 3, kw: 2, stride: 1, padding: 1, dilation: 2 });
  assert.deepEqual([dilated.spanH, dilated.spanW, dilated.outH, dilated.outW], [5, 3, 5, 6]);
});

test("sizes with no output say which rule fails", () => {
  const taller = plan({ ...POST, h: 2, w: 5, kh: 5, padding: 1 });
  assert.equal(taller.ok, false);
  assert.equal(taller.rule, "size");
  assert.match(taller.message, /In rows, it spans 5, but the padded image has 2 \+ 2 × 1 = 4/);
  const spread = plan({ ...POST, h: 4, w: 4, padding: 0, dilation: 2 });
  assert.match(spread.message, /3 entries 2 apart span 5, but the padded image has 4 \+ 2 × 0 = 4/);
  const wider = plan({ ...POST, h: 8, w: 2, kw: 4, padding: 0 });
  assert.match(wider.message, /In columns/);
  assert.match(plan({ ...POST, stride: 0 }).message, /stride must be at least 1/);
  assert.match(plan({ ...POST, dilation: 0 }).message, /dilation must be at least 1/);
  // Functions that need an output say the same instead of returning garbage.
  assert.throws(() => example({ ...POST, stride: 0 }), /stride must be at least 1/);
});

test("bad sizes get a message naming the size at fault", () => {
  const cases = [
    [{ h: 2.5 }, /image height must be a whole number, got 2.5/],
    [{ kw: 6 }, /kernel width must be between 1 and 5 here, got 6/],
    [{ padding: -1 }, /padding must be between 0 and 3/],
    [{ stride: "2" }, /stride must be a number/],
    [{ w: NaN }, /image width must be a number, got NaN/],
    [{ dilation: undefined }, /dilation is missing/],
  ];
  for (const [change, pattern] of cases) {
    assert.throws(() => checkSizes({ ...POST, ...change }), (error) => {
      assert.ok(error instanceof ConvError, String(error));
      assert.match(error.message, pattern);
      return true;
    });
  }
  assert.throws(() => checkSizes(null), ConvError);
  assert.equal(LIMITS.h[1], 8);
  const e = example(POST);
  assert.throws(() => outputEntry(POST, e.x, e.w, 4, 0), /output entry \(4, 0\) is outside the 4 × 4 grid/);
  assert.throws(() => inputEntry(POST, e.w, e.g, 0, 8), /input entry \(0, 8\) is outside the 8 × 8 grid/);
  assert.throws(() => outputEntry(POST, e.x.slice(1), e.w, 0, 0), /x must have 8 rows/);
  assert.throws(() => col2im(POST, [[1]]), /cols must have 9 rows/);
});

test("the example's four ways to the input gradient agree", () => {
  for (const sizes of [POST, { h: 5, w: 7, kh: 2, kw: 3, stride: 2, padding: 1, dilation: 2 }]) {
    const e = example(sizes);
    const direct = gradInput(sizes, e.w, e.g);
    assert.deepEqual(fullCorrelation(sizes, e.w, e.g).grad, direct);
    assert.deepEqual(col2im(sizes, gradCols(sizes, e.w, e.g)), direct);
    // The example's numbers are small whole numbers, none of them zero.
    for (const grid of [e.x, e.w, e.g]) assert.ok(grid.flat().every((v) => Number.isInteger(v) && v !== 0));
  }
});

test("every term of an input's gradient is an output it fed times the kernel entry it met", () => {
  const sizes = { h: 6, w: 5, kh: 3, kw: 2, stride: 2, padding: 1, dilation: 1 };
  const e = example(sizes);
  const y = forward(sizes, e.x, e.w);
  // Pixel (3, 2) is read by two windows: rows 2·2 + 0 − 1 and 2·1 + 2 − 1.
  const r = inputEntry(sizes, e.w, e.g, 3, 2);
  assert.deepEqual(r.terms.map((t) => [t.i, t.j, t.u, t.v]), [[1, 1, 2, 1], [2, 1, 0, 1]]);
  for (const term of r.terms) {
    const field = outputEntry(sizes, e.x, e.w, term.i, term.j);
    const met = field.terms.find((t) => t.row === 3 && t.col === 2);
    assert.deepEqual([met.u, met.v], [term.u, term.v]);
    assert.equal(field.value, y[term.i][term.j]);
  }
});

test("the full correlation: ∂L/∂y spread by the stride, the kernel flipped", () => {
  const sizes = { h: 5, w: 5, kh: 2, kw: 2, stride: 2, padding: 0, dilation: 1 };
  const w = [[1, 2], [3, 4]];
  const g = [[1, 2], [3, 4]];
  const r = fullCorrelation(sizes, w, g);
  assert.deepEqual(r.spread, [[1, 0, 2], [0, 0, 0], [3, 0, 4]]);
  assert.deepEqual(r.flipped, [[4, 3], [2, 1]]);
  // Pixel (1, 1) met only w[1][1] in output (0, 0): its window holds g[0][0] under w[1][1].
  assert.equal(r.grad[1][1], 4);
  assert.deepEqual(r.origin(1, 1), { i: 0, j: 0 });
  assert.equal(r.origin(2, 2), null);
  // The last row and column (4) meet no window: gradient exactly 0.
  assert.deepEqual(r.grad[4], [0, 0, 0, 0, 0]);
});

test("agrees with backprop.conv and torch over a grid of sizes", { skip: needsFixtures }, () => {
  const cases = fixtures.conv;
  assert.ok(cases.length > 30);
  assert.ok(cases.some((c) => c.ok && c.h !== c.w) && cases.some((c) => c.ok && c.kh !== c.kw));
  for (const key of ["stride", "padding", "dilation"]) assert.ok(cases.some((c) => c.ok && c[key] > 1), key);
  for (const rule of ["size", "stride", "dilation"]) assert.ok(cases.some((c) => c.rule === rule), rule);
  for (const c of cases) {
    const sizes = { h: c.h, w: c.w, kh: c.kh, kw: c.kw, stride: c.stride, padding: c.padding, dilation: c.dilation };
    const label = JSON.stringify(sizes);
    const p = plan(sizes);
    assert.equal(p.ok, c.ok, `${label}: ${p.message}`);
    if (!c.ok) {
      assert.equal(p.rule, c.rule, label);
      continue;
    }
    assert.deepEqual([p.outH, p.outW], c.out, label);
    assertClose(forward(sizes, c.x, c.weight), c.y, { what: `${label}: y` });
    assertClose(im2col(sizes, c.x).matrix, c.cols, { rtol: 0, atol: 0, what: `${label}: im2col` });
    c.fields.forEach((field, l) => {
      const i = Math.floor(l / p.outW);
      const j = l % p.outW;
      const got = outputEntry(sizes, c.x, c.weight, i, j).terms.map((t) => [t.row, t.col]);
      assert.deepEqual(got, field, `${label}: receptive field of (${i}, ${j})`);
    });
    c.onehot_grad_x.forEach((expected, l) => {
      const g = Array.from({ length: p.outH }, (_, i) =>
        Array.from({ length: p.outW }, (_, j) => (i * p.outW + j === l ? 1 : 0)));
      assertClose(gradInput(sizes, c.weight, g), expected, { what: `${label}: one-hot ${l}` });
    });
    for (const [name, grad] of [
      ["sum over the outputs fed", gradInput(sizes, c.weight, c.grad_y)],
      ["full correlation", fullCorrelation(sizes, c.weight, c.grad_y).grad],
      ["col2im", col2im(sizes, gradCols(sizes, c.weight, c.grad_y))],
    ]) {
      assertClose(grad, c.grad_x, { what: `${label}: ∂L/∂x by ${name}` });
    }
  }
});
