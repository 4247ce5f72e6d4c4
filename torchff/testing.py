"""A reusable checker for custom autograd Functions and modules.

``check(fn, *inputs, reference=...)`` proves, in one call, what torchff proves for each
of its own Functions:

* ``torch.autograd.gradcheck`` in float64 (first derivatives),
* ``torch.autograd.gradgradcheck`` in float64, or a check that double backward raises
  a clear error when the Function states it is unsupported,
* parity of values and gradients against a reference callable, in the inputs' own dtypes,
* batched gradients: ``gradcheck(check_batched_grad=True)``, ``autograd.grad(is_grads_batched=True)``
  and ``autograd.functional.jacobian(vectorize=True)`` against one cotangent at a time,
* forward mode: ``gradcheck(check_forward_ad=True)``, ``torch.func.jvp`` against the reverse-mode
  Jacobian, batched forward mode (``check_batched_forward_grad=True``, ``torch.func.jacfwd``) and
  forward-over-reverse (``gradgradcheck(check_fwd_over_rev=True)``); each left out only with a
  declared reason (``check(..., unsupported={"forward_ad": "why"})``),
* ``torch.func.vmap`` and ``torch.func.jacrev`` agreement with the eager result,
* ``torch.compile(fullgraph=True)`` agreement (no graph break allowed),
* the bytes saved for backward, counted with ``torch.autograd.graph.saved_tensors_hooks``
  and de-duplicated by storage, optionally against an exact expected number.

Each check raises ``AssertionError`` with a message naming what disagreed; ``check``
returns a :class:`CheckReport` with the saved-bytes numbers for further assertions.

Example::

    import torch, torchff.functional as F
    from torchff.testing import check
    x = torch.randn(16, 8, requires_grad=True)
    report = check(F.leaky_relu, x, reference=torch.nn.functional.leaky_relu)
    assert report.saved_bytes <= report.reference_saved_bytes
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch.autograd.gradcheck import GradcheckError
from torch.utils._pytree import tree_flatten

__all__ = [
    "CheckReport",
    "SavedTensors",
    "BATCHED_FORWARD_GRAD_WAYS",
    "BATCHED_GRAD_WAYS",
    "DOUBLE_BACKWARD_UNSUPPORTED",
    "FORWARD_AD_WAYS",
    "OPTIONAL_CHECKS",
    "check",
    "check_batched_forward_grad",
    "check_batched_grad",
    "check_compile",
    "check_forward_ad",
    "check_gradcheck",
    "check_gradgradcheck",
    "check_parity",
    "check_saved_bytes",
    "check_vmap",
    "default_tolerances",
    "saved_tensors",
    "all_finite",
    "nan_safe_equal",
]


# --------------------------------------------------------------------------------------
# saved tensors
# --------------------------------------------------------------------------------------
def _storage_key(t: torch.Tensor) -> tuple:
    s = t.untyped_storage()
    return (t.device.type, t.device.index, s.data_ptr(), s.nbytes())


@dataclass
class SavedTensors:
    """What a forward pass saved for backward, one entry per distinct storage.

    ``entries`` lists ``(shape, dtype, storage_nbytes)`` per storage, ``total`` is their
    sum. ``beyond(*tensors)`` gives the bytes that are *not* shared with the given tensors
    (for example the output, which the next layer keeps anyway).
    """

    entries: list[tuple[tuple[int, ...], torch.dtype, int]] = field(default_factory=list)
    keys: list[tuple] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(e[2] for e in self.entries)

    def beyond(self, *tensors: torch.Tensor) -> int:
        kept = {_storage_key(t) for t in tensors if isinstance(t, torch.Tensor)}
        return sum(e[2] for e, k in zip(self.entries, self.keys) if k not in kept)

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        parts = ", ".join(f"{tuple(s)}:{str(d).replace('torch.', '')}={n}B" for s, d, n in self.entries)
        return f"SavedTensors(total={self.total}B: {parts})"


def saved_tensors(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, SavedTensors]:
    """Run ``fn(*args, **kwargs)`` and record what autograd saved for backward.

    Returns ``(output, SavedTensors)``. Storages are de-duplicated: two saved views of one
    buffer count once, at the size of the whole storage (that is what stays allocated).
    Keep the output alive while you use ``beyond`` so that its storage cannot be reused.

    Only tensors given to ``ctx.save_for_backward`` (and torch's own saved tensors) are seen;
    a tensor stored as a plain ``ctx`` attribute bypasses the hooks and is not counted.
    """
    record = SavedTensors()
    seen: set[tuple] = set()
    holders: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in seen:
            seen.add(key)
            record.keys.append(key)
            record.entries.append((tuple(t.shape), t.dtype, t.untyped_storage().nbytes()))
            holders.append(t)  # keep alive so that data_ptrs stay unique during the run
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args, **kwargs)
    return out, record


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def default_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) for comparing two implementations of the same formula in ``dtype``."""
    return {
        torch.float64: (1e-7, 1e-9),
        torch.float32: (1.3e-6, 1e-5),
        torch.float16: (1e-3, 1e-3),
        torch.bfloat16: (1.6e-2, 1e-2),
    }.get(dtype, (1.3e-6, 1e-5))


def _is_float(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex())


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _fresh(inputs: Sequence[Any], dtype: torch.dtype | None = None) -> list[Any]:
    """Detached copies of the inputs (optionally cast), keeping ``requires_grad``."""
    out = []
    for t in inputs:
        if isinstance(t, torch.Tensor):
            c = t.detach().clone()
            if dtype is not None and c.is_floating_point():
                c = c.to(dtype)
            if t.requires_grad and c.is_floating_point():
                c.requires_grad_(True)
            out.append(c)
        else:
            out.append(t)
    return out


def _float_outputs(out: Any) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(out)
    return [o for o in leaves if _is_float(o)]


def _run_with_grads(fn: Callable, inputs: Sequence[Any], seed: int = 0):
    """Forward, then backward with a fixed random cotangent; returns (outputs, grads)."""
    outs = _float_outputs(fn(*inputs))
    diff = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    grads: list[torch.Tensor | None] = [None] * len(diff)
    outs_req = [o for o in outs if o.requires_grad]
    if diff and outs_req:
        gen = torch.Generator().manual_seed(seed)
        cot = [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.dtype).to(o.device) for o in outs_req]
        grads = list(torch.autograd.grad(outs_req, diff, cot, allow_unused=True))
    return [o.detach() for o in outs], grads


