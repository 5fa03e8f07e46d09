// Forward and central finite differences against the step size h, in float64
// and in float32, for the explorer of post 8. float32 is simulated faithfully:
// every operation's result is rounded to float32 with Math.fround, as a
// float32 computation would round it. Plain ES2020 module: no dependencies, no DOM.

const fround = Math.fround;

// Machine epsilon: the gap between 1 and the next representable number.
export const EPS = { float64: 2 ** -52, float32: 2 ** -23 };

// Smooth functions with their first three derivatives (exact, in float64) and
// a float32 version that rounds after every operation. sin is post 8's
// function; the cubic uses only + − ×, which IEEE rounds exactly alike
// everywhere, so its float32 results can be compared bit for bit.
export const FUNCTIONS = {
  sin: {
    label: "sin x",
    f64: (x) => Math.sin(x),
    f32: (x) => fround(Math.sin(x)),
    d1: (x) => Math.cos(x),
    d2: (x) => -Math.sin(x),
    d3: (x) => -Math.cos(x),
  },
  cubic: {
    label: "x³ − 2x",
    f64: (x) => x * x * x - 2 * x,
    f32: (x) => fround(fround(fround(x * x) * x) - fround(2 * x)),
    d1: (x) => 3 * x * x - 2,
    d2: (x) => 6 * x,
    d3: () => 6,
  },
};

function lookup(name) {
  const fn = FUNCTIONS[name];
  if (!fn) throw new Error(`unknown function ${name}; choose one of ${Object.keys(FUNCTIONS).join(", ")}`);
  return fn;
}

function checkDtype(dtype) {
  if (!(dtype in EPS)) throw new Error(`dtype must be "float64" or "float32", got ${dtype}`);
}

function checkStep(h) {
  if (!(Number.isFinite(h) && h > 0)) throw new Error(`the step h must be a positive number, got ${h}`);
}

// Both differences at x with step h, computed entirely in `dtype`, and their
// errors against the exact derivative (in float64).
export function differences(name, x, h, dtype = "float64") {
  const fn = lookup(name);
  checkDtype(dtype);
  checkStep(h);
  if (!Number.isFinite(x)) throw new Error(`x must be a finite number, got ${x}`);
  let forward;
  let central;
  let xs;
  let hs;
  if (dtype === "float64") {
    xs = x;
    hs = h;
    forward = (fn.f64(x + h) - fn.f64(x)) / h;
    central = (fn.f64(x + h) - fn.f64(x - h)) / (2 * h);
  } else {
    xs = fround(x);
    hs = fround(h);
    const up = fn.f32(fround(xs + hs));
    const down = fn.f32(fround(xs - hs));
    const here = fn.f32(xs);
    forward = fround(fround(up - here) / hs);
    central = fround(fround(up - down) / fround(2 * hs));
  }
  const exact = fn.d1(xs);
  return {
    x: xs,
    h: hs,
    dtype,
    exact,
    forward,
    central,
    forwardError: Math.abs(forward - exact),
    centralError: Math.abs(central - exact),
  };
}

// What the error model and its best steps both need: the dtype's eps and the
// sizes of f and of its second and third derivatives at x.
function magnitudes(name, x, dtype) {
  const fn = lookup(name);
  checkDtype(dtype);
  return {
    eps: EPS[dtype],
    f: Math.abs(fn.f64(x)),
    f2: Math.abs(fn.d2(x)),
    f3: Math.abs(fn.d3(x)),
  };
}

// The error model of post 8: truncation from Taylor's theorem, rounding from
// an error of about eps·|f(x)| in each evaluation, divided by the step.
export function errorModel(name, x, h, dtype = "float64") {
  const { eps, f, f2, f3 } = magnitudes(name, x, dtype);
  return {
    forwardTruncation: (h / 2) * f2,
    forwardRounding: (2 * eps * f) / h,
    centralTruncation: ((h * h) / 6) * f3,
    centralRounding: (eps * f) / h,
  };
}

// The steps that minimise the model's total error (null where a term vanishes
// and the model has no minimum): forward 2·sqrt(eps|f|/|f''|),
// central (3 eps|f|/|f'''|)^(1/3).
export function optimalSteps(name, x, dtype = "float64") {
  const { eps, f, f2, f3 } = magnitudes(name, x, dtype);
  return {
    forward: f > 0 && f2 > 0 ? 2 * Math.sqrt((eps * f) / f2) : null,
    central: f > 0 && f3 > 0 ? Math.cbrt((3 * eps * f) / f3) : null,
  };
}

// n steps evenly spaced in log10 from 10^lo to 10^hi.
export function logSteps(lo, hi, n) {
  const steps = [];
  for (let i = 0; i < n; i++) steps.push(10 ** (lo + ((hi - lo) * i) / (n - 1)));
  return steps;
}

// Error against h at one point, with the model's terms: the explorer's plot.
export function errorCurve(name, x, dtype, steps) {
  return steps.map((h) => ({ ...differences(name, x, h, dtype), ...errorModel(name, x, h, dtype) }));
}

function median(values) {
  const sorted = values.slice().sort((p, q) => p - q);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// Median error over many points x for each step h, as post 8 measures it.
export function medianErrorCurve(name, xs, dtype, steps) {
  return steps.map((h) => {
    const rows = xs.map((x) => differences(name, x, h, dtype));
    return {
      h,
      forwardError: median(rows.map((r) => r.forwardError)),
      centralError: median(rows.map((r) => r.centralError)),
    };
  });
}

// The step with the smallest error in a curve (ties: the first).
export function argminStep(curve, key) {
  let best = curve[0];
  for (const row of curve) if (row[key] < best[key]) best = row;
  return best.h;
}
