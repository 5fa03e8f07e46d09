// Broadcasting and its backward (unbroadcast), for the explorer of post 4.
// Plain ES2020 module: no dependencies, no DOM. Mirrors backprop.broadcasting.

export const MAX_DIMS = 4;
// A size past this is a typo, not a tensor anyone means to broadcast.
export const MAX_SIZE = 1e9;

export class ShapeError extends Error {
  constructor(message) {
    super(message);
    this.name = "ShapeError";
  }
}

function formatShape(shape) {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
}
export { formatShape };

// Read a shape the way Python prints one: "(3, 4)", "(4,)", "()", "[3, 4]" or
// "3 4". Throws ShapeError with a message a reader can act on.
export function parseShape(text, name = "shape") {
  if (typeof text !== "string") {
    throw new ShapeError(`${name}: expected text such as (3, 4), got ${typeof text}`);
  }
  let body = text.trim();
  if (body === "") {
    throw new ShapeError(`${name} is empty: type a shape such as (3, 4), or () for a scalar`);
  }
  const open = body[0];
  const close = body[body.length - 1];
  const pairs = { "(": ")", "[": "]" };
  if (open in pairs || close === ")" || close === "]") {
    if (!(open in pairs) || pairs[open] !== close) {
      throw new ShapeError(`${name} "${text}": brackets do not match; write it as (3, 4)`);
    }
    body = body.slice(1, -1).trim();
  }
  if (/[()[\]]/.test(body)) {
    throw new ShapeError(`${name} "${text}": nested brackets; a shape is one list of sizes`);
  }
  if (body === "") return [];
  let parts = body.includes(",") ? body.split(",").map((p) => p.trim()) : body.split(/\s+/);
  // One trailing comma is how Python writes a 1-tuple: (4,).
  if (parts.length > 1 && parts[parts.length - 1] === "") parts = parts.slice(0, -1);
  const shape = parts.map((part, i) => {
    if (part === "") {
      throw new ShapeError(`${name} "${text}": size number ${i + 1} is missing (two commas in a row?)`);
    }
    if (/^[+-]?\d+$/.test(part)) {
      const size = Number(part);
      if (size < 0) {
        throw new ShapeError(`${name} "${text}": size ${part} is negative; sizes are 0 or more`);
      }
      if (size > MAX_SIZE) {
        throw new ShapeError(`${name} "${text}": size ${part} is too large (at most ${MAX_SIZE})`);
      }
      return size;
    }
    if (/^[+-]?(\d+\.\d*|\.\d+|\d+e[+-]?\d+)$/i.test(part)) {
      throw new ShapeError(`${name} "${text}": size ${part} is not a whole number`);
    }
    throw new ShapeError(`${name} "${text}": "${part}" is not a size; use whole numbers such as (3, 4)`);
  });
  if (shape.length > MAX_DIMS) {
    throw new ShapeError(
      `${name} ${formatShape(shape)} has ${shape.length} dimensions; this explorer takes at most ${MAX_DIMS}`,
    );
  }
  return shape;
}

// Line two shapes up from the right and broadcast them, explaining every axis.
// Returns {ok, ndim, columns, result, failures, message, backward}; never throws
// for shapes that parse (use parseShape first).
export function broadcast(a, b) {
  const ndim = Math.max(a.length, b.length);
  const padA = Array(ndim - a.length).fill(null).concat(a);
  const padB = Array(ndim - b.length).fill(null).concat(b);
  const columns = [];
  const failures = [];
  for (let axis = 0; axis < ndim; axis++) {
    const sa = padA[axis];
    const sb = padB[axis];
    const ea = sa === null ? 1 : sa; // a missing dimension counts as 1
    const eb = sb === null ? 1 : sb;
    let size = null;
    let rule;
    if (ea === eb) {
      size = ea;
      rule = sa === null || sb === null ? `missing counts as 1, result ${size}` : "equal";
    } else if (ea === 1) {
      size = eb;
      rule = sa === null ? `A has no axis here: A is repeated ${eb} times` : `A's 1 is stretched to ${eb}`;
    } else if (eb === 1) {
      size = ea;
      rule = sb === null ? `B has no axis here: B is repeated ${ea} times` : `B's 1 is stretched to ${ea}`;
    } else {
      rule = `${ea} and ${eb} differ, neither is 1`;
      failures.push({ axis, negativeAxis: axis - ndim, sizeA: ea, sizeB: eb, rule });
    }
    columns.push({
      axis,
      negativeAxis: axis - ndim,
      sizeA: sa,
      sizeB: sb,
      size,
      stretchedA: size !== null && ea !== size,
      stretchedB: size !== null && eb !== size,
      addedA: sa === null,
      addedB: sb === null,
      rule,
    });
  }
  if (failures.length > 0) {
    const first = failures[0];
    return {
      ok: false,
      ndim,
      columns,
      result: null,
      failures,
      message:
        `${formatShape(a)} and ${formatShape(b)} do not broadcast: at axis ${first.negativeAxis} ` +
        `(counted from the right) ${first.rule}`,
      backward: null,
    };
  }
  const result = columns.map((c) => c.size);
  return {
    ok: true,
    ndim,
    columns,
    result,
    failures,
    message: `${formatShape(a)} and ${formatShape(b)} broadcast to ${formatShape(result)}`,
    backward: { a: unbroadcastPlan(result, a), b: unbroadcastPlan(result, b) },
  };
}

