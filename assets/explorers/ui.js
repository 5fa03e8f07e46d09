// Controls, tables and small SVG charts for the explorers' OJS cells, built from
// the DOM alone: the page loads nothing from another host, and text is always
// set as text (never parsed as HTML). Each control is an element whose `.value`
// holds the current setting and which emits `input` events, the contract of
// OJS `viewof`. Colours come from classes in styles.css, so both themes work.

const SVG_NS = "http://www.w3.org/2000/svg";
let lastId = 0;

function uniqueId(prefix) {
  lastId += 1;
  return `${prefix}-${lastId}`;
}

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    const node = child instanceof Node ? child : document.createTextNode(String(child));
    parent.append(node);
  }
  return parent;
}

function setAttributes(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  return node;
}

// An HTML element: h("p", {class: "note"}, "text", otherNode, [more, nodes]).
export function h(tag, attrs, ...children) {
  return append(setAttributes(document.createElement(tag), attrs), children);
}

// An SVG element, same call as h.
export function s(tag, attrs, ...children) {
  return append(setAttributes(document.createElementNS(SVG_NS, tag), attrs), children);
}

// A number for reading: a true minus sign, and "0" for zero.
export function fmt(value, digits = 4) {
  if (value === 0) return "0";
  if (!Number.isFinite(value)) return String(value).replace("-", "−");
  return String(Number(value.toPrecision(digits))).replace("-", "−");
}

// x.yyy × 10⁻ⁿ with superscript digits.
export function sci(value, digits = 2) {
  if (value === 0) return "0";
  const [mantissa, exponent] = value.toExponential(digits).split("e");
  return `${mantissa.replace("-", "−")} × 10${superscript(Number(exponent))}`;
}

const SUPERSCRIPTS = {
  "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³",
  4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹",
};

export function superscript(n) {
  return String(n)
    .split("")
    .map((c) => SUPERSCRIPTS[c] ?? c)
    .join("");
}

// Give `wrapper` a `.value` that reads and writes the setting, as viewof expects.
function asView(wrapper, read, write) {
  const property = { get: read, set: write, configurable: true };
  Object.defineProperty(wrapper, "value", property);
  return wrapper;
}

// A labelled slider; the number beside it says the value as the reader should
// read it (format), which is also what assistive technology announces.
export function slider({ label, min, max, step, value, format = (v) => fmt(v) }) {
  const id = uniqueId("explorer-range");
  const input = h("input", { type: "range", id, min, max, step, value });
  const shown = h("output", { for: id, class: "explorer-value" });
  const show = () => {
    const text = format(Number(input.value));
    shown.textContent = text;
    input.setAttribute("aria-valuetext", text);
  };
  input.addEventListener("input", show);
  show();
  const name = h("label", { for: id }, label);
  const wrapper = h("div", { class: "explorer-control" }, name, input, shown);
  return asView(
    wrapper,
    () => Number(input.value),
    (v) => {
      input.value = v;
      show();
    },
  );
}

// A labelled drop-down; options are [value, text] pairs, values of any type.
export function select({ label, options, value = options[0][0] }) {
  const id = uniqueId("explorer-select");
  const input = h(
    "select",
    { id },
    options.map(([v, text], i) =>
      h("option", { value: i, selected: v === value }, text),
    ),
  );
  const name = h("label", { for: id }, label);
  const wrapper = h("div", { class: "explorer-control" }, name, input);
  return asView(
    wrapper,
    () => options[Number(input.value)][0],
    (v) => {
      const i = options.findIndex(([option]) => option === v);
      if (i >= 0) input.value = String(i);
    },
  );
}

// A labelled checkbox; the value is true or false.
export function toggle({ label, value = false }) {
  const id = uniqueId("explorer-toggle");
  const input = h("input", { type: "checkbox", id, checked: value });
  const name = h("label", { for: id }, label);
  const wrapper = h("div", { class: "explorer-control explorer-toggle" }, input, name);
  // A checkbox reports `change`; OJS listens for `input` on the wrapper.
  input.addEventListener("change", () => {
    wrapper.dispatchEvent(new Event("input", { bubbles: true }));
  });
  return asView(
    wrapper,
    () => input.checked,
    (v) => {
      input.checked = Boolean(v);
    },
  );
}

