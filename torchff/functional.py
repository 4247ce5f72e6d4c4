"""Functional API over torchff's autograd Functions.

Where torch has the op, the function here has its name, signature and defaults
(``torch.nn.functional`` or ``torch``), so ``import torchff.functional as F`` is a drop-in.
"""

from __future__ import annotations

import warnings as _warnings

import torch
from torch import Tensor
from torch.nn import _reduction as _Reduction

from torchff.autograd import _loss
from torchff.autograd import bernoulli as _bernoulli
from torchff.autograd._loss import check_floating as _check_floating
from torchff.autograd import cross_entropy as _cross_entropy
from torchff.autograd import maxout as _maxout
from torchff.autograd import linear_cross_entropy as _linear_ce
from torchff.autograd import rectifier as _rectifier
from torchff.autograd import regression as _regression
from torchff.autograd import smooth as _smooth
from torchff.autograd import softmax as _softmax
from torchff.autograd import step as _step

__all__ = [
    # activations
    "relu",
    "relu_",
    "leaky_relu",
    "leaky_relu_",
    "prelu",
    "softplus",
    "sigmoid",
    "generalized_relu",
    "abs_relu",
    "binary_step",
    # maxout units
    "maxout",
    "maxout_linear",
    # output units and their costs
    "softmax",
    "log_softmax",
    "binary_cross_entropy_with_logits",
    "bernoulli_nll",
    "cross_entropy",
    "softmax_nll",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "gaussian_nll_loss",
    "laplace_nll_loss",
    # the softmax output layer without its logits
    "linear_cross_entropy",
    # the perceptron and radial basis function features
    "perceptron_loss",
    "rbf",
]


def _autocast_to_lower(device_type: str, *tensors):
    """Cast floating tensors (not float64) to autocast's lower-precision dtype when autocast is
    on for ``device_type``, as torch's autocast does for the ops on its lower-precision list
    (``linear``, ``prelu``, ...), which a Function's own kernels would otherwise see uncast."""
    if not torch.is_autocast_enabled(device_type):
        return tensors
    dtype = torch.get_autocast_dtype(device_type)
    return tuple(
        t.to(dtype) if isinstance(t, Tensor) and t.is_floating_point() and t.dtype != torch.float64 else t
        for t in tensors
    )


# --------------------------------------------------------------------------------------
# activations (torchff.autograd.rectifier, .smooth, .step)
# --------------------------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    r"""ReLU, :math:`\max\{0, x\}`; ``relu'(0) = 0``. Saves the output, as torch."""
    if inplace:
        if not (torch.is_grad_enabled() and input.requires_grad):
            return torch.relu_(input)  # no graph to record: torch's op returns the very object
        return _rectifier.pick(_rectifier.RELU_INPLACE).apply(input)
    return _rectifier.pick(_rectifier.RELU).apply(input)


def relu_(input: Tensor) -> Tensor:
    """In-place :func:`relu`."""
    return relu(input, inplace=True)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    r"""Leaky ReLU, :math:`\max\{0, x\} + \text{negative\_slope}\cdot\min\{0, x\}`, for any slope.

    Derivative 1 for :math:`x > 0`, the slope for :math:`x \le 0` and at nan (torch's). Saves a
    1-byte mask ``x > 0`` written with the value (torch keeps the input: 4 bytes for float32);
    ``inplace=True`` saves the output, which is the input's buffer, and, as torch's, cannot
    backward through a negative slope.
    """
    if not input.is_floating_point():
        return torch.nn.functional.leaky_relu(input, negative_slope, inplace)  # torch's error
    if inplace:
        if not (torch.is_grad_enabled() and input.requires_grad):
            return torch.nn.functional.leaky_relu_(input, negative_slope)  # no graph to record
        return _rectifier.pick(_rectifier.LEAKY_RELU_INPLACE).apply(input, negative_slope)
    if not (torch.is_grad_enabled() and input.requires_grad):
        return torch.nn.functional.leaky_relu(input, negative_slope)  # no graph: no mask to make
    return _rectifier.pick(_rectifier.LEAKY_RELU_MASK).apply(input, negative_slope)[0]


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """In-place :func:`leaky_relu`."""
    return leaky_relu(input, negative_slope, inplace=True)


def generalized_relu(input: Tensor, alpha: float | Tensor) -> Tensor:
    r"""The lecture's :math:`h = \max\{0, z\} + \alpha\min\{0, z\}`.

    A Python number ``alpha`` is a fixed slope (:func:`leaky_relu`); a tensor ``alpha`` is
    learnable, with PReLU's layout (one value, or one per channel along dim 1: :func:`prelu`).
    """
    if isinstance(alpha, Tensor):
        return prelu(input, alpha)
    return leaky_relu(input, float(alpha))


