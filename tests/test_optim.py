"""sgd_step and AdamW: against torch.optim, and refusing what torch refuses."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.modules import Lin, Sequential
from backprop.optim import AdamW, sgd_step
from oracles import assert_matches
from strategies import make_tensor, seeds, shapes, tolerance

f64 = torch.float64
# float64 agrees with torch to rounding: a few units of 1e-16 after several steps.
ROUNDING = dict(rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------- sgd_step


def test_sgd_step_updates_in_place_and_clears_the_gradient():
    w, b = make_tensor((3, 2), seed=0), make_tensor((2,), seed=1)
    w.g, b.g = make_tensor((3, 2), seed=2), make_tensor((2,), seed=3)
    expected_w, expected_b = w - 0.1 * w.g, b - 0.1 * b.g
    w_storage = w.data_ptr()
    sgd_step([w, b], lr=0.1)
    assert w.data_ptr() == w_storage  # in place: the layers see the new values
    assert_matches(w, expected_w)
    assert_matches(b, expected_b)
    assert w.g is None and b.g is None


def test_sgd_step_matches_torch():
    ours = [make_tensor(s, seed=i) for i, s in enumerate([(3, 4), (4,), ()])]
    theirs = [torch.nn.Parameter(p.clone()) for p in ours]
    their_opt = torch.optim.SGD(theirs, lr=0.3)
    for step in range(3):
        for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
            p.g = make_tensor(p.shape, seed=10 * step + i)
            q.grad = p.g.clone()
        sgd_step({f"p{i}": p for i, p in enumerate(ours)}, lr=0.3)
        their_opt.step()
    for p, q in zip(ours, theirs, strict=True):
        torch.testing.assert_close(p, q.detach(), **ROUNDING)


def test_sgd_step_without_gradients_fails_loudly():
    w, b = torch.randn(3, 2), torch.randn(2)
    w.g = torch.zeros(3, 2)
    with pytest.raises(
        ValueError, match=r"parameters\[1\] \(shape \(2,\)\) has no gradient"
    ):
        sgd_step([w, b], lr=0.1)
    assert torch.equal(w.g, torch.zeros(3, 2))  # nothing was updated


# ------------------------------------------------- gradients that do not match

# What torch refuses when .grad is assigned, and sgd_step and AdamW.step took
# before: every row moved by a broadcast gradient, or a gradient of another dtype.
WRONG_GRADIENTS = {
    "one row, (2,)": torch.ones(2),
    "one row, (1, 2)": torch.ones(1, 2),
    "bool": torch.ones(3, 2, dtype=torch.bool),
    "float64 on float32": torch.ones(3, 2, dtype=f64),
    "transposed, (2, 3)": torch.ones(2, 3),
}


@pytest.mark.parametrize("name", WRONG_GRADIENTS)
def test_torch_refuses_each_wrong_gradient_too(name):
    p = torch.nn.Parameter(torch.zeros(3, 2))
    with pytest.raises(RuntimeError, match=r"size|type"):
        p.grad = WRONG_GRADIENTS[name]


def _named_model():
    """A tiny model whose second layer's weight is "2.w", shape (3, 2)."""
    gen = torch.Generator().manual_seed(0)
    return Sequential(Lin(4, 3, generator=gen), Lin(3, 3, generator=gen), Lin(3, 2))


def _fill_grads(named, wrong_name, wrong):
    for name, p in named.items():
        p.g = wrong if name == wrong_name else torch.ones_like(p)


def _snapshot(named):
    return {name: (p.clone(), p.g) for name, p in named.items()}


def _assert_unchanged(named, before):
    for name, p in named.items():
        value, grad = before[name]
        assert torch.equal(p, value), f"{name} was updated"
        assert p.g is grad, f"{name}.g was cleared"


@pytest.mark.parametrize("name", WRONG_GRADIENTS)
@pytest.mark.parametrize("optimiser", ["sgd_step", "AdamW"])
def test_a_gradient_that_does_not_match_is_refused_and_nothing_moves(name, optimiser):
    model = _named_model()
    named = model.named_parameters()
    assert named["2.w"].shape == (3, 2)
    wrong = WRONG_GRADIENTS[name]
    _fill_grads(named, "2.w", wrong)
    before = _snapshot(named)
    step = (
        AdamW(named, lr=0.1).step
        if optimiser == "AdamW"
        else lambda: sgd_step(named, lr=0.1)
    )
    match = (
        r"the gradient \.g of 2\.w has shape "
        + rf"\({', '.join(map(str, wrong.shape))},?\), dtype {wrong.dtype} "
        + r".*but 2\.w has shape \(3, 2\), dtype torch\.float32"
    )
    with pytest.raises(ValueError, match=match):
        step()
    _assert_unchanged(named, before)


