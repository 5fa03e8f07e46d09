"""Time the hand-written backward against torch.autograd: ``python -m backprop.bench``.

The course's MLP, 784 -> 50 -> 1 with a ReLU and an MSE loss, on 50,000 seeded
random float32 inputs and a ``(50000, 1)`` target, on 2 threads. One step is one
forward and one backward pass. Three variants, each with the same data and the
same starting weights:

- ``manual``: :mod:`backprop.modules`. The first ``Lin`` has
  ``input_needs_grad=False``: the input is data, so its gradient is not computed.
- ``autograd``: the course's check of the hand-written gradients
  (``03_backprop``): every tensor of the forward pass, the input included,
  requires a gradient, and ``loss.backward()`` computes them all.
- ``autograd, input as data``: the same, but the input does not require a
  gradient, so autograd skips its gradient too.

Both autograd variants run the very same forward code as the modules
(:mod:`backprop.functional`'s ``lin``, ``relu`` and ``mse``), so the variants
differ only in who computes the backward pass.

The input's gradient is a ``(50000, 50) @ (50, 784)`` product, as expensive as
the forward pass's ``(50000, 784) @ (784, 50)``. Skipping it is where the
manual version saves its time against the course's autograd check. Against
autograd that skips it too, both do the same matrix products and take about
as long: autograd is not slow, it also skips what nobody needs.

Timing: the variants take turns in one process (a step of each per round, so
that load from other processes on the machine slows them alike), after warm-up
steps; the median of ``--repeats`` steps is reported. Memory: each variant runs
again alone in a fresh subprocess, which reads
``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the process's high-water mark of
resident memory. Reported: that peak, and the peak minus the mark once data and
weights are ready (what the passes themselves add).

``python -m backprop.bench --case transformer`` times one training step of a
small GPT (`backprop.transformer.TinyGPT`, 2 blocks, float32, batch of 256
sequences of 15 tokens) four ways (`TRANSFORMER_VARIANTS`): the modules'
backward computing again what it needs from the forward (``intermediates=
"recompute"``, as the series writes its backwards), the same backward reading
what the forward kept (``"keep"``), autograd on the same forward code, and
autograd on the model written with torch's fused functions (`fused_loss`), all
with the same weights. For each: the median step time and its interquartile
range, at one thread and at all of the machine's, the peak resident memory of a
fresh process at each, and the activations kept from the forward for the
backward, in MiB. Also: how long the recomputing backward spends repeating
forward work (each attention's softmax, each GELU's tanh, each layer norm's
statistics, the loss's softmax), measured by running exactly those forwards
again on the saved inputs.

This module is a benchmark against autograd, so it uses autograd; the library
itself never does. The last line printed is ``manual/autograd time ratio: X.XX``
(against the course's check; for the transformer, recompute against autograd
at all threads).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from backprop.attention import _attention_probs
from backprop.functional import cross_entropy, gelu, layernorm, lin, mse, relu
from backprop.modules import MSE, Lin, Model, Module, ReLU
from backprop.transformer import TinyGPT, TokenCrossEntropy, TransformerBlock

__all__ = [
    "TRANSFORMER",
    "TRANSFORMER_VARIANTS",
    "VARIANTS",
    "autograd_step",
    "fused_loss",
    "kept_for_backward_mib",
    "main",
    "make_problem",
    "make_step",
    "manual_step",
    "max_abs_difference",
    "measure_memory",
    "peak_memory",
    "recomputed_forward_seconds",
    "time_transformer",
    "time_variants",
    "transformer_step",
]

N_IN, N_HIDDEN, N_OUT = 784, 50, 1
THREADS = 2
WARMUP = 2
VARIANTS = {
    "manual": "manual (backprop.modules)",
    "autograd": "autograd (input requires grad, as the course's check)",
    "autograd_data": "autograd, input as data",
}
"""The variants compared, by key, with the label each is printed with."""


def make_problem(
    n: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The benchmark's seeded data and Kaiming-initialised weights.

    Parameters
    ----------
    n : int
        Number of inputs.
    seed : int, default 0
        The same seed gives the same data and weights.

    Returns
    -------
    x : torch.Tensor
        Inputs, float32 ``(n, 784)``.
    y : torch.Tensor
        Targets, float32 ``(n, 1)``.
    params : list of torch.Tensor
        ``[w1, b1, w2, b2]`` of shapes ``(784, 50)``, ``(50,)``, ``(50, 1)``,
        ``(1,)``.

    Examples
    --------
    >>> x, y, params = make_problem(8)
    >>> x.shape, y.shape, [tuple(p.shape) for p in params]
    (torch.Size([8, 784]), torch.Size([8, 1]), [(784, 50), (50,), (50, 1), (1,)])
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_IN, generator=generator)
    y = torch.randn(n, N_OUT, generator=generator)
    first = Lin(N_IN, N_HIDDEN, generator=generator)
    second = Lin(N_HIDDEN, N_OUT, generator=generator)
    return x, y, first.parameters() + second.parameters()


Step = Callable[[], None]
Grads = Callable[[], list[torch.Tensor]]


def _module_grads(model: Model) -> list[torch.Tensor]:
    # backprop.modules keeps each gradient in a `.g` attribute on the tensor, as the
    # course does; torch's type stubs do not know that attribute.
    return [p.g for p in model.parameters()]  # type: ignore[attr-defined]


def _autograd_grads(tensors: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    grads = [t.grad for t in tensors]
    if any(g is None for g in grads):
        raise RuntimeError("autograd_step's gradients are read before its first step")
    return [g for g in grads if g is not None]


def manual_step(
    x: torch.Tensor, y: torch.Tensor, params: list[torch.Tensor]
) -> tuple[Step, Grads]:
    """One training step of `backprop.modules`, and a function returning its gradients.

    Parameters
    ----------
    x, y, params : torch.Tensor, torch.Tensor, list of torch.Tensor
        As `make_problem` returns them.

    Returns
    -------
    step : callable
        One forward and backward pass.
    grads : callable
        The weights' and biases' gradients after the last step.
    """
    w1, b1, w2, b2 = params
    layers = [
        Lin.from_tensors(w1, b1, input_needs_grad=False),  # its input is the data
        ReLU(),
        Lin.from_tensors(w2, b2),
    ]
    model = Model(layers, MSE())

    def step() -> None:
        model(x, y)
        model.backward()

    return step, lambda: _module_grads(model)


def autograd_step(
    x: torch.Tensor,
    y: torch.Tensor,
    params: list[torch.Tensor],
    input_requires_grad: bool,
) -> tuple[Step, Grads]:
    """The same forward pass as `manual_step`, differentiated by autograd.

    Parameters
    ----------
    x, y, params : torch.Tensor, torch.Tensor, list of torch.Tensor
        As `make_problem` returns them; they are set to require gradients.
    input_requires_grad : bool
        Whether ``x`` requires a gradient (the course's check) or is data.

    Returns
    -------
    step : callable
        One forward and backward pass.
    grads : callable
        The weights' and biases' gradients after the last step.
    """
    w1, b1, w2, b2 = (p.requires_grad_(True) for p in params)
    x.requires_grad_(input_requires_grad)

    def step() -> None:
        for t in (x, w1, b1, w2, b2):
            # start afresh, as the manual version does (autograd would accumulate)
            t.grad = None
        loss = mse(lin(relu(lin(x, w1, b1)), w2, b2), y)
        torch.autograd.backward(loss)

    return step, lambda: _autograd_grads((w1, b1, w2, b2))


def make_step(variant: str, n: int) -> tuple[Step, Grads]:
    """One variant's step on its own copy of the seeded data and weights.

    Parameters
    ----------
    variant : str
        A key of `VARIANTS`.
    n : int
        Number of inputs.

    Returns
    -------
    step, grads : callable
        As `manual_step` returns them.

    Raises
    ------
    ValueError
        If ``variant`` is not a key of `VARIANTS`.
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}"
        )
    x, y, params = make_problem(n)
    if variant == "manual":
        return manual_step(x, y, params)
    return autograd_step(x, y, params, input_requires_grad=(variant == "autograd"))