def abs_relu(input: Tensor) -> Tensor:
    r"""Absolute value rectification, :math:`|x|` (the generalized ReLU with :math:`\alpha = -1`).

    Derivative :math:`\operatorname{sgn}(x)`: 0 at 0 and at nan, as ``torch.abs``. Saves the sign
    as int8, 1 byte per element, written with the value (torch keeps the input). Integer and
    complex inputs go to ``torch.abs``.
    """
    if not (input.is_floating_point() and torch.is_grad_enabled() and input.requires_grad):
        return torch.abs(input)  # no graph (or not a real float): torch's op, torch's dtype rules
    return _rectifier.pick(_rectifier.ABS_SIGN).apply(input)[0]


def _prelu_with_mask(input: Tensor, weight: Tensor) -> bool:
    """Whether PReLU keeps the 1-byte mask (the weight is frozen) rather than the input. Decided
    from requires_grad only, never from the weight's values; where a forward-mode tangent may
    reach the weight (forward AD, ``torch.func``), the input is kept."""
    if weight.requires_grad or not (torch.is_grad_enabled() and input.requires_grad):
        return False
    return not _forward_ad_may_run(weight)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    r"""PReLU, :math:`\max\{0, x\} + a\min\{0, x\}`; ``weight`` has 1 element or one per channel
    (dim 1 of ``input``), and is 0-d or 1-d, as torch's.

    Saves the input and the weight when the weight needs a gradient (as torch), a 1-byte mask
    ``x > 0`` and the weight when it is frozen; the weight's gradient is summed per channel in
    the backward kernel.
    """
    if weight.numel() != 1:  # torch's checks, in torch's order
        if input.dim() == 0:
            raise RuntimeError("Not allow zero-dim input tensor.")
        channels = input.shape[1] if input.dim() > 1 else 1
        if weight.numel() != channels:
            raise RuntimeError(
                "Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                f"{weight.numel()} and channel size = {channels}."
            )
    if weight.dim() > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {weight.dim()}")
    input, weight = _autocast_to_lower(input.device.type, input, weight)  # prelu is on autocast's list
    if not (input.is_floating_point() and weight.dtype == input.dtype):
        return torch.prelu(input, weight)  # torch's error (type promotion, integer dtypes)
    return _rectifier.pick(_rectifier.PRELU).apply(input, weight, _prelu_with_mask(input, weight))[0]


def _forward_ad_may_run(*tensors: Tensor | None) -> bool:
    """Whether a forward-mode tangent may reach a Function now: a forward-AD level is open
    (``torch.autograd.forward_ad.dual_level``) or an argument is wrapped by a ``torch.func``
    transform. Decides only what a Function references for ``jvp``; never true when compiling."""
    if torch.compiler.is_compiling():
        return False
    return torch.autograd.forward_ad._current_level >= 0 or any(
        t is not None and torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors
    )


def _apply(function, core, *args):
    """``function.apply(*args)``; under ``torch.compile`` ``core.apply(*args)``, its base class
    without ``jvp`` (dynamo graph-breaks on an autograd.Function that defines ``jvp``)."""
    if torch.compiler.is_compiling():
        return core.apply(*args)
    return function.apply(*args)


def _apply_regression(*args):
    """The regression losses' ``_apply``: the compile twin returns the loss and the residual."""
    if torch.compiler.is_compiling():
        return _regression._RegressionTraced.apply(*args)[0]
    return _regression._RegressionFunction.apply(*args)


def sigmoid(input: Tensor) -> Tensor:
    r"""Logistic sigmoid, :math:`1/(1 + e^{-x})`, derivative :math:`\sigma(1 - \sigma)`.

    torch's kernels; saves the output, as torch (4 B per float32 element).
    """
    return _apply(_smooth.SigmoidFunction, _smooth._Sigmoid, input)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    r"""Softplus, :math:`\frac{1}{\beta}\log(1 + e^{\beta x})`, linear where :math:`\beta x > \text{threshold}`.

    Derivative :math:`\sigma(\beta x)` (1 in the linear region), computed in float32 for half
    inputs, by torch's kernel; the value on CPU float32 / float64 by torchff's C loop (within 4
    float32 ulps of the exact value), elsewhere by torch's kernel; subnormal values and slopes
    for :math:`\beta x` below -88.7, as torch. Saves the input, as torch (4 B per float32
    element), never the output.
    """
    return _apply(_smooth.SoftplusFunction, _smooth._Softplus, input, beta, threshold)


def binary_step(input: Tensor, ste: bool = False) -> Tensor:
    r"""Binary step, 0 for :math:`x < 0` and 1 for :math:`x \ge 0` (nan stays nan).

    Zero gradient (the true derivative) by default, saving nothing; ``ste=True`` passes the
    gradient where :math:`|x| \le 1` (straight-through estimator), saving a 1-byte mask.

    Raises:
        TypeError: for an integer, bool or complex input (it has no gradient to pass).
    """
    if not input.is_floating_point():
        raise TypeError(f"binary_step: expected a floating point input, got {input.dtype}")
    return _rectifier.pick(_step.BINARY_STEP).apply(input, bool(ste))[0]


