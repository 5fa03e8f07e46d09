// The expected values the Python library wrote (tests/test_explorers.py), read
// from the JSON file named by EXPLORER_FIXTURES. Without it, the tests that
// need it are skipped with this reason and the module's own tests still run.
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";

const path = process.env.EXPLORER_FIXTURES;

export const fixtures = path ? JSON.parse(readFileSync(path, "utf8")) : null;

export const needsFixtures = fixtures
  ? false
  : "EXPLORER_FIXTURES is not set: run ./scripts/test.sh tests/test_explorers.py";

// |actual − expected| <= atol + rtol·|expected|, element by element, with the
// position of the first failure in the message.
export function assertClose(actual, expected, { rtol = 1e-12, atol = 1e-12, what = "value" } = {}) {
  const a = [actual].flat(Infinity);
  const e = [expected].flat(Infinity);
  assert.equal(a.length, e.length, `${what}: ${a.length} numbers, expected ${e.length}`);
  a.forEach((x, i) => {
    const bound = atol + rtol * Math.abs(e[i]);
    assert.ok(
      Math.abs(x - e[i]) <= bound,
      `${what}[${i}]: got ${x}, expected ${e[i]} (difference ${Math.abs(x - e[i])} > ${bound})`,
    );
  });
}