def time_variants(
    n: int, repeats: int
) -> tuple[dict[str, float], dict[str, list[torch.Tensor]]]:
    """Median seconds per step of each variant, and each variant's gradients.

    The variants take turns, one step each per round, so that a burst of load
    from other processes on the machine slows them all alike rather than
    whichever happened to run at the time.

    Parameters
    ----------
    n : int
        Number of inputs.
    repeats : int
        Timed steps per variant, after the warm-up steps.

    Returns
    -------
    medians : dict of str to float
        Median seconds per step, by variant.
    grads : dict of str to list of torch.Tensor
        Each variant's gradients after its last step.
    """
    steps = {variant: make_step(variant, n) for variant in VARIANTS}
    for _ in range(WARMUP):
        for step, _grads in steps.values():
            step()
    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(repeats):
        for variant, (step, _grads) in steps.items():
            start = time.perf_counter()
            step()
            times[variant].append(time.perf_counter() - start)
    medians = {variant: statistics.median(t) for variant, t in times.items()}
    return medians, {variant: grads() for variant, (_step, grads) in steps.items()}


def _max_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB.

    ``ru_maxrss`` is in KiB on Linux and in bytes on macOS.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def measure_memory(
    variant: str, n: int, case: str = "mlp", threads: int = THREADS
) -> dict[str, float]:
    """Peak resident memory of a process that sets up one variant and runs a few steps.

    Run it in a fresh process (``--memory-of``): ``ru_maxrss`` is a high-water
    mark for the whole process, so nothing else may have run in it. Two steps
    run after the warm-up, because a module keeps the previous step's
    activations until the next step replaces them.

    Parameters
    ----------
    variant : str
        A key of `VARIANTS` (or of `TRANSFORMER_VARIANTS` for the transformer).
    n : int
        Number of inputs (sequences for the transformer).
    case : {"mlp", "transformer"}, default "mlp"
        Which model.
    threads : int, default 2
        Threads for torch.

    Returns
    -------
    dict of str to float
        ``setup_mib``, the mark in MiB once the data and weights exist, and
        ``peak_mib``, the mark after the steps.
    """
    torch.set_num_threads(threads)
    if case == "transformer":
        forward, backward, _grads = transformer_step(variant, n)

        def step() -> None:
            forward()
            backward()

    else:
        step, _grads = make_step(variant, n)
    setup_mib = _max_rss_mib()
    for _ in range(WARMUP + 2):
        step()
    return {"setup_mib": setup_mib, "peak_mib": _max_rss_mib()}