// A labelled text field, with a hint under it that is also its description.
export function textField({ label, value = "", hint = "" }) {
  const id = uniqueId("explorer-text");
  const hintId = `${id}-hint`;
  const input = h("input", {
    type: "text",
    id,
    value,
    spellcheck: "false",
    autocomplete: "off",
    "aria-describedby": hint ? hintId : null,
  });
  const wrapper = h(
    "div",
    { class: "explorer-control explorer-text" },
    h("label", { for: id }, label),
    input,
    hint ? h("small", { id: hintId, class: "explorer-hint" }, hint) : null,
  );
  return asView(
    wrapper,
    () => input.value,
    (v) => {
      input.value = v;
    },
  );
}

// The live line that states the result in words. Create it once and update it
// with say(), so screen readers announce each change.
export function statusLine() {
  return h("p", { role: "status", class: "explorer-status" });
}

export function say(status, text, isError = false) {
  status.textContent = text;
  status.classList.toggle("explorer-error", isError);
  return text;
}

// Run `compute`; on failure show the error's message in `status` and return
// null, so a bad setting reads as a sentence in the explorer.
export function attempt(compute, status) {
  try {
    return compute();
  } catch (error) {
    say(status, `Cannot compute this: ${error.message}`, true);
    return null;
  }
}

// A captioned table. `columns`: header texts; `rows`: arrays of cells, the first
// being the row's header. A cell is text, a node, or {content, style, className}.
// `className` is added to the table's own classes.
export function table({ caption, columns, rows, className = "" }) {
  const cell = (tag, value, attrs = {}) => {
    const plain = value === null || typeof value !== "object";
    if (!plain && !(value instanceof Node) && !Array.isArray(value)) {
      const styled = { ...attrs, style: value.style, class: value.className };
      return h(tag, styled, value.content);
    }
    return h(tag, attrs, value);
  };
  // On a narrow screen a wide table scrolls sideways; it takes focus so the
  // keyboard can scroll it too.
  const label = typeof caption === "string" ? caption : "table";
  return h(
    "div",
    { class: "explorer-table-wrap", tabindex: 0, role: "region", "aria-label": label },
    h(
      "table",
      { class: `table table-sm explorer-table ${className}`.trim() },
      h("caption", null, caption),
      h(
        "thead",
        null,
        h("tr", null, columns.map((c) => cell("th", c, { scope: "col" }))),
      ),
      h(
        "tbody",
        null,
        rows.map((row) =>
          h(
            "tr",
            null,
            cell("th", row[0], { scope: "row" }),
            row.slice(1).map((c) => cell("td", c)),
          ),
        ),
      ),
    ),
  );
}

// --- charts -----------------------------------------------------------------------

const MARGIN = { top: 12, right: 16, bottom: 44, left: 64 };

function linear(domain, range) {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  return (v) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
}

function logarithmic(domain, range) {
  const scale = linear(domain.map(Math.log10), range);
  return (v) => scale(Math.log10(v));
}

// Tick values: decades for a log axis (every `every` decades), else ~count nice steps.
function ticks(axis, count) {
  const [lo, hi] = axis.domain;
  if (axis.log) {
    const every = axis.every || 1;
    const out = [];
    for (let e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e++) {
      if (e % every === 0) out.push(10 ** e);
    }
    return out;
  }
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => m >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toFixed(12)));
  }
  return out;
}

function tickLabel(axis, v) {
  if (axis.log) return `10${superscript(Math.round(Math.log10(v)))}`;
  return fmt(v, 3);
}

