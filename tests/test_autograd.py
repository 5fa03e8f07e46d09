"""backprop.autograd: random graphs against torch.autograd; training against modules."""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop import autograd as ag
from backprop.data import load_digits
from backprop.modules import MSE, CrossEntropy, Lin, Model, ReLU
from backprop.optim import sgd_step
from strategies import (
    batch_shapes,
    broadcast_pairs,
    dtypes,
    layouts,
    make_index,
    make_tensor,
    seeds,
    tolerance,
)

# Each operation, written once for both backends: `a` and `b` are both torch tensors
# (for autograd) or both ag.Tensors; `c` is a plain torch tensor, a constant.
BINARY = {
    "a + b": lambda a, b, c: a + b,
    "a - b": lambda a, b, c: a - b,
    "a * b": lambda a, b, c: a * b,
    "2 - a": lambda a, b, c: 2 - a,
    "0.5 * a": lambda a, b, c: 0.5 * a,
    "a + 1": lambda a, b, c: a + 1,
    "c * a": lambda a, b, c: c * a,  # a torch.Tensor on the left
    "a - c": lambda a, b, c: a - c,
    "relu(a)": lambda a, b, c: a.relu(),
    "softplus(a)": lambda a, b, c: (a.exp() + 1).log(),
    "-a": lambda a, b, c: -a,
}


@st.composite
def programs(draw):
    """Leaves whose shapes broadcast to one full shape, and a list of operations.

    Operation i reads any two earlier values (leaves or results), so values are
    reused and graphs have diamonds; shapes broadcast in the adds and products.
    """
    full, _ = draw(broadcast_pairs(max_dims=3))
    n_leaves = draw(st.integers(1, 4))
    leaf_shapes = []
    for _ in range(n_leaves):
        keep = draw(st.integers(0, len(full)))
        tail = full[len(full) - keep :]
        leaf_shapes.append(tuple(draw(st.sampled_from([d, 1])) for d in tail))
    n_ops = draw(st.integers(1, 7))
    ops = []
    for i in range(n_ops):
        name = draw(st.sampled_from(sorted(BINARY)))
        a, b = (draw(st.integers(0, n_leaves + i - 1)) for _ in range(2))
        ops.append((name, a, b))
    return full, leaf_shapes, ops, draw(st.sampled_from(["sum", "mean"]))


def _run(program, leaves, constant):
    _, _, ops, reduce = program
    values = list(leaves)
    for name, a, b in ops:
        values.append(BINARY[name](values[a], values[b], constant))
    return getattr(values[-1], reduce)()


@settings(max_examples=150, deadline=None)
@given(program=programs(), dtype=dtypes, layout=layouts, seed=seeds)
def test_random_graphs_match_torch_autograd(program, dtype, layout, seed):
    full, leaf_shapes, _, _ = program
    data = [
        make_tensor(s, dtype, layout, seed=seed + i) for i, s in enumerate(leaf_shapes)
    ]
    constant = make_tensor(full, dtype, seed=seed + 99)

    leaves = [ag.Tensor(d, requires_grad=True) for d in data]
    loss = _run(program, leaves, constant)
    torch_leaves = [d.clone().requires_grad_() for d in data]
    torch_loss = _run(program, torch_leaves, constant)
    assert isinstance(loss, ag.Tensor) and loss.requires_grad  # made from the leaves
    loss.backward()
    torch_loss.backward()

    torch.testing.assert_close(loss.data, torch_loss.detach(), **tolerance(dtype))
    for i, (ours, theirs) in enumerate(zip(leaves, torch_leaves, strict=True)):
        if theirs.grad is None:  # a leaf the loss does not depend on
            assert ours.grad is None, f"leaf {i} is not used but got a gradient"
            continue
        assert ours.grad.shape == theirs.shape and ours.grad.dtype == dtype
        torch.testing.assert_close(ours.grad, theirs.grad, **tolerance(dtype))