def _memory_in_subprocess(
    variant: str, n: int, case: str = "mlp", threads: int = THREADS
) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "backprop.bench",
        "--case",
        case,
        "--memory-of",
        variant,
        "--n",
        str(n),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement of {variant} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_memory(variant: str, n: int, case: str = "mlp") -> dict[str, float]:
    """`measure_memory` of one variant, run in a fresh Python process.

    Parameters
    ----------
    variant : str
        A key of `VARIANTS`, or of `TRANSFORMER_VARIANTS` with ``case="transformer"``.
    n : int
        Number of inputs (sequences for the transformer).
    case : {"mlp", "transformer"}, default "mlp"
        Which model.

    Returns
    -------
    dict of str to float
        As `measure_memory`: ``setup_mib`` and ``peak_mib``.

    Raises
    ------
    RuntimeError
        If the process fails.
    """
    return _memory_in_subprocess(variant, n, case)


def max_abs_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    r"""The largest absolute difference between two lists of tensors, pair by pair.

    Parameters
    ----------
    a, b : list of torch.Tensor
        Equally long, with tensors of matching shapes.

    Returns
    -------
    float
        $\max_k \max \lvert a_k - b_k \rvert$.

    Raises
    ------
    ValueError
        If the lists differ in length.

    Examples
    --------
    >>> max_abs_difference([torch.ones(2)], [torch.tensor([1.0, 0.5])])
    0.5
    """
    return max((ga - gb).abs().max().item() for ga, gb in zip(a, b, strict=True))