// A chart frame: axes with ticks, gridlines and labels, and the scales.
function frame({ width, height, label, x, y, xTicks = true }) {
  const w = Math.max(280, Math.round(width));
  const left = MARGIN.left;
  const right = w - MARGIN.right;
  const top = MARGIN.top;
  const bottom = height - MARGIN.bottom;
  const sx = (x.log ? logarithmic : linear)(x.domain, [left, right]);
  const sy = (y.log ? logarithmic : linear)(y.domain, [bottom, top]);
  const svg = s("svg", {
    class: "explorer-chart",
    width: w,
    height,
    viewBox: `0 0 ${w} ${height}`,
    role: "img",
    "aria-label": label,
  });
  const xAt = xTicks ? ticks(x, Math.max(3, Math.floor(w / 90))) : [];
  const yTicks = ticks(y, 5);
  append(svg, [
    yTicks.map((v) =>
      s("line", { class: "explorer-grid", x1: left, x2: right, y1: sy(v), y2: sy(v) }),
    ),
    yTicks.map((v) =>
      s(
        "text",
        { class: "explorer-tick", x: left - 6, y: sy(v),
          dy: "0.32em", "text-anchor": "end" },
        tickLabel(y, v),
      ),
    ),
    xAt.map((v) =>
      s("line", { class: "explorer-axis", x1: sx(v), x2: sx(v), y1: bottom,
        y2: bottom + 5 }),
    ),
    xAt.map((v) =>
      s(
        "text",
        { class: "explorer-tick", x: sx(v), y: bottom + 18, "text-anchor": "middle" },
        tickLabel(x, v),
      ),
    ),
    s("line", { class: "explorer-axis", x1: left, x2: right, y1: bottom, y2: bottom }),
    s("line", { class: "explorer-axis", x1: left, x2: left, y1: top, y2: bottom }),
    s(
      "text",
      {
        class: "explorer-axis-label",
        x: (left + right) / 2,
        y: height - 6,
        "text-anchor": "middle",
      },
      x.label,
    ),
    s(
      "text",
      {
        class: "explorer-axis-label",
        transform: `translate(14, ${(top + bottom) / 2}) rotate(-90)`,
        "text-anchor": "middle",
      },
      y.label,
    ),
  ]);
  const clip = (v, axis) => {
    const [lo, hi] = axis.domain;
    return Math.min(Math.max(v, Math.min(lo, hi)), Math.max(lo, hi));
  };
  return { svg, sx, sy, left, right, top, bottom, clip };
}

// Lines and points on x/y axes (linear or log). series: [{points: [[x, y]...],
// className}]; dots: [{x, y, className}]; rules: {x: [...], y: [...]}. Values
// outside the y domain are drawn at its edge (clamped).
export function lineChart(options) {
  const { width, height = 280, label, x, y } = options;
  const { series = [], dots = [], rules = {} } = options;
  const f = frame({ width, height, label, x, y });
  const px = (v) => f.sx(f.clip(v, x));
  const py = (v) => f.sy(f.clip(v, y));
  append(f.svg, [
    (rules.y || []).map((v) =>
      s("line", { class: "explorer-rule", x1: f.left, x2: f.right, y1: py(v),
        y2: py(v) }),
    ),
    (rules.x || []).map((v) =>
      s("line", { class: "explorer-rule", x1: px(v), x2: px(v), y1: f.top,
        y2: f.bottom }),
    ),
    series.map((line) =>
      s("polyline", {
        class: `explorer-line ${line.className || ""}`,
        points: line.points
          .map(([a, b]) => `${px(a).toFixed(1)},${py(b).toFixed(1)}`)
          .join(" "),
      }),
    ),
    dots.map((d) =>
      s("circle", {
        class: `explorer-dot ${d.className || ""}`,
        cx: px(d.x),
        cy: py(d.y),
        r: 5,
      }),
    ),
  ]);
  return f.svg;
}

// Grouped bars around a zero line. groups: [{name, bars: [{value, className}]}].
export function barChart({ width, height = 240, label, y, groups }) {
  // The groups are named under the axis instead of numeric ticks.
  const x = { domain: [0, groups.length], label: null };
  const f = frame({ width, height, label, x, y, xTicks: false });
  const slot = (f.right - f.left) / groups.length;
  const zero = f.sy(0);
  groups.forEach((group, g) => {
    const barWidth = (slot * 0.7) / group.bars.length;
    group.bars.forEach((bar, b) => {
      const top = f.sy(f.clip(bar.value, y));
      append(f.svg, [
        s("rect", {
          class: `explorer-bar ${bar.className || ""}`,
          x: f.left + g * slot + slot * 0.15 + b * barWidth,
          y: Math.min(top, zero),
          width: Math.max(1, barWidth - 2),
          height: Math.max(0.5, Math.abs(zero - top)),
        }),
      ]);
    });
    append(f.svg, [
      s(
        "text",
        {
          class: "explorer-tick",
          x: f.left + (g + 0.5) * slot,
          y: f.bottom + 18,
          "text-anchor": "middle",
        },
        group.name,
      ),
    ]);
  });
  const axis = { class: "explorer-rule", x1: f.left, x2: f.right, y1: zero, y2: zero };
  append(f.svg, [s("line", axis)]);
  return f.svg;
}

