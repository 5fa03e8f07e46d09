import { test } from "node:test";
import assert from "node:assert/strict";

import {
  EPS,
  FUNCTIONS,
  argminStep,
  differences,
  errorCurve,
  errorModel,
  logSteps,
  medianErrorCurve,
  optimalSteps,
} from "../../assets/explorers/finite-differences.js";
import { assertClose, fixtures, needsFixtures } from "./fixtures.mjs";

// Least-squares slope of log10(error) against log10(h) over lo <= h <= hi.
function slope(curve, key, lo, hi) {
  const rows = curve.filter((r) => r.h >= lo && r.h <= hi && r[key] > 0);
  const xs = rows.map((r) => Math.log10(r.h));
  const ys = rows.map((r) => Math.log10(r[key]));
  const mx = xs.reduce((s, x) => s + x, 0) / xs.length;
  const my = ys.reduce((s, y) => s + y, 0) / ys.length;
  let num = 0;
  let den = 0;
  xs.forEach((x, i) => {
    num += (x - mx) * (ys[i] - my);
    den += (x - mx) ** 2;
  });
  return num / den;
}

test("float32 is simulated: a step below half an ulp of x vanishes", () => {
  // Near x = 1 float32 numbers are 2^-23 ≈ 1.2e-7 apart: 1 + 1e-8 rounds to 1.
  const r = differences("cubic", 1, 1e-8, "float32");
  assert.equal(r.forward, 0);
  assert.equal(r.central, 0);
  assert.equal(r.forwardError, 1); // |f'(1)| = 3 − 2
  const r64 = differences("cubic", 1, 1e-8, "float64");
  assert.ok(r64.forwardError < 1e-6);
  // Every float32 result is a float32 number.
  for (const h of logSteps(-10, 0, 41)) {
    const s = differences("sin", 0.7, h, "float32");
    for (const key of ["x", "h", "forward", "central"]) assert.equal(Math.fround(s[key]), s[key], key);
  }
});

test("the truncation terms match the measured error where they dominate", () => {
  // sin at 1, float64: post 8's check, errors within 1% of h/2 |f''| and h²/6 |f'''|.
  const h = 1e-3;
  const r = differences("sin", 1, h);
  const model = errorModel("sin", 1, h);
  assertClose(r.forwardError, model.forwardTruncation, { rtol: 0.01, atol: 0 });
  assertClose(differences("sin", 1, 1e-2).centralError, errorModel("sin", 1, 1e-2).centralTruncation, {
    rtol: 0.01,
    atol: 0,
  });
  // The cubic's central difference is off by exactly h² (f''' = 6, nothing beyond).
  assertClose(differences("cubic", 2, 0.5).centralError, 0.25, { rtol: 1e-12, atol: 0 });
});

test("optimal steps follow eps^(1/2) and eps^(1/3)", () => {
  const s64 = optimalSteps("sin", 1, "float64");
  const s32 = optimalSteps("sin", 1, "float32");
  assertClose(s64.central / s32.central, Math.cbrt(EPS.float64 / EPS.float32), { rtol: 1e-12 });
  assertClose(s64.forward / s32.forward, Math.sqrt(EPS.float64 / EPS.float32), { rtol: 1e-12 });
  // Where f''' or f vanishes the model has no minimum.
  assert.equal(optimalSteps("sin", 0, "float64").central, null);
});

test("the error curve at one point is a V with its minimum near the optimal step", () => {
  const steps = logSteps(-14, 0, 113);
  for (const name of Object.keys(FUNCTIONS)) {
    for (const dtype of ["float64", "float32"]) {
      const curve = errorCurve(name, 1.1, dtype, steps);
      const best = optimalSteps(name, 1.1, dtype);
      for (const [key, optimum] of [["centralError", best.central], ["forwardError", best.forward]]) {
        const label = `${name} ${dtype} ${key}`;
        const floor = Math.min(...curve.map((r) => r[key]));
        assert.ok(curve[0][key] > 100 * floor, `${label}: left arm`);
        assert.ok(curve[curve.length - 1][key] > 100 * floor, `${label}: right arm`);
        const hMin = argminStep(curve, key);
        assert.ok(hMin > optimum / 30 && hMin < optimum * 30, `${label}: minimum at ${hMin}, model ${optimum}`);
      }
    }
  }
});

