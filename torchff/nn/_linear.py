"""``nn.Linear``'s parameter initialisation, shared by the modules that own a linear map's weights."""

from __future__ import annotations

import math

from torch import Tensor, nn

__all__ = ["reset_linear_parameters"]


def reset_linear_parameters(weight: Tensor, bias: Tensor | None) -> None:
    """Initialise ``weight`` (``out x in``) and ``bias`` as :class:`torch.nn.Linear` does:
    Kaiming-uniform with :math:`a = \\sqrt 5`, i.e. :math:`U(-1/\\sqrt{in}, 1/\\sqrt{in})`, for the
    weight, and the same bound for the bias (0 when ``in`` is 0)."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight.shape[1]
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        nn.init.uniform_(bias, -bound, bound)