@settings(max_examples=60, deadline=None)
@given(
    batch=batch_shapes(max_dims=2),
    n_in=st.integers(1, 5),
    n_out=st.integers(1, 5),
    dtype=dtypes,
    layout=layouts,
    data_input=st.booleans(),
    seed=seeds,
)
def test_a_linear_layer_matches_torch_autograd(
    batch, n_in, n_out, dtype, layout, data_input, seed
):
    # x @ w + b, a relu, and the mean; x either a Tensor needing its gradient or plain
    # torch data on the left of @.
    x = make_tensor((*batch, n_in), dtype, layout, seed=seed)
    w = make_tensor((n_in, n_out), dtype, layout, seed=seed + 1)
    b = make_tensor((n_out,), dtype, seed=seed + 2)
    ours = [ag.Tensor(t, requires_grad=True) for t in (x, w, b)]
    theirs = [t.clone().requires_grad_() for t in (x, w, b)]
    left = x if data_input else ours[0]
    ((left @ ours[1] + ours[2]).relu().mean()).backward()
    left_t = x if data_input else theirs[0]
    ((left_t @ theirs[1] + theirs[2]).relu().mean()).backward()
    for name, o, t in zip(("x", "w", "b"), ours, theirs, strict=True):
        if name == "x" and data_input:
            assert o.grad is None
            continue
        assert o.grad.shape == t.shape, name
        torch.testing.assert_close(o.grad, t.grad, **tolerance(dtype))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(1, 5), dtype=dtypes, seed=seeds)
def test_losses_match_torch_autograd(n, c, dtype, seed):
    logits = make_tensor((n, c), dtype, seed=seed, scale=3.0)
    target = make_index((n,), c, seed=seed + 1)
    pred = make_tensor((n, c), dtype, seed=seed + 2)
    goal = make_tensor((n, c), dtype, seed=seed + 3)

    ours = [ag.Tensor(t, requires_grad=True) for t in (logits, pred, goal)]
    loss = ag.cross_entropy(ours[0], target) + 3 * ag.mse(ours[1], ours[2])
    loss.backward()
    theirs = [t.clone().requires_grad_() for t in (logits, pred, goal)]
    torch_loss = torch.nn.functional.cross_entropy(theirs[0], target)
    torch_loss = torch_loss + 3 * torch.nn.functional.mse_loss(theirs[1], theirs[2])
    torch_loss.backward()
    torch.testing.assert_close(loss.data, torch_loss.detach(), **tolerance(dtype))
    for o, t in zip(ours, theirs, strict=True):
        torch.testing.assert_close(o.grad, t.grad, **tolerance(dtype))


def test_a_tensor_used_twice_gets_the_sum():
    # y = x * x + x: dy/dx = 2x + 1, and x reaches y along three paths.
    x = ag.Tensor(torch.tensor([1.0, -2.0, 0.5]), requires_grad=True)
    (x * x + x).sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.data + 1)


def test_a_diamond_sends_both_branches_back():
    # a feeds b = exp(a) and c = 3a; d = b * c, so dd/da = exp(a) * 3a + exp(a) * 3.
    a0 = torch.tensor([0.3, -1.2], dtype=torch.float64)
    a = ag.Tensor(a0, requires_grad=True)
    b, c = a.exp(), 3 * a
    (b * c).sum().backward()
    a_t = a0.clone().requires_grad_()
    (a_t.exp() * (3 * a_t)).sum().backward()
    torch.testing.assert_close(a.grad, a_t.grad)
    torch.testing.assert_close(a.grad, a0.exp() * (3 * a0 + 3))  # the closed form