# --------------------------------------------------------------------------------------
# maxout units (torchff.autograd.maxout)
# --------------------------------------------------------------------------------------
def maxout(input: Tensor, pieces: int, dim: int = -1) -> Tensor:
    r"""Maxout along ``dim``: :math:`g_i = \max_{j < k} x_{ik + j}` with ``k = pieces``.

    Unit ``i`` takes the ``pieces`` consecutive elements ``i*k ... i*k + k - 1`` along ``dim``
    (``input.unflatten(dim, (-1, k)).amax(dim + 1)``), so the output has ``size // pieces``
    along ``dim``. The gradient goes to the first maximal piece of each group (the first nan
    in a group holding one), as ``torch.max``. Value and index come from one pass
    (``torchff::maxout``); saves a 1-byte index per output element (torch.max keeps 8).

    Raises:
        ValueError: if ``pieces`` is not a positive int or does not divide the size along ``dim``.
    """
    pieces = _maxout.check_pieces(pieces)
    ndim = input.dim()
    if ndim == 0 or not -ndim <= dim < ndim:
        raise IndexError(f"maxout: dim {dim} is out of range for a {ndim}-d input")
    d = dim % ndim
    size = input.shape[d]
    if size % pieces != 0:
        raise ValueError(
            f"maxout: the size {size} of dim {dim} is not a multiple of pieces={pieces}"
        )
    return _apply(_maxout._MaxoutFunction, _maxout._Maxout, input, pieces, d)[0]


def maxout_linear(input: Tensor, weight: Tensor, bias: Tensor | None = None, *, pieces: int) -> Tensor:
    r"""A layer of maxout units, ``maxout(linear(input, weight, bias), pieces)``, as one Function.

    ``weight`` is ``(out_features * pieces, in_features)`` and ``bias`` ``(out_features * pieces,)``
    (pieces of a unit on consecutive rows); ``input`` is ``(..., in_features)``; the output is
    ``(..., out_features)``. Backward in matrix form (:math:`\nabla_W = G^T X`,
    :math:`\nabla_X = G W`, :math:`\nabla_b = \sum G`); saves the input, the weight and a
    1-byte index per output element, never the pre-activation.
    """
    pieces = _maxout.check_pieces(pieces)
    if weight.dim() != 2:
        raise ValueError(f"maxout_linear: weight must be 2-d, got shape {tuple(weight.shape)}")
    if weight.shape[0] % pieces != 0:
        raise ValueError(
            f"maxout_linear: the {weight.shape[0]} rows of weight are not a multiple of pieces={pieces}"
        )
    input, weight, bias = _autocast_to_lower(input.device.type, input, weight, bias)
    return _apply(_maxout._MaxoutLinearFunction, _maxout._MaxoutLinear, input, weight, bias, pieces)[0]


# --------------------------------------------------------------------------------------
# output units and their costs (torchff.autograd.softmax, .cross_entropy, .bernoulli, .regression)
# --------------------------------------------------------------------------------------
def _get_softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    # torch.nn.functional's legacy rule for an implicit softmax dim, with its warning
    _warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. "
        "Change the call to include dim=X as an argument.",
        stacklevel=stacklevel,
    )
    return 0 if ndim in (0, 1, 3) else 1


def _traced(*tensors) -> bool:
    """True under ``torch.compile`` or a ``torch.func`` transform of one of ``tensors``, where a
    data-dependent check (``bool(tensor)``) cannot run; the kernels' own checks still apply."""
    if torch.compiler.is_compiling():
        return True
    return any(isinstance(t, Tensor) and torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)


def _autocast_to_float32(device_type: str, *tensors, devices: tuple[str, ...] | None = None):
    """Cast floating tensors (not float64) to float32 when autocast is on for ``device_type``
    (optionally only for the listed device types), as torch's autocast does for its fp32 ops."""
    if devices is not None and device_type not in devices:
        return tensors
    if not torch.is_autocast_enabled(device_type):
        return tensors
    return tuple(
        t.float() if isinstance(t, Tensor) and t.is_floating_point() and t.dtype != torch.float64 else t
        for t in tensors
    )


def _reduction_enum(size_average, reduce, reduction: str) -> int:
    if size_average is not None or reduce is not None:
        return _Reduction.legacy_get_enum(size_average, reduce)
    return _Reduction.get_enum(reduction)


