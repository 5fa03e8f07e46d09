// A small expression recorded on a tape and differentiated one operation at a
// time, for the explorer of post 14. Mirrors backprop.autograd: the same
// operations (+ − * @ relu exp log sum), the same backward of each, the same
// depth-first tape, the same replay in reverse where the gradients of every
// use of a value add up. Plain ES2020 module: no dependencies, no DOM.
//
// A tensor here is {shape, data}: data is the row-major list of its numbers;
// shape [] is a scalar, [n] a vector, [n, m] a matrix.

export const LIMITS = { size: 6, ndim: 2, variables: 8, operations: 24, length: 200 };

// The expressions the reader can pick; their values as the reader would type them.
export const PRESETS = [
  {
    key: "twice",
    title: "x used twice: x * y + exp(x)",
    expression: "x * y + exp(x)",
    values: "x = 0.5, y = -2",
  },
  {
    key: "post",
    title: "post 14's sum(x + x * x): x used three times",
    expression: "sum(x + x * x)",
    values: "x = [-2, -1, 0, 1, 2]",
  },
  {
    key: "broadcast",
    title: "a broadcast: sum(w * x + b) with a scalar b",
    expression: "sum(w * x + b)",
    values: "w = [1, -2, 0.5], x = [2, 1, -1], b = 0.5",
  },
  {
    key: "layer",
    title: "a layer: sum(relu(x @ W + b)), b broadcast over two rows",
    expression: "sum(relu(x @ W + b))",
    values: "x = [[1, -1, 2], [0.5, 2, -1]], W = [[1, -1], [0.5, 2], [-1, 1]], b = [0.5, -1]",
  },
  {
    key: "lse",
    title: "log-sum-exp: log(sum(exp(z)))",
    expression: "log(sum(exp(z)))",
    values: "z = [1, 2, 3]",
  },
];

export const FUNCTIONS = ["relu", "exp", "log", "sum"];

export class ExpressionError extends Error {
  constructor(message) {
    super(message);
    this.name = "ExpressionError";
  }
}

// --- tensors ------------------------------------------------------------------------

export function formatShape(shape) {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
}

const numel = (shape) => shape.reduce((p, s) => p * s, 1);

function tensor(shape, data) {
  return { shape: shape.slice(), data: Array.from(data) };
}

// Nested lists, as tolist() gives them: a number, [..] or [[..], ..].
export function toNested(t) {
  if (t.shape.length === 0) return t.data[0];
  if (t.shape.length === 1) return t.data.slice();
  const [rows, cols] = t.shape;
  return Array.from({ length: rows }, (_, i) => t.data.slice(i * cols, (i + 1) * cols));
}

export function broadcastShapes(a, b, op = "+") {
  const n = Math.max(a.length, b.length);
  const out = [];
  for (let k = 0; k < n; k++) {
    const sa = a[a.length - n + k] ?? 1;
    const sb = b[b.length - n + k] ?? 1;
    if (sa !== sb && sa !== 1 && sb !== 1) {
      throw new ExpressionError(
        `a ${op} b: shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast: ` +
          `at axis ${k - n} the sizes ${sa} and ${sb} differ and neither is 1`,
      );
    }
    out.push(Math.max(sa, sb));
  }
  return out;
}

// Flat index into `shape` of the entry that broadcasting reads for flat index
// `k` of `full`.
function sourceIndex(k, full, shape) {
  let index = 0;
  let stride = 1;
  let rest = k;
  const offset = full.length - shape.length;
  const positions = new Array(full.length);
  for (let axis = full.length - 1; axis >= 0; axis--) {
    positions[axis] = rest % full[axis];
    rest = Math.floor(rest / full[axis]);
  }
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    const p = shape[axis] === 1 ? 0 : positions[axis + offset];
    index += p * stride;
    stride *= shape[axis];
  }
  return index;
}

function elementwise(a, b, f, op) {
  const shape = broadcastShapes(a.shape, b.shape, op);
  const data = [];
  for (let k = 0; k < numel(shape); k++) {
    data.push(f(a.data[sourceIndex(k, shape, a.shape)], b.data[sourceIndex(k, shape, b.shape)]));
  }
  return tensor(shape, data);
}