def _assert_close(name: str, actual: Any, expected: Any, rtol: float, atol: float) -> None:
    if actual is None or expected is None:
        if actual is None and expected is None:
            return
        # an unused input: None on one side must be zeros on the other
        t = actual if actual is not None else expected
        if torch.count_nonzero(torch.nan_to_num(t, nan=1.0)) == 0:
            return
        raise AssertionError(f"{name}: one side has no gradient, the other is non-zero")
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != reference {tuple(expected.shape)}")
    if actual.dtype != expected.dtype:
        raise AssertionError(f"{name}: dtype {actual.dtype} != reference {expected.dtype}")
    try:
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
    except AssertionError as e:
        raise AssertionError(f"{name}: {e}") from None


# --------------------------------------------------------------------------------------
# individual checks
# --------------------------------------------------------------------------------------
def check_gradcheck(fn: Callable, *inputs: Any, **gradcheck_kwargs: Any) -> None:
    """``torch.autograd.gradcheck`` of ``fn`` on float64 copies of the inputs."""
    x64 = _fresh(inputs, torch.float64)
    kw = dict(eps=1e-6, atol=1e-6, rtol=1e-4, check_undefined_grad=True, check_batched_grad=False)
    kw.update(gradcheck_kwargs)
    try:
        ok = torch.autograd.gradcheck(fn, x64, **kw)
    except GradcheckError as e:
        raise AssertionError(f"gradcheck: {e}") from None
    if not ok:  # only with raise_exception=False
        raise AssertionError("gradcheck failed")


# What double backward raises where it is unsupported by design: ``@once_differentiable``'s error
# node, autograd's not-implemented derivative (a backward op with no derivative of its own), and
# torchff's declared refusal ("<op> does not support double backward", raised by the first backward
# when it is asked for a graph).
# Any other error (a shape bug, a dtype mismatch in the second pass) is a failure, not "unsupported".
DOUBLE_BACKWARD_UNSUPPORTED = re.compile(
    r"trying to differentiate twice a function that was marked with @once_differentiable"
    r"|derivative for '?[\w.:]+'? is not implemented"
    r"|does not support double backward"  # torchff's own refusal (linear_cross_entropy)
)