def _no_grad_for(name: str, argument: str, t: Tensor | None) -> None:
    if t is not None and t.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(
            f"The function '{name}' is not differentiable with respect to argument '{argument}'. "
            "This input cannot have requires_grad True."
        )


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: torch.dtype | None = None) -> Tensor:
    r"""Softmax, :math:`e^{z_i} / \sum_j e^{z_j}`, computed as :math:`\mathrm{softmax}(z - \max z)`.

    torch's signature; ``dim=None`` picks a dim as torch does (with its deprecation warning),
    ``dtype`` casts the input first. Saves only the output.
    """
    if dim is None:
        dim = _get_softmax_dim("softmax", input.dim(), _stacklevel)
    if dtype is not None:
        input = input.to(dtype)
    else:
        (input,) = _autocast_to_float32(input.device.type, input, devices=("cuda",))
    return _apply(_softmax.SoftmaxFunction, _softmax._Softmax, input, dim)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: torch.dtype | None = None) -> Tensor:
    r"""Log-softmax, :math:`z_i - \log \sum_j e^{z_j}`, computed from :math:`z - \max z`.

    torch's signature and ``dim=None`` rule. Saves only the output.
    """
    if dim is None:
        dim = _get_softmax_dim("log_softmax", input.dim(), _stacklevel)
    if dtype is not None:
        input = input.to(dtype)
    else:
        (input,) = _autocast_to_float32(input.device.type, input, devices=("cuda",))
    return _apply(_softmax.LogSoftmaxFunction, _softmax._LogSoftmax, input, dim)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    r"""Bernoulli negative log-likelihood of a sigmoid output unit, on its logits :math:`z`:
    :math:`(1 - y)\max(z, 0) + y\max(-z, 0) + \log(1 + e^{-|z|})`, gradient :math:`\sigma(z) - y`.

    torch's signature and semantics: soft targets in [0, 1], ``weight`` broadcast over the
    elements, ``pos_weight`` over the classes (last dim), a gradient for ``target``; the
    weights are not differentiable. One op pass forward (``torchff::bce_with_logits``) and one
    backward for both gradients; saves the inputs, as torch (8 B per float32 element).
    """
    red = _reduction_enum(size_average, reduce, reduction)
    if target.size() != input.size():
        raise ValueError(f"Target size ({target.size()}) must be the same as input size ({input.size()})")
    input, target, weight, pos_weight = _autocast_to_float32(input.device.type, input, target, weight, pos_weight)
    _check_floating("log_sigmoid_cpu", input)
    if not target.is_floating_point():
        raise RuntimeError(f"binary_cross_entropy_with_logits: target must be a floating point tensor, got {target.dtype}")
    for argument, t in (("weight", weight), ("pos_weight", pos_weight)):
        _no_grad_for("binary_cross_entropy_with_logits", argument, t)
        if t is not None and t.shape != input.shape and torch.broadcast_shapes(t.shape, input.shape) != input.shape:
            raise RuntimeError(
                f"binary_cross_entropy_with_logits: {argument} of shape {tuple(t.shape)} does not broadcast "
                f"to the input's shape {tuple(input.shape)}"
            )
    return _apply(_bernoulli.BCEWithLogitsFunction, _bernoulli._BCEWithLogitsTraced, input, target, weight, pos_weight, red)


bernoulli_nll = binary_cross_entropy_with_logits


def _check_weight(name: str, input: Tensor, weight: Tensor | None, C: int, same_dtype: bool = True) -> None:
    if weight is None:
        return
    if weight.dim() != 1 or weight.numel() != C:
        raise RuntimeError(
            f"weight tensor should be defined either for all {C} classes or no classes "
            f"but got weight tensor of shape: {list(weight.shape)}"
        )
    if same_dtype and weight.dtype != input.dtype:
        raise RuntimeError(f"expected scalar type {_loss.scalar_name(input.dtype)} but found {_loss.scalar_name(weight.dtype)}")
    _no_grad_for(name, "weight", weight)


def _shapes(input: Tensor, target: Tensor) -> str:
    return f"input shape {tuple(input.shape)}, target shape {tuple(target.shape)}"