def main(argv: list[str] | None = None) -> None:
    """The command line, ``python -m backprop.bench [--n N] [--repeats R]``.

    Prints a table of the variants' median time per step and peak memory, the
    largest gradient difference between them, and last the line
    ``manual/autograd time ratio: X.XX``.

    Parameters
    ----------
    argv : list of str or None, default None
        The arguments; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(
        prog="python -m backprop.bench",
        description=(
            "Time one forward and backward pass of backprop.modules "
            "against torch.autograd."
        ),
    )
    parser.add_argument(
        "--case",
        choices=["mlp", "transformer"],
        default="mlp",
        help="the course's MLP (default) or a small GPT",
    )
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="number of inputs (default 50000; 256 sequences for the transformer)",
    )
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed steps per variant (default 10)"
    )
    parser.add_argument(
        "--memory-of",
        choices=sorted({*VARIANTS, *TRANSFORMER_VARIANTS}),
        help="only measure one variant's peak memory (JSON)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=THREADS,
        help=f"threads for --memory-of (default {THREADS})",
    )
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = TRANSFORMER["n"] if args.case == "transformer" else 50_000
    if args.n < 1 or args.repeats < 1:
        parser.error(
            f"--n and --repeats must be positive, got {args.n} and {args.repeats}"
        )

    if args.memory_of is not None:  # a worker process: report as one JSON line
        print(
            json.dumps(measure_memory(args.memory_of, args.n, args.case, args.threads))
        )
        return
    if args.case == "transformer":
        _main_transformer(args.n, args.repeats)
        return

    memory = {variant: _memory_in_subprocess(variant, args.n) for variant in VARIANTS}
    torch.set_num_threads(THREADS)
    medians, grads = time_variants(args.n, args.repeats)

    print(
        f"MLP {N_IN} -> {N_HIDDEN} -> {N_OUT} (ReLU, MSE), {args.n:,} float32 inputs, "
        f"{THREADS} threads; median of {args.repeats} steps after {WARMUP} warm-up "
        "steps"
    )
    width = max(map(len, VARIANTS.values()))
    print(
        f"{'variant':<{width}}  {'median ms':>9}  {'peak MiB':>8}  {'passes MiB':>10}"
    )
    for variant, label in VARIANTS.items():
        m = memory[variant]
        print(
            f"{label:<{width}}  {1000 * medians[variant]:>9.1f}  {m['peak_mib']:>8.0f} "
            " "
            f"{m['peak_mib'] - m['setup_mib']:>10.0f}"
        )
    difference = max(
        max_abs_difference(grads["manual"], grads["autograd"]),
        max_abs_difference(grads["manual"], grads["autograd_data"]),
    )
    print(
        "max |grad difference| manual vs autograd (weights and biases): "
        f"{difference:.3e}"
    )
    as_data = medians["manual"] / medians["autograd_data"]
    print(f"manual/autograd (input as data) time ratio: {as_data:.2f}")
    print(f"manual/autograd time ratio: {medians['manual'] / medians['autograd']:.2f}")


# ---------------------------------------------------------------- the transformer

TRANSFORMER = {
    "vocab": 10,
    "length": 15,
    "d_model": 48,
    "n_heads": 4,
    "d_ff": 192,
    "n_layers": 2,
    "n": 256,
}
"""The transformer case: `TinyGPT`'s sizes, and the default batch ``n``."""

