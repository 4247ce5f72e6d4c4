r"""Gaussian radial basis function features as a layer: the lecture's fixed (or learned) feature map.

.. math::

    \phi_j(\mathbf x) = \exp(-\gamma_j \lVert \mathbf x - \mathbf c_j\rVert^2), \qquad \gamma = \epsilon^2,

so a linear layer on top computes :math:`y = \mathbf w^T \phi(\mathbf x) + b`: a linear model in
the features, nonlinear in :math:`\mathbf x`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from torchff import functional as F

__all__ = ["RBF", "kmeans_plus_plus"]

CENTER_INITS = ("batch", "kmeans++")


@torch.no_grad()
def kmeans_plus_plus(x: Tensor, num_centers: int, generator: torch.Generator | None = None) -> Tensor:
    r"""``num_centers`` rows of ``x`` ``(N, D)`` picked by k-means++ seeding (Arthur & Vassilvitskii, 2007).

    The first row is uniform; each next one is drawn with probability proportional to its squared
    distance to the nearest row already picked (:math:`D^2` sampling), so the picks spread over the
    data. Distances are one GEMM per pick. Where every remaining distance is 0 (fewer distinct rows
    than centers) the draw is uniform. Returns a new ``(num_centers, D)`` tensor.
    """
    n = x.shape[0]
    device = x.device
    gen_device = generator.device if generator is not None else device
    first = torch.randint(n, (1,), generator=generator, device=gen_device).to(device)
    picks = [first]
    d2min = _sq_dist(x, x.index_select(0, first)).squeeze(1)
    for _ in range(1, num_centers):
        total = d2min.sum()
        weights = torch.where(total > 0, d2min, torch.ones_like(d2min)).to(torch.float64)
        nxt = torch.multinomial(weights.to(gen_device), 1, generator=generator).to(device)
        picks.append(nxt)
        d2min = torch.minimum(d2min, _sq_dist(x, x.index_select(0, nxt)).squeeze(1))
    return x.index_select(0, torch.cat(picks)).clone()


def _sq_dist(x: Tensor, c: Tensor) -> Tensor:
    return torch.addmm((c * c).sum(1), x, c.t(), alpha=-2.0).add_((x * x).sum(1, keepdim=True)).clamp_min_(0.0)


class RBF(nn.Module):
    r"""``num_centers`` Gaussian radial basis functions of the input.

    :math:`\phi_j(\mathbf x) = \exp(-\gamma_j \lVert \mathbf x - \mathbf c_j\rVert^2)`, by
    :func:`torchff.functional.rbf` (one GEMM for the distances; explicit GEMM backward for the
    input, the centers and :math:`\gamma`; saves the output and the arguments, nothing else).

    Args:
        in_features: ``D``, the size of each input sample.
        num_centers: ``M``, the number of features.
        gamma: the initial width :math:`\gamma = \epsilon^2` of every center (> 0).
        learnable: learn the centers (a parameter); ``False`` keeps them fixed (a buffer: no
            gradient, not in ``parameters()``; the ``state_dict`` key is the same).
        learnable_gamma: learn one width per center too (a parameter; keyword only; default: a buffer).

    Attributes:
        centers: ``(num_centers, in_features)``, initialised from N(0, 1); set them from data with
            :meth:`init_centers_`.
        gamma: ``(num_centers,)``, every entry ``gamma``.
        initialized: a 0-d bool buffer, ``True`` once :meth:`init_centers_` has run (saved in the
            state dict, so a restored model is not re-initialised by training code).

    Shape: input ``(*, in_features)``, output ``(*, num_centers)``.
    """

    __constants__ = ["in_features", "num_centers"]

    def __init__(
        self,
        in_features: int,
        num_centers: int,
        gamma: float = 1.0,
        learnable: bool = True,
        device=None,
        dtype=None,
        *,
        learnable_gamma: bool = False,
    ) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("num_centers", num_centers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
            raise ValueError(f"gamma must be a positive number, got {gamma!r}")
        factory = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.num_centers = num_centers
        self.gamma_init = float(gamma)
        centers = torch.empty((num_centers, in_features), **factory)
        gamma_t = torch.empty(num_centers, **factory)
        # learned: a parameter; fixed: a buffer (no gradient, not in parameters()); the same state_dict key
        if learnable:
            self.centers = nn.Parameter(centers)
        else:
            self.register_buffer("centers", centers)
        if learnable_gamma:
            self.gamma = nn.Parameter(gamma_t)
        else:
            self.register_buffer("gamma", gamma_t)
        self.register_buffer("initialized", torch.tensor(False, device=device))
        self.reset_parameters()

    @property
    def learnable(self) -> bool:
        return self.centers.requires_grad

    def reset_parameters(self) -> None:
        """Centers from N(0, 1), every width ``gamma``; :attr:`initialized` back to ``False``."""
        with torch.no_grad():
            nn.init.normal_(self.centers)
            self.gamma.fill_(self.gamma_init)
            self.initialized.fill_(False)

    @torch.no_grad()
    def init_centers_(self, x: Tensor, method: str = "batch", generator: torch.Generator | None = None) -> "RBF":
        """Set the centers from data rows ``x`` ``(N, in_features)`` (or ``(*, in_features)``), in place.

        ``method``:

        * ``"batch"``: ``num_centers`` distinct rows of ``x`` drawn at random (all of them, shuffled,
          when ``N == num_centers``: four centers on the four XOR points);
        * ``"kmeans++"``: k-means++ seeding (:func:`kmeans_plus_plus`), rows spread over the data.

        ``N`` must be at least ``num_centers``. Sets :attr:`initialized`. Returns ``self``.
        """
        if method not in CENTER_INITS:
            raise ValueError(f"method must be one of {', '.join(CENTER_INITS)}, got {method!r}")
        x = x.detach().reshape(-1, x.shape[-1]) if x.dim() > 0 else x
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"init_centers_ needs rows of {self.in_features} features, got shape {tuple(x.shape)}")
        if x.shape[0] < self.num_centers:
            raise ValueError(f"init_centers_ needs at least num_centers={self.num_centers} rows, got {x.shape[0]}")
        x = x.to(self.centers.dtype)
        if method == "batch":
            gen_device = generator.device if generator is not None else x.device
            idx = torch.randperm(x.shape[0], generator=generator, device=gen_device)[: self.num_centers]
            picked = x.index_select(0, idx.to(x.device))
        else:
            picked = kmeans_plus_plus(x, self.num_centers, generator=generator)
        self.centers.copy_(picked)
        self.initialized.fill_(True)
        return self

    def forward(self, input: Tensor) -> Tensor:
        return F.rbf(input, self.centers, self.gamma)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_centers={self.num_centers}, gamma={self.gamma_init}, "
            f"learnable={self.centers.requires_grad}, learnable_gamma={self.gamma.requires_grad}"
        )
