"""Parity on torch's own test inputs: every ``torchff.functional`` op with a torch counterpart runs
the samples of that op's OpInfo (``torch.testing._internal.common_methods_invocations.op_db``):
``sample_inputs`` and ``reference_inputs`` (extremal values, larger and non-contiguous tensors,
broadcasting, every reduction and keyword torch tests), in float64 and float32 on CPU.

For each sample: the same values (dtype and shape included, nan where torch gives nan), the same
gradients for a fixed random cotangent w.r.t. every floating tensor that requires grad (input,
weights, targets, variances), and, in float64, the same forward-mode tangents (``torch.func.jvp``).
``error_inputs`` must raise torch's error type with a message matching torch's.

Samples are left out only where torchff differs from torch by design, each with its reason in
:data:`DEVIATIONS`; a test asserts that each deviation still matches at least one sample (so a
stale entry cannot hide a new disagreement).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from typing import Callable

import pytest
import torch
from torch.testing._internal.common_methods_invocations import op_db
from torch.utils._pytree import tree_flatten, tree_map

import torchff.functional as F

pytestmark = pytest.mark.usefixtures("one_thread")


def _linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                          ignore_index=None, label_smoothing=0.0, options=None):
    """torch's keyword names (``linear_bias``, ``options.batch_chunk_size``) on torchff's signature."""
    assert weight is None, "filtered out by DEVIATIONS"
    chunk = None if options is None else options.batch_chunk_size
    return F.linear_cross_entropy(
        input, linear_weight, target, linear_bias, ignore_index=-100 if ignore_index is None else ignore_index,
        reduction=reduction, label_smoothing=label_smoothing, chunk_size=chunk,
    )


# OpInfo (name, variant) -> the torchff.functional op that computes the same thing
OPS: dict[tuple[str, str], Callable] = {
    ("nn.functional.relu", ""): F.relu,
    ("nn.functional.leaky_relu", ""): F.leaky_relu,
    ("nn.functional.prelu", ""): F.prelu,
    ("abs", ""): F.abs_relu,
    ("nn.functional.softplus", ""): F.softplus,
    ("sigmoid", ""): F.sigmoid,
    ("softmax", ""): F.softmax,
    ("softmax", "with_dtype"): F.softmax,
    ("log_softmax", ""): F.log_softmax,
    ("log_softmax", "with_dtype"): F.log_softmax,
    ("nn.functional.cross_entropy", ""): F.cross_entropy,
    ("nn.functional.nll_loss", ""): F.nll_loss,
    ("nn.functional.binary_cross_entropy_with_logits", ""): F.binary_cross_entropy_with_logits,
    ("nn.functional.mse_loss", ""): F.mse_loss,
    ("nn.functional.l1_loss", ""): F.l1_loss,
    ("nn.functional.gaussian_nll_loss", ""): F.gaussian_nll_loss,
    ("nn.functional.linear_cross_entropy", ""): _linear_cross_entropy,
    ("nn.functional.linear_cross_entropy", "chunked"): _linear_cross_entropy,
    ("nn.functional.linear_cross_entropy", "chunked_none"): _linear_cross_entropy,
}

_BY_KEY = {(o.name, o.variant_test_name): o for o in op_db}
_IDS = [f"{n}.{v}" if v else n for n, v in OPS]


@dataclasses.dataclass(frozen=True)
class Deviation:
    """Samples of one op where torchff differs from torch by design (documented where ``where`` says)."""

    op: str
    reason: str
    where: str
    matches: Callable[[object], bool]


def _lce_outside_signature(s) -> bool:
    w, t = s.args[0], s.args[1]
    return w.dim() != 2 or t.is_floating_point() or s.kwargs.get("weight") is not None


DEVIATIONS: list[Deviation] = [
    Deviation(
        "nn.functional.linear_cross_entropy",
        "outside torchff's signature: torch's op also takes a class weight, several class dims and "
        "probability targets; torchff's fused layer takes a (C, H) weight and class-index targets",
        "torchff.functional.linear_cross_entropy docstring",
        _lce_outside_signature,
    ),
]


def _deviation(name: str, sample) -> Deviation | None:
    return next((d for d in DEVIATIONS if d.op == name and d.matches(sample)), None)


def _samples(op, dtype, requires_grad=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        yield from op.reference_inputs("cpu", dtype, requires_grad=requires_grad)


def _diff_leaves(sample) -> list[torch.Tensor]:
    leaves, _ = tree_flatten((sample.input, sample.args, sample.kwargs))
    return [t for t in leaves if isinstance(t, torch.Tensor) and t.requires_grad]


def _call(fn, sample):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # size_average/reduce deprecation, implicit softmax dim
        return fn(sample.input, *sample.args, **sample.kwargs)


def _describe(sample) -> str:
    def short(x):
        if isinstance(x, torch.Tensor):
            return f"Tensor{tuple(x.shape)}:{str(x.dtype).replace('torch.', '')}" + ("" if x.is_contiguous() else ":strided")
        return x

    args = tree_map(short, (sample.input, sample.args, sample.kwargs))
    return f"input={args[0]} args={args[1]} kwargs={args[2]}"


def _close(what, a, b, dtype):
    try:
        torch.testing.assert_close(a, b, equal_nan=True, **({} if dtype == torch.float64 else dict(rtol=1.3e-6, atol=1e-5)))
    except AssertionError as e:
        return f"{what}: {str(e).splitlines()[0]} ... {' '.join(str(e).split())[:300]}"
    return None


def _compare(fn, op, sample, dtype) -> str | None:
    """None when torchff agrees with torch on ``sample``, else what disagreed."""
    try:
        ours = _call(fn, sample)
    except Exception as e:  # noqa: BLE001 - any error is a disagreement where torch's op works
        try:
            _call(op.op, sample)
        except Exception:  # noqa: BLE001 - both raise: not a sample for parity
            return None
        return f"torchff raises {type(e).__name__}: {e}; torch's op works"
    theirs = _call(op.op, sample)
    bad = _close("value", ours, theirs, dtype)
    if bad:
        return bad
    diff = _diff_leaves(sample)
    if not diff or not theirs.requires_grad:
        return None
    if not ours.requires_grad:
        return "torchff's output does not require grad, torch's does"
    gen = torch.Generator().manual_seed(1)
    cot = torch.randn(theirs.shape, generator=gen, dtype=torch.float64).to(theirs.dtype)
    ga = torch.autograd.grad(ours, diff, cot, allow_unused=True, materialize_grads=True)
    gb = torch.autograd.grad(theirs, diff, cot, allow_unused=True, materialize_grads=True)
    for i, (a, b) in enumerate(zip(ga, gb)):
        bad = _close(f"gradient {i}", a, b, dtype)
        if bad:
            return bad
    return None


def _run_all(key, dtype, compare) -> None:
    op, fn = _BY_KEY[key], OPS[key]
    failures, checked = [], 0
    for k, sample in enumerate(_samples(op, dtype)):
        if _deviation(key[0], sample):
            continue
        checked += 1
        bad = compare(fn, op, sample, dtype)
        if bad:
            failures.append(f"sample {k} ({_describe(sample)}): {bad}")
    assert checked > 0, f"no sample of {key} was checked"
    assert not failures, f"{len(failures)} of {checked} samples disagree with torch:\n" + "\n".join(failures[:10])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("key", list(OPS), ids=_IDS)
def test_values_and_gradients_match_torch(key, dtype):
    _run_all(key, dtype, _compare)


def _compare_jvp(fn, op, sample, dtype) -> str | None:
    """Forward mode: ``torch.func.jvp`` of torchff's op equals torch's, tangents on every floating
    tensor that requires grad (skipped where torch's op itself has no forward-mode formula)."""
    diff = _diff_leaves(sample)
    if not diff:
        return None
    gen = torch.Generator().manual_seed(2)
    tangents = [torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in diff]

    def as_function_of(f):
        def g(*primals):
            by_id = {id(t): p for t, p in zip(diff, primals)}
            s = tree_map(lambda x: by_id.get(id(x), x), (sample.input, sample.args, sample.kwargs))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return f(s[0], *s[1], **s[2])

        return g

    primals = [t.detach() for t in diff]
    try:
        _, want = torch.func.jvp(as_function_of(op.op), tuple(primals), tuple(tangents))
    except Exception:  # noqa: BLE001 - torch's op has no forward mode here (or the sample is invalid)
        return None
    try:
        _, got = torch.func.jvp(as_function_of(fn), tuple(primals), tuple(tangents))
    except Exception as e:  # noqa: BLE001
        return f"torch.func.jvp of torchff raises {type(e).__name__}: {str(e)[:200]}; torch's works"
    return _close("jvp tangent", got, want, dtype)


@pytest.mark.parametrize("key", [k for k in OPS if _BY_KEY[k].supports_forward_ad], ids=[
    i for k, i in zip(OPS, _IDS) if _BY_KEY[k].supports_forward_ad])
def test_forward_mode_matches_torch(key):
    _run_all(key, torch.float64, _compare_jvp)


def _has_error_inputs(key) -> bool:
    op = _BY_KEY[key]
    return op.error_inputs_func is not None and any(
        not _deviation(key[0], e.sample_input) for e in op.error_inputs("cpu"))


# (linear_cross_entropy's error inputs all use probability targets: outside torchff's signature)
_ERROR_KEYS = [k for k in OPS if _has_error_inputs(k)]


@pytest.mark.parametrize("key", _ERROR_KEYS, ids=[i for k, i in zip(OPS, _IDS) if k in _ERROR_KEYS])
def test_error_inputs_raise_torchs_errors(key):
    op, fn = _BY_KEY[key], OPS[key]
    errors = [e for e in op.error_inputs("cpu") if not _deviation(key[0], e.sample_input)]
    assert errors
    wrong = []
    for e in errors:
        try:
            _call(fn, e.sample_input)
        except Exception as got:  # noqa: BLE001
            if isinstance(got, e.error_type) and re.search(e.error_regex, str(got)):
                continue
            wrong.append(f"{_describe(e.sample_input)}: {type(got).__name__}: {got}")
        else:
            wrong.append(f"{_describe(e.sample_input)}: no error")
        wrong[-1] += f" (torch: {e.error_type.__name__} matching {e.error_regex!r})"
    assert not wrong, f"{len(wrong)} of {len(errors)} error inputs differ from torch's:\n" + "\n".join(wrong)


def test_every_op_and_deviation_is_real():
    # the OpInfos exist in this torch (a renamed one would otherwise drop out silently) ...
    assert set(OPS) <= set(_BY_KEY), sorted(set(OPS) - set(_BY_KEY))
    assert {k[0] for k in _ERROR_KEYS} == {
        "nn.functional.prelu", "nn.functional.l1_loss", "nn.functional.gaussian_nll_loss"}
    # ... and each deviation still leaves out at least one sample, in both dtypes, but not all of them
    for d in DEVIATIONS:
        keys = [k for k in OPS if k[0] == d.op]
        assert keys, d
        for dtype in (torch.float64, torch.float32):
            flags = [bool(d.matches(s)) for k in keys for s in _samples(_BY_KEY[k], dtype)]
            assert any(flags) and not all(flags), (d.op, dtype)


def test_the_comparison_can_fail():
    relu = _BY_KEY[("nn.functional.relu", "")]
    sample = next(s for s in _samples(relu, torch.float64) if (s.input > 0).sum() > 1)

    class WrongGradient(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return x.clamp_min(0)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output)

        @staticmethod
        def backward(ctx, g):
            return 2 * g * (ctx.saved_tensors[0] > 0)

    assert _compare(F.relu, relu, sample, torch.float64) is None
    assert _compare(lambda x: F.relu(x) * 1.001, relu, sample, torch.float64).startswith("value")
    assert _compare(lambda x: F.relu(x).float(), relu, sample, torch.float64).startswith("value")  # dtype
    assert _compare(WrongGradient.apply, relu, sample, torch.float64).startswith("gradient 0")
    assert _compare_jvp(lambda x: F.abs_relu(x) * 1.001, _BY_KEY[("abs", "")], sample, torch.float64).startswith("jvp")
