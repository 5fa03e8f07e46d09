// The chain rule on post 2's small graphs: forward values, local derivatives,
// the global derivative as a sum over paths of products of local derivatives,
// and a nudge of one input compared with the change that derivative predicts.
// Plain ES2020 module: no dependencies, no DOM.

// The names the post gives its nodes, in one table: renaming a node in the
// post is one edit here.
export const NAMES = {
  input: "x",
  weight: "w",
  bias: "b",
  target: "t",
  product: "u",
  sum: "v",
  residual: "r",
  loss: "L",
  // y = x + x²: the two nodes that read x, and their sum.
  identity: "a",
  square: "q",
  output: "y",
};

// Each op: its value and its local derivative with respect to each argument.
export const OPS = {
  mul: { symbol: "×", value: (p, q) => p * q, local: (p, q) => [q, p] },
  add: { symbol: "+", value: (p, q) => p + q, local: () => [1, 1] },
  sub: { symbol: "−", value: (p, q) => p - q, local: () => [1, -1] },
  square: { symbol: "( )²", value: (p) => p * p, local: (p) => [2 * p] },
  identity: { symbol: "=", value: (p) => p, local: () => [1] },
};

const N = NAMES;

// L = (w x + b − t)², with the post's numbers.
export const NEURON = {
  title: `${N.loss} = (${N.weight}${N.input} + ${N.bias} − ${N.target})²`,
  inputs: { [N.input]: 1.5, [N.weight]: -2, [N.bias]: 0.5, [N.target]: 1 },
  nodes: [
    { name: N.product, op: "mul", args: [N.weight, N.input] },
    { name: N.sum, op: "add", args: [N.product, N.bias] },
    { name: N.residual, op: "sub", args: [N.sum, N.target] },
    { name: N.loss, op: "square", args: [N.residual] },
  ],
};

// y = x + x²: x reaches y along two paths, whose contributions add.
export const TWO_PATHS = {
  title: `${N.output} = ${N.input} + ${N.input}²`,
  inputs: { [N.input]: 1 },
  nodes: [
    { name: N.identity, op: "identity", args: [N.input] },
    { name: N.square, op: "square", args: [N.input] },
    { name: N.output, op: "add", args: [N.identity, N.square] },
  ],
};

export const GRAPHS = { neuron: NEURON, twoPaths: TWO_PATHS };

function outputName(graph) {
  return graph.nodes[graph.nodes.length - 1].name;
}

function checkInput(graph, name) {
  if (!(name in graph.inputs)) {
    throw new Error(`${name} is not an input of ${graph.title}; inputs: ${Object.keys(graph.inputs).join(", ")}`);
  }
}

// Every value, inputs first, then nodes in order. `overrides` replaces inputs.
export function forward(graph, overrides = {}) {
  const values = { ...graph.inputs, ...overrides };
  for (const node of graph.nodes) {
    const op = OPS[node.op];
    if (!op) throw new Error(`unknown op ${node.op} at node ${node.name}`);
    values[node.name] = op.value(...node.args.map((a) => values[a]));
  }
  return values;
}

// Every path from `input` to the output, with the local derivative of each
// step and their product. A path is a list of edges {from, to, local}.
export function paths(graph, input, values = forward(graph)) {
  checkInput(graph, input);
  const out = outputName(graph);
  const users = {};
  for (const node of graph.nodes) {
    const locals = OPS[node.op].local(...node.args.map((a) => values[a]));
    node.args.forEach((arg, i) => {
      (users[arg] = users[arg] || []).push({ from: arg, to: node.name, local: locals[i] });
    });
  }
  const found = [];
  const walk = (name, edges) => {
    if (name === out) {
      found.push({ edges, product: edges.reduce((p, e) => p * e.local, 1) });
      return;
    }
    for (const edge of users[name] || []) walk(edge.to, edges.concat([edge]));
  };
  walk(input, []);
  return found;
}

// ∂output/∂input: the sum over paths of the product of local derivatives.
export function gradient(graph, input, values = forward(graph)) {
  return paths(graph, input, values).reduce((total, path) => total + path.product, 0);
}

// Move `input` by delta: the output's actual change, and the change that the
// derivative predicts (derivative × delta).
export function nudge(graph, input, delta) {
  checkInput(graph, input);
  if (!Number.isFinite(delta)) throw new Error(`the nudge must be a finite number, got ${delta}`);
  const out = outputName(graph);
  const base = forward(graph);
  const moved = forward(graph, { [input]: graph.inputs[input] + delta });
  const derivative = gradient(graph, input, base);
  const actual = moved[out] - base[out];
  const predicted = derivative * delta;
  return {
    input,
    delta,
    output: out,
    before: base[out],
    after: moved[out],
    derivative,
    actual,
    predicted,
    error: actual - predicted,
  };
}

// The nudge over a range of deltas, for a plot of actual against predicted.
export function nudgeCurve(graph, input, maxDelta, count = 81) {
  const rows = [];
  for (let i = 0; i < count; i++) {
    const delta = -maxDelta + (2 * maxDelta * i) / (count - 1);
    rows.push(nudge(graph, input, delta));
  }
  return rows;
}

export function describePath(path) {
  const steps = path.edges.map((e) => `∂${e.to}/∂${e.from} = ${formatNumber(e.local)}`);
  return `${steps.join(" × ")} = ${formatNumber(path.product)}`;
}

export function formatNumber(value, digits = 4) {
  if (value === 0) return "0";
  const rounded = Number(value.toPrecision(digits));
  return String(rounded).replace("-", "−");
}