function swatch(item) {
  const extra = item.className || "";
  if (item.kind === "bar") {
    const box = { x: 6, y: 1, width: 16, height: 10 };
    return s("rect", { class: `explorer-bar ${extra}`, ...box });
  }
  if (item.kind === "dot") {
    return s("circle", { class: `explorer-dot ${extra}`, cx: 14, cy: 6, r: 5 });
  }
  return s("line", { class: `explorer-line ${extra}`, x1: 1, x2: 27, y1: 6, y2: 6 });
}

// A legend: [{name, className, kind: "line" | "dot" | "bar"}]; a dashed line is
// a line whose className includes explorer-dashed.
export function legend(items) {
  return h(
    "ul",
    { class: "explorer-legend" },
    items.map((item) =>
      h(
        "li",
        null,
        s(
          "svg",
          { width: 28, height: 12, "aria-hidden": "true", class: "explorer-chart" },
          swatch(item),
        ),
        ` ${item.name}`,
      ),
    ),
  );
}

// Text that only assistive technology reads (Bootstrap's class): what a colour
// or an outline says to the eye.
export function srOnly(text) {
  return h("span", { class: "visually-hidden" }, text);
}

// Step through 0..max with buttons, or with the arrow keys, Home and End while
// any of the buttons has focus. The value is the current step; the line beside
// the buttons says it in words (describe(step)), for the eye and the ear.
export function stepper({ label, max, value = 0, describe = (k) => `step ${k} of ${max}` }) {
  let step = Math.min(Math.max(0, value), max);
  const shown = h("output", { class: "explorer-value" });
  const wrapper = h("div", { class: "explorer-control explorer-stepper", role: "group", "aria-label": label });
  const go = (k) => {
    const next = Math.min(Math.max(0, k), max);
    if (next === step) return;
    step = next;
    shown.textContent = describe(step);
    wrapper.dispatchEvent(new Event("input", { bubbles: true }));
  };
  // The arrows are decoration: a button's name is its word.
  const button = (before, word, after, target) => {
    const arrow = (text) => (text ? h("span", { "aria-hidden": "true" }, text) : null);
    const b = h("button", { type: "button" }, arrow(before), word, arrow(after));
    b.addEventListener("click", () => go(target()));
    return b;
  };
  const keys = {
    ArrowLeft: () => step - 1,
    ArrowUp: () => step - 1,
    ArrowRight: () => step + 1,
    ArrowDown: () => step + 1,
    Home: () => 0,
    End: () => max,
  };
  wrapper.addEventListener("keydown", (event) => {
    if (!(event.key in keys)) return;
    event.preventDefault();
    go(keys[event.key]());
  });
  append(wrapper, [
    h("span", { class: "explorer-stepper-label" }, label),
    button(null, "start", null, () => 0),
    button("◀ ", "back", null, () => step - 1),
    button(null, "next", " ▶", () => step + 1),
    button(null, "end", null, () => max),
    shown,
  ]);
  shown.textContent = describe(step);
  return asView(
    wrapper,
    () => step,
    (k) => {
      step = Math.min(Math.max(0, k), max);
      shown.textContent = describe(step);
    },
  );
}

