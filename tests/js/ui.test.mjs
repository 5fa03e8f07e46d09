// The explorers' shared controls and drawings (ui.js), on a stand-in for the
// few DOM calls they make: elements that hold attributes and children, and
// Node's own EventTarget and Event for the events.
import { test } from "node:test";
import assert from "node:assert/strict";

class FakeNode extends EventTarget {
  constructor(tag) {
    super();
    this.tagName = tag;
    this.childNodes = [];
    this.attributes = new Map();
    const classes = () => new Set((this.getAttribute("class") || "").split(/\s+/).filter(Boolean));
    this.classList = {
      contains: (name) => classes().has(name),
      toggle: (name, on) => {
        const set = classes();
        if (on) set.add(name);
        else set.delete(name);
        this.setAttribute("class", [...set].join(" "));
      },
    };
  }
  append(...nodes) {
    this.childNodes.push(...nodes);
  }
  setAttribute(name, value) {
    this.attributes.set(name, String(value));
  }
  getAttribute(name) {
    return this.attributes.has(name) ? this.attributes.get(name) : null;
  }
  get textContent() {
    return this.childNodes.map((c) => c.textContent).join("");
  }
  set textContent(text) {
    this.childNodes = [new FakeText(text)];
  }
  click() {
    this.dispatchEvent(new Event("click"));
  }
  // Every element below this one, depth first.
  *all() {
    for (const child of this.childNodes) {
      if (child instanceof FakeText) continue;
      yield child;
      yield* child.all();
    }
  }
}

class FakeText extends FakeNode {
  constructor(text) {
    super("#text");
    this.text = text;
  }
  get textContent() {
    return this.text;
  }
}

globalThis.Node = FakeNode;
globalThis.document = {
  createElement: (tag) => new FakeNode(tag),
  createElementNS: (_ns, tag) => new FakeNode(tag),
  createTextNode: (text) => new FakeText(text),
};

const ui = await import("../../assets/explorers/ui.js");
const { PRESETS, build, layers } = await import("../../assets/explorers/tape.js");

// What a screen reader names a button: its text without the aria-hidden parts.
function accessibleText(node) {
  if (node instanceof FakeText) return node.text;
  if (node.getAttribute("aria-hidden") === "true") return "";
  return node.childNodes.map(accessibleText).join("");
}

test("the stepper moves with its buttons and with the keyboard, within 0..max", () => {
  const stepper = ui.stepper({ label: "Backward", max: 3, describe: (k) => `step ${k}` });
  let events = 0;
  stepper.addEventListener("input", () => {
    events += 1;
  });
  const buttons = [...stepper.all()].filter((n) => n.tagName === "button");
  assert.deepEqual(buttons.map((b) => accessibleText(b).trim()), ["start", "back", "next", "end"]);
  assert.equal(stepper.getAttribute("role"), "group");
  assert.equal(stepper.value, 0);
  buttons[2].click();
  assert.equal(stepper.value, 1);
  const key = (name) => {
    const event = new Event("keydown");
    event.key = name;
    stepper.dispatchEvent(event);
  };
  key("ArrowRight");
  assert.equal(stepper.value, 2);
  key("End");
  key("ArrowRight"); // already at the end: nothing happens
  assert.equal(stepper.value, 3);
  assert.equal(events, 3);
  assert.match(stepper.textContent, /step 3/);
  key("ArrowLeft");
  assert.equal(stepper.value, 2);
  key("Home");
  buttons[1].click(); // already at the start
  assert.equal(stepper.value, 0);
  assert.equal(events, 5);
  key("a"); // other keys are left alone
  assert.equal(events, 5);
  stepper.value = 9; // set from outside: clamped, no event
  assert.equal(stepper.value, 3);
  assert.equal(events, 5);
});

test("a table takes an extra class; words for screen readers are hidden from the eye", () => {
  const wrap = ui.table({ caption: "c", columns: ["a", "b"], rows: [["r", "1"]], className: "explorer-grid" });
  const table = [...wrap.all()].find((n) => n.tagName === "table");
  assert.equal(table.getAttribute("class"), "table table-sm explorer-table explorer-grid");
  assert.equal(ui.srOnly(" (picked)").getAttribute("class"), "visually-hidden");
});

// The curve of a path "M x0,y0 Q cx,cy x1,y1" at t in [0, 1].
function curve(d) {
  const [x0, y0, cx, cy, x1, y1] = d.match(/-?\d+(\.\d+)?/g).map(Number);
  return (t) => [
    (1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t ** 2 * x1,
    (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t ** 2 * y1,
  ];
}

test("the tape's graph: boxes apart, and no edge runs through a box it does not join", () => {
  const expressions = [
    ...PRESETS.map((p) => [p.expression, p.values]),
    ["sum(relu(x @ W + b)) + -c * 2 - -3", `${PRESETS[3].values}, c = 2`],
    ["x * x * x + x", "x = 2"],
  ];
  for (const [expression, values] of expressions) {
    const graph = build(expression, values);
    const depth = layers(graph);
    const edges = graph.nodes.flatMap((n) => n.parents.map((p) => ({ from: p.id, to: n.id })));
    const svg = ui.graphChart({
      width: 640,
      label: expression,
      nodes: graph.nodes.map((n) => ({ id: n.id, column: depth.get(n), label: n.name })),
      edges,
    });
    assert.equal(svg.getAttribute("role"), "img");
    const boxes = [...svg.all()]
      .filter((n) => n.tagName === "g")
      .map((g) => {
        const rect = g.childNodes.find((c) => c.tagName === "rect");
        const [x, y, w, h] = ["x", "y", "width", "height"].map((a) => Number(rect.getAttribute(a)));
        return { label: g.textContent, x, y, w, h };
      });
    assert.equal(boxes.length, graph.nodes.length, expression);
    boxes.forEach((a, i) =>
      boxes.slice(i + 1).forEach((b) => {
        const apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
        assert.ok(apart, `${expression}: ${a.label} and ${b.label} overlap`);
      }),
    );
    const paths = [...svg.all()].filter((n) => n.tagName === "path");
    assert.equal(paths.length, edges.length);
    paths.forEach((path, k) => {
      const { from, to } = edges[k];
      const ends = new Set([graph.nodes.find((n) => n.id === from).name, graph.nodes.find((n) => n.id === to).name]);
      const at = curve(path.getAttribute("d"));
      for (let t = 0.02; t < 1; t += 0.02) {
        const [x, y] = at(t);
        for (const box of boxes) {
          if (ends.has(box.label)) continue;
          const inside = x > box.x && x < box.x + box.w && y > box.y && y < box.y + box.h;
          assert.ok(!inside, `${expression}: the edge ${[...ends].join(" → ")} runs through ${box.label}`);
        }
      }
    });
  }
});