def _check_index_target(name: str, input: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
    """torch's checks for class-index targets, in torch's order and with its error types, each
    naming the shapes; returns the target as int64 (a 1-d target of one element for an
    unbatched input becomes 0-d, as torch treats it). The class indices themselves are checked
    by the kernels: torch's IndexError on CPU, a device-side assert elsewhere (no host read)."""
    if input.dim() < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.dim()})")
    if input.dim() != 1 and (target.dim() < 1 or input.shape[0] != target.shape[0]):
        raise ValueError(
            f"Expected input batch_size ({input.shape[0]}) to match target batch_size "
            f"({target.shape[0] if target.dim() else 0}) ({_shapes(input, target)})."
        )
    if target.dtype not in (torch.int64, torch.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {target.dtype}")
    if input.dim() == 1:
        if target.dim() > 1 or (target.dim() == 1 and target.shape[0] != 1):
            raise ValueError(f"For 1D input, 1D target must have size 1, but got target size: {target.shape[0]} ({_shapes(input, target)})")
        target = target.reshape(())
    elif input.dim() == 2:
        if target.dim() != 1:
            raise RuntimeError(f"0D or 1D target tensor expected, multi-target not supported ({_shapes(input, target)})")
    elif target.shape != input.shape[:1] + input.shape[2:]:
        raise RuntimeError(f"Expected target size {list(input.shape[:1] + input.shape[2:])}, got {list(target.shape)} ({_shapes(input, target)})")
    if weight is not None:
        _check_weight(name, input, weight, input.shape[1 if input.dim() >= 2 else 0])
    # int64 for the kernels; uint8 compared as int64 (no wrap of a negative ignore_index)
    return target if target.dtype == torch.int64 else target.long()


def _autocast_on(device_type: str) -> bool:
    """Autocast is on for ``device_type`` (False for devices without autocast, such as meta)."""
    return torch._C._is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Multinoulli negative log-likelihood of a softmax output unit, on its logits :math:`z`:
    :math:`(m - z_y) + \log \sum_j e^{z_j - m}` (:math:`m = \max_j z_j`, subtracted first, so
    exact for logits of any size), gradient :math:`\mathrm{softmax}(z) - e_y`.

    torch's signature and semantics: class-index targets (with ``weight``, ``ignore_index`` and
    ``label_smoothing``; ``'mean'`` divides by the summed target weights) or class-probability
    targets shaped like the input; inputs ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``.
    Class indices: one op computes the loss and its gradient in one pass over the logits and
    keeps the gradient (logits-sized, as torch's log-softmax), so the backward is one
    multiplication. Class probabilities: keeps the log-probabilities and the target, as torch.
    """
    red = _reduction_enum(size_average, reduce, reduction)
    if _autocast_on(input.device.type):
        input, target, weight = _autocast_to_float32(input.device.type, input, target, weight)
    _loss.check_floating("log_softmax_lastdim_kernel_impl", input)
    if label_smoothing > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if input.shape == target.shape:  # class probabilities
        if not target.is_floating_point():
            raise RuntimeError(f"Expected floating point type for target with class probabilities, got {target.dtype}")
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        if input.dim() < 1:
            raise ValueError(f"Expected 1 or more dimensions (got {input.dim()})")
        _check_weight("cross_entropy", input, weight, input.shape[1 if input.dim() >= 2 else 0], same_dtype=False)
        out = torch.promote_types(input.dtype, target.dtype)
        if weight is not None:
            out = torch.promote_types(out, weight.dtype)
        input, target = input.to(out), target.to(out)  # no-ops but where the weight promotes
        return _apply(_cross_entropy._CrossEntropyProbsFunction, _cross_entropy._CrossEntropyProbsFunctionTraceable,
                      input, target, weight, red, float(label_smoothing))[0]
    target = _check_index_target("cross_entropy", input, target, weight)
    return _apply(_cross_entropy._CrossEntropyFunction, _cross_entropy._CrossEntropyFunctionTraceable,
                  input, target, weight, int(ignore_index), red, float(label_smoothing))[0]


softmax_nll = cross_entropy


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Negative log-likelihood of class indices given log-probabilities, :math:`-w_y x_y`.

    torch's signature and semantics (``weight``, ``ignore_index``, K-dimensional inputs;
    ``'mean'`` divides by the summed target weights). Saves the target, the weight and the 0-d
    total weight, not the input.
    """
    red = _reduction_enum(size_average, reduce, reduction)
    if _autocast_on(input.device.type):
        input, weight = _autocast_to_float32(input.device.type, input, weight)
    _loss.check_floating("nll_loss_out_frame", input)
    target = _check_index_target("nll_loss", input, target, weight)
    return _apply(_cross_entropy._NLLLossFunction, _cross_entropy._NLLLossFunctionTraceable,
                  input, target, weight, int(ignore_index), red)[0]


def _pointwise_loss(name, kind, input, target, size_average, reduce, reduction, weight):
    if target.size() != input.size() and not torch.compiler.is_compiling():  # dynamo cannot trace warn
        _warnings.warn(
            f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
            "This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
        )
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if target.shape != input.shape:
        torch.broadcast_shapes(input.shape, target.shape)  # raises, naming both shapes
    if weight is None:
        red = _Reduction.get_enum(reduction)
        input, target = _autocast_to_float32(input.device.type, input, target)
    else:
        if weight.size() != input.size():
            raise ValueError(
                f"Weights and input must have the same size: weight {tuple(weight.shape)}, input {tuple(input.shape)}."
            )
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"Invalid reduction mode: {reduction}. Expected one of 'none', 'mean', 'sum'.")
        red = _Reduction.get_enum(reduction)
        input, target, weight = _autocast_to_float32(input.device.type, input, target, weight, devices=("cuda",))
    if kind == _regression.L1 and not all(t.is_floating_point() or t.is_complex() for t in (input, target)):
        # integer / bool: torch's composite, so that its results and errors are torch's (l1_loss
        # of integers works for 'none' and 'sum', and raises for 'mean'); nothing to differentiate
        elements = torch.abs(input - target) if weight is None else weight * torch.abs(input - target)
        return elements if red == _loss.NONE else elements.sum() if red == _loss.SUM else elements.mean()
    promoted = _loss.result_dtype(input, target, weight)
    if not (promoted.is_floating_point or (kind == _regression.L1 and promoted.is_complex)):
        _check_floating(f"{name.split('_')[0]}_cpu", torch.empty(0, dtype=promoted))  # torch's error
    return _apply_regression(input, target, weight, kind, False, 0.0, red)


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    r"""Gaussian negative log-likelihood with unit variance (up to a constant): :math:`(x - y)^2`,
    optionally weighted (``'mean'`` then divides by :math:`\sum w`). torch's signature.
    Derivative :math:`2 w (x - y)`. Saves the input and the target, as torch (arguments: no new
    element-sized tensor); ``'mean'`` and ``'sum'`` are reduced in the loss's own pass.
    """
    return _pointwise_loss("mse_loss", _regression.MSE, input, target, size_average, reduce, reduction, weight)


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    r"""Laplace negative log-likelihood with unit scale (up to a constant): :math:`|x - y|`,
    optionally weighted. torch's signature. Derivative :math:`w\,\mathrm{sgn}(x - y)`, 0 at
    :math:`x = y`. Complex inputs give a real loss with the gradient :math:`\mathrm{sgn}(d) = d/|d|`,
    as torch. Saves the input and the target (arguments: no new element-sized tensor; torch
    keeps the residual, 4 B per float32 element).
    """
    return _pointwise_loss("l1_loss", _regression.L1, input, target, size_average, reduce, reduction, weight)


