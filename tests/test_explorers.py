"""The in-browser explorers' maths agrees with the Python library.

The explorers on the posts run their maths in plain ES modules
(``assets/explorers/*.js``). This test computes the expected numbers with the
``backprop`` library, torch and numpy, writes them to a JSON file, and runs the
JavaScript tests (``node --test tests/js/``) against it, with the file's path in
``EXPLORER_FIXTURES``. Each expected value is also checked here against an
independent oracle (autograd, or ``torch.broadcast_shapes``), so the fixtures
cannot carry a library bug into the browser unnoticed.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import operator
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from backprop.attention import attention, causal_mask
from backprop.autograd import Tensor
from backprop.broadcasting import broadcast_shape, unbroadcast
from backprop.conv import conv2d, conv2d_backward, im2col
from backprop.functional import cross_entropy, cross_entropy_backward
from backprop.softmax import softmax, softmax_backward

ROOT = Path(__file__).resolve().parents[1]
JS_TESTS = ROOT / "tests" / "js"
NODE = shutil.which("node")


# --- broadcasting -----------------------------------------------------------------


def _shape_pairs() -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Hand-picked pairs (the post's bias, the trap, failures) and random ones."""
    pairs = [
        ((4, 3), (3,)),  # the bias: (N, n_out) + (n_out,)
        ((5, 1), (5,)),  # the (N, 1) - (N,) trap
        ((2, 3, 4), (3, 1)),
        ((3,), (4,)),
        ((2, 3), (3, 2)),
        ((), (2, 3)),
        ((1, 1), (1,)),
        ((1,), ()),
        ((0, 3), (1, 3)),
        ((2, 1, 4, 1), (3, 1, 5)),
        ((2, 3, 4, 5), (6, 1, 1)),
    ]
    rng = np.random.default_rng(10)
    for _ in range(60):
        a = tuple(int(s) for s in rng.choice([1, 2, 3, 4], size=rng.integers(0, 5)))
        # b: a's trailing part with some sizes set to 1 or changed, sometimes longer.
        b = [s if rng.random() < 0.6 else int(rng.choice([1, 2, 3])) for s in a]
        b = b[int(rng.integers(0, len(b) + 1)) :] if b else []
        if len(b) < 4 and rng.random() < 0.3:
            b = [int(rng.choice([1, 2])), *b]
        pairs.append((a, tuple(b)))
    return pairs


def _broadcasting_fixture() -> list[dict]:
    gen = torch.Generator().manual_seed(4)
    cases = []
    for a, b in _shape_pairs():
        case: dict = {"a": str(a), "b": str(b)}
        try:
            result = tuple(torch.broadcast_shapes(a, b))
        except RuntimeError:
            # The library says which sizes clash first (left to right).
            with pytest.raises(ValueError, match="differ and neither is 1") as info:
                broadcast_shape(a, b)
            sizes = re.search(r"sizes (\d+) and (\d+)", str(info.value))
            assert sizes is not None, info.value
            case.update(ok=False, first_clash=[int(sizes[1]), int(sizes[2])])
            cases.append(case)
            continue
        assert broadcast_shape(a, b) == result
        grad = torch.randn(result, dtype=torch.float64, generator=gen)
        case.update(ok=True, result=list(result), grad=grad.flatten().tolist())
        for name, shape in (("a", a), ("b", b)):
            expected = unbroadcast(grad, shape)
            # Oracle: autograd through the broadcasting add itself.
            x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
            other = torch.zeros(b if name == "a" else a, dtype=torch.float64)
            (x + other).backward(grad)
            torch.testing.assert_close(expected, x.grad, rtol=0, atol=1e-12)
            assert tuple(expected.shape) == shape
            case[f"grad_{name}"] = expected.flatten().tolist()
        cases.append(case)
    return cases


# --- the chain rule ---------------------------------------------------------------