const map = (t, f) => tensor(t.shape, t.data.map(f));

// Sum a gradient of shape `full` back to `shape`: every copy broadcasting made
// sends its gradient to the entry it copied (backprop.broadcasting.unbroadcast).
export function unbroadcast(g, shape) {
  const out = new Array(numel(shape)).fill(0);
  g.data.forEach((value, k) => {
    out[sourceIndex(k, g.shape, shape)] += value;
  });
  return tensor(shape, out);
}

// (..., k) @ (k, m): a vector or a matrix times a matrix.
function matmul(a, b) {
  const k = b.shape[0];
  const m = b.shape[1];
  const rows = numel(a.shape) / k;
  const data = [];
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < m; j++) {
      let sum = 0;
      for (let t = 0; t < k; t++) sum += a.data[i * k + t] * b.data[t * m + j];
      data.push(sum);
    }
  }
  return tensor([...a.shape.slice(0, -1), m], data);
}

function transpose(t) {
  const [rows, cols] = t.shape;
  const data = [];
  for (let j = 0; j < cols; j++) for (let i = 0; i < rows; i++) data.push(t.data[i * cols + j]);
  return tensor([cols, rows], data);
}

const asMatrix = (t, cols) => tensor([numel(t.shape) / cols, cols], t.data);

// --- operations: forward, backward and the local derivative in words ----------------

// Each op: forward(inputs) -> tensor; backward(g, inputs, out) -> one gradient
// per input, as backprop.autograd computes them; local: the local derivative
// with respect to each input, in words; localValue(inputs, out, i): its numbers,
// elementwise (none for @, whose local derivative is a matrix product).
export const OPS = {
  "+": {
    arity: 2,
    forward: ([a, b]) => elementwise(a, b, (p, q) => p + q, "+"),
    backward: (g, [a, b]) => [unbroadcast(g, a.shape), unbroadcast(g, b.shape)],
    local: () => ["1", "1"],
  },
  "-": {
    arity: 2,
    forward: ([a, b]) => elementwise(a, b, (p, q) => p - q, "-"),
    backward: (g, [a, b]) => [unbroadcast(g, a.shape), unbroadcast(map(g, (v) => -v), b.shape)],
    local: () => ["1", "−1"],
  },
  "*": {
    arity: 2,
    forward: ([a, b]) => elementwise(a, b, (p, q) => p * q, "*"),
    backward: (g, [a, b]) => [
      unbroadcast(elementwise(g, b, (p, q) => p * q), a.shape),
      unbroadcast(elementwise(g, a, (p, q) => p * q), b.shape),
    ],
    local: (names) => [`${names[1]}, the other factor`, `${names[0]}, the other factor`],
    localValue: (inputs, out, i) => inputs[1 - i],
  },
  "@": {
    arity: 2,
    forward: ([a, b]) => matmul(a, b),
    backward: (g, [a, b]) => {
      const [k, m] = b.shape;
      const gradA = tensor(a.shape, matmul(g, transpose(b)).data);
      const gradB = matmul(transpose(asMatrix(a, k)), asMatrix(g, m));
      return [gradA, gradB];
    },
    local: (names) => [`the upstream gradient times ${names[1]}ᵀ`, `${names[0]}ᵀ times the upstream gradient`],
  },
  relu: {
    arity: 1,
    forward: ([a]) => map(a, (v) => (v > 0 ? v : 0)),
    backward: (g, [a]) => [tensor(g.shape, g.data.map((v, k) => (a.data[k] > 0 ? v : 0)))],
    local: (names) => [`1 where ${names[0]} > 0, else 0`],
    localValue: ([a]) => map(a, (v) => (v > 0 ? 1 : 0)),
  },
  exp: {
    arity: 1,
    forward: ([a]) => map(a, Math.exp),
    backward: (g, _inputs, out) => [tensor(g.shape, g.data.map((v, k) => v * out.data[k]))],
    local: (names) => [`exp(${names[0]}), the result itself`],
    localValue: (inputs, out) => out,
  },
  log: {
    arity: 1,
    forward: ([a]) => map(a, Math.log),
    backward: (g, [a]) => [tensor(g.shape, g.data.map((v, k) => v / a.data[k]))],
    local: (names) => [`1 / ${names[0]}`],
    localValue: ([a]) => map(a, (v) => 1 / v),
  },
  sum: {
    arity: 1,
    forward: ([a]) => tensor([], [a.data.reduce((p, v) => p + v, 0)]),
    backward: (g, [a]) => [tensor(a.shape, new Array(numel(a.shape)).fill(g.data[0]))],
    local: () => ["1 for every entry"],
  },
};