TRANSFORMER_VARIANTS = {
    "manual": "manual (backprop.transformer), recompute",
    "autograd": "autograd (same forward)",
    "keep": "manual, keep",
    "fused": "autograd (torch's fused functions)",
}
"""The transformer case's variants, by key, with the label each is printed with.

``manual`` is `TinyGPT`'s backward as the series writes it, computing again what
it needs from the forward (``intermediates="recompute"``); ``keep`` the same
backward reading what the forward kept (``intermediates="keep"``); ``autograd``
autograd on the same forward code; ``fused`` autograd on the same model written
with torch's fused functions, ``F.layer_norm``, ``F.gelu`` and
``F.scaled_dot_product_attention``, with the same weights."""

TABLE_ORDER = ("manual", "keep", "autograd", "fused")


def _tiny_gpt_problem(
    n: int, intermediates: str = "recompute"
) -> tuple[TinyGPT, torch.Tensor, torch.Tensor]:
    c = TRANSFORMER
    generator = torch.Generator().manual_seed(0)
    gpt = TinyGPT(
        c["vocab"],
        c["length"],
        c["d_model"],
        c["n_heads"],
        c["d_ff"],
        c["n_layers"],
        intermediates=intermediates,
        generator=generator,
    )
    tokens = torch.randint(c["vocab"], (n, c["length"]), generator=generator)
    targets = torch.randint(c["vocab"], (n, c["length"]), generator=generator)
    return gpt, tokens, targets


def fused_loss(
    gpt: TinyGPT, tokens: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """`TinyGPT`'s forward and loss with torch's fused functions, on its weights.

    ``F.layer_norm``, ``F.gelu`` and ``F.scaled_dot_product_attention`` in place
    of the series' layer norm, GELU and attention (each a single operation to
    autograd, with its own backward and its own choice of what to save); the
    rest as in `TinyGPT`: the same matrix products, embeddings and loss.

    Parameters
    ----------
    gpt : TinyGPT
        The model whose weights to use.
    tokens, targets : torch.Tensor
        Integers ``(N, T)``; a target of -1 is ignored, as `TokenCrossEntropy`.

    Returns
    -------
    torch.Tensor
        The mean cross-entropy, a scalar.

    Examples
    --------
    >>> gpt, tokens, targets = _tiny_gpt_problem(2)
    >>> theirs = fused_loss(gpt, tokens, targets)
    >>> ours = TokenCrossEntropy()(gpt(tokens), targets)
    >>> torch.allclose(theirs, ours, atol=1e-6)
    True
    """
    d_model = gpt.tok.table.shape[1]
    shape = (d_model,)
    length = tokens.shape[1]
    x = F.embedding(tokens, gpt.tok.table) + gpt.pos.table[:length]
    for block in gpt.blocks.layers:
        assert isinstance(block, TransformerBlock)
        a, ln1, ln2 = block.attention, block.ln1, block.ln2
        h = F.layer_norm(x, shape, ln1.gamma, ln1.beta, ln1.eps)
        q, k, v = (
            a._split(lin(h, w, b))
            for w, b in ((a.w_q, a.b_q), (a.w_k, a.b_k), (a.w_v, a.b_v))
        )
        heads = F.scaled_dot_product_attention(q, k, v, is_causal=a.causal)
        x = x + lin(a._merge(heads), a.w_o, a.b_o)
        h = F.layer_norm(x, shape, ln2.gamma, ln2.beta, ln2.eps)
        hidden = F.gelu(
            lin(h, block.up.w, block.up.b), approximate=block.gelu.approximate
        )
        x = x + lin(hidden, block.down.w, block.down.b)
    ln_f = gpt.ln_f
    h = F.layer_norm(x, shape, ln_f.gamma, ln_f.beta, ln_f.eps)
    logits = lin(h, gpt._w_head())
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1
    )


def _check_variant(variant: str) -> None:
    if variant not in TRANSFORMER_VARIANTS:
        raise ValueError(
            f"variant must be one of {', '.join(TRANSFORMER_VARIANTS)}, got {variant!r}"
        )