NUDGES = [-1.0, -0.25, -1e-3, 1e-6, 1e-3, 0.1, 0.5, 2.0]


def _neuron(x, w, b, t):
    """Post 2's graph, node by node, keyed by each node's role."""
    product = w * x
    total = product + b
    residual = total - t
    loss = residual**2
    return {"product": product, "sum": total, "residual": residual, "loss": loss}


def _two_paths(x):
    return {"identity": x, "square": x**2, "output": x + x**2}


def _graph_case(fn, inputs: dict[str, float], output: str) -> dict:
    leaves = {
        name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
        for name, value in inputs.items()
    }
    nodes = fn(*leaves.values())
    nodes[output].backward()
    case = {
        "inputs": inputs,
        "values": {role: node.item() for role, node in nodes.items()},
        "gradients": {name: leaf.grad.item() for name, leaf in leaves.items()},
        "nudges": {},
    }
    with torch.no_grad():
        base = nodes[output].item()
        for name in inputs:
            rows = []
            for delta in NUDGES:
                moved = dict(inputs, **{name: inputs[name] + delta})
                args = [torch.tensor(v, dtype=torch.float64) for v in moved.values()]
                rows.append([delta, fn(*args)[output].item() - base])
            case["nudges"][name] = rows
    return case


POST_2 = ROOT / "posts" / "02-chain-rule" / "index.qmd"


def post_2_names() -> dict[str, str]:
    """The letters post 2 gives each node, by role, read from its equations."""
    text = POST_2.read_text(encoding="utf-8")
    graph = re.search(
        r"\$\$\s*(\w) = (\w) (\w), \\qquad (\w) = \1 \+ (\w), "
        r"\\qquad (\w) = \4 - (\w), \\qquad (\w) = \6\^2 \.\s*\$\$ \{#eq-graph\}",
        text,
    )
    assert graph, "post 2's @eq-graph is not u = w x, v = u + b, r = v - t, L = r^2"
    two_paths = re.search(
        r"\$(\w) = (\w)\$ and \$(\w) = \2\^2\$ are two nodes that both read \$\2\$, "
        r"and\s+\$(\w) = \1 \+ \3\$",
        text,
    )
    assert two_paths, "post 2 no longer names the nodes of y = x + x^2 as expected"
    roles = ("product", "weight", "input", "sum", "bias", "residual", "target", "loss")
    names = dict(zip(roles, graph.groups(), strict=True))
    identity, x, square, output = two_paths.groups()
    assert x == names["input"]
    names.update(identity=identity, square=square, output=output)
    return names


def explorer_names() -> dict[str, str]:
    """chain.js's NAMES table, read from its source."""
    source = (ROOT / "assets" / "explorers" / "chain.js").read_text(encoding="utf-8")
    table = re.search(r"export const NAMES = \{(.*?)\};", source, re.S)
    assert table, "chain.js has no NAMES table"
    return dict(re.findall(r"(\w+): \"([^\"]+)\"", table.group(1)))


def test_the_chain_explorer_names_nodes_as_post_2_does():
    # Runs without Node: the explorer's letters are the post's, role by role.
    assert explorer_names() == post_2_names()


def test_the_name_check_sees_a_renamed_node():
    names = post_2_names()
    assert names["residual"] == "r" and names["square"] == "q"
    assert dict(names, residual="d") != names


def _chain_fixture() -> dict:
    neuron = _graph_case(_neuron, {"x": 1.5, "w": -2.0, "b": 0.5, "t": 1.0}, "loss")
    # The numbers post 2 prints: L = 12.25, dL/dx = 14, dL/dw = -10.5.
    assert neuron["values"]["loss"] == 12.25
    assert neuron["gradients"]["x"] == 14.0 and neuron["gradients"]["w"] == -10.5
    two_paths = _graph_case(_two_paths, {"x": 1.0}, "output")
    assert two_paths["gradients"]["x"] == 3.0  # 1 + 2x
    return {"neuron": neuron, "twoPaths": two_paths, "names": post_2_names()}