// Which axes of the result's gradient unbroadcast sums to get back to `shape`:
// axes broadcasting added on the left are summed away (dropped); axes where
// `shape` has 1 but the result does not are summed and kept with size 1.
export function unbroadcastPlan(full, shape) {
  const added = full.length - shape.length;
  if (added < 0 || shape.some((s, i) => s !== 1 && s !== full[added + i])) {
    throw new ShapeError(`${formatShape(shape)} does not broadcast to ${formatShape(full)}`);
  }
  const dropped = [];
  for (let axis = 0; axis < added; axis++) dropped.push(axis);
  const kept = [];
  shape.forEach((s, i) => {
    if (s === 1 && full[added + i] !== 1) kept.push(added + i);
  });
  const summed = dropped.concat(kept);
  let sentence;
  if (summed.length === 0) {
    sentence = `nothing to sum: the gradient already has shape ${formatShape(shape)}`;
  } else {
    const parts = [];
    if (dropped.length) parts.push(`sum over axes ${dropped.join(", ")} and drop them`);
    if (kept.length) parts.push(`sum over axes ${kept.join(", ")} keeping them with size 1`);
    sentence = `${parts.join(", then ")}: ${formatShape(full)} → ${formatShape(shape)}`;
  }
  return { from: full.slice(), to: shape.slice(), dropped, kept, summed, sentence };
}

// Apply a plan to a row-major flat array of shape plan.from: the numbers
// unbroadcast(grad, plan.to) returns, row-major, shape plan.to.
export function applyUnbroadcast(flat, plan) {
  const full = plan.from;
  const count = full.reduce((p, s) => p * s, 1);
  if (flat.length !== count) {
    throw new ShapeError(`gradient has ${flat.length} numbers but shape ${formatShape(full)} holds ${count}`);
  }
  // Only the plan decides what is summed: the output keeps the axes it does not
  // drop, with size 1 where it sums them.
  const summed = new Set(plan.summed);
  const dropped = new Set(plan.dropped);
  const outShape = full.map((s, axis) => (summed.has(axis) ? 1 : s)).filter((_, axis) => !dropped.has(axis));
  if (outShape.length !== plan.to.length || outShape.some((s, i) => s !== plan.to[i])) {
    throw new ShapeError(`the plan sums ${formatShape(full)} to ${formatShape(outShape)}, not ${formatShape(plan.to)}`);
  }
  const out = new Array(outShape.reduce((p, s) => p * s, 1)).fill(0);
  const index = new Array(full.length).fill(0);
  for (let k = 0; k < count; k++) {
    let o = 0;
    for (let axis = 0; axis < full.length; axis++) {
      if (dropped.has(axis)) continue;
      o = summed.has(axis) ? o : o * full[axis] + index[axis];
    }
    out[o] += flat[k];
    for (let axis = full.length - 1; axis >= 0; axis--) {
      index[axis] += 1;
      if (index[axis] < full[axis]) break;
      index[axis] = 0;
    }
  }
  return out;
}

// Parse both texts and broadcast; errors come back as {ok: false, message}.
export function explain(textA, textB) {
  let a;
  let b;
  try {
    a = parseShape(textA, "A");
    b = parseShape(textB, "B");
  } catch (error) {
    if (error instanceof ShapeError) {
      return { ok: false, parseError: true, message: error.message, columns: [], failures: [] };
    }
    throw error;
  }
  return { a, b, parseError: false, ...broadcast(a, b) };
}
