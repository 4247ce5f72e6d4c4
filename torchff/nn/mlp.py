"""The lecture's deep feedforward network (multi-layer perceptron) as one module.

``MLP(in_features, hidden_features, out_features)`` stacks ``len(hidden_features)`` hidden
layers (the network's *depth*), each an affine map followed by an activation from the
registry (``hidden_features[i]`` is the *width* of layer ``i + 1``), and a linear output layer
that produces the raw scores the output distribution interprets (a mean, a logit, logits).

The ``state_dict`` keys are fixed by position and independent of dropout or the activation:
``layers.fc1.weight``, ``layers.fc1.bias``, ..., ``layers.out.weight``, ``layers.out.bias``
(plus ``layers.act<i>.weight`` for activations with parameters, such as PReLU). ``fc<i>`` is
the lecture's :math:`\\mathbf{W}^{(i)}, \\mathbf{b}^{(i)}` stored as ``torch.nn.Linear`` stores
them, ``(out, in)``; so the lecture's XOR network
:math:`y = \\mathbf{w}^T \\max\\{0, \\mathbf{W}^T \\mathbf{x} + \\mathbf{c}\\} + b` is
``fc1.weight = W^T``, ``fc1.bias = c``, ``out.weight = w^T``, ``out.bias = b``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from torchff._validate import check_int, check_positive_or_none, check_probability
from torchff.nn.maxout import MaxoutLinear, max_norm_
from torchff.nn.rbf import CENTER_INITS, RBF
from torchff.nn.registry import get_activation

__all__ = ["MLP"]


class MLP(nn.Module):
    r"""A feedforward network: ``depth = len(hidden_features)`` hidden layers and a linear output.

    Each hidden layer computes :math:`\mathbf{h}^{(i)} = g(\mathbf{W}^{(i)T}\mathbf{h}^{(i-1)} +
    \mathbf{b}^{(i)})` followed by dropout; the output layer is affine (no activation: the loss of
    the output distribution applies the sigmoid or softmax itself, in a stable way).

    Args:
        in_features: size of each input sample.
        hidden_features: widths of the hidden layers, e.g. ``[2]`` for the lecture's XOR
            network or ``[1024, 1024]``; ``[]`` gives a linear model.
        out_features: size of each output sample (see ``torchff.nn.get_output(name).out_features``).
        activation: a registry name (:func:`torchff.nn.get_activation`), a module class or
            ``"maxout"``: with ``pieces=k`` the hidden layers are ``MaxoutLinear(.., pieces=k)``,
            units that take the max over ``k`` affine pieces and need no separate activation.
        activation_kwargs: keyword arguments for each hidden layer's activation module
            (a fresh module per layer, so learnable slopes are not shared).
        pieces: the number of affine pieces per maxout unit (only with ``activation="maxout"``).
        dropout: drop probability after each hidden layer.
        input_dropout: drop probability on the input (the maxout paper uses 0.2 on MNIST).
        bias: whether the layers have biases.
        bias_init: a constant for the hidden layers' biases, e.g. ``0.1``: the lecture's advice for
            ReLU units, so that :math:`\mathbf{W}^T\mathbf{x} + \mathbf{b} > 0` for most inputs at
            the start and the units receive gradient. ``None`` keeps torch's default init.
        max_norm: if set, :meth:`apply_max_norm_` without an argument renormalises every layer's
            weight rows to at most this L2 norm (the maxout paper's 1.9365); training code calls it
            after each optimizer step (``torchff.train`` does when its ``max_norm`` is set).
        features: ``None`` (default) or ``"rbf"``: a first layer ``layers.rbf`` of
            :class:`torchff.nn.RBF` features :math:`\phi_j(\mathbf{x}) = e^{-\gamma\lVert\mathbf{x} -
            \mathbf{c}_j\rVert^2}` before the hidden layers, so ``hidden_features=[]`` gives the
            lecture's :math:`y = \mathbf{w}^T\phi(\mathbf{x}) + b`.
        num_centers, gamma, learnable_centers: the RBF layer's ``num_centers``, ``gamma`` and
            ``learnable`` (only with ``features="rbf"``).
        center_init: how :meth:`init_from_data_` sets the centers from training data: ``"batch"``
            (random rows) or ``"kmeans++"``; ``None``: keep the random N(0, 1) centers.

    Shape:
        ``(*, in_features) -> (*, out_features)``.

    Example::

        >>> net = MLP(784, [1024, 1024], 10, activation="relu", dropout=0.2)
        >>> net(torch.randn(32, 784)).shape
        torch.Size([32, 10])
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: Sequence[int],
        out_features: int,
        activation: str | nn.Module | type | None = "relu",
        activation_kwargs: Mapping[str, Any] | None = None,
        pieces: int | None = None,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        bias: bool = True,
        bias_init: float | None = None,
        max_norm: float | None = None,
        device=None,
        dtype=None,
        features: str | None = None,
        num_centers: int = 16,
        gamma: float = 1.0,
        learnable_centers: bool = True,
        center_init: str | None = "batch",
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        if isinstance(hidden_features, (str, bytes)) or not isinstance(hidden_features, Sequence):
            raise TypeError(f"hidden_features must be a list of ints, got {hidden_features!r}")
        self.hidden_features = [check_int(f"hidden_features[{i}]", h) for i, h in enumerate(hidden_features)]
        self.dropout = check_probability("dropout", dropout)
        self.input_dropout = check_probability("input_dropout", input_dropout)
        if bias_init is not None and (isinstance(bias_init, bool) or not isinstance(bias_init, (int, float))):
            raise TypeError(f"bias_init must be a float or None, got {bias_init!r}")
        if bias_init is not None and not bias:
            raise ValueError("bias_init needs bias=True")
        self.bias_init = None if bias_init is None else float(bias_init)
        self.max_norm = check_positive_or_none("max_norm", max_norm)
        activation_kwargs = dict(activation_kwargs or {})

        self.maxout = isinstance(activation, str) and activation.lower() == "maxout"
        if self.maxout:
            if pieces is None:
                raise ValueError('activation="maxout" needs pieces=k (the number of affine pieces per unit)')
            self.pieces: int | None = check_int("pieces", pieces)
            if activation_kwargs:
                raise ValueError("activation_kwargs do not apply to maxout layers")
        elif pieces is not None:
            raise ValueError(f'pieces={pieces!r} only applies to activation="maxout", not {activation!r}')
        else:
            self.pieces = None
        self.activation = activation if isinstance(activation, str) or activation is None else (
            activation.__name__ if isinstance(activation, type) else type(activation).__name__
        )
        if isinstance(activation, nn.Module) and len(self.hidden_features) > 1:
            raise TypeError("pass an activation name or class, not a module instance, so each layer gets its own")

        if features not in (None, "rbf"):
            raise ValueError(f"features must be null or 'rbf', got {features!r}")
        if center_init is not None and center_init not in CENTER_INITS:
            raise ValueError(f"center_init must be null or one of {', '.join(CENTER_INITS)}, got {center_init!r}")
        self.features = features
        self.center_init = center_init if features == "rbf" else None

        factory = {"device": device, "dtype": dtype}
        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        if self.input_dropout > 0:
            layers["drop0"] = nn.Dropout(self.input_dropout)
        width = self.in_features
        if features == "rbf":
            num_centers = check_int("num_centers", num_centers)
            layers["rbf"] = RBF(width, num_centers, gamma, learnable=bool(learnable_centers), **factory)
            width = num_centers
        for i, h in enumerate(self.hidden_features, start=1):
            if self.maxout:
                layers[f"fc{i}"] = MaxoutLinear(width, h, self.pieces, bias=bias, **factory)
            else:
                layers[f"fc{i}"] = nn.Linear(width, h, bias=bias, **factory)
                layers[f"act{i}"] = get_activation(activation, **activation_kwargs)
            if self.dropout > 0:
                layers[f"drop{i}"] = nn.Dropout(self.dropout)
            width = h
        layers["out"] = nn.Linear(width, self.out_features, bias=bias, **factory)
        self.layers = nn.Sequential(layers)
        self.reset_bias_()

    def hidden_layers(self) -> Iterator[nn.Module]:
        """The hidden affine (or maxout) layers, ``fc1, fc2, ...``, in order."""
        for i in range(1, len(self.hidden_features) + 1):
            yield getattr(self.layers, f"fc{i}")

    def linear_layers(self) -> Iterator[nn.Module]:
        """Every layer with a weight matrix: the hidden layers, then the output layer."""
        yield from self.hidden_layers()
        yield self.layers.out

    @torch.no_grad()
    def reset_bias_(self) -> "MLP":
        """Set the hidden layers' biases to ``bias_init`` (no-op when it is ``None``)."""
        if self.bias_init is not None:
            for layer in self.hidden_layers():
                layer.bias.fill_(self.bias_init)
        return self

    def apply_max_norm_(self, max_norm: float | None = None) -> "MLP":
        """Renormalise each weight row of every layer to L2 norm ``<= max_norm`` in place
        (:func:`torchff.nn.max_norm_`: the incoming weights of each unit, or each maxout piece).

        ``max_norm`` defaults to the module's ``max_norm``; nothing happens when both are ``None``.
        """
        max_norm = self.max_norm if max_norm is None else max_norm
        if max_norm is not None:
            max_norm_(self, max_norm)
        return self

    @property
    def needs_data_init(self) -> bool:
        """True when the RBF layer's centers are still to be set from data (:meth:`init_from_data_`).

        Reads the layer's ``initialized`` flag (a host read of one bool on an accelerator)."""
        rbf = getattr(self.layers, "rbf", None)
        return rbf is not None and self.center_init is not None and not bool(rbf.initialized)

    @torch.no_grad()
    def init_from_data_(self, x: Tensor, generator: torch.Generator | None = None) -> "MLP":
        """Set the RBF layer's centers from training inputs ``x`` by ``center_init`` (no-op without one)."""
        if self.features == "rbf" and self.center_init is not None:
            self.layers.rbf.init_centers_(x, method=self.center_init, generator=generator)
        return self

    def forward(self, input: Tensor) -> Tensor:
        return self.layers(input)

    def extra_repr(self) -> str:
        s = f"in_features={self.in_features}, hidden_features={self.hidden_features}, out_features={self.out_features}"
        s += f", activation={self.activation!r}"
        if self.pieces is not None:
            s += f", pieces={self.pieces}"
        if self.input_dropout:
            s += f", input_dropout={self.input_dropout}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bias_init is not None:
            s += f", bias_init={self.bias_init}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.features is not None:
            s += f", features={self.features!r}, center_init={self.center_init!r}"
        return s