def test_gradients_accumulate_over_backward_calls_like_torch():
    x = ag.Tensor(torch.tensor([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([6.0, 6.0]))


def test_a_long_chain_does_not_hit_the_recursion_limit():
    x = ag.Tensor(torch.tensor(1.0, dtype=torch.float64), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.001
    y.backward()
    assert x.grad.item() == pytest.approx(1.001**3000)


def test_no_torch_autograd_inside(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.autograd was called")

    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
    monkeypatch.setattr(torch.autograd, "backward", forbidden)
    monkeypatch.setattr(torch.autograd, "grad", forbidden)
    gen = torch.Generator().manual_seed(0)
    x, target = torch.randn(6, 4, generator=gen), torch.tensor([0, 2, 1, 1, 0, 2])
    w = ag.Tensor(torch.randn(4, 3, generator=gen), requires_grad=True)
    b = ag.Tensor(torch.zeros(3), requires_grad=True)
    with torch.no_grad():  # autograd switched off: the tape alone must do the work
        logits = (x @ w + b).relu() * 2 - 1
        loss = ag.cross_entropy(logits, target)
        loss.backward()
    tensors = [w, b, logits, loss]
    assert all(not t.data.requires_grad for t in tensors)
    assert all(not t.requires_grad for t in (w.grad, b.grad))
    assert w.grad.shape == (4, 3) and b.grad.abs().sum() > 0
    # A torch tensor that requires grad is stored as plain values.
    assert not ag.Tensor(torch.ones(2, requires_grad=True)).data.requires_grad


def _train(n_steps, make_loss_module, make_ag_loss, x, target, params, lr):
    """The same network trained by backprop.modules and by backprop.autograd."""
    w1, b1, w2, b2 = params
    model = Model(
        [
            Lin.from_tensors(w1.clone(), b1.clone(), input_needs_grad=False),
            ReLU(),
            Lin.from_tensors(w2.clone(), b2.clone()),
        ],
        make_loss_module(),
    )
    tensors = [ag.Tensor(p.clone(), requires_grad=True) for p in params]
    for step in range(n_steps):
        rows = slice(step * 16, step * 16 + 16)
        loss = model(x[rows], target[rows])
        model.backward()
        sgd_step(model.parameters(), lr)

        t_w1, t_b1, t_w2, t_b2 = tensors
        pred = (x[rows] @ t_w1 + t_b1).relu() @ t_w2 + t_b2
        ag_loss = make_ag_loss(pred, target[rows])
        ag_loss.backward()
        for p in tensors:
            p.data -= lr * p.grad
            p.grad = None
        torch.testing.assert_close(ag_loss.data, loss)
    return model.parameters(), [p.data for p in tensors]


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_training_the_mlp_matches_the_modules(loss):
    # Posts 6 (regression, MSE) and 7 (classification, cross-entropy) on the digits.
    x_train, y_train, _, _ = load_digits()
    x, y = x_train[:160].double(), y_train[:160]
    n_out = 1 if loss == "mse" else 10
    gen = torch.Generator().manual_seed(0)
    n_in, nh = x.shape[1], 50
    params = [
        torch.randn(n_in, nh, generator=gen, dtype=torch.float64) * math.sqrt(2 / n_in),
        torch.zeros(nh, dtype=torch.float64),
        torch.randn(nh, n_out, generator=gen, dtype=torch.float64) * math.sqrt(2 / nh),
        torch.zeros(n_out, dtype=torch.float64),
    ]
    if loss == "mse":
        target, module, ag_loss, lr = y.double()[:, None], MSE, ag.mse, 0.01
    else:
        target, module, ag_loss, lr = y, CrossEntropy, ag.cross_entropy, 0.1
    by_modules, by_tape = _train(10, module, ag_loss, x, target, params, lr)
    for start, p_mod, p_tape in zip(params, by_modules, by_tape, strict=True):
        assert not torch.equal(p_mod, start), "training did not move the parameter"
        torch.testing.assert_close(p_tape, p_mod, rtol=1e-12, atol=1e-12)


def test_backward_needs_a_scalar():
    x = ag.Tensor(torch.ones(3, 2), requires_grad=True)
    match = r"scalar.*has shape \(3, 2\).*\.sum\(\) or \.mean\(\)"
    with pytest.raises(ValueError, match=match):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"nothing to differentiate"):
        ag.Tensor(torch.ones(())).backward()


def test_mismatched_shapes_name_both():
    a = ag.Tensor(torch.ones(3, 2), requires_grad=True)
    for op in ("+", "-", "*"):
        match = rf"a \{op} b: shapes \(3, 2\) and \(4,\)"
        with pytest.raises(ValueError, match=match):
            {"+": a.__add__, "-": a.__sub__, "*": a.__mul__}[op](torch.ones(4))
    with pytest.raises(ValueError, match=r"a of shape \(3, 2\) and b of shape \(3, 2"):
        a @ a
    with pytest.raises(ValueError, match=r"a of shape \(2,\) and b of shape \(3, 2\)"):
        torch.ones(2) @ a
    match = r"pred has shape \(3, 2\) but target has shape \(3,\)"
    with pytest.raises(ValueError, match=match):
        ag.mse(a, torch.ones(3))
    match = r"target has shape \(2,\) but logits has shape \(3, 2\)"
    with pytest.raises(ValueError, match=match):
        ag.cross_entropy(a, torch.tensor([0, 1]))


def test_bad_operands_and_leaves():
    with pytest.raises(ValueError, match=r"only floating-point tensors can require"):
        ag.Tensor(torch.tensor([1, 2]), requires_grad=True)
    with pytest.raises(TypeError, match=r"got str"):
        ag.Tensor(torch.ones(2)) + "1"


# ----------------------------------------------- gradients of their own, in their dtype


def _memory(tensors):
    """The address of the memory behind each tensor (a view shares its base's)."""
    return [t.untyped_storage().data_ptr() for t in tensors]


def _keep_incoming_gradients(loss):
    """Make every operation on the tape record the gradient it receives.

    The list keeps them alive, so their memory cannot be reused by a later tensor
    and mistaken for sharing.
    """
    received = []
    for node in loss.tape():
        if node._backward is not None:

            def spy(g, backward=node._backward):
                received.append(g)
                return backward(g)

            node._backward = spy
    return received


@settings(max_examples=150, deadline=None)
@given(program=programs(), dtype=dtypes, seed=seeds)
def test_no_gradient_shares_memory_with_another(program, dtype, seed):
    # a + b hands the same gradient to a and b; each leaf must get its own, and none
    # may be a gradient that an operation on the tape received either.
    full, leaf_shapes, _, _ = program
    leaves = [
        ag.Tensor(make_tensor(s, dtype, seed=seed + i), requires_grad=True)
        for i, s in enumerate(leaf_shapes)
    ]
    loss = _run(program, leaves, make_tensor(full, dtype, seed=seed + 99))
    received = _keep_incoming_gradients(loss)
    loss.backward()
    leaf_memory = _memory(leaf.grad for leaf in leaves if leaf.grad is not None)
    assert len(set(leaf_memory)) == len(leaf_memory), "two leaves share a .grad"
    assert not set(leaf_memory) & set(_memory(received)), (
        "a leaf's .grad is a gradient an operation received"
    )


def test_an_in_place_step_leaves_the_other_gradients_alone():
    # p.data -= lr * p.grad; p.grad.zero_(), parameter by parameter, as a reader
    # writes SGD by hand: with a.grad and b.grad one tensor, b would step by zero.
    data = [torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0]), torch.tensor(2.0)]
    ours = [ag.Tensor(d, requires_grad=True) for d in data]
    theirs = [d.clone().requires_grad_() for d in data]
    ((ours[0] + ours[1]) * ours[2] + ours[2]).sum().backward()
    ((theirs[0] + theirs[1]) * theirs[2] + theirs[2]).sum().backward()
    with torch.no_grad():
        for mine, torch_p in zip(ours, theirs, strict=True):
            mine.data -= 0.1 * mine.grad
            mine.grad.zero_()
            torch_p -= 0.1 * torch_p.grad
            torch_p.grad.zero_()
    for mine, torch_p in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine.data, torch_p.detach(), rtol=0, atol=0)