def check_gradgradcheck(fn: Callable, *inputs: Any, supported: bool = True, **kwargs: Any) -> None:
    """``gradgradcheck`` in float64, or, with ``supported=False``, that double backward raises.

    With ``supported=False`` the error must be one of :data:`DOUBLE_BACKWARD_UNSUPPORTED`'s
    messages; an unrelated ``RuntimeError`` raised by the second backward fails the check.
    """
    x64 = _fresh(inputs, torch.float64)
    if supported:
        kw = dict(eps=1e-6, atol=1e-6, rtol=1e-4)
        kw.update(kwargs)
        try:
            ok = torch.autograd.gradgradcheck(fn, x64, **kw)
        except GradcheckError as e:
            raise AssertionError(f"gradgradcheck: {e}") from None
        if not ok:  # only with raise_exception=False
            raise AssertionError("gradgradcheck failed")
        return
    outs = [o for o in _float_outputs(fn(*x64)) if o.requires_grad]
    diff = [t for t in x64 if isinstance(t, torch.Tensor) and t.requires_grad]
    # cotangents that require grad, as gradgradcheck's: the first backward is then differentiable
    cots = [torch.randn_like(o).requires_grad_() for o in outs]
    try:
        gs = torch.autograd.grad(outs, diff, cots, create_graph=True, allow_unused=True)
        connected = [g for g in gs if g is not None and g.requires_grad]
        if not connected:
            raise AssertionError(
                "double backward is silently disconnected (first-order gradients do not require grad)"
            )
        # backward() walks the whole graph, so it also reaches once_differentiable's error node
        sum(g.sum() for g in connected).backward()
    except RuntimeError as e:
        if DOUBLE_BACKWARD_UNSUPPORTED.search(str(e)):
            return
        raise AssertionError(
            f"double backward was declared unsupported but failed with an unrelated error: {type(e).__name__}: {e}"
        ) from e
    raise AssertionError("double backward was declared unsupported but ran without error")


def check_parity(
    fn: Callable,
    reference: Callable,
    *inputs: Any,
    rtol: float | None = None,
    atol: float | None = None,
    check_grads: bool = True,
) -> None:
    """Values (and gradients, with a fixed random cotangent) of ``fn`` equal ``reference``'s."""
    dtype = next((t.dtype for t in inputs if _is_float(t)), torch.float32)
    r0, a0 = default_tolerances(dtype)
    rtol = r0 if rtol is None else rtol
    atol = a0 if atol is None else atol
    xa, xb = _fresh(inputs), _fresh(inputs)
    if check_grads:
        oa, ga = _run_with_grads(fn, xa)
        ob, gb = _run_with_grads(reference, xb)
    else:
        with torch.no_grad():
            oa, ob = _float_outputs(fn(*xa)), _float_outputs(reference(*xb))
        ga = gb = []
    if len(oa) != len(ob):
        raise AssertionError(f"{len(oa)} outputs, reference has {len(ob)}")
    for i, (a, b) in enumerate(zip(oa, ob)):
        _assert_close(f"output {i}", a, b, rtol, atol)
    for i, (a, b) in enumerate(zip(ga, gb)):
        _assert_close(f"gradient of input {i}", a, b, rtol, atol)