# --- finite differences -----------------------------------------------------------


# f and f' in numpy, with the explorer's order of operations.
FD_FUNCTIONS = {
    "sin": (np.sin, np.cos),
    "cubic": (lambda x: x * x * x - 2 * x, lambda x: 3 * x * x - 2),
}


def _fd_fixture() -> dict:
    steps = np.logspace(-14, 0, 113)  # 8 steps per decade, as post 8
    out: dict = {"steps": steps.tolist(), "cases": []}
    for name, (f, df) in FD_FUNCTIONS.items():
        for dtype in (np.float64, np.float32):
            xs = np.linspace(0.5, 1.5, 64).astype(dtype)
            hs = steps.astype(dtype)[:, None]
            with np.errstate(all="raise"):
                up, down, here = f(xs + hs), f(xs - hs), f(xs)
                forward = (up - here) / hs
                central = (up - down) / (2 * hs)
            assert forward.dtype == central.dtype == dtype
            exact = df(xs.astype(np.float64))
            forward_err = np.abs(forward.astype(np.float64) - exact)
            central_err = np.abs(central.astype(np.float64) - exact)
            out["cases"].append(
                {
                    "function": name,
                    "dtype": np.dtype(dtype).name,
                    "xs": xs.astype(np.float64).tolist(),
                    "f": here.astype(np.float64).tolist(),
                    "forward": forward.astype(np.float64).tolist(),
                    "central": central.astype(np.float64).tolist(),
                    "median_forward_error": np.median(forward_err, axis=1).tolist(),
                    "median_central_error": np.median(central_err, axis=1).tolist(),
                }
            )
    return out


# --- softmax and cross-entropy ----------------------------------------------------