def _spread_argument(name: str, input: Tensor, spread: Tensor | float) -> Tensor:
    """torch's ``gaussian_nll_loss`` rules for its variance, applied to ``name`` (var or scale).

    Negative entries raise ``ValueError`` on CPU, as torch. On other devices the check is
    ``torch._assert_async`` (a device-side assert, no host sync; torch itself reads the value on
    the host there); under ``torch.func`` transforms and ``torch.compile`` it is skipped.
    """
    if isinstance(spread, (int, float)) and not isinstance(spread, bool):
        if spread < 0:
            raise ValueError(f"{name} has negative entry/entries")
        return torch.full((), float(spread), dtype=input.dtype.to_real(), device=input.device)
    if not _traced(spread):
        if spread.device.type == "cpu":
            if bool(torch.any(spread < 0)):
                raise ValueError(f"{name} has negative entry/entries")
        else:
            torch._assert_async(torch.all(spread >= 0) | torch.any(spread != spread), f"{name} has negative entry/entries")
    if spread.size() != input.size():
        if input.size()[:-1] == spread.size():  # homoscedastic: one fewer dim
            spread = torch.unsqueeze(spread, -1)
        elif input.ndim == spread.ndim and sum(y for x, y in zip(input.size(), spread.size()) if x != y) == 1:
            pass  # homoscedastic: one mismatched dim of size 1
        else:
            raise ValueError(
                f"{name} is of incorrect size: {name} shape {tuple(spread.shape)}, input shape {tuple(input.shape)}"
            )
    return spread


def _check_broadcast(input: Tensor, target: Tensor) -> None:
    """Raise the error of torch's elementwise ops (``The size of tensor a (3) must match the size
    of tensor b (2) at non-singleton dimension 2``, as torch's ``gaussian_nll_loss`` does from its
    ``input - target``) when the shapes do not broadcast."""
    if input.shape != target.shape:
        try:
            torch.broadcast_shapes(input.shape, target.shape)
        except RuntimeError:  # the same subtraction on stride-0 views raises torch's words
            zero = torch.zeros(())
            torch.sub(zero.expand(input.shape), zero.expand(target.shape))
            raise


