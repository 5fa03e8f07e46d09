"""A module knows its parts: train(), eval(), parameters() and named_parameters()
reach every module inside any nesting of the library's modules, each once."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop import modules, transformer
from backprop.modules import (
    MSE,
    BatchNorm1d,
    Conv2d,
    CrossEntropy,
    Embedding,
    LayerNorm,
    Lin,
    Model,
    Module,
    MultiHeadAttention,
    ReLU,
    Sequential,
)
from backprop.transformer import (
    GELU,
    Residual,
    TinyGPT,
    TokenCrossEntropy,
    TransformerBlock,
)

MODULE_CLASSES = sorted(
    (
        getattr(mod, name)
        for mod in (modules, transformer)
        for name in mod.__all__
        if inspect.isclass(getattr(mod, name))
        and issubclass(getattr(mod, name), Module)
    ),
    key=lambda cls: cls.__name__,
)

# The methods a module's parts are walked by: written once, in Module.
WALKERS = (
    "named_children",
    "named_modules",
    "modules",
    "named_parameters",
    "parameters",
    "train",
    "eval",
    "__repr__",
)


@pytest.mark.parametrize("cls", MODULE_CLASSES, ids=lambda cls: cls.__name__)
def test_no_module_walks_its_parts_by_hand(cls):
    for name in WALKERS:
        assert getattr(cls, name) is getattr(Module, name), f"{cls.__name__}.{name}"


# --------------------------------------------------------- the two old defects


def test_eval_reaches_a_batch_norm_inside_a_residual_connection():
    # eval() stopped at Residual, which set only its own flag: the "eval" output
    # used the batch's statistics and overwrote the running ones.
    gen = torch.Generator().manual_seed(0)
    norm = BatchNorm1d(3)
    norm.running_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
    norm.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
    theirs = torch.nn.BatchNorm1d(3)
    theirs.running_mean.copy_(norm.running_mean)
    theirs.running_var.copy_(norm.running_var)
    model = Model([Residual(norm)], MSE())
    assert model.eval() is model and not norm.training
    x = torch.randn(8, 3, generator=gen) * 3 + 2
    running = norm.running_mean.clone(), norm.running_var.clone()
    expected = x + theirs.eval()(x).detach()
    torch.testing.assert_close(model.predict(x), expected)
    torch.testing.assert_close(norm.running_mean, running[0])  # left alone
    torch.testing.assert_close(norm.running_var, running[1])
    model.train()
    assert norm.training


def test_eval_reaches_every_module_of_a_tiny_gpt():
    gpt = TinyGPT(5, 4, 8, 2, 16, 2)
    inside = [gpt.ln_f, gpt.tok, gpt.blocks]
    for block in gpt.blocks.layers:
        assert isinstance(block, TransformerBlock)
        inside += [block.ln1, block.attention, block.ln2, block.up, block.down]
        inside += [block.attn, block.mlp, block.mlp.block.layers[2]]  # the GELU
    gpt.eval()
    assert not any(m.training for m in inside)
    gpt.train()
    assert all(m.training for m in inside)


def test_eval_reaches_inside_a_transformer_block_in_a_sequential():
    block = TransformerBlock(8, 2, 16)
    net = Sequential(Lin(8, 8), block)
    net.eval()
    gelu = block.mlp.block.layers[2]
    for m in (block.ln1, block.attention, block.ln2, block.up, gelu, block.down):
        assert not m.training, m


# --------------------------------------------- random nestings of every class


# One builder per module class, from small arguments: a leaf, or a module built
# from its own settings; the containers are drawn by the strategy below.
def _build_leaf(name: str, draw: st.DrawFn) -> Module:
    builders: dict[str, Callable[[], Module]] = {
        "Module": Module,
        "Lin": lambda: Lin(3, 2, bias=draw(st.booleans())),
        "ReLU": ReLU,
        "MSE": MSE,
        "CrossEntropy": CrossEntropy,
        "Embedding": lambda: Embedding(5, 3),
        "BatchNorm1d": lambda: BatchNorm1d(3),
        "LayerNorm": lambda: LayerNorm(3),
        "Conv2d": lambda: Conv2d(2, 3, 2, bias=draw(st.booleans())),
        "MultiHeadAttention": lambda: MultiHeadAttention(4, 2),
        "GELU": GELU,
        "TokenCrossEntropy": TokenCrossEntropy,
        "TransformerBlock": lambda: TransformerBlock(4, 2, 8),
        "TinyGPT": lambda: TinyGPT(
            5, 4, 4, 2, 8, draw(st.integers(1, 2)), tie_weights=draw(st.booleans())
        ),
    }
    return builders[name]()


LEAVES = (
    "Module",
    "Lin",
    "ReLU",
    "MSE",
    "CrossEntropy",
    "Embedding",
    "BatchNorm1d",
    "LayerNorm",
    "Conv2d",
    "MultiHeadAttention",
    "GELU",
    "TokenCrossEntropy",
    "TransformerBlock",
    "TinyGPT",
)
CONTAINERS = ("Sequential", "Residual", "Model")


def test_the_strategy_builds_every_module_class():
    names = {cls.__name__ for cls in MODULE_CLASSES}
    assert set(LEAVES) | set(CONTAINERS) == names, "a new module class: add a builder"


@st.composite
def trees(draw: st.DrawFn, depth: int = 3) -> Module:
    """A random nesting; a module may be held twice, a weight may be tied."""
    name = draw(st.sampled_from(LEAVES + (CONTAINERS if depth else ())))
    if name not in CONTAINERS:
        return _build_leaf(name, draw)
    children = draw(st.lists(trees(depth - 1), min_size=1, max_size=3))
    if len(children) > 1 and draw(st.booleans()):
        children.append(children[0])  # the same module, held twice
    if name == "Residual":
        return Residual(children[0])
    if name == "Model":
        return Model(children, draw(st.sampled_from([MSE, CrossEntropy]))())
    return Sequential(*children)


# The oracle: each class's parts as its own code holds them, written out by hand.
def _parts(m: Module) -> tuple[list[Module], list[torch.Tensor | None]]:
    """The modules m holds directly, and its own parameters."""
    if isinstance(m, TransformerBlock):  # before Sequential, its base class
        gelu = m.mlp.block.layers[2]
        children = [m.ln1, m.attention, m.ln2, m.up, gelu, m.down, m.attn, m.mlp]
        return [*children, m.attn.block, m.mlp.block], []
    if isinstance(m, Sequential):
        return list(m.layers), []
    if isinstance(m, Residual):
        return [m.block], []
    if isinstance(m, Model):
        return [m.layers, m.loss], []
    if isinstance(m, TinyGPT):
        return [m.tok, m.pos, m.blocks, m.ln_f, *([m.head] if m.head else [])], []
    if isinstance(m, Lin | Conv2d):
        return [], [m.w, m.b]
    if isinstance(m, BatchNorm1d | LayerNorm):
        return [], [m.gamma, m.beta]
    if isinstance(m, Embedding):
        return [], [m.table]
    if isinstance(m, MultiHeadAttention):
        return [], [m.w_q, m.w_k, m.w_v, m.w_o, m.b_q, m.b_k, m.b_v, m.b_o]
    assert type(m) in (Module, ReLU, MSE, CrossEntropy, GELU, TokenCrossEntropy)
    return [], []


def _everything(root: Module) -> tuple[dict[int, Module], dict[int, torch.Tensor]]:
    """Every module and every parameter reachable from root, by id."""
    found: dict[int, Module] = {}
    params: dict[int, torch.Tensor] = {}
    todo = [root]
    while todo:
        m = todo.pop()
        if id(m) in found:
            continue
        found[id(m)] = m
        children, own = _parts(m)
        todo += children
        params.update((id(p), p) for p in own if p is not None)
    return found, params


def _resolve(root: Module, name: str) -> object:
    """The object a dotted name leads to: attributes, and list items by number."""
    obj: object = root
    for part in name.split("."):
        if part.isdigit():
            items = obj.layers if isinstance(obj, Sequential) else obj
            assert isinstance(items, list | tuple)
            obj = items[int(part)]
        else:
            obj = getattr(obj, part)
    return obj


def _tie_two_weights(root: Module, draw: st.DrawFn) -> None:
    """Share one Lin's weight with another Lin's, as tied embeddings are shared."""
    lins = [m for m in _everything(root)[0].values() if type(m) is Lin]
    if len(lins) >= 2 and draw(st.booleans()):
        lins[1].w = lins[0].w


@settings(max_examples=150, deadline=None)
@given(root=trees(), data=st.data())
def test_every_module_and_parameter_of_any_nesting_is_reached_once(root, data):
    _tie_two_weights(root, data.draw)
    modules_, params = _everything(root)

    # train() and eval() set every flag, from any mixture of modes.
    for m in modules_.values():
        m.training = data.draw(st.booleans())
    assert root.eval() is root
    assert [m for m in modules_.values() if m.training] == []
    assert root.train() is root
    assert [m for m in modules_.values() if not m.training] == []

    found = root.modules()
    assert sorted(map(id, found)) == sorted(modules_), "each module exactly once"

    listed = root.parameters()
    assert sorted(map(id, listed)) == sorted(params), "each parameter exactly once"
    named = root.named_parameters()
    assert [id(p) for p in named.values()] == [id(p) for p in listed]
    for name, p in named.items():
        assert _resolve(root, name) is p, name  # the name is a path to it
    for name, m in root.named_modules().items():
        assert (_resolve(root, name) if name else root) is m, name


# ------------------------------------------------------- names, order and repr


def test_parameter_names_are_the_paths_to_them():
    gpt = TinyGPT(5, 4, 8, 2, 16, 2, generator=torch.Generator().manual_seed(0))
    names = list(gpt.named_parameters())
    block = [
        "ln1.gamma",
        "ln1.beta",
        *(f"attention.{p}" for p in ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v")),
        "attention.w_o",
        "attention.b_o",
        "ln2.gamma",
        "ln2.beta",
        "up.w",
        "up.b",
        "down.w",
        "down.b",
    ]
    assert names == [
        "tok.table",
        "pos.table",
        *(f"blocks.{i}.{name}" for i in range(2) for name in block),
        "ln_f.gamma",
        "ln_f.beta",
        "head.w",
    ]
    assert gpt.named_parameters()["blocks.1.attention.w_q"] is (
        gpt.blocks.layers[1].attention.w_q
    )


def test_a_tied_table_is_listed_once():
    gpt = TinyGPT(5, 4, 8, 2, 16, 1, tie_weights=True)
    named = gpt.named_parameters()
    assert "head.w" not in named and named["tok.table"] is gpt.tok.table
    assert len(gpt.parameters()) == len({id(p) for p in gpt.parameters()})


def test_a_replaced_parameter_or_layer_is_followed():
    layer = Lin(3, 2, bias=False)
    w = torch.zeros(3, 2)
    layer.w = w
    layer.b = torch.zeros(2)
    assert layer.parameters() == [w, layer.b]
    net = Sequential(layer)
    net.layers.append(LayerNorm(2))
    assert list(net.named_parameters()) == ["0.w", "0.b", "1.gamma", "1.beta"]


def test_a_parameter_name_that_holds_no_tensor_is_an_error():
    layer = Lin(3, 2)
    layer.b = [0.0, 0.0]  # type: ignore[assignment]
    with pytest.raises(TypeError, match=r"Lin\.b is named in parameter_names"):
        layer.parameters()


def test_a_module_inside_itself_is_walked_once():
    net = Sequential(ReLU())
    net.layers.append(net)
    assert net.modules() == [net, net.layers[0]]


def test_repr_shows_the_settings_and_the_parts():
    gen = torch.Generator().manual_seed(0)
    model = Model([Lin(3, 4, generator=gen), Residual(LayerNorm(4))], MSE())
    assert repr(model) == (
        "Model(\n"
        "  (layers): Sequential(\n"
        "    (0): Lin(3, 4, bias=True)\n"
        "    (1): Residual(\n"
        "      (block): LayerNorm(4)\n"
        "    )\n"
        "  )\n"
        "  (loss): MSE()\n"
        ")"
    )
    block_repr = repr(TransformerBlock(8, 2, 16))
    assert block_repr.startswith("TransformerBlock(\n  8, 2, 16, causal=True\n")
    assert "(attention): MultiHeadAttention(8, 2, causal=True)" in block_repr