def test_a_leaf_that_is_the_loss_and_accumulation_make_new_tensors():
    x = ag.Tensor(torch.tensor(3.0), requires_grad=True)
    x.backward()
    first = x.grad
    x.backward()
    assert x.grad is not first and first.item() == 1.0 and x.grad.item() == 2.0


@settings(max_examples=100, deadline=None)
@given(
    program=programs(),
    leaf_dtypes=st.lists(dtypes, min_size=4, max_size=4),
    constant_dtype=dtypes,
    seed=seeds,
)
def test_each_gradient_has_its_tensors_dtype_like_torch(
    program, leaf_dtypes, constant_dtype, seed
):
    # float32 and float64 leaves and constants mixed: torch promotes in the forward
    # and casts every gradient back to the dtype of the tensor it belongs to.
    full, leaf_shapes, _, _ = program
    data = [
        make_tensor(s, leaf_dtypes[i], seed=seed + i) for i, s in enumerate(leaf_shapes)
    ]
    constant = make_tensor(full, constant_dtype, seed=seed + 99)
    leaves = [ag.Tensor(d, requires_grad=True) for d in data]
    torch_leaves = [d.clone().requires_grad_() for d in data]
    _run(program, leaves, constant).backward()
    _run(program, torch_leaves, constant).backward()
    for ours, theirs in zip(leaves, torch_leaves, strict=True):
        if theirs.grad is None:
            assert ours.grad is None
            continue
        assert ours.grad.dtype == theirs.grad.dtype == theirs.dtype
        torch.testing.assert_close(ours.grad, theirs.grad, **tolerance(torch.float32))


def test_a_float32_weight_times_a_float64_constant_gets_a_float32_gradient():
    w = ag.Tensor(torch.tensor([1.0, 2.0]), requires_grad=True)
    w_t = torch.tensor([1.0, 2.0], requires_grad=True)
    c = torch.tensor([0.5, -3.0], dtype=torch.float64)
    loss, loss_t = (w * c).sum(), (w_t * c).sum()
    assert loss.dtype == loss_t.dtype == torch.float64
    loss.backward()
    loss_t.backward()
    assert w.grad.dtype == w_t.grad.dtype == torch.float32
    torch.testing.assert_close(w.grad, w_t.grad)


# ---------------------------------------------------------- numbers: torch's promotion