def transformer_step(variant: str, n: int) -> tuple[Step, Step, Grads]:
    """The seeded `TinyGPT` case's forward pass (with the loss) and backward pass.

    Parameters
    ----------
    variant : str
        A key of `TRANSFORMER_VARIANTS`: ``"manual"`` and ``"keep"``
        (``model.backward()``, the two strategies), ``"autograd"`` (the same
        forward on parameters that require gradients, then ``loss.backward()``)
        or ``"fused"`` (`fused_loss`, then ``loss.backward()``).
    n : int
        Sequences in the batch.

    Returns
    -------
    forward : callable
        The forward pass and the loss.
    backward : callable
        The backward pass of the last forward.
    grads : callable
        The parameters' gradients after the last backward.

    Raises
    ------
    ValueError
        If ``variant`` is not a key of `TRANSFORMER_VARIANTS`.

    Examples
    --------
    >>> forward, backward, grads = transformer_step("keep", n=2)
    >>> forward()
    >>> backward()
    >>> len(grads())
    37
    """
    _check_variant(variant)
    intermediates = "keep" if variant == "keep" else "recompute"
    gpt, tokens, targets = _tiny_gpt_problem(n, intermediates)
    loss_fn = TokenCrossEntropy()
    params = gpt.parameters()
    if variant in ("manual", "keep"):
        model = Model([gpt], loss_fn)

        def forward() -> None:
            model(tokens, targets)

        return forward, model.backward, lambda: _module_grads(model)

    for p in params:
        p.requires_grad_(True)
    losses: list[torch.Tensor] = []

    def autograd_forward() -> None:
        for p in params:
            p.grad = None  # start afresh, as the manual version does
        if variant == "fused":
            losses[:] = [fused_loss(gpt, tokens, targets)]
        else:
            losses[:] = [loss_fn(gpt(tokens), targets)]

    def autograd_backward() -> None:
        torch.autograd.backward(losses.pop())

    return autograd_forward, autograd_backward, lambda: _autograd_grads(tuple(params))