def gaussian_nll_loss(
    input: Tensor,
    target: Tensor,
    var: Tensor | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    r"""Gaussian negative log-likelihood with a (learned) variance:
    :math:`\tfrac12(\log v + (x - y)^2 / v)` (:math:`+ \tfrac12 \log 2\pi` with ``full``),
    :math:`v = \max(\text{var}, \text{eps})` with no gradient through the clamp.

    torch's signature and rules: ``var`` like the input (heteroscedastic), with one fewer dim or
    one dim of size 1 (homoscedastic), or a number; negative entries raise ``ValueError``.
    Derivatives :math:`(x - y)/v` and :math:`\tfrac12(1/v - (x - y)^2/v^2)` for ``var``.
    Saves the input, the target and ``var`` (arguments: no new element-sized tensor; torch also
    keeps element-sized intermediates). A complex input or target gives torch's complex loss (``var`` a real tensor; a
    number raises torch's ``NotImplementedError``), computed in torch ops.
    """
    number_var = not isinstance(var, Tensor)
    var = _spread_argument("var", input, var)
    _check_broadcast(input, target)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    red = _Reduction.get_enum(reduction)
    if input.is_complex() or target.is_complex():
        if number_var:  # torch multiplies it by ones_like(input): a complex var, which its clamp refuses
            raise NotImplementedError("clamp is not supported for complex types")
        return _regression.complex_gaussian_nll(input, target, var, bool(full), float(eps), red)
    input, target, var = _autocast_to_float32(input.device.type, input, target, var, devices=("cuda",))
    return _apply_regression(input, target, var, _regression.GAUSSIAN, bool(full), float(eps), red)


def laplace_nll_loss(
    input: Tensor,
    target: Tensor,
    scale: Tensor | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    r"""Laplace negative log-likelihood with a (learned) scale: :math:`|x - y|/b + \log b`
    (:math:`+ \log 2` with ``full``), :math:`b = \max(\text{scale}, \text{eps})` with no gradient
    through the clamp. Its minimiser in :math:`x` is the conditional median.

    Same signature and ``scale`` rules as :func:`gaussian_nll_loss`'s ``var``. Derivatives
    :math:`\mathrm{sgn}(x - y)/b` and :math:`(1 - |x - y|/b)/b` for ``scale``. Saves the input,
    the target and ``scale`` (arguments: no new element-sized tensor). Complex inputs give a real loss with the gradient
    :math:`\mathrm{sgn}(d)/b = d/(|d|\,b)`, as ``l1_loss``.
    """
    scale = _spread_argument("scale", input, scale)
    _check_broadcast(input, target)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    input, target, scale = _autocast_to_float32(input.device.type, input, target, scale, devices=("cuda",))
    red = _Reduction.get_enum(reduction)
    return _apply_regression(input, target, scale, _regression.LAPLACE, bool(full), float(eps), red)


# --------------------------------------------------------------------------------------
# linear + cross-entropy: the softmax output layer in row chunks (torchff.autograd.linear_cross_entropy)
# --------------------------------------------------------------------------------------
def linear_cross_entropy(
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
) -> Tensor:
    r"""``cross_entropy(linear(input, weight, bias), target, ...)`` without the ``N x C`` logits.

    The softmax output unit and its negative log-likelihood in one chunked Function
    (``torchff.autograd.linear_cross_entropy``): same values and gradients as
    ``torch.nn.functional.linear`` followed by ``torch.nn.functional.cross_entropy`` with
    class-index targets, ``ignore_index``, ``reduction`` and ``label_smoothing``.

    Args:
        input: ``(..., H)``; leading dims are flattened into rows.
        weight: ``(C, H)``, as ``nn.Linear(H, C).weight``.
        target: ``(...)`` class indices in ``[0, C)`` or ``ignore_index``.
        bias: ``(C,)`` or ``None``.
        chunk_size: rows per chunk; default: about 32 MiB of float32 logits per chunk.

    Returns the reduced loss, or with ``reduction='none'`` a loss of ``target``'s shape.
    With ``'mean'``/``'sum'`` and grad enabled, the gradients are computed during this call.
    """
    _linear_ce.validate_linear_cross_entropy(
        input, weight, target, bias, ignore_index, reduction, label_smoothing, chunk_size
    )
    x = input.reshape(-1, input.shape[-1])
    t = target.reshape(-1)
    if t.dtype != torch.int64:
        t = t.long()
    rows = int(chunk_size) if chunk_size is not None else _linear_ce.default_chunk_size(x.shape[0], weight.shape[0])
    grad = torch.is_grad_enabled()
    out = _apply(
        _linear_ce._LinearCrossEntropyFunction, _linear_ce._LinearCrossEntropy,
        x, weight, bias, t, int(ignore_index), reduction, float(label_smoothing), rows,
        grad and input.requires_grad,
        grad and weight.requires_grad,
        grad and bias is not None and bias.requires_grad,
        _forward_ad_may_run(input, weight, bias),
    )
    loss = out[0] if isinstance(out, tuple) else out
    if reduction == "none":
        loss = loss.reshape(target.shape)
    return loss


# --------------------------------------------------------------------------------------
# the perceptron and radial basis function features (torchff.autograd.perceptron, .rbf)
# --------------------------------------------------------------------------------------
from torchff.autograd import perceptron as _perceptron  # noqa: E402
from torchff.autograd import rbf as _rbf  # noqa: E402


def perceptron_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    r"""The perceptron criterion :math:`\max\{0, -y z\}` on the logits ``input``.

    ``target`` holds labels of the same shape (broadcasting allowed): ``target > 0`` is the
    positive class :math:`y = +1`, anything else :math:`y = -1`; so ``{-1, +1}`` targets and
    ``{0, 1}`` targets (0 is read as -1) both work, in any dtype.

    Its gradient is Rosenblatt's rule, :math:`-y` where :math:`y z \le 0` (a point on the boundary
    is a mistake) and 0 elsewhere: SGD with learning rate :math:`\eta` on a linear layer updates
    :math:`\mathbf w \leftarrow \mathbf w + \eta\, y\, \mathbf x` on each mistake
    (``reduction='sum'``; ``'mean'`` divides the step by the element count). No gradient flows to
    the target. Saves 1 byte per element (the ``int8`` step :math:`-y\,1[yz \le 0]`).
    """
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError("perceptron_loss(): input and target must be tensors")
    if not input.is_floating_point():
        raise RuntimeError(f"perceptron_loss(): expected a floating point input, got {input.dtype}")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    torch.broadcast_shapes(input.shape, target.shape)  # raises, naming both shapes
    red = _Reduction.get_enum(reduction)
    (input,) = _autocast_to_float32(input.device.type, input)  # a loss: float32 under autocast
    return _apply(_perceptron.PerceptronLossFunction, _perceptron.PerceptronLossTracedFunction, input, target, red)[0]


def rbf(input: Tensor, centers: Tensor, gamma: float | Tensor = 1.0) -> Tensor:
    r"""Gaussian radial basis function features :math:`\phi_j(\mathbf x) = \exp(-\gamma_j \lVert \mathbf x - \mathbf c_j\rVert^2)`.

    The lecture's :math:`e^{-(\epsilon \lVert \mathbf x - \mathbf x_i\rVert)^2}` with
    :math:`\gamma = \epsilon^2`.

    Args:
        input: ``(..., D)``.
        centers: ``(M, D)``, one center per row.
        gamma: a number, a 0-d tensor or an ``(M,)`` tensor (one width per center); a tensor may
            require grad.

    Returns ``(..., M)``. The distances come from one GEMM (:math:`\lVert x\rVert^2 - 2 x c^T +
    \lVert c\rVert^2`, clamped at 0), never an ``N x M x D`` tensor; the derivatives for the input,
    the centers and ``gamma`` are GEMMs too (:class:`torchff.autograd.rbf.RBFFunction`). Saves the
    output and the (already alive) arguments, nothing else.
    """
    if input.dim() < 1:
        raise RuntimeError("rbf(): input must have at least 1 dimension (the features)")
    if centers.dim() != 2:
        raise RuntimeError(f"rbf(): centers must be a 2-D (num_centers, features) tensor, got {centers.dim()}-D")
    if input.shape[-1] != centers.shape[-1]:
        raise RuntimeError(
            f"rbf(): input and centers must have the same number of features: "
            f"input: {input.shape[-1]} centers: {centers.shape[-1]}"
        )
    if not input.is_floating_point() or not centers.is_floating_point():
        raise RuntimeError(f"rbf(): expected floating point input and centers, got {input.dtype} and {centers.dtype}")
    if input.dtype != centers.dtype and not torch.is_autocast_enabled(input.device.type):
        raise RuntimeError(f"rbf(): input and centers must have the same dtype, got {input.dtype} and {centers.dtype}")
    if not isinstance(gamma, Tensor):
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
            raise TypeError(f"rbf(): gamma must be a number or a tensor, got {type(gamma).__name__}")
        gamma = torch.tensor(float(gamma), dtype=input.dtype, device=input.device)
    else:
        if gamma.dim() > 1 or (gamma.dim() == 1 and gamma.shape[0] not in (1, centers.shape[0])):
            raise RuntimeError(
                f"rbf(): gamma must be a scalar or have one value per center ({centers.shape[0]}), "
                f"got shape {tuple(gamma.shape)}"
            )
        if gamma.dim() == 1 and gamma.shape[0] == 1 and centers.shape[0] != 1:
            gamma = gamma.reshape(())
    device_type = input.device.type
    if torch.is_autocast_enabled(device_type):
        # float32, as torch.cdist under autocast; the GEMMs inside must not be autocast back down
        input, centers, gamma = _autocast_to_float32(device_type, input, centers, gamma)
        with torch.autocast(device_type, enabled=False):
            return _apply(_rbf.RBFFunction, _rbf.RBFTracedFunction, input, centers, gamma.to(input.dtype))
    if gamma.dtype != input.dtype:
        gamma = gamma.to(input.dtype)
    return _apply(_rbf.RBFFunction, _rbf.RBFTracedFunction, input, centers, gamma)