ELEMENTWISE = {
    "t + s": lambda t, s: t + s,
    "s + t": lambda t, s: s + t,
    "t - s": lambda t, s: t - s,
    "s - t": lambda t, s: s - t,
    "t * s": lambda t, s: t * s,
    "s * t": lambda t, s: s * t,
}
PROMOTION_DTYPES = [torch.bool, torch.uint8, torch.int32, torch.int64]
PROMOTION_DTYPES += [torch.float16, torch.float32, torch.float64]


@pytest.mark.parametrize("op", sorted(ELEMENTWISE))
@pytest.mark.parametrize("dtype", PROMOTION_DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(3,), ()], ids=["vector", "0-dim"])
@pytest.mark.parametrize("number", [2, -3, 0.5, 1e-3, True, False], ids=repr)
def test_a_number_is_promoted_as_torch_promotes_it(op, dtype, shape, number):
    # int tensor * 0.5 is float32, bool tensor * 3 is int64, float32 * 0.5 float32.
    values = torch.tensor([1.7, 0.0, 2.6]) if shape else torch.tensor(2.6)
    t = values.to(dtype) if dtype != torch.bool else values > 0
    fn = ELEMENTWISE[op]
    try:
        expected = fn(t, number)
    except RuntimeError as error:  # e.g. bool - bool: torch refuses, and so must we
        with pytest.raises(RuntimeError, match=str(error).split(",")[0]):
            fn(ag.Tensor(t), number)
        return
    leaves = [ag.Tensor(t)]
    if dtype.is_floating_point:
        leaves.append(ag.Tensor(t, requires_grad=True))  # the same on the tape
    for leaf in leaves:
        got = fn(leaf, number)
        assert got.dtype == expected.dtype, (op, dtype, number)
        if dtype == torch.float16 and isinstance(number, float):
            # torch keeps the number in float32 while it computes; it is rounded
            # to float16 here first: one rounding step apart at most.
            torch.testing.assert_close(got.data, expected)
        else:
            assert torch.equal(got.data, expected), (op, dtype, number)


@pytest.mark.parametrize("number", [2, 0.5, True], ids=repr)
def test_gradients_through_a_number_match_torch(number):
    x0 = torch.tensor([1.5, -2.0, 0.25])
    x = ag.Tensor(x0, requires_grad=True)
    x_t = x0.clone().requires_grad_()
    for t in (x, x_t):
        loss = (t * number + number) * (number + t) * (t + number)
        if not isinstance(number, bool):  # torch refuses to subtract a bool
            loss = loss * (t - number) + (number - t)
        loss.sum().backward()
    assert x.grad.dtype == x_t.grad.dtype
    torch.testing.assert_close(x.grad, x_t.grad, rtol=0, atol=0)


def _lines_of_code(path):
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT}
    skip |= {tokenize.DEDENT, tokenize.ENDMARKER}
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def test_post_14_says_how_long_the_module_is():
    root = Path(__file__).resolve().parents[1]
    post = (root / "posts/14-your-own-autograd/index.qmd").read_text()
    claim = re.search(r"in about (\d+) lines of\s+`backprop\.autograd`", post)
    assert claim, "post 14 no longer says how long backprop.autograd is"
    measured = _lines_of_code(root / "src/backprop/autograd.py")
    stated = int(claim.group(1))
    assert abs(measured - stated) <= 0.1 * measured, (
        f"post 14 says about {stated} lines of code; backprop.autograd has {measured}"
    )


def _square_returning(what):
    """x * x on the tape, with a backward that returns ``what`` of its gradient."""

    def square(x):
        def backward(g):
            grad = 2 * x.data * g
            return {
                "tuple": (grad,),
                "bare": grad,
                "none": None,
                "pair": (grad, None),
                "no gradient": (None,),
                "shape": (grad.sum(0),),
            }[what]

        return ag.Tensor._result(x.data * x.data, (x,), backward, "square")

    return square


@pytest.mark.parametrize(
    ("what", "said"),
    [
        ("bare", "returned a bare Tensor, but it returns a tuple"),
        ("none", "returned None, but it returns a tuple"),
        ("pair", "returned 2 gradients for its 1 input"),
        ("no gradient", "returned None for input 1 (shape (3, 2)), which needs"),
        ("shape", "returned a gradient of shape (2,) for input 1, of shape (3, 2)"),
    ],
)
def test_a_backward_returning_the_wrong_thing_names_the_operation(what, said):
    x = ag.Tensor(torch.randn(3, 2, dtype=torch.float64), requires_grad=True)
    with pytest.raises(ValueError, match=re.escape(f"the backward of 'square' {said}")):
        _square_returning(what)(x).sum().backward()
    _square_returning("tuple")(x).sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.data)
