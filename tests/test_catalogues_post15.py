"""Post 15's sequence: every typical mistake of steps 3 to 6 is failed and named.

Each mistake is fed to the grader as a reader's answer, through `check_gradient`
on the catalogue's `Example` (the post's forward and inputs); the right answers
come from autograd. A right wiring passes, and a wrong answer outside the
catalogue is described without a catalogue name.
"""

from __future__ import annotations

import pytest
import torch

from backprop.exercises import check_gradient
from backprop.exercises.catalogues import CATALOGUES
from backprop.exercises.catalogues.post15 import (
    POST15_CATALOGUES,
    _through_attention,
    _through_block,
    _through_gpt,
    attention_sublayer_right,
    gpt_holding,
)
from backprop.functional import embedding_backward, layernorm, layernorm_backward
from backprop.modules import Model
from backprop.transformer import TokenCrossEntropy

MISTAKES = [
    pytest.param(name, index, id=f"{name}-{index}")
    for name, catalogue in POST15_CATALOGUES.items()
    for index in range(len(catalogue.mistakes))
]


def text(report: object) -> str:
    return " ".join(str(report).split())


def grade(name: str, candidate):
    example = POST15_CATALOGUES[name].example()
    return check_gradient(
        example.forward,
        candidate,
        example.inputs,
        names=example.names,
        catalogue=name,
    )


def test_the_catalogues_are_registered_with_five_mistakes_each():
    for name, catalogue in POST15_CATALOGUES.items():
        assert CATALOGUES[name] is catalogue
        assert catalogue.post == "post 15"
        assert len(catalogue.mistakes) >= 5, name


@pytest.mark.parametrize(("name", "index"), MISTAKES)
def test_every_mistake_is_failed_and_named(name, index):
    mistake = POST15_CATALOGUES[name].mistakes[index]
    report = grade(name, mistake.answer)
    assert not report.ok, f"{name}: {mistake.name!r} is a right answer"
    assert mistake.name in text(report), str(report)
    assert mistake.hint.split(";")[0] in text(report)
    # No other mistake of the catalogue is named for it.
    for other in POST15_CATALOGUES[name].mistakes:
        if other is not mistake:
            assert other.name not in text(report), str(report)


def _right_block(block, out, x):
    mid = block.attn.out
    block.down.out.g = out.g
    for layer in (block.down, block.gelu, block.up, block.ln2):
        layer.backward()
    mid.g = mid.g + out.g
    attention_sublayer_right(block.ln1, block.attention, mid, x)


def _right_gpt(gpt, out, tokens):
    # The library's own backward of the tied model.
    gpt.bwd(out, tokens)


RIGHT = {
    "attention-sublayer": _through_attention(attention_sublayer_right),
    "block": _through_block(_right_block),
    "model-backward": _through_gpt(_right_gpt),
}


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_the_right_wiring_passes(name):
    assert grade(name, RIGHT[name]).ok


def test_the_right_tied_head_passes():
    def tied_head_backward(grad_logits, table, pos, tokens):
        d = table.shape[1]
        ones, zeros = torch.ones(d, dtype=table.dtype), torch.zeros_like(table[0])
        x = table[tokens] + pos
        x_out = layernorm(x, ones, zeros)
        grad_x_out = grad_logits @ table
        grad_x = layernorm_backward(grad_x_out, x, ones, zeros)[0]
        rows = grad_logits.reshape(-1, table.shape[0]).T @ x_out.reshape(-1, d)
        return embedding_backward(grad_x, tokens, table) + rows, grad_x.sum(0)

    assert grade("tied-head", tied_head_backward).ok


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_an_answer_outside_the_catalogue_gets_no_name(name):
    def perturbed(*args):
        first, *rest = RIGHT[name](*args)
        ramp = torch.arange(1, first.numel() + 1).reshape(first.shape).to(first)
        return (first + 0.37 * ramp, *rest)

    report = grade(name, perturbed)
    assert not report.ok and "does not match" in text(report)
    for mistake in POST15_CATALOGUES[name].mistakes:
        assert mistake.name not in text(report), str(report)


def test_the_gpt_example_is_the_librarys_tied_model():
    # The model the last step grades on: its backward against autograd's, so that
    # the catalogue's right answer is the model's own.
    example = POST15_CATALOGUES["model-backward"].example()
    table, pos, gamma, beta, tokens = example.inputs

    gpt = gpt_holding(table.clone(), pos.clone(), gamma.clone(), beta.clone())
    targets = tokens.roll(1, dims=1)
    model = Model([gpt], TokenCrossEntropy())
    model(tokens, targets)
    model.backward()
    params = [t.clone().requires_grad_() for t in (table, pos, gamma, beta)]
    loss = TokenCrossEntropy()(example.forward(*params, tokens), targets)
    want = torch.autograd.grad(loss, params)
    got = (gpt.tok.table.g, gpt.pos.table.g, gpt.ln_f.gamma.g, gpt.ln_f.beta.g)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