def recomputed_forward_seconds(n: int, repeats: int = 5) -> float:
    """Median seconds of the forward work that the manual backward repeats.

    The hand-written backwards take the forward's inputs, not its intermediate
    results, so they compute again what autograd saved in its forward: each
    attention's scores and softmax (`backprop.functional.attention_backward`),
    each GELU's tanh, each layer norm's mean and variance, the loss's softmax.
    This times exactly those forwards, run again on the inputs the modules
    saved after one step.

    Parameters
    ----------
    n : int
        Sequences in the batch.
    repeats : int, default 5
        Timed repetitions; the median is returned.

    Returns
    -------
    float
        Seconds per step.
    """
    gpt, tokens, targets = _tiny_gpt_problem(n)
    model = Model([gpt], TokenCrossEntropy())
    model(tokens, targets)
    # (forward, its inputs) pairs: what each hand-written backward computes again.
    work: list[tuple[Callable[..., object], tuple[object, ...]]] = []
    for block in gpt.blocks.layers:
        assert isinstance(block, TransformerBlock)
        q, k, _v, _merged, _probs = block.attention.saved
        mask = block.attention._mask(q.shape[-2], q.device)
        work.append((_attention_probs, (q, k, mask)))  # S = q kᵀ/√d and its softmax
        for norm in (block.ln1, block.ln2):
            work.append((layernorm, (norm.args[0], norm.gamma, norm.beta)))
        work.append((gelu, (block.up.out,)))
    final = gpt.ln_f
    work.append((layernorm, (final.args[0], final.gamma, final.beta)))
    logits = gpt.out.reshape(-1, gpt.out.shape[-1])
    work.append((cross_entropy, (logits, targets.reshape(-1))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for function, inputs in work:
            function(*inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _storages(tensors: Iterable[torch.Tensor]) -> dict[int, int]:
    """Bytes of each distinct storage behind ``tensors``, by its address."""
    return {
        t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors
    }


def _kept_by_modules(module: object) -> list[torch.Tensor]:
    """Every tensor a module tree keeps between its forward and its backward."""
    kept: list[torch.Tensor] = []
    stack, seen = [module], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for name, value in vars(obj).items():
            values = value if isinstance(value, list | tuple) else [value]
            for v in values:
                if isinstance(v, torch.Tensor) and name in ("args", "out", "saved"):
                    kept.append(v)
                elif isinstance(v, Module):
                    stack.append(v)
    return kept


def kept_for_backward_mib(variant: str, n: int) -> float:
    """MiB of activations kept from the forward pass for the backward, one variant.

    For ``"manual"`` and ``"keep"``: every tensor the modules keep (their
    inputs, outputs and saved intermediates); for ``"autograd"`` and
    ``"fused"``: every tensor autograd saves for its backward (collected with
    ``torch.autograd.graph.saved_tensors_hooks``). Tensors sharing memory count
    once; the parameters and the batch itself are left out (every variant holds
    them anyway). Unlike `measure_memory`, this runs in the current process and
    does not depend on the allocator.

    Parameters
    ----------
    variant : str
        A key of `TRANSFORMER_VARIANTS`.
    n : int
        Sequences in the batch.

    Returns
    -------
    float
        MiB.

    Raises
    ------
    ValueError
        If ``variant`` is not a key of `TRANSFORMER_VARIANTS`.

    Examples
    --------
    >>> kept_for_backward_mib("manual", 4) < kept_for_backward_mib("keep", 4)
    True
    """
    _check_variant(variant)
    intermediates = "keep" if variant == "keep" else "recompute"
    gpt, tokens, targets = _tiny_gpt_problem(n, intermediates)
    exclude = _storages([*gpt.parameters(), tokens, targets])
    saved: list[torch.Tensor] = []
    if variant in ("manual", "keep"):
        model = Model([gpt], TokenCrossEntropy())
        model(tokens, targets)
        saved = _kept_by_modules(model.layers)
        saved += _kept_by_modules(model.loss)
    else:
        for p in gpt.parameters():
            p.requires_grad_(True)

        def pack(t: torch.Tensor) -> torch.Tensor:
            saved.append(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            if variant == "fused":
                fused_loss(gpt, tokens, targets)
            else:
                TokenCrossEntropy()(gpt(tokens), targets)
    storages = _storages(saved)
    return sum(b for ptr, b in storages.items() if ptr not in exclude) / 2**20


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile); all three equal for one value."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def time_transformer(
    n: int, repeats: int, threads: int | None = None
) -> dict[str, dict[str, float]]:
    """Step times of every variant: medians and quartiles, and how far apart they are.

    The variants take turns, a step each per round, after warm-up steps, so that
    load from other processes on the machine slows them alike.

    Parameters
    ----------
    n : int
        Sequences in the batch.
    repeats : int
        Timed steps per variant.
    threads : int or None, default None
        Threads for torch during the timing (the setting is restored after);
        None leaves it as it is.

    Returns
    -------
    dict
        ``{variant: {"forward": s, "backward": s, "step": s, "step_q1": s,
        "step_q3": s}}``, medians and the quartiles of the step time; and, under
        ``"difference"``, ``{variant: d}``: the largest gradient difference of
        each variant against ``"autograd"``, and ``"max_abs"``, that of
        ``"manual"``.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        steps = {v: transformer_step(v, n) for v in TRANSFORMER_VARIANTS}
        for _ in range(WARMUP):
            for forward, backward, _grads in steps.values():
                forward()
                backward()
        times: dict[str, dict[str, list[float]]] = {
            v: {"forward": [], "backward": [], "step": []} for v in TRANSFORMER_VARIANTS
        }
        for _ in range(repeats):
            for variant, (forward, backward, _grads) in steps.items():
                start = time.perf_counter()
                forward()
                middle = time.perf_counter()
                backward()
                end = time.perf_counter()
                times[variant]["forward"].append(middle - start)
                times[variant]["backward"].append(end - middle)
                times[variant]["step"].append(end - start)
    finally:
        torch.set_num_threads(before)
    result = {}
    for v, parts in times.items():
        result[v] = {part: statistics.median(t) for part, t in parts.items()}
        result[v]["step_q1"], _, result[v]["step_q3"] = _quartiles(parts["step"])
    grads = {v: g() for v, (_f, _b, g) in steps.items()}
    result["difference"] = {
        v: max_abs_difference(grads[v], grads["autograd"]) for v in grads
    }
    result["difference"]["max_abs"] = result["difference"]["manual"]
    return result


def _main_transformer(n: int, repeats: int) -> None:
    all_threads = os.cpu_count() or 1
    thread_counts = sorted({1, all_threads})
    memory = {
        (v, t): _memory_in_subprocess(v, n, "transformer", t)
        for t in thread_counts
        for v in TRANSFORMER_VARIANTS
    }
    timing = {t: time_transformer(n, repeats, threads=t) for t in thread_counts}
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    recomputed = recomputed_forward_seconds(n, repeats)
    torch.set_num_threads(threads_before)
    kept = {v: kept_for_backward_mib(v, n) for v in TRANSFORMER_VARIANTS}
    c = TRANSFORMER
    baseline = min(m["setup_mib"] for m in memory.values())
    print(
        f"TinyGPT: {c['n_layers']} blocks, d_model {c['d_model']}, "
        f"{c['n_heads']} heads, d_ff {c['d_ff']}, vocab {c['vocab']}; {n} float32 "
        f"sequences of {c['length']} tokens; {os.cpu_count()} cores"
    )
    print(
        f"step: median of {repeats} steps (forward and backward) after {WARMUP} "
        "warm-up steps, IQR: their interquartile range; peak: the process's peak "
        f"resident memory (about {baseline:.0f} MiB before the first step); "
        "kept: the activations kept for the backward"
    )
    width = max(map(len, TRANSFORMER_VARIANTS.values()))
    group = "{:^26}"
    print(
        " " * width
        + "".join(
            "  " + group.format(f"{t} thread{'s' if t > 1 else ''}")
            for t in thread_counts
        )
    )
    print(
        f"{'variant':<{width}}"
        + f"  {'step ms':>8}  {'IQR':>6}  {'peak MiB':>8}" * len(thread_counts)
        + f"  {'kept MiB':>8}"
    )
    for variant in TABLE_ORDER:
        row = f"{TRANSFORMER_VARIANTS[variant]:<{width}}"
        for t in thread_counts:
            times = timing[t][variant]
            iqr = times["step_q3"] - times["step_q1"]
            peak = memory[(variant, t)]["peak_mib"]
            row += f"  {1000 * times['step']:>8.1f}  {1000 * iqr:>6.1f}  {peak:>8.0f}"
        print(row + f"  {kept[variant]:>8.1f}")
    differences = timing[all_threads]["difference"]
    print(
        "max |grad difference| manual vs autograd (all parameters): "
        f"{differences['manual']:.3e}"
    )
    print(
        f"max |grad difference| vs autograd: keep {differences['keep']:.3e}, "
        f"fused {differences['fused']:.3e}"
    )
    print(
        "forward work the manual backward repeats (softmaxes, tanh, layer norm "
        f"statistics), which autograd saved: {1000 * recomputed:.1f} ms per step "
        "at 1 thread"
    )
    print(
        "activations kept for the backward: "
        f"manual {kept['manual']:.1f} MiB, autograd {kept['autograd']:.1f} MiB"
    )
    for variant in ("keep", "fused"):
        ratios = ", ".join(
            f"{timing[t][variant]['step'] / timing[t]['autograd']['step']:.2f} "
            f"at {t} thread{'s' if t > 1 else ''}"
            for t in thread_counts
        )
        print(f"{variant}/autograd time ratio: {ratios}")
    ratio = (
        timing[all_threads]["manual"]["step"] / timing[all_threads]["autograd"]["step"]
    )
    print(f"manual/autograd time ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
