"""The benchmark: its output format and its gradients.

The speed target (the hand backward in at most 0.6 of the time of the course's
autograd check) is read from `python -m backprop.bench`, which prints the measured
ratio; no test asserts a time, which a busy machine could fail for nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from backprop.bench import (
    TRANSFORMER_VARIANTS,
    fused_loss,
    kept_for_backward_mib,
    make_problem,
    make_step,
    transformer_step,
)
from backprop.transformer import TinyGPT, TokenCrossEntropy

RATIO_LINE = re.compile(r"manual/autograd time ratio: (\d+\.\d\d)")
DIFFERENCE_LINE = re.compile(
    r"max \|grad difference\| manual vs autograd \(weights and biases\): (\S+)"
)


def run_bench(*args: str, timeout: float) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "backprop.bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.rstrip("\n").splitlines()


def test_bench_output_with_small_sizes():
    lines = run_bench("--n", "1000", "--repeats", "2", timeout=120)
    assert RATIO_LINE.fullmatch(lines[-1]), lines[-1]
    assert float(RATIO_LINE.fullmatch(lines[-1]).group(1)) > 0
    differences = [DIFFERENCE_LINE.fullmatch(line) for line in lines]
    (difference,) = [float(m.group(1)) for m in differences if m]
    assert 0 <= difference < 1e-5
    # One row per variant, with positive time and peak memory.
    for label in (
        "manual (backprop.modules)",
        "autograd (input requires grad",
        "autograd, input as data",
    ):
        (row,) = [line for line in lines if line.startswith(label)]
        median_ms, peak_mib, _passes_mib = map(float, row.split()[-3:])
        assert median_ms > 0 and peak_mib > 0


def test_bench_variants_compute_the_same_gradients():
    # Independent of the printed output: the three steps, run here, on the same seeded
    # problem.
    gradients = {}
    for variant in ("manual", "autograd", "autograd_data"):
        step, grads = make_step(variant, n=300)
        step()
        gradients[variant] = grads()
    for variant in ("autograd", "autograd_data"):
        for got, expected in zip(gradients["manual"], gradients[variant], strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_bench_problem_is_seeded():
    x1, y1, params1 = make_problem(50)
    x2, y2, params2 = make_problem(50)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert all(torch.equal(a, b) for a, b in zip(params1, params2, strict=True))
    assert x1.shape == (50, 784) and y1.shape == (50, 1)
    assert [p.shape for p in params1] == [(784, 50), (50,), (50, 1), (1,)]


def test_bench_rejects_an_unknown_variant():
    with pytest.raises(
        ValueError,
        match="variant must be one of manual, autograd, autograd_data, got 'jax'",
    ):
        make_step("jax", n=10)


def test_bench_rejects_bad_sizes():
    done = subprocess.run(
        [sys.executable, "-m", "backprop.bench", "--n", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--n and --repeats must be positive, got 0 and 10" in done.stderr


def test_bench_transformer_output_with_small_sizes():
    lines = run_bench(
        "--case", "transformer", "--n", "4", "--repeats", "2", timeout=300
    )
    assert RATIO_LINE.fullmatch(lines[-1]), lines[-1]
    assert float(RATIO_LINE.fullmatch(lines[-1]).group(1)) > 0
    (difference,) = [
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("max |grad difference| manual vs autograd (all parameters)")
    ]
    assert 0 <= difference < 1e-5
    (recomputed,) = [line for line in lines if line.startswith("forward work")]
    assert float(recomputed.split(": ")[1].split()[0]) > 0
    (kept,) = [line for line in lines if line.startswith("activations kept")]
    manual_mib, autograd_mib = (float(x) for x in re.findall(r"(\d+\.\d) MiB", kept))
    assert 0 < manual_mib < autograd_mib
    for label in ("manual (backprop.transformer)", "autograd (same forward)"):
        (row,) = [line for line in lines if line.startswith(label)]
        forward, backward, step, peak, _passes = map(float, row.split()[-5:])
        assert min(forward, backward, step, peak) > 0


def test_bench_transformer_variants_compute_the_same_gradients():
    gradients = {}
    for variant in ("manual", "autograd"):
        forward, backward, grads = transformer_step(variant, n=3)
        for _ in range(2):  # a second step must not accumulate
            forward()
            backward()
        gradients[variant] = grads()
    assert len(gradients["manual"]) == 37
    for got, expected in zip(gradients["manual"], gradients["autograd"], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_bench_transformer_rejects_an_unknown_variant():
    with pytest.raises(ValueError, match="variant must be one of manual, autograd"):
        transformer_step("autograd_data", n=2)


def test_kept_for_backward_grows_with_the_batch_and_is_smaller_by_hand():
    small = {v: kept_for_backward_mib(v, 8) for v in ("manual", "autograd")}
    large = {v: kept_for_backward_mib(v, 32) for v in ("manual", "autograd")}
    for variant in ("manual", "autograd"):
        # Activations are per sequence: four times the batch, about four times
        # the memory (the causal masks and other small tensors do not grow).
        assert 3.5 < large[variant] / small[variant] <= 4.0 + 1e-9
    assert large["manual"] < large["autograd"]
    with pytest.raises(ValueError, match="variant must be one of manual, autograd"):
        kept_for_backward_mib("jax", 2)


def test_bench_transformer_prints_four_rows_at_one_thread_and_all():
    lines = run_bench(
        "--case", "transformer", "--n", "4", "--repeats", "3", timeout=300
    )
    threads = sorted({1, os.cpu_count() or 1})
    columns = 3 * len(threads) + 1  # step ms, IQR, peak MiB per thread count; kept
    rows = {}
    for variant in ("manual", "keep", "autograd", "fused"):
        (row,) = [
            line for line in lines if line.startswith(TRANSFORMER_VARIANTS[variant])
        ]
        rows[variant] = [float(x) for x in row.split()[-columns:]]
    for values in rows.values():
        # No time is asserted, only that each was measured.
        steps, iqrs, peaks = values[0:-1:3], values[1:-1:3], values[2:-1:3]
        assert min(steps) > 0 and min(iqrs) >= 0 and min(peaks) > 0
        assert values[-1] > 0
    (difference,) = [
        line for line in lines if line.startswith("max |grad difference| vs autograd")
    ]
    keep, fused = (float(x) for x in re.findall(r"(\d\.\d+e[-+]\d+)", difference))
    assert keep < 1e-5 and fused < 1e-5
    kept = {variant: values[-1] for variant, values in rows.items()}
    assert kept["manual"] < kept["keep"] < kept["autograd"]


def test_bench_transformer_four_variants_compute_the_same_gradients():
    gradients = {}
    for variant in ("manual", "keep", "autograd", "fused"):
        forward, backward, grads = transformer_step(variant, n=3)
        for _ in range(2):  # a second step must not accumulate
            forward()
            backward()
        gradients[variant] = grads()
    for variant in ("manual", "keep", "fused"):
        for got, expected in zip(
            gradients[variant], gradients["autograd"], strict=True
        ):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_fused_loss_is_the_models_loss_in_float64():
    gpt = TinyGPT(7, 6, 8, 2, 12, 2, tie_weights=True, dtype=torch.float64)
    for p in gpt.parameters():  # away from the initial values: every term shows
        p.add_(torch.randn(p.shape, dtype=torch.float64) * 0.3)
    tokens = torch.randint(7, (3, 6))
    targets = torch.randint(-1, 7, (3, 6))
    targets[0, 0] = 2  # at least one target is not ignored
    ours = TokenCrossEntropy()(gpt(tokens), targets)
    torch.testing.assert_close(fused_loss(gpt, tokens, targets), ours)


def test_kept_activations_order_the_strategies():
    kept = {v: kept_for_backward_mib(v, 16) for v in TRANSFORMER_VARIANTS}
    # What each strategy keeps is sizes, the same on any machine.
    assert kept["manual"] < kept["keep"] < kept["autograd"]
    assert kept["fused"] < kept["autograd"]