def test_adamw_refusing_a_step_leaves_its_state_untouched():
    # After a refused step, the next valid one is the first, as in torch.
    p = make_tensor((3, 2), seed=1)
    q = torch.nn.Parameter(p.clone())
    opt, their_opt = AdamW([p], lr=0.1), torch.optim.AdamW([q], lr=0.1)
    p.g = torch.ones(2, dtype=f64)
    with pytest.raises(ValueError, match=r"parameters\[0\] has shape \(3, 2\)"):
        opt.step()
    p.g = make_tensor((3, 2), seed=2)
    q.grad = p.g.clone()
    opt.step()
    their_opt.step()
    torch.testing.assert_close(p, q.detach(), **ROUNDING)


def test_a_gradient_on_another_device_is_refused():
    p = torch.zeros(2)
    p.g = torch.zeros(2, device="meta")
    with pytest.raises(ValueError, match="device meta, but parameters"):
        sgd_step([p], lr=0.1)


def test_a_gradient_that_is_not_a_tensor_is_refused():
    p = torch.zeros(2)
    p.g = [1.0, 2.0]
    with pytest.raises(ValueError, match=r"\.g of parameters\[0\] is a list"):
        sgd_step([p], lr=0.1)


# ---------------------------------------------------------- listed twice, or not


def test_a_parameter_listed_twice_is_refused():
    p, q = torch.zeros(2), torch.zeros(3)
    with pytest.raises(
        ValueError, match=r"listed twice, as parameters\[0\] and as parameters\[2\]"
    ):
        AdamW([p, q, p])
    with pytest.raises(ValueError, match="listed twice, as a and as b"):
        AdamW({"a": p, "b": p})
    groups = [{"params": [q]}, {"params": {"p": p}}, {"params": [p]}]
    match = r"as p and as param_groups\[2\]\['params'\]\[0\]"
    with pytest.raises(ValueError, match=match):
        AdamW(groups)
    p.g = torch.ones(2)
    with pytest.raises(ValueError, match="listed twice"):
        sgd_step([p, p], lr=0.1)
    assert torch.equal(p, torch.zeros(2))  # not even once


def test_a_tied_weight_is_listed_once_by_the_model_and_accepted():
    first, second = Lin(2, 2), Lin(2, 2)
    second.w = first.w  # tied
    model = Sequential(first, second)
    assert list(model.named_parameters()) == ["0.w", "0.b", "1.b"]
    AdamW(model.named_parameters())  # no duplicate to refuse


def test_what_is_not_a_list_of_tensors_is_refused():
    with pytest.raises(TypeError, match=r"a list of tensors \(e\.g\. \[w\]\)"):
        AdamW(torch.zeros(3, 2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"a list of tensors \(e\.g\. \[w\]\)"):
        sgd_step(torch.zeros(3, 2), lr=0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"parameters\[1\] must be a tensor"):
        AdamW([torch.zeros(1), 2.0])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"floating-point.*torch\.int64"):
        AdamW([torch.zeros(2, dtype=torch.long)])
    with pytest.raises(ValueError, match="no parameters"):
        AdamW([])


# ------------------------------------------------------------------------ AdamW


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [f64, torch.float32])
def test_adamw_matches_torch_step_for_step(weight_decay, dtype):
    shapes_ = [(3, 4), (4,), (1,)]
    ours = [make_tensor(s, dtype, seed=i) for i, s in enumerate(shapes_)]
    theirs = [torch.nn.Parameter(p.clone()) for p in ours]
    kwargs = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=weight_decay)
    opt = AdamW(ours, **kwargs)
    their_opt = torch.optim.AdamW(theirs, **kwargs)
    for step in range(6):
        for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
            g = make_tensor(p.shape, dtype, seed=100 * step + i, scale=10.0**i)
            p.g, q.grad = g, g.clone()
        opt.step()
        their_opt.step()
        for p, q in zip(ours, theirs, strict=True):
            torch.testing.assert_close(p, q.detach(), **tolerance(dtype))
            assert p.g is None


OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "lr": st.sampled_from([0.0, 1e-3, 0.05, 0.3]),
        "weight_decay": st.sampled_from([0.0, 0.01, 0.1, 1.0]),
        "betas": st.sampled_from([(0.9, 0.999), (0.8, 0.95), (0.0, 0.5)]),
        "eps": st.sampled_from([1e-8, 1e-6, 1e-3]),
    },
)