function checkOperands(op, [a, b]) {
  if (op === "@") {
    const fits = b.shape.length === 2 && a.shape.length >= 1 && a.shape[a.shape.length - 1] === b.shape[0];
    if (!fits) {
      throw new ExpressionError(
        "a @ b needs a of shape (..., k) and a matrix b of shape (k, m), " +
          `got a of shape ${formatShape(a.shape)} and b of shape ${formatShape(b.shape)}`,
      );
    }
  }
  if (op === "log") {
    const k = a.data.findIndex((v) => !(v > 0));
    if (k >= 0) {
      throw new ExpressionError(`log needs positive numbers, but its input has ${fmtNumber(a.data[k])} at position ${k}`);
    }
  }
}

function fmtNumber(v) {
  return String(Number(v.toPrecision(6))).replace("-", "−");
}

// --- reading the reader's text ----------------------------------------------------

const TOKEN = /\s*(?:(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(\*\*|[-+*@(),;=[\]/]))/y;

function tokenize(text, what) {
  const tokens = [];
  TOKEN.lastIndex = 0;
  let at = 0;
  while (at < text.length) {
    if (/^\s*$/.test(text.slice(at))) break;
    TOKEN.lastIndex = at;
    const m = TOKEN.exec(text);
    if (!m) {
      const bad = text.slice(at).trim()[0];
      throw new ExpressionError(`${what}: "${bad}" at position ${text.indexOf(bad, at) + 1} is not allowed here`);
    }
    const position = m.index + m[0].length - (m[1] || m[2] || m[3]).length;
    if (m[1] !== undefined) tokens.push({ kind: "number", text: m[1], value: Number(m[1]), position });
    else if (m[2] !== undefined) tokens.push({ kind: "name", text: m[2], position });
    else tokens.push({ kind: "symbol", text: m[3], position });
    at = TOKEN.lastIndex;
  }
  return tokens;
}

function reader(tokens, what) {
  let i = 0;
  const where = () => (i < tokens.length ? `"${tokens[i].text}" at position ${tokens[i].position + 1}` : "the end");
  return {
    peek: () => tokens[i],
    next: () => tokens[i++],
    done: () => i >= tokens.length,
    accept(text) {
      if (tokens[i] && tokens[i].kind === "symbol" && tokens[i].text === text) {
        i += 1;
        return true;
      }
      return false;
    },
    fail(expected) {
      throw new ExpressionError(`${what}: expected ${expected}, found ${where()}`);
    },
  };
}

// "x = 2, w = [1, -2], M = [[1, 2], [3, 4]]": names and their values.
export function parseValues(text) {
  if (typeof text !== "string") throw new ExpressionError("values: expected text such as x = 2, w = [1, -2]");
  const r = reader(tokenize(text, "values"), "values");
  const values = new Map();
  const number = () => {
    const sign = r.accept("-") ? -1 : (r.accept("+"), 1);
    const t = r.peek();
    if (!t || t.kind !== "number") r.fail("a number");
    r.next();
    return sign * t.value;
  };
  const literal = (depth) => {
    if (!r.accept("[")) return number();
    if (depth >= LIMITS.ndim) r.fail(`a number (at most ${LIMITS.ndim} levels of brackets)`);
    const items = [literal(depth + 1)];
    while (r.accept(",")) {
      if (r.peek() && r.peek().text === "]") break;
      items.push(literal(depth + 1));
    }
    if (!r.accept("]")) r.fail('"," or "]"');
    return items;
  };
  while (!r.done()) {
    const name = r.next();
    if (name.kind !== "name") r.fail("a name such as x");
    if (FUNCTIONS.includes(name.text)) throw new ExpressionError(`values: ${name.text} is a function; pick another name`);
    if (/^u\d+$/.test(name.text)) {
      throw new ExpressionError(`values: names u1, u2, … are kept for the results of operations; rename ${name.text}`);
    }
    if (values.has(name.text)) throw new ExpressionError(`values: ${name.text} is given twice`);
    if (!r.accept("=")) r.fail(`"=" after ${name.text}`);
    values.set(name.text, toTensor(name.text, literal(0)));
    if (!r.done() && !r.accept(",") && !r.accept(";")) r.fail('"," or ";" between two values');
  }
  if (values.size === 0) throw new ExpressionError("values: give at least one, such as x = 2");
  if (values.size > LIMITS.variables) throw new ExpressionError(`values: at most ${LIMITS.variables} names`);
  return values;
}

function toTensor(name, value) {
  if (typeof value === "number") return tensor([], [value]);
  if (value.length > LIMITS.size) {
    throw new ExpressionError(`values: ${name} has ${value.length} entries; at most ${LIMITS.size} per axis here`);
  }
  if (value.every((v) => typeof v === "number")) return tensor([value.length], value);
  if (!value.every((v) => Array.isArray(v))) {
    throw new ExpressionError(`values: ${name} mixes numbers and lists; write a matrix as [[1, 2], [3, 4]]`);
  }
  const cols = value[0].length;
  const bad = value.findIndex((row) => row.length !== cols);
  if (bad >= 0) {
    throw new ExpressionError(`values: row ${bad} of ${name} has ${value[bad].length} entries, row 0 has ${cols}`);
  }
  if (cols > LIMITS.size) throw new ExpressionError(`values: ${name} has ${cols} columns; at most ${LIMITS.size} here`);
  return tensor([value.length, cols], value.flat());
}

// --- the graph ----------------------------------------------------------------------

// Parse `expression` with Python's precedence (unary minus above * and @, which
// are above + and −; left to right) and evaluate it as backprop.autograd would:
// every name is a leaf that requires a gradient, numbers are constants, and an
// operation records its inputs (parents) when one of them requires a gradient.
// A leading minus on a tensor is x * −1, as Tensor.__neg__ does; there is no
// leading plus.
export function build(expression, valuesText) {
  if (typeof expression !== "string" || expression.trim() === "") {
    throw new ExpressionError("the expression is empty: type one such as x * y + exp(x)");
  }
  if (expression.length > LIMITS.length) {
    throw new ExpressionError(`the expression has ${expression.length} characters; at most ${LIMITS.length} here`);
  }
  const values = parseValues(valuesText);
  const nodes = [];
  const leaves = new Map();
  let operations = 0;
  const constant = (value) => {
    const node = { id: nodes.length, kind: "constant", name: fmtNumber(value), op: "", parents: [],
      requiresGrad: false, value: tensor([], [value]) };
    nodes.push(node);
    return node;
  };
  const leaf = (name) => {
    if (!leaves.has(name)) {
      const node = { id: nodes.length, kind: "leaf", name, op: "", parents: [], requiresGrad: true, value: values.get(name) };
      nodes.push(node);
      leaves.set(name, node);
    }
    return leaves.get(name);
  };
  const apply = (op, inputs) => {
    if (inputs.every((n) => !n.requiresGrad)) {
      if (op in OPS && OPS[op].arity === 1) {
        throw new ExpressionError(`${op}(${inputs[0].name}) has only numbers inside: apply ${op} to an expression with a name`);
      }
    }
    checkOperands(op, inputs.map((n) => n.value));
    const value = OPS[op].forward(inputs.map((n) => n.value));
    if (numel(value.shape) > LIMITS.size * LIMITS.size) {
      throw new ExpressionError(`${op} gives shape ${formatShape(value.shape)}; at most ${LIMITS.size * LIMITS.size} numbers here`);
    }
    if (inputs.every((n) => !n.requiresGrad)) return constant(value.data[0]); // 2 * 3: a number
    operations += 1;
    if (operations > LIMITS.operations) throw new ExpressionError(`more than ${LIMITS.operations} operations; shorten the expression`);
    const node = { id: nodes.length, kind: "op", name: `u${operations}`, op, parents: inputs, requiresGrad: true, value };
    nodes.push(node);
    return node;
  };

  const r = reader(tokenize(expression, "expression"), "expression");
  const sum = () => {
    let left = product();
    for (;;) {
      if (r.accept("+")) left = apply("+", [left, product()]);
      else if (r.accept("-")) left = apply("-", [left, product()]);
      else return left;
    }
  };
  const product = () => {
    let left = unary();
    for (;;) {
      if (r.accept("*")) left = apply("*", [left, unary()]);
      else if (r.accept("@")) left = apply("@", [left, unary()]);
      else if (r.peek() && ["/", "**"].includes(r.peek().text)) notAnOperation(r.peek());
      else return left;
    }
  };
  const notAnOperation = (t) => {
    throw new ExpressionError(
      `expression: ${t.text} at position ${t.position + 1} is not one of the operations here (+ − * @ relu exp log sum)`,
    );
  };
  const unary = () => {
    if (r.accept("-")) {
      const operand = unary();
      if (!operand.requiresGrad) return constant(-operand.value.data[0]);
      return apply("*", [operand, constant(-1)]);
    }
    // Tensor has no unary plus (__pos__), so neither has this.
    if (r.peek() && r.peek().text === "+") r.fail("a name, a number, ( or −");
    return atom();
  };
  const atom = () => {
    const t = r.peek();
    if (t && t.kind === "symbol" && (t.text === "/" || t.text === "**")) notAnOperation(t);
    if (r.accept("(")) {
      const inner = sum();
      if (!r.accept(")")) r.fail('")"');
      return inner;
    }
    if (!t) r.fail("a name, a number or (");
    if (t.kind === "number") {
      r.next();
      return constant(t.value);
    }
    if (t.kind !== "name") r.fail("a name, a number or (");
    r.next();
    if (FUNCTIONS.includes(t.text)) {
      if (!r.accept("(")) r.fail(`"(" after ${t.text}`);
      const inner = sum();
      if (!r.accept(")")) r.fail(`")" to close ${t.text}(`);
      return apply(t.text, [inner]);
    }
    if (r.peek() && r.peek().text === "(") {
      throw new ExpressionError(`expression: ${t.text} is not a function here; the functions are ${FUNCTIONS.join(", ")}`);
    }
    if (!values.has(t.text)) {
      throw new ExpressionError(`expression: ${t.text} has no value; add it to the values, e.g. ${t.text} = 1`);
    }
    return leaf(t.text);
  };
  const root = sum();
  if (!r.done()) r.fail("an operation (+ − * @) or the end");
  if (!root.requiresGrad) {
    throw new ExpressionError("the expression uses no name, so there is nothing to differentiate");
  }
  if (numel(root.value.shape) !== 1) {
    throw new ExpressionError(
      `backward() starts from a scalar (a loss), but the expression has shape ${formatShape(root.value.shape)}; ` +
        `wrap it in sum(...)`,
    );
  }
  const unused = [...values.keys()].filter((name) => !leaves.has(name));
  // Only what the result was computed from (`-2` leaves its 2 behind).
  const reached = new Set([root]);
  for (let k = nodes.length - 1; k >= 0; k--) {
    if (reached.has(nodes[k])) nodes[k].parents.forEach((p) => reached.add(p));
  }
  const kept = nodes.filter((node) => reached.has(node));
  return { nodes: kept, root, leaves: [...leaves.values()], unused, expression: expression.trim() };
}

// Tensor.tape(): a depth-first walk from the root without recursion; a node is
// appended once every parent that requires a gradient is.
export function tape(graph) {
  const order = [];
  const visited = new Set();
  const stack = [[graph.root, false]];
  while (stack.length) {
    const [node, parentsDone] = stack.pop();
    if (parentsDone) order.push(node);
    else if (!visited.has(node)) {
      visited.add(node);
      stack.push([node, true]);
      for (const p of node.parents) if (p.requiresGrad) stack.push([p, false]);
    }
  }
  return order;
}

const add = (a, b) => tensor(a.shape, a.data.map((v, k) => v + b.data[k]));

// Tensor.backward(), one operation at a time. steps[k] is the k-th operation
// replayed (the root first): the upstream gradient it received (complete: every
// use of it came earlier), the local derivative and contribution to each input,
// and `received`: every node's contributions so far, after the step. Leaves'
// final gradients are the sums of their contributions.
export function backward(graph) {
  const order = tape(graph);
  const received = new Map([[graph.root, [{ from: null, value: tensor(graph.root.value.shape, [1]) }]]]);
  const total = (node) => {
    const parts = received.get(node) || [];
    return parts.length ? parts.slice(1).reduce((s, p) => add(s, p.value), parts[0].value) : null;
  };
  const snapshot = () => new Map([...received].map(([node, parts]) => [node, parts.slice()]));
  const steps = [];
  for (const node of order.slice().reverse()) {
    if (node.kind !== "op") continue;
    const upstream = total(node);
    const inputs = node.parents.map((p) => p.value);
    const grads = OPS[node.op].backward(upstream, inputs, node.value);
    const names = node.parents.map((p) => p.name);
    const locals = OPS[node.op].local(names);
    const contributions = node.parents.map((parent, i) => ({
      parent,
      position: i,
      local: locals[i],
      localValue: OPS[node.op].localValue ? OPS[node.op].localValue(inputs, node.value, i) : null,
      value: grads[i],
      summedBroadcast: numel(grads[i].shape) < numel(upstream.shape) && !["@", "sum"].includes(node.op),
    }));
    // One input after the other: x * x sends x two contributions, and the
    // second is added to the first.
    for (const c of contributions) {
      if (!c.parent.requiresGrad) continue;
      c.before = total(c.parent);
      if (!received.has(c.parent)) received.set(c.parent, []);
      received.get(c.parent).push({ from: node, position: c.position, value: c.value });
      c.after = total(c.parent);
    }
    steps.push({ node, upstream, contributions, received: snapshot() });
  }
  const gradients = new Map(order.map((node) => [node, total(node)]));
  return { order, steps, gradients };
}

// How a node was computed, for the tape's listing: "u3 = u1 + u2".
export function describe(node) {
  if (node.kind !== "op") return node.name;
  const [a, b] = node.parents.map((p) => p.name);
  if (OPS[node.op].arity === 1) return `${node.name} = ${node.op}(${a})`;
  return `${node.name} = ${a} ${node.op === "-" ? "−" : node.op} ${b}`;
}

// Text of a tensor's numbers: "2", "[1, −2]", "[[1, 2], [3, 4]]".
export function formatTensor(t, digits = 4) {
  const n = (v) => (v === 0 ? "0" : String(Number(v.toPrecision(digits))).replace("-", "−"));
  const nested = toNested(t);
  if (typeof nested === "number") return n(nested);
  if (t.shape.length === 1) return `[${nested.map(n).join(", ")}]`;
  return `[${nested.map((row) => `[${row.map(n).join(", ")}]`).join(", ")}]`;
}

// Column of each node for drawing: an operation one past its deepest input;
// a leaf or a constant one before its first user, so that its edges are short.
export function layers(graph) {
  const depth = new Map();
  for (const node of graph.nodes) {
    if (node.parents.length) depth.set(node, 1 + Math.max(...node.parents.map((p) => depth.get(p) ?? 0)));
  }
  const first = new Map();
  for (const node of graph.nodes) {
    for (const p of node.parents) {
      if (!p.parents.length) first.set(p, Math.min(first.get(p) ?? Infinity, depth.get(node)));
    }
  }
  for (const node of graph.nodes) if (!node.parents.length) depth.set(node, (first.get(node) ?? 1) - 1);
  return depth;
}