def _softmax_fixture() -> list[dict]:
    gen = torch.Generator().manual_seed(7)
    logit_sets = [
        [2.0, 1.0, 0.1, -1.0],  # post 7's logits
        [1000.0, 0.0, -1000.0],  # naive exp overflows
        [0.0, 0.0, 0.0],
        *[
            (3 * torch.randn(n, generator=gen, dtype=torch.float64)).tolist()
            for n in (2, 5, 6)
        ],
    ]
    cases = []
    temperatures = (0.25, 0.5, 1.0, 2.0, 5.0)
    for logits, temperature in itertools.product(logit_sets, temperatures):
        for target in (0, len(logits) - 1):
            z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
            scores = (z / temperature)[None]
            t = torch.tensor([target])
            loss = cross_entropy(scores, t)
            loss.backward()
            grad_scores = cross_entropy_backward(scores.detach(), t)[0]
            # Oracles: torch's own loss, and autograd through z / T.
            reference = torch.nn.functional.cross_entropy(scores.detach(), t)
            torch.testing.assert_close(loss.detach(), reference, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(z.grad, grad_scores / temperature)
            cases.append(
                {
                    "logits": logits,
                    "temperature": temperature,
                    "target": target,
                    "probs": softmax(scores.detach(), dim=1)[0].tolist(),
                    "loss": loss.item(),
                    "grad_scores": grad_scores.tolist(),
                    "grad_logits": z.grad.tolist(),
                }
            )
    return cases


# --- attention --------------------------------------------------------------------


def _attention_case(q, k, v, g, causal: bool, scaled: bool) -> dict:
    lq, d = q.shape
    lk = k.shape[0]
    mask = causal_mask(lq, lk) if causal else None
    scale = 1 / math.sqrt(d) if scaled else 1.0
    scores = q @ k.T * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    p = softmax(scores, dim=-1)
    grad_scores = softmax_backward(g @ v.T, scores, dim=-1)
    out = p @ v
    # Oracles: the library's attention (scaled), and autograd on the scores.
    if scaled:
        library_out = attention(q, k, v, mask)
        torch.testing.assert_close(out, library_out, rtol=1e-12, atol=1e-12)
    s = scores.clone().requires_grad_(True)
    (torch.softmax(s, dim=-1) @ v).backward(g)
    torch.testing.assert_close(grad_scores, s.grad, rtol=1e-12, atol=1e-12)
    return {
        "q": q.tolist(),
        "k": k.tolist(),
        "v": v.tolist(),
        "grad_out": g.tolist(),
        "causal": causal,
        "scaled": scaled,
        "weights": p.tolist(),
        "output": out.tolist(),
        "grad_scores": grad_scores.tolist(),
        "grad_scores_zero": (grad_scores == 0).tolist(),
    }


def _attention_fixture() -> list[dict]:
    gen = torch.Generator().manual_seed(12)
    cases = []
    for lq, lk, d in [(1, 1, 1), (3, 3, 2), (4, 4, 4), (5, 5, 8), (3, 5, 2), (5, 3, 4)]:
        q, k = (torch.randn(n, d, generator=gen, dtype=torch.float64) for n in (lq, lk))
        v = torch.randn(lk, 2, generator=gen, dtype=torch.float64)
        g = torch.randn(lq, 2, generator=gen, dtype=torch.float64)
        for causal, scaled in itertools.product((False, True), repeat=2):
            cases.append(_attention_case(q, k, v, g, causal, scaled))
    return cases


# --- convolution ------------------------------------------------------------------

# (h, w, kh, kw, stride, padding, dilation): post 11's examples, non-square images
# and kernels, strides above 1, padding, dilation, and sizes with no output.
CONV_SIZES = [
    (5, 5, 3, 3, 1, 0, 1),
    (5, 5, 3, 3, 2, 0, 1),  # post 11's im2col figure
    (8, 8, 3, 3, 2, 1, 1),  # post 11's main example
    (6, 6, 3, 3, 2, 0, 1),  # the last row and column meet no window
    (4, 7, 2, 3, 1, 0, 1),
    (7, 4, 3, 2, 2, 1, 1),
    (6, 5, 2, 2, 3, 2, 1),
    (5, 6, 3, 2, 1, 1, 2),
    (8, 7, 3, 3, 2, 2, 3),
    (2, 8, 1, 5, 2, 3, 2),
    (1, 1, 1, 1, 1, 0, 1),
    (3, 3, 3, 3, 1, 0, 1),
    (3, 3, 1, 1, 4, 3, 1),
    (3, 3, 4, 2, 1, 0, 1),  # the kernel is taller than the image
    (2, 3, 2, 4, 1, 0, 1),  # and here wider
    (4, 4, 3, 3, 1, 0, 2),  # fits undilated, not with dilation 2
    (3, 4, 2, 2, 0, 0, 1),  # stride 0
    (3, 4, 2, 2, 1, 0, 0),  # dilation 0
]


def _random_conv_sizes(count: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(11)
    sizes: list[tuple[int, ...]] = []
    while len(sizes) < count:
        h, w = (int(v) for v in rng.integers(1, 9, size=2))
        kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
        stride, padding, dilation = (int(v) for v in rng.integers(1, 4, size=3))
        span_h, span_w = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1
        if span_h <= h + 2 * padding and span_w <= w + 2 * padding:
            sizes.append((h, w, kh, kw, stride, padding, dilation))
    return sizes


def _spread_kernel(w: torch.Tensor, dilation: int) -> torch.Tensor:
    """A dilated kernel as an ordinary one: dilation - 1 zeros between entries.

    backprop.conv has no dilation argument; a kernel spread out like this makes
    its conv2d, conv2d_backward and im2col compute the dilated convolution.
    """
    kh, kw = w.shape[-2:]
    spread = w.new_zeros(
        *w.shape[:-2], dilation * (kh - 1) + 1, dilation * (kw - 1) + 1
    )
    spread[..., ::dilation, ::dilation] = w
    return spread


def _conv_case(sizes: tuple[int, ...], gen: torch.Generator) -> dict:
    h, w, kh, kw, stride, padding, dilation = sizes
    case: dict = dict(
        zip(("h", "w", "kh", "kw", "stride", "padding", "dilation"), sizes, strict=True)
    )
    x = torch.randn(1, 1, h, w, generator=gen, dtype=torch.float64)
    weight = torch.randn(1, 1, kh, kw, generator=gen, dtype=torch.float64)

    def torch_conv(image: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(
            image, weight, stride=stride, padding=padding, dilation=dilation
        )

    if stride == 0 or dilation == 0:
        with pytest.raises(RuntimeError):
            torch_conv(x)
        if stride == 0:
            with pytest.raises(ValueError, match="stride must be at least 1"):
                conv2d(x, weight, stride=stride, padding=padding)
        case.update(ok=False, rule="stride" if stride == 0 else "dilation")
        return case
    spread = _spread_kernel(weight, dilation)
    span_h, span_w = spread.shape[-2:]
    try:
        y_torch = torch_conv(x)
    except RuntimeError:
        with pytest.raises(ValueError, match="larger than the padded input"):
            conv2d(x, spread, stride=stride, padding=padding)
        case.update(ok=False, rule="size")
        return case

    # Forward: the library on the spread kernel, against torch's dilation.
    y = conv2d(x, spread, stride=stride, padding=padding)
    torch.testing.assert_close(y, y_torch, rtol=1e-12, atol=1e-12)
    out_h, out_w = y.shape[-2:]

    # im2col of x: the rows of the spread kernel's entries that are the kernel's.
    kept = torch.zeros(span_h, span_w, dtype=torch.bool)
    kept[::dilation, ::dilation] = True
    cols = im2col(x, (span_h, span_w), stride, padding)[0][kept.flatten()]
    unfold = torch.nn.functional.unfold(x, (kh, kw), dilation, padding, stride)[0]
    torch.testing.assert_close(cols, unfold, rtol=0, atol=0)

    # Receptive fields: im2col of the padded image's pixel numbers.
    padded_h, padded_w = h + 2 * padding, w + 2 * padding
    ids = torch.arange(padded_h * padded_w, dtype=torch.float64)
    ids = ids.reshape(1, 1, padded_h, padded_w)
    read = im2col(ids, (span_h, span_w), stride)[0][kept.flatten()].long()
    unfold_ids = torch.nn.functional.unfold(ids, (kh, kw), dilation, 0, stride)[0]
    assert torch.equal(read, unfold_ids.long())
    # fields[l][k]: input [row, col] of kernel entry k in window l (padding: outside).
    fields = [
        [[int(n) // padded_w - padding, int(n) % padded_w - padding] for n in column]
        for column in read.T
    ]

    # Input gradients: conv2d_backward on a one-hot upstream gradient per output
    # entry, and on a random one; oracle: autograd through torch's convolution.
    jacobian = torch.autograd.functional.jacobian(torch_conv, x)[0, 0, :, :, 0, 0]
    onehots = []
    for i, j in itertools.product(range(out_h), range(out_w)):
        onehot = torch.zeros_like(y)
        onehot[0, 0, i, j] = 1.0
        grad_x = conv2d_backward(onehot, x, spread, None, stride, padding)[0]
        torch.testing.assert_close(grad_x[0, 0], jacobian[i, j], rtol=0, atol=1e-12)
        onehots.append(grad_x[0, 0].tolist())
    g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    grad_x = conv2d_backward(g, x, spread, None, stride, padding)[0]
    leaf = x.clone().requires_grad_(True)
    torch_conv(leaf).backward(g)
    torch.testing.assert_close(grad_x, leaf.grad, rtol=1e-12, atol=1e-12)
    case.update(
        ok=True,
        out=[out_h, out_w],
        x=x[0, 0].tolist(),
        weight=weight[0, 0].tolist(),
        y=y[0, 0].tolist(),
        cols=cols.tolist(),
        fields=fields,
        onehot_grad_x=onehots,
        grad_y=g[0, 0].tolist(),
        grad_x=grad_x[0, 0].tolist(),
    )
    return case


def _conv_fixture() -> list[dict]:
    gen = torch.Generator().manual_seed(11)
    return [_conv_case(s, gen) for s in CONV_SIZES + _random_conv_sizes(24)]


# --- the tape ---------------------------------------------------------------------

# The explorer's presets (assets/explorers/tape.js, PRESETS: the JS test checks
# that each is here, word for word) and a few more expressions, with their values
# as a reader types them.
TAPE_PRESETS = [
    ("x * y + exp(x)", "x = 0.5, y = -2"),
    ("sum(x + x * x)", "x = [-2, -1, 0, 1, 2]"),
    ("sum(w * x + b)", "w = [1, -2, 0.5], x = [2, 1, -1], b = 0.5"),
    (
        "sum(relu(x @ W + b))",
        "x = [[1, -1, 2], [0.5, 2, -1]], W = [[1, -1], [0.5, 2], [-1, 1]], "
        "b = [0.5, -1]",
    ),
    ("log(sum(exp(z)))", "z = [1, 2, 3]"),
]
TAPE_MORE = [
    ("x * x", "x = 3"),
    ("-x * 2 - -3", "x = 1.5"),
    ("sum(relu(x - 1) * x + x)", "x = [0.5, 2, 3]"),
    ("sum(exp(a) @ M) * c", "a = [0.1, -0.2], M = [[1, 2, 3], [4, 5, 6]], c = 2"),
    ("log(x) * x - x", "x = 2.5"),
    ("sum(x @ W - t) * sum(x @ W - t)", "x = [1, 2], W = [[1, -1], [2, 0.5]], t = 1"),
    ("sum(2 * p - q * (p + 1))", "p = [[1, 2], [3, 4]], q = [1, -1]"),
    ("(a + b) * (a - b) + a * b", "a = 3, b = -1"),
]

TAPE_FUNCTIONS = {
    "relu": (Tensor.relu, torch.relu),
    "exp": (Tensor.exp, torch.exp),
    "log": (Tensor.log, torch.log),
    "sum": (Tensor.sum, torch.sum),
}
TAPE_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.MatMult: operator.matmul,
}


def _tape_values(text: str) -> dict[str, list | float]:
    """ "x = 2, w = [1, -2]" read as Python reads dict(x=2, w=[1, -2])."""
    call = ast.parse(f"dict({text})", mode="eval").body
    assert isinstance(call, ast.Call) and not call.args, text
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}


def _evaluate(expression: str, leaves: dict, library: bool, probe: str | None = None):
    """The expression evaluated by Python's own parser on ``leaves``; each
    operation's result named u1, u2, ... in the order it is computed, as the
    explorer names them. ``probe``: add a zero leaf to that result, whose
    gradient is then the result's (backprop.autograd keeps only the leaves')."""
    names: dict[int, str] = {}
    results: dict[str, object] = {}
    zero = None

    def record(result):
        nonlocal zero
        if not (getattr(result, "requires_grad", False)):
            return result
        name = f"u{len(results) + 1}"
        names[id(result)], results[name] = name, result
        if name == probe:
            zero = Tensor(torch.zeros_like(result.data), requires_grad=True)
            return result + zero
        return result

    def walk(node: ast.expr):
        match node:
            case ast.BinOp(left=left, op=op, right=right):
                a, b = walk(left), walk(right)
                return record(TAPE_OPERATORS[type(op)](a, b))
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                return record(-walk(operand))
            case ast.Call(func=ast.Name(id=function), args=[argument]):
                return record(
                    TAPE_FUNCTIONS[function][0 if library else 1](walk(argument))
                )
            case ast.Name(id=name):
                return leaves[name]
            case ast.Constant(value=value):
                return float(value)
        raise AssertionError(f"{expression}: {ast.dump(node)}")

    root = walk(ast.parse(expression, mode="eval").body)
    return root, names, results, zero


def _tape_case(expression: str, values_text: str) -> dict:
    values = _tape_values(values_text)

    def tensors(kind):
        return {
            name: kind(torch.tensor(v, dtype=torch.float64), requires_grad=True)
            for name, v in values.items()
        }

    leaves = tensors(Tensor)
    root, names, results, _ = _evaluate(expression, leaves, library=True)
    root.backward()
    names.update({id(leaf): name for name, leaf in leaves.items()})
    tape = [names[id(node)] for node in root.tape()]
    gradients = {
        name: leaf.grad for name, leaf in leaves.items() if leaf.grad is not None
    }
    for name in results:  # each result's gradient, through a zero leaf added to it
        probed = _evaluate(expression, tensors(Tensor), library=True, probe=name)
        probed[0].backward()
        gradients[name] = probed[3].grad

    # Oracle: torch.autograd on the same expression, every result's grad retained.
    torch_leaves = {
        name: torch.tensor(v, dtype=torch.float64, requires_grad=True)
        for name, v in values.items()
    }
    torch_root, _, torch_results, _ = _evaluate(expression, torch_leaves, library=False)
    for result in torch_results.values():
        result.retain_grad()
    torch_root.sum().backward()
    expected = {name: t.grad for name, t in {**torch_leaves, **torch_results}.items()}
    assert sorted(tape) == sorted(name for name, g in expected.items() if g is not None)
    for name in tape:
        torch.testing.assert_close(
            gradients[name], expected[name], rtol=1e-12, atol=1e-12
        )
    # The tape is a topological order ending at the result.
    position = {id(node): k for k, node in enumerate(root.tape())}
    assert tape[-1] == names[id(root)]
    for node in root.tape():
        assert all(
            position[id(p)] < position[id(node)]
            for p in node.parents
            if p.requires_grad
        )

    data = {name: t.data for name, t in {**leaves, **results}.items()}
    ops = {name: t.op for name, t in results.items()}
    return {
        "expression": expression,
        "values": values_text,
        "tape": tape,
        "nodes": {
            name: {
                "op": ops.get(name, ""),
                "value": data[name].tolist(),
                "grad": gradients[name].tolist(),
            }
            for name in tape
        },
    }


def _tape_fixture() -> list[dict]:
    return [_tape_case(e, v) for e, v in TAPE_PRESETS + TAPE_MORE]


# --- running the JavaScript tests -------------------------------------------------


def write_fixtures(path: Path) -> None:
    fixtures = {
        "broadcasting": _broadcasting_fixture(),
        "chain": _chain_fixture(),
        "finiteDifferences": _fd_fixture(),
        "softmax": _softmax_fixture(),
        "attention": _attention_fixture(),
        "conv": _conv_fixture(),
        "tape": _tape_fixture(),
    }
    path.write_text(json.dumps(fixtures), encoding="utf-8")


@pytest.mark.skipif(
    NODE is None,
    reason="node is not on PATH: install Node.js 20 or newer to test the explorers' JS",
)
def test_explorer_modules_agree_with_the_library(tmp_path):
    fixtures = tmp_path / "explorer-fixtures.json"
    write_fixtures(fixtures)
    env = dict(os.environ, EXPLORER_FIXTURES=str(fixtures), NODE_OPTIONS="")
    test_files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert test_files, f"no *.test.mjs files in {JS_TESTS}"
    completed = subprocess.run(
        [NODE, "--test", *test_files],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"node --test failed:\n{output}"
    # Every fixture group was read, none skipped for want of the file.
    assert "# skipped 0" in output, output
    sources = "\n".join(Path(f).read_text(encoding="utf-8") for f in test_files)
    groups = json.loads(fixtures.read_text(encoding="utf-8"))
    unread = [key for key in groups if f"fixtures.{key}" not in sources]
    assert not unread, f"fixture groups no JS test reads: {unread}"


# --- the explorers' OJS cells ---------------------------------------------------

EXPLORER_PAGES = sorted(ROOT.glob("posts/*/_explorer.qmd"))
# Parts of the OJS standard library that its runtime fetches from a CDN when a
# cell names them; the site loads nothing from another host but MathJax.
CDN_LOADED = ("Inputs", "Plot", "d3", "md", "tex", "htl", "require")
OJS_CELL = re.compile(r"^```\{ojs\}\n(.*?)^```", re.S | re.M)


def _ojs_code(page: Path) -> str:
    cells = OJS_CELL.findall(page.read_text(encoding="utf-8"))
    assert cells, f"{page} has no OJS cells"
    # Drop strings and comments: a label may say "d3" without loading it.
    code = "\n".join(cells)
    code = re.sub(r"//.*", "", code)
    strings = r"`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
    return re.sub(strings, '""', code)


def test_the_seven_posts_have_explorers():
    assert [p.parent.name for p in EXPLORER_PAGES] == [
        "02-chain-rule",
        "04-bias-broadcasting",
        "07-softmax-cross-entropy",
        "08-gradient-checking",
        "11-convolutions",
        "12-attention",
        "14-your-own-autograd",
    ]
    for page in EXPLORER_PAGES:
        post = (page.parent / "index.qmd").read_text(encoding="utf-8")
        assert "{{< include _explorer.qmd >}}" in post, f"{page.parent.name}"


@pytest.mark.parametrize("page", EXPLORER_PAGES, ids=lambda p: p.parent.name)
def test_explorer_cells_load_only_the_sites_own_modules(page):
    text = page.read_text(encoding="utf-8")
    cells = "\n".join(OJS_CELL.findall(text))
    # An OJS import statement makes Quarto's runtime fetch a markdown library
    # from a CDN to echo it, so modules come in through import() instead.
    assert not re.search(r"^\s*import\s*\{", cells, re.M), f"{page}: import statement"
    loader = r"import\(await FileAttachment\(\"([^\"]+)\"\)\s*\.url\(\)\)"
    loaded = re.findall(loader, cells)
    assert loaded, f"{page} loads no explorer module"
    assert cells.count("import(") == len(loaded), f"{page}: an import() of another kind"
    for path in loaded:
        target = (page.parent / path).resolve()
        assert target.parent == ROOT / "assets" / "explorers", f"{page}: {path}"
        assert target.suffix == ".js" and target.is_file(), f"{page}: {path}"
    code = _ojs_code(page)
    for name in CDN_LOADED:
        used = re.search(rf"(?<![\w.$]){name}\b(?!\s*:)", code)
        assert not used, f"{page} uses {name}"
    assert "http" not in cells.replace("http://www.w3.org", ""), f"{page} names a URL"


def test_the_cdn_check_finds_a_forbidden_name(tmp_path):
    # The oracle works: a cell that draws with Plot is caught.
    page = tmp_path / "_explorer.qmd"
    page.write_text('```{ojs}\nchart = Plot.plot({label: "d3"})\n```\n')
    code = _ojs_code(page)
    assert re.search(r"(?<![\w.$])Plot\b(?!\s*:)", code)
    assert not re.search(r"(?<![\w.$])d3\b(?!\s*:)", code)


def test_explorer_ui_builds_no_html_from_strings():
    # Text reaches the page as text nodes: no innerHTML, no html`` templates.
    source = (ROOT / "assets" / "explorers" / "ui.js").read_text(encoding="utf-8")
    assert "innerHTML" not in source and "insertAdjacentHTML" not in source
    assert not re.search(r"\bimport\b", source), "ui.js stands alone"