test("bad inputs get clear messages", () => {
  assert.throws(() => differences("tan", 1, 1e-3), /unknown function tan/);
  assert.throws(() => differences("sin", 1, 0), /positive number/);
  assert.throws(() => differences("sin", 1, 1e-3, "float16"), /dtype must be/);
  assert.throws(() => differences("sin", NaN, 1e-3), /x must be a finite number/);
});

test("differences agree with numpy float64 and float32", { skip: needsFixtures }, () => {
  const { steps, cases } = fixtures.finiteDifferences;
  assert.equal(cases.length, 4);
  for (const c of cases) {
    const eps = EPS[c.dtype];
    let identical = 0;
    let total = 0;
    steps.forEach((h, i) => {
      c.xs.forEach((x, j) => {
        const r = differences(c.function, x, h, c.dtype);
        for (const key of ["forward", "central"]) {
          const expected = c[key][i][j];
          total += 1;
          if (r[key] === expected) identical += 1;
          if (c.function === "cubic") {
            // Only + − ×, which IEEE rounds the same everywhere: bit for bit.
            assert.equal(r[key], expected, `${c.function} ${c.dtype} ${key} at x=${x}, h=${h}`);
          } else {
            // sin may differ by one ulp of |f| <= 1 between libraries; the
            // difference quotient turns that into at most 2 eps / h.
            const bound = (2 * eps) / r.h + 4 * eps * Math.abs(expected);
            assert.ok(
              Math.abs(r[key] - expected) <= bound,
              `${c.function} ${c.dtype} ${key} at x=${x}, h=${h}: ${r[key]} vs ${expected}`,
            );
          }
        }
      });
    });
    assert.ok(identical > 0.8 * total, `${c.function} ${c.dtype}: only ${identical}/${total} identical`);
    if (c.dtype === "float32") {
      // f itself, at float32 precision: within one float32 ulp.
      c.xs.forEach((x, j) => {
        const got = FUNCTIONS[c.function].f32(Math.fround(x));
        assert.ok(Math.abs(got - c.f[j]) <= Math.abs(c.f[j]) * EPS.float32, `${c.function}(${x})`);
      });
    }
  }
});

test("the median error curves reproduce post 8's V in both dtypes", { skip: needsFixtures }, () => {
  const { steps, cases } = fixtures.finiteDifferences;
  for (const c of cases) {
    const curve = medianErrorCurve(c.function, c.xs, c.dtype, steps);
    const best = optimalSteps(c.function, 1, c.dtype); // x = 1: the middle of [0.5, 1.5]
    for (const [key, fixtureKey, optimum, truncationSlope] of [
      ["forwardError", "median_forward_error", best.forward, 1],
      ["centralError", "median_central_error", best.central, 2],
    ]) {
      const label = `${c.function} ${c.dtype} ${key}`;
      const expected = c[fixtureKey];
      if (c.function === "cubic") {
        assert.deepEqual(curve.map((r) => r[key]), expected, label);
      } else {
        curve.forEach((r, i) => {
          const ratio = Math.abs(Math.log10(r[key] / expected[i]));
          assert.ok(ratio < 0.3, `${label} at h=${r.h}: ${r[key]} vs numpy ${expected[i]}`);
        });
      }
      // The V: its minimum sits near the model's optimal step (post 8 asserts
      // within a factor of 5 for central, 10 for forward) ...
      const hMin = argminStep(curve, key);
      const factor = key === "centralError" ? 5 : 10;
      assert.ok(hMin > optimum / factor && hMin < optimum * factor, `${label}: min at ${hMin}, model ${optimum}`);
      const npMin = steps[expected.indexOf(Math.min(...expected))];
      assert.ok(Math.abs(Math.log10(hMin / npMin)) <= 2 / 8 + 1e-9, `${label}: numpy's min at ${npMin}`);
      // ... falling like h (forward) or h² (central) to its right, and rising
      // like 1/h to its left.
      const right = slope(curve, key, Math.min(optimum * 10, 0.1), 1);
      const left = slope(curve, key, optimum / 1e3, optimum / 30);
      assert.ok(Math.abs(right - truncationSlope) < 0.25, `${label}: truncation slope ${right}`);
      assert.ok(Math.abs(left + 1) < 0.35, `${label}: rounding slope ${left}`);
    }
  }
});