def check_vmap(fn: Callable, *inputs: Any, in_dims: Any = None, jacrev: bool = True) -> None:
    """``vmap`` over a new leading batch of 3 equals a Python loop (values, and gradients
    through the vmapped call); ``jacrev`` equals autograd's Jacobian.

    Inputs are used as one sample (in float64); the batch is made of 3 perturbed copies of the
    floating ones, stacked at dim 0. ``in_dims`` (default: 0 for every floating input, ``None``
    for the rest) says which inputs are batched: pass ``None`` for an input to keep it shared.
    A failure to transform (e.g. a Function without a vmap rule) raises ``AssertionError`` too.
    """
    base = [t.detach().double() if _is_float(t) else t for t in inputs]
    if in_dims is None or (isinstance(in_dims, int) and in_dims == 0):
        dims = tuple(0 if _is_float(t) else None for t in base)
    else:
        dims = tuple(in_dims)
    gen = torch.Generator().manual_seed(1)
    batched = [
        torch.stack([t + 0.01 * k * torch.randn(t.shape, generator=gen, dtype=t.dtype) for k in range(3)])
        if d == 0
        else t
        for t, d in zip(base, dims)
    ]
    # once without autograd, once recording it (with the inputs' requires_grad), so that a
    # Function is also run under vmap when a graph is recorded, and its backward through vmap
    grads_wanted = [(i, d) for i, (t, d) in enumerate(zip(inputs, dims)) if _is_float(t) and t.requires_grad]
    for record in (False, True):
        leaves = [b.clone().requires_grad_(record and i in dict(grads_wanted)) if _is_float(b) else b
                  for i, b in enumerate(batched)]
        try:
            got = torch.func.vmap(fn, in_dims=dims)(*leaves)
        except RuntimeError as e:
            raise AssertionError(f"vmap failed: {e}") from None
        got_outs = _float_outputs(got)
        for k in range(3):
            sample = [b[k] if d == 0 else b for b, d in zip(leaves, dims)]
            want = fn(*sample)
            for i, (g, w) in enumerate(zip(got_outs, _float_outputs(want))):
                _assert_close(f"vmap output {i}, sample {k}", g[k].detach(), w.detach(), 1e-10, 1e-12)
        if record and grads_wanted:
            outs = [o for o in got_outs if o.requires_grad]
            diff = [leaves[i] for i, _ in grads_wanted]
            cot = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in outs]
            got_g = torch.autograd.grad(outs, diff, cot, allow_unused=True)
            loop_outs = [[_float_outputs(fn(*[b[k] if d == 0 else b for b, d in zip(leaves, dims)]))[j]
                          for k in range(3)] for j in range(len(got_outs)) if got_outs[j].requires_grad]
            want_g = torch.autograd.grad(
                [torch.stack(o) for o in loop_outs], diff, cot, allow_unused=True
            )
            for (i, _), a, b in zip(grads_wanted, got_g, want_g):
                _assert_close(f"gradient through vmap w.r.t. argument {i}", a, b, 1e-10, 1e-12)
    if not jacrev:
        return
    argnums = tuple(i for i, t in enumerate(base) if _is_float(t) and inputs[i].requires_grad)
    if not argnums:
        return

    def first_output(*a):
        return _float_outputs(fn(*a))[0]

    try:
        jac = torch.func.jacrev(first_output, argnums=argnums)(*base)
    except RuntimeError as e:
        raise AssertionError(f"jacrev failed: {e}") from None
    ref_in = [t.clone().requires_grad_(i in argnums) if _is_float(t) else t for i, t in enumerate(base)]
    ref = torch.autograd.functional.jacobian(
        lambda *d: first_output(*[d[argnums.index(i)] if i in argnums else t for i, t in enumerate(ref_in)]),
        tuple(ref_in[i] for i in argnums),
    )
    for i, (a, b) in enumerate(zip(_as_tuple(jac), _as_tuple(ref))):
        _assert_close(f"jacrev w.r.t. argument {argnums[i]}", a, b, 1e-10, 1e-12)