// A small directed graph drawn in columns: nodes [{id, column, label, sublabel,
// className}] (column 0 on the left), edges [{from, to, className}] from input
// to result. Within a column, nodes sit near the nodes they connect to (a few
// rounds of averaging), so that few edges cross. Two edges between the same
// nodes (x * x) are drawn as two curves; an edge that would run through a node
// in a column it skips arcs over it.
export function graphChart({ width, label, nodes, edges }) {
  const columns = Math.max(...nodes.map((n) => n.column)) + 1;
  const byColumn = Array.from({ length: columns }, () => []);
  for (const node of nodes) byColumn[node.column].push(node.id);
  const column = new Map(nodes.map((n) => [n.id, n.column]));
  const rank = new Map();
  const rerank = () =>
    byColumn.forEach((ids) => ids.forEach((id, i) => rank.set(id, (i + 0.5) / ids.length)));
  rerank();
  const mean = (ids) => (ids.length ? ids.reduce((t, id) => t + rank.get(id), 0) / ids.length : null);
  for (let round = 0; round < 4; round++) {
    for (const ids of byColumn) {
      const key = new Map(
        ids.map((id) => {
          const inputs = edges.filter((e) => e.to === id).map((e) => e.from);
          const users = edges.filter((e) => e.from === id).map((e) => e.to);
          return [id, mean(inputs) ?? mean(users) ?? rank.get(id)];
        }),
      );
      ids.sort((p, q) => key.get(p) - key.get(q));
      rerank();
    }
  }
  const rows = Math.max(...byColumn.map((ids) => ids.length));
  const boxW = 64;
  const boxH = 38;
  const w = Math.max(280, Math.min(Math.round(width || 640), 120 * columns + 20));
  const gapX = columns > 1 ? (w - boxW - 20) / (columns - 1) : 0;
  // Room above the nodes for arcs.
  const top = 34;
  const height = rows * 58 + top + 6;
  const at = (id) => ({
    x: 10 + boxW / 2 + column.get(id) * gapX,
    y: top + rank.get(id) * (height - top - 6),
  });
  const svg = s("svg", {
    class: "explorer-chart explorer-graph",
    width: w,
    height,
    viewBox: `0 0 ${w} ${height}`,
    role: "img",
    "aria-label": label,
  });
  const seen = new Map();
  for (const edge of edges) {
    const key = `${edge.from}>${edge.to}`;
    const k = seen.get(key) || 0;
    seen.set(key, k + 1);
    const twins = edges.filter((e) => e.from === edge.from && e.to === edge.to).length;
    const a = at(edge.from);
    const b = at(edge.to);
    const x1 = a.x + boxW / 2;
    const x2 = b.x - boxW / 2;
    // Two edges between the same nodes bow apart. The middle of a quadratic
    // curve is half-way to its control point: to pass a node it would run
    // through, the control point goes twice the distance above it.
    let bend = twins > 1 ? (k - (twins - 1) / 2) * 24 : 0;
    for (const other of nodes) {
      const c = other.column;
      if (c <= column.get(edge.from) || c >= column.get(edge.to)) continue;
      const o = at(other.id);
      const lineY = a.y + ((o.x - a.x) / (b.x - a.x)) * (b.y - a.y);
      if (Math.abs(lineY - o.y) < boxH / 2 + 6) {
        bend = Math.min(bend, 2 * (o.y - boxH / 2 - 10 - lineY));
      }
    }
    const cx = (x1 + x2) / 2;
    const cy = (a.y + b.y) / 2 + bend;
    // The arrowhead points along the curve's end: from the control point.
    const length = Math.hypot(x2 - cx, b.y - cy) || 1;
    const [dx, dy] = [(x2 - cx) / length, (b.y - cy) / length];
    const base = [x2 - 8 * dx, b.y - 8 * dy];
    const head = [[x2, b.y], [base[0] - 4 * dy, base[1] + 4 * dx], [base[0] + 4 * dy, base[1] - 4 * dx]];
    const f = (v) => v.toFixed(1);
    append(svg, [
      s("path", {
        class: `explorer-edge ${edge.className || ""}`,
        d: `M${f(x1)},${f(a.y)} Q${f(cx)},${f(cy)} ${f(x2)},${f(b.y)}`,
      }),
      s("polygon", {
        class: `explorer-arrow ${edge.className || ""}`,
        points: head.map(([x, y]) => `${f(x)},${f(y)}`).join(" "),
      }),
    ]);
  }
  for (const node of nodes) {
    const { x, y } = at(node.id);
    append(svg, [
      s(
        "g",
        { class: `explorer-node ${node.className || ""}` },
        s("rect", { x: x - boxW / 2, y: y - boxH / 2, width: boxW, height: boxH, rx: 6 }),
        s("text", { x, y: node.sublabel ? y - 4 : y, dy: "0.32em", "text-anchor": "middle" }, node.label),
        node.sublabel
          ? s("text", { x, y: y + 11, dy: "0.32em", "text-anchor": "middle", class: "explorer-node-sub" }, node.sublabel)
          : null,
      ),
    ]);
  }
  return svg;
}