@settings(max_examples=40, deadline=None)
@given(
    groups=st.lists(
        st.tuples(st.lists(shapes(max_dims=3), min_size=1, max_size=3), OPTIONS),
        min_size=1,
        max_size=4,
    ),
    defaults=OPTIONS,
    named=st.booleans(),
    seed=seeds,
)
def test_adamw_with_groups_matches_torch_step_for_step(groups, defaults, named, seed):
    ours, theirs, our_groups, their_groups = [], [], [], []
    for i, (group_shapes, options) in enumerate(groups):
        params = [
            make_tensor(s, seed=seed + 10 * i + j) for j, s in enumerate(group_shapes)
        ]
        copies = [torch.nn.Parameter(p.clone()) for p in params]
        ours += params
        theirs += copies
        given_params = (
            {f"g{i}.{j}": p for j, p in enumerate(params)} if named else params
        )
        our_groups.append({"params": given_params, **options})
        their_groups.append({"params": copies, **options})
    opt = AdamW(our_groups, **defaults)
    their_opt = torch.optim.AdamW(their_groups, **defaults)
    for ours_, theirs_ in zip(opt.param_groups, their_opt.param_groups, strict=True):
        for key in ("lr", "betas", "eps", "weight_decay"):
            assert ours_[key] == theirs_[key], key
    for step in range(5):
        if step == 3:  # a schedule: every group's rate at once
            opt.lr = 0.02
            for group in their_opt.param_groups:
                group["lr"] = 0.02
        for k, (p, q) in enumerate(zip(ours, theirs, strict=True)):
            p.g = make_tensor(p.shape, seed=seed + 1000 * (step + 1) + k, scale=3.0)
            q.grad = p.g.clone()
        opt.step()
        their_opt.step()
        for p, q in zip(ours, theirs, strict=True):
            torch.testing.assert_close(p, q.detach(), **ROUNDING)


def test_adamw_learning_rate_can_change_between_steps():
    p, q = torch.ones(3, dtype=f64), torch.nn.Parameter(torch.ones(3, dtype=f64))
    r, s = torch.ones(2, dtype=f64), torch.nn.Parameter(torch.ones(2, dtype=f64))
    opt = AdamW([{"params": [p]}, {"params": [r], "lr": 0.5}], lr=0.1)
    their_opt = torch.optim.AdamW([{"params": [q]}, {"params": [s], "lr": 0.5}], lr=0.1)
    with pytest.raises(ValueError, match=r"different learning rates \[0\.1, 0\.5\]"):
        _ = opt.lr
    for lr in (0.1, 0.01, 0.3):
        opt.param_groups[1]["lr"] = lr  # one group's rate
        their_opt.param_groups[1]["lr"] = lr
        p.g, r.g = torch.tensor([1.0, -2.0, 0.5], dtype=f64), torch.ones(2, dtype=f64)
        q.grad, s.grad = p.g.clone(), r.g.clone()
        opt.step()
        their_opt.step()
    opt.lr = 0.2  # every group's rate
    for group in their_opt.param_groups:
        group["lr"] = 0.2
    assert opt.lr == 0.2 and [g["lr"] for g in opt.param_groups] == [0.2, 0.2]
    p.g, r.g = torch.ones(3, dtype=f64), -torch.ones(2, dtype=f64)
    q.grad, s.grad = p.g.clone(), r.g.clone()
    opt.step()
    their_opt.step()
    torch.testing.assert_close(p, q.detach(), **ROUNDING)
    torch.testing.assert_close(r, s.detach(), **ROUNDING)


def test_adamw_groups_name_their_parameters():
    gen = torch.Generator().manual_seed(0)
    named = Sequential(Lin(3, 2, generator=gen), Lin(2, 1)).named_parameters()
    matrices = {n: p for n, p in named.items() if p.ndim >= 2}
    vectors = [p for p in named.values() if p.ndim < 2]
    opt = AdamW(
        [{"params": matrices}, {"params": vectors, "weight_decay": 0.0}],
        weight_decay=0.1,
    )
    assert opt.param_groups[0]["names"] == ["0.w", "1.w"]
    assert opt.param_groups[1]["names"] == [
        "param_groups[1]['params'][0]",
        "param_groups[1]['params'][1]",
    ]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    for p in named.values():
        p.g = torch.zeros_like(p)
    del named["1.w"].g
    with pytest.raises(ValueError, match=r"^1\.w \(shape \(2, 1\)\) has no gradient"):
        opt.step()


def test_adamw_errors():
    with pytest.raises(ValueError, match="lr must be a non-negative number"):
        AdamW([torch.ones(1)], lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        AdamW([torch.ones(1)], betas=(0.9, 1.0))
    with pytest.raises(
        ValueError, match=r"param_groups\[1\]: weight_decay must be a non-negative"
    ):
        AdamW(
            [
                {"params": [torch.ones(1)]},
                {"params": [torch.ones(1)], "weight_decay": -1},
            ]
        )
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['weight_decy'\]"):
        AdamW([{"params": [torch.ones(1)], "weight_decy": 0.1}])
    with pytest.raises(ValueError, match="must have the key 'params'"):
        AdamW([{"lr": 0.1}])
    with pytest.raises(ValueError, match="not a mix of both"):
        AdamW([torch.ones(1), {"params": [torch.ones(1)]}])
    with pytest.raises(ValueError, match="lr must be a non-negative number"):
        AdamW([torch.ones(1)]).lr = -0.1
    w = torch.ones(2)
    with pytest.raises(
        ValueError, match=r"parameters\[0\] \(shape \(2,\)\) has no gradient"
    ):
        AdamW([w]).step()