# --------------------------------------------------------------------------------------
# batched gradients and forward mode
# --------------------------------------------------------------------------------------
def _float64_leaves(inputs: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """float64 copies of the inputs, and the positions of the ones to differentiate."""
    x64 = _fresh(inputs, torch.float64)
    argnums = [i for i, t in enumerate(x64) if _is_float(t) and t.requires_grad]
    return x64, argnums


def _outputs_of(fn: Callable, x64: list[Any], argnums: list[int]) -> Callable[..., tuple[torch.Tensor, ...]]:
    """``fn`` as a function of its differentiable inputs only, returning its floating outputs."""

    def f(*diff):
        args = list(x64)
        for i, d in zip(argnums, diff):
            args[i] = d
        return tuple(_float_outputs(fn(*args)))

    return f


def _transform_failed(what: str, e: BaseException) -> AssertionError:
    return AssertionError(f"{what} failed: {type(e).__name__}: {e}")


BATCHED_GRAD_WAYS = ("gradcheck", "is_grads_batched", "jacobian")
FORWARD_AD_WAYS = ("gradcheck", "jvp")
BATCHED_FORWARD_GRAD_WAYS = ("gradcheck", "jacfwd")


def _check_ways(ways: Sequence[str], known: Sequence[str]) -> None:
    unknown = set(ways) - set(known)
    if unknown:
        raise ValueError(f"unknown ways {sorted(unknown)}; known: {known}")


def _gradcheck_as(what: str, fn: Callable, inputs: Sequence[Any], kwargs: dict[str, Any],
                  check: Callable | None = None) -> None:
    """``check`` (:func:`check_gradcheck` by default, or :func:`check_gradgradcheck`) with
    ``kwargs``; a failure, or a transform autograd does not implement, names ``what``."""
    try:
        (check or check_gradcheck)(fn, *inputs, **kwargs)
    except NotImplementedError as e:
        raise _transform_failed(what, e) from None
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None


def check_batched_grad(fn: Callable, *inputs: Any, ways: Sequence[str] = BATCHED_GRAD_WAYS,
                       **gradcheck_kwargs: Any) -> None:
    """The backward of ``fn`` under ``vmap``: a batch of cotangents at once equals one at a time.

    In float64, each of ``ways``:

    * ``"gradcheck"``: ``torch.autograd.gradcheck(check_batched_grad=True)``;
    * ``"is_grads_batched"``: ``torch.autograd.grad(..., is_grads_batched=True)`` with 3 random
      cotangents per output, against 3 separate ``torch.autograd.grad`` calls;
    * ``"jacobian"``: ``torch.autograd.functional.jacobian(vectorize=True)`` against
      ``vectorize=False`` (every floating output, every differentiable input).

    A backward that takes an in-place or ``out=`` path when grad mode is off (as it is under
    these transforms, with a batched incoming gradient) fails here.
    """
    _check_ways(ways, BATCHED_GRAD_WAYS)
    if "gradcheck" in ways:
        _gradcheck_as("batched gradients (check_batched_grad=True)", fn, inputs,
                      {**gradcheck_kwargs, "check_batched_grad": True})
    x64, argnums = _float64_leaves(inputs)
    if not argnums:
        return
    if "is_grads_batched" in ways:
        diff = [x64[i] for i in argnums]
        outs = [o for o in _float_outputs(fn(*x64)) if o.requires_grad]
        gen = torch.Generator().manual_seed(2)
        cots = [torch.randn((3, *o.shape), generator=gen, dtype=o.dtype) for o in outs]
        try:
            got = torch.autograd.grad(outs, diff, cots, retain_graph=True, allow_unused=True,
                                      materialize_grads=True, is_grads_batched=True)
        except (RuntimeError, NotImplementedError) as e:
            raise _transform_failed("autograd.grad(is_grads_batched=True)", e) from None
        loop = [torch.autograd.grad(outs, diff, [c[k] for c in cots], retain_graph=True, allow_unused=True,
                                    materialize_grads=True) for k in range(3)]
        for j, (i, g) in enumerate(zip(argnums, got)):
            want = torch.stack([lk[j] for lk in loop])
            _assert_close(f"is_grads_batched=True gradient w.r.t. argument {i}", g, want, 1e-10, 1e-12)
    if "jacobian" in ways:
        f = _outputs_of(fn, x64, argnums)
        diff = tuple(x64[i].detach() for i in argnums)
        want = torch.autograd.functional.jacobian(f, diff)
        try:
            got = torch.autograd.functional.jacobian(f, diff, vectorize=True)
        except (RuntimeError, NotImplementedError) as e:
            raise _transform_failed("autograd.functional.jacobian(vectorize=True)", e) from None
        for j, (go, wo) in enumerate(zip(got, want)):
            for i, g, w in zip(argnums, go, wo):
                _assert_close(f"jacobian(vectorize=True) of output {j} w.r.t. argument {i}", g, w, 1e-10, 1e-12)


def _reverse_jacobians(fn: Callable, x64: list[Any], argnums: list[int]):
    f = _outputs_of(fn, x64, argnums)
    return torch.autograd.functional.jacobian(f, tuple(x64[i].detach() for i in argnums))


def check_forward_ad(fn: Callable, *inputs: Any, ways: Sequence[str] = FORWARD_AD_WAYS,
                     **gradcheck_kwargs: Any) -> None:
    """Forward-mode AD of ``fn`` (its ``jvp``) is right, in float64. Each of ``ways``:

    * ``"gradcheck"``: ``torch.autograd.gradcheck(check_forward_ad=True)`` (dual numbers of
      ``torch.autograd.forward_ad`` against finite differences, undefined tangents included);
    * ``"jvp"``: ``torch.func.jvp`` with random tangents equals the reverse-mode Jacobian times
      them (the tangents are functorch-wrapped tensors there, as under ``jacfwd``/``hessian``).

    A Function without a ``jvp`` fails with the ``NotImplementedError`` autograd raises.
    """
    _check_ways(ways, FORWARD_AD_WAYS)
    if "gradcheck" in ways:
        _gradcheck_as("forward mode (check_forward_ad=True)", fn, inputs,
                      {**gradcheck_kwargs, "check_forward_ad": True, "check_backward_ad": False,
                       "check_batched_grad": False})
    if "jvp" in ways:
        x64, argnums = _float64_leaves(inputs)
        if not argnums:
            return
        f = _outputs_of(fn, x64, argnums)
        primals = tuple(x64[i].detach() for i in argnums)
        gen = torch.Generator().manual_seed(3)
        tangents = tuple(torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in primals)
        try:
            _, got = torch.func.jvp(f, primals, tangents)
        except (RuntimeError, NotImplementedError) as e:
            raise _transform_failed("torch.func.jvp", e) from None
        jac = _reverse_jacobians(fn, x64, argnums)
        for j, (g, jo) in enumerate(zip(got, jac)):
            want = sum((jij.reshape(g.numel(), -1) @ t.reshape(-1)).reshape(g.shape) for jij, t in zip(jo, tangents))
            _assert_close(f"torch.func.jvp tangent of output {j}", g, want, 1e-10, 1e-12)


def check_batched_forward_grad(fn: Callable, *inputs: Any, ways: Sequence[str] = BATCHED_FORWARD_GRAD_WAYS,
                               **gradcheck_kwargs: Any) -> None:
    """Forward mode under ``vmap`` (a batch of tangents at once), in float64. Each of ``ways``:

    * ``"gradcheck"``: ``torch.autograd.gradcheck(check_forward_ad=True, check_batched_forward_grad=True)``;
    * ``"jacfwd"``: ``torch.func.jacfwd`` equals the reverse-mode Jacobian (every floating output,
      every differentiable input).
    """
    _check_ways(ways, BATCHED_FORWARD_GRAD_WAYS)
    if "gradcheck" in ways:
        _gradcheck_as("batched forward mode (check_batched_forward_grad=True)", fn, inputs,
                      {**gradcheck_kwargs, "check_forward_ad": True, "check_batched_forward_grad": True,
                       "check_backward_ad": False, "check_batched_grad": False})
    if "jacfwd" in ways:
        x64, argnums = _float64_leaves(inputs)
        if not argnums:
            return
        f = _outputs_of(fn, x64, argnums)
        primals = tuple(x64[i].detach() for i in argnums)
        try:
            got = torch.func.jacfwd(f, argnums=tuple(range(len(primals))))(*primals)
        except (RuntimeError, NotImplementedError) as e:
            raise _transform_failed("torch.func.jacfwd", e) from None
        want = _reverse_jacobians(fn, x64, argnums)
        for j, (go, wo) in enumerate(zip(got, want)):
            for i, g, w in zip(argnums, go, wo):
                _assert_close(f"jacfwd of output {j} w.r.t. argument {i}", g, w, 1e-10, 1e-12)


def check_compile(fn: Callable, *inputs: Any, backend: str = "aot_eager", check_grads: bool = True) -> None:
    """``torch.compile(fn, fullgraph=True)`` gives the eager values and gradients.

    A graph break (or any other failure to compile) raises ``AssertionError`` naming it.
    """
    torch._dynamo.reset()
    graph = torch.compile(fn, fullgraph=True, backend=backend)

    def compiled(*args):
        try:
            return graph(*args)
        except torch._dynamo.exc.TorchDynamoException as e:
            raise AssertionError(f"torch.compile(fullgraph=True, backend={backend!r}) failed: {e}") from None

    dtype = next((t.dtype for t in inputs if _is_float(t)), torch.float32)
    rtol, atol = default_tolerances(dtype)
    if backend == "inductor":  # inductor may reorder floating point arithmetic
        rtol, atol = 10 * rtol, 10 * atol
    try:
        check_parity(compiled, fn, *inputs, rtol=rtol, atol=atol, check_grads=check_grads)
    except AssertionError as e:
        raise AssertionError(f"compiled ({backend}) vs eager: {e}") from None
    finally:
        torch._dynamo.reset()


# --------------------------------------------------------------------------------------
# everything at once
# --------------------------------------------------------------------------------------
@dataclass
class CheckReport:
    """What :func:`check` ran and what it measured.

    ``saved`` is what ``fn`` saved for backward on fresh copies of the inputs (``inputs``),
    with its ``outputs`` kept alive so that ``saved.beyond(...)`` can be asked about them;
    ``reference_saved`` is the same for the reference (``None`` without one), on its own copies
    (``reference_inputs``).
    """

    checks: list[str]
    saved: SavedTensors
    reference_saved: SavedTensors | None
    inputs: list[Any] = field(default_factory=list, repr=False)
    outputs: list[torch.Tensor] = field(default_factory=list, repr=False)
    skipped: dict[str, str] = field(default_factory=dict)
    reference_inputs: list[Any] = field(default_factory=list, repr=False)

    @property
    def saved_bytes(self) -> int:
        return self.saved.total

    @property
    def saved_bytes_beyond_outputs(self) -> int:
        """Bytes saved that are not the outputs' storage (which the next layer keeps anyway)."""
        return self.saved.beyond(*self.outputs)

    @property
    def reference_saved_bytes(self) -> int | None:
        return None if self.reference_saved is None else self.reference_saved.total

    @property
    def saved_bytes_beyond_inputs(self) -> int:
        """Bytes saved that are not the inputs' storage: what backward keeps alive that the caller
        does not hold anyway (a saved argument costs no new memory while the caller keeps it)."""
        return self.saved.beyond(*self.inputs)

    @property
    def reference_saved_bytes_beyond_inputs(self) -> int | None:
        return None if self.reference_saved is None else self.reference_saved.beyond(*self.reference_inputs)


def check_saved_bytes(
    fn: Callable,
    *inputs: Any,
    expected: int | None = None,
    expected_beyond_outputs: int | None = None,
) -> tuple[SavedTensors, list[torch.Tensor]]:
    """Assert what ``fn(*inputs)`` saves for backward (de-duplicated by storage), in bytes.

    ``expected`` is the total; ``expected_beyond_outputs`` leaves out the outputs' storage.
    Returns ``(SavedTensors, outputs)``.
    """
    out, saved = saved_tensors(fn, *inputs)
    outs = _float_outputs(out)
    for what, want, got in (
        ("saved", expected, saved.total),
        ("saved beyond the outputs", expected_beyond_outputs, saved.beyond(*outs)),
    ):
        if want is not None and got != want:
            raise AssertionError(f"{what} {got} bytes for backward, expected {want}: {saved!r}")
    return saved, outs


# what ``check(unsupported=...)`` may leave out, each only with a reason; leaving out forward mode
# leaves out what builds on it
OPTIONAL_CHECKS = ("batched_grad", "forward_ad", "batched_forward_grad", "fwd_over_rev")
_IMPLIED = {"forward_ad": ("batched_forward_grad", "fwd_over_rev")}


def _declared(unsupported: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, reason in (unsupported or {}).items():
        if name not in OPTIONAL_CHECKS:
            raise ValueError(f"unsupported: unknown check {name!r}; known: {OPTIONAL_CHECKS}")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"unsupported[{name!r}]: give the reason as a non-empty string, got {reason!r}")
        out[name] = reason
    for name in list(out):
        for implied in _IMPLIED.get(name, ()):
            out.setdefault(implied, f"needs {name}, declared unsupported: {out[name]}")
    return out


def check(
    fn: Callable,
    *inputs: Any,
    reference: Callable | None = None,
    gradcheck: bool = True,
    gradgrad: bool | None = True,
    vmap: bool = True,
    jacrev: bool = True,
    compile: bool = True,
    compile_backend: str = "aot_eager",
    rtol: float | None = None,
    atol: float | None = None,
    gradcheck_kwargs: dict | None = None,
    saved_bytes: int | None = None,
    saved_bytes_beyond_outputs: int | None = None,
    unsupported: Mapping[str, str] | None = None,
) -> CheckReport:
    """Run every check on ``fn(*inputs)``; raise ``AssertionError`` on the first failure.

    Args:
        fn: the callable under test (a Function's ``apply``, a functional, a module).
        inputs: its arguments; floating tensors with ``requires_grad=True`` are the ones
            differentiated. Use points away from kinks for gradcheck.
        reference: a callable computing the same thing (torch's op); parity is skipped without one.
        gradcheck: ``False`` where the backward is deliberately not the derivative (a
            straight-through estimator): the finite-difference comparisons are left out, the
            consistency checks (batched against unbatched, forward against reverse) still run.
        gradgrad: ``True`` to run gradgradcheck, ``False`` to assert double backward raises,
            ``None`` to skip.
        compile_backend: ``"aot_eager"`` (fast, checks tracing through autograd) or ``"inductor"``.
        saved_bytes: if given, the exact number of bytes ``fn`` must save for backward (on
            ``inputs`` as given: their dtype and shape), de-duplicated by storage.
        saved_bytes_beyond_outputs: the same, not counting the outputs' own storage.
        unsupported: checks to leave out, each with the reason, e.g.
            ``{"forward_ad": "torch's op has no forward-mode formula either"}``. Names:
            :data:`OPTIONAL_CHECKS`. They all run by default:

            * ``batched_grad``: :func:`check_batched_grad` (``gradcheck(check_batched_grad=True)``,
              ``autograd.grad(is_grads_batched=True)``, ``jacobian(vectorize=True)``), and
              ``gradgradcheck(check_batched_grad=True)`` where ``gradgrad`` is ``True``;
            * ``forward_ad``: :func:`check_forward_ad` (``gradcheck(check_forward_ad=True)``,
              ``torch.func.jvp``); leaving it out leaves out the next two;
            * ``batched_forward_grad``: :func:`check_batched_forward_grad`
              (``gradcheck(check_batched_forward_grad=True)``, ``torch.func.jacfwd``);
            * ``fwd_over_rev``: ``gradgradcheck(check_fwd_over_rev=True)`` (what
              ``torch.func.hessian`` needs), where ``gradgrad`` is ``True``.

    The report's ``skipped`` maps each check left out to its reason.
    """
    skipped = _declared(unsupported)
    gkw = dict(gradcheck_kwargs or {})
    ran: list[str] = []
    if gradcheck:
        check_gradcheck(fn, *inputs, **gkw)
        ran.append("gradcheck")
    if "batched_grad" not in skipped:
        ways = BATCHED_GRAD_WAYS if gradcheck else tuple(w for w in BATCHED_GRAD_WAYS if w != "gradcheck")
        check_batched_grad(fn, *inputs, ways=ways, **gkw)
        ran.append("batched-grad")
    if "forward_ad" not in skipped:
        ways = FORWARD_AD_WAYS if gradcheck else tuple(w for w in FORWARD_AD_WAYS if w != "gradcheck")
        check_forward_ad(fn, *inputs, ways=ways, **gkw)
        ran.append("forward-ad")
    if "batched_forward_grad" not in skipped:
        ways = BATCHED_FORWARD_GRAD_WAYS if gradcheck else ("jacfwd",)
        check_batched_forward_grad(fn, *inputs, ways=ways, **gkw)
        ran.append("batched-forward-grad")
    if gradgrad is not None:
        check_gradgradcheck(fn, *inputs, supported=gradgrad, **gkw)
        ran.append("gradgradcheck" if gradgrad else "double-backward-unsupported")
        if gradgrad and "batched_grad" not in skipped:
            _gradcheck_as("batched second derivatives (check_batched_grad=True)", fn, inputs,
                          {**gkw, "check_batched_grad": True}, check_gradgradcheck)
            ran.append("gradgrad-batched")
        if gradgrad and "fwd_over_rev" not in skipped:
            _gradcheck_as("forward-over-reverse (check_fwd_over_rev=True)", fn, inputs,
                          {**gkw, "check_fwd_over_rev": True, "check_rev_over_rev": False,
                           "check_undefined_grad": False}, check_gradgradcheck)
            ran.append("fwd-over-rev")
    if reference is not None:
        check_parity(fn, reference, *inputs, rtol=rtol, atol=atol)
        ran.append("parity")
    if vmap:
        check_vmap(fn, *inputs, jacrev=jacrev)
        ran.append("vmap+jacrev" if jacrev else "vmap")
    if compile:
        check_compile(fn, *inputs, backend=compile_backend)
        ran.append(f"compile[{compile_backend}]")
    fresh = _fresh(inputs)
    saved, outs = check_saved_bytes(
        fn, *fresh, expected=saved_bytes, expected_beyond_outputs=saved_bytes_beyond_outputs
    )
    if saved_bytes is not None or saved_bytes_beyond_outputs is not None:
        ran.append("saved-bytes")
    ref_inputs = _fresh(inputs) if reference is not None else []
    ref_saved = saved_tensors(reference, *ref_inputs)[1] if reference is not None else None
    return CheckReport(ran, saved, ref_saved, fresh, outs, skipped, ref_inputs)


def all_finite(*tensors: torch.Tensor) -> bool:
    """True when every element of every tensor is finite."""
    return all(bool(torch.isfinite(t).all()) for t in tensors if t is not None)


def nan_safe_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Exact equality that treats nan as equal to nan."""
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())

