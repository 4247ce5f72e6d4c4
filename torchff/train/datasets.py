"""Data for the examples: small synthetic problems written with torch, and an IDX reader.

Every generator takes a ``torch.Generator`` so the data are a pure function of a seed, and
returns ``(x, y)``: ``x`` float32 ``(n, d)``; ``y`` int64 class labels ``(n,)`` or float32
regression targets ``(n, 1)``.
"""

from __future__ import annotations

import gzip
import math
import sys
import zlib
from pathlib import Path

import torch
from torch import Tensor

from torchff.train.errors import CorruptDataError

__all__ = [
    "xor",
    "make_moons",
    "make_circles",
    "make_spirals",
    "make_regression_1d",
    "regression_function",
    "read_idx",
    "write_idx",
]


def _shuffle(x: Tensor, y: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(x.shape[0], generator=generator)
    return x[perm], y[perm]


def xor() -> tuple[Tensor, Tensor]:
    """The lecture's XOR problem: the four corners of the unit square and labels ``0, 1, 1, 0``."""
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])
    return x, y


def make_moons(n: int, noise: float = 0.1, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two interleaving half circles (class 0 the upper, class 1 the lower), plus Gaussian noise."""
    n0 = n // 2
    n1 = n - n0
    t0 = torch.rand(n0, generator=generator) * math.pi
    t1 = torch.rand(n1, generator=generator) * math.pi
    upper = torch.stack([torch.cos(t0), torch.sin(t0)], 1)
    lower = torch.stack([1.0 - torch.cos(t1), 0.5 - torch.sin(t1)], 1)
    x = torch.cat([upper, lower]) + noise * torch.randn(n, 2, generator=generator)
    y = torch.cat([torch.zeros(n0, dtype=torch.int64), torch.ones(n1, dtype=torch.int64)])
    return _shuffle(x, y, generator)


def make_circles(
    n: int, noise: float = 0.05, factor: float = 0.5, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Two concentric circles, radius 1 (class 0) and ``factor`` (class 1), plus Gaussian noise."""
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor must be in (0, 1), got {factor}")
    n0 = n // 2
    n1 = n - n0
    t = torch.rand(n, generator=generator) * (2 * math.pi)
    r = torch.cat([torch.ones(n0), torch.full((n1,), float(factor))])
    x = torch.stack([r * torch.cos(t), r * torch.sin(t)], 1) + noise * torch.randn(n, 2, generator=generator)
    y = torch.cat([torch.zeros(n0, dtype=torch.int64), torch.ones(n1, dtype=torch.int64)])
    return _shuffle(x, y, generator)


def make_spirals(
    n: int,
    num_classes: int = 3,
    noise: float = 0.05,
    turns: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``num_classes`` interleaved spiral arms from the origin, each turning ``turns`` times.

    Point ``i`` of arm ``k`` sits at radius ``r`` uniform in (0, 1] and angle
    ``2 pi (k / num_classes + turns * r)``; Gaussian noise of std ``noise`` is added to both
    coordinates. More turns make the classes harder to separate (and depth more useful).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    y = torch.arange(n) % num_classes
    r = 1.0 - torch.rand(n, generator=generator)  # (0, 1]
    theta = 2 * math.pi * (y.double() / num_classes + turns * r.double())
    x = torch.stack([r * torch.cos(theta).float(), r * torch.sin(theta).float()], 1)
    x = x + noise * torch.randn(n, 2, generator=generator)
    return _shuffle(x, y, generator)


def regression_function(name: str, x: Tensor, frequency: float = 1.5) -> Tensor:
    """The noiseless target of :func:`make_regression_1d`: ``sin`` (``sin(frequency x)``), ``cubic``
    (``x**3 / 9``) or ``linear`` (``x / 3``)."""
    if name == "sin":
        return torch.sin(frequency * x)
    if name == "cubic":
        return x**3 / 9.0
    if name == "linear":
        return x / 3.0
    raise ValueError(f"unknown regression function {name!r}; known: sin, cubic, linear")


def _student_t(shape: tuple[int, ...], df: int, generator: torch.Generator | None) -> Tensor:
    z = torch.randn(shape, generator=generator)
    chi2 = torch.randn((*shape, df), generator=generator).square().sum(-1)
    return z / torch.sqrt(chi2 / df)


def regression_noise(
    n: int,
    noise: float = 0.1,
    outlier_prob: float = 0.0,
    outlier_scale: float = 3.0,
    outlier_df: int = 3,
    outlier_side: str = "positive",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Gaussian noise with std ``noise``, plus, with probability ``outlier_prob``, an outlier of size
    ``outlier_scale * |t|`` with ``t`` Student-t with ``outlier_df`` degrees of freedom (heavy tails;
    a finite variance for ``df > 2``). ``outlier_side="positive"`` makes every outlier push ``y`` up,
    so the conditional mean moves away from the conditional median; ``"both"`` gives random signs."""
    if outlier_side not in ("positive", "both"):
        raise ValueError(f"outlier_side must be 'positive' or 'both', got {outlier_side!r}")
    if not 0.0 <= outlier_prob <= 1.0:
        raise ValueError(f"outlier_prob must be in [0, 1], got {outlier_prob}")
    eps = noise * torch.randn(n, generator=generator)
    if outlier_prob > 0:
        hit = torch.rand(n, generator=generator) < outlier_prob
        size = outlier_scale * _student_t((n,), int(outlier_df), generator).abs()
        if outlier_side == "both":
            size = size * torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        eps = eps + hit * size
    return eps


def make_regression_1d(
    n: int,
    function: str = "sin",
    frequency: float = 1.5,
    x_range: tuple[float, float] = (-3.0, 3.0),
    noise: float = 0.1,
    outlier_prob: float = 0.0,
    outlier_scale: float = 3.0,
    outlier_df: int = 3,
    outlier_side: str = "positive",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``x`` uniform on ``x_range`` and ``y = f(x) + eps`` with the noise of :func:`regression_noise`.

    Returns ``x`` of shape ``(n, 1)`` and ``y`` of shape ``(n, 1)``.
    """
    lo, hi = float(x_range[0]), float(x_range[1])
    if not lo < hi:
        raise ValueError(f"x_range must be increasing, got {x_range}")
    x = lo + (hi - lo) * torch.rand(n, generator=generator)
    eps = regression_noise(n, noise, outlier_prob, outlier_scale, outlier_df, outlier_side, generator)
    y = regression_function(function, x, frequency) + eps
    return x.unsqueeze(1), y.unsqueeze(1)


# --------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------
_IDX_DTYPES = {
    0x08: torch.uint8,
    0x09: torch.int8,
    0x0B: torch.int16,
    0x0C: torch.int32,
    0x0D: torch.float32,
    0x0E: torch.float64,
}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when its name ends in ``.gz``; :class:`CorruptDataError` (naming
    the file) for a truncated or broken gzip stream, a ``.gz`` that is not gzip, or an unreadable file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except EOFError as e:
        raise CorruptDataError(f"{path}: truncated gzip file (the compressed data end early)") from e
    except gzip.BadGzipFile as e:
        raise CorruptDataError(f"{path}: not a valid gzip file ({e})") from e
    except zlib.error as e:
        raise CorruptDataError(f"{path}: corrupt gzip data ({e})") from e
    except OSError as e:
        raise CorruptDataError(f"{path}: cannot be read ({e.strerror or e})") from e


def read_idx(path: str | Path) -> Tensor:
    """Read an IDX file (as LeCun's MNIST files; ``.gz`` is decompressed) into a tensor.

    The header is two zero bytes, a type code, the number of dimensions ``d`` and ``d``
    big-endian uint32 sizes; the data follow in big-endian order.

    Raises :class:`~torchff.train.errors.CorruptDataError` (a ``ValueError``), its message starting
    with the path, for a file that is not IDX, is shorter or longer than its header says, or is a
    truncated or invalid gzip file.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        hint = " (it is gzip-compressed: name it .gz)" if data[:2] == b"\x1f\x8b" else ""
        raise CorruptDataError(f"{path} is not an IDX file (bad magic number){hint}")
    dtype = _IDX_DTYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptDataError(f"{path}: truncated IDX header ({len(data)} bytes, {ndim} dimensions need {header})")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    itemsize = torch.empty((), dtype=dtype).element_size()
    numel = math.prod(shape)
    if len(data) != header + numel * itemsize:
        have = len(data) - header
        what = "truncated" if have < numel * itemsize else "longer than its header says"
        raise CorruptDataError(
            f"{path}: {what}: the header says {shape} ({numel * itemsize} bytes of data), the file has {have}"
        )
    t = torch.frombuffer(bytearray(data[header:]), dtype=dtype)
    if itemsize > 1 and sys.byteorder == "little":
        t = t.view(torch.uint8).view(-1, itemsize).flip(1).reshape(-1).view(dtype)  # big- to little-endian
    return t.reshape(shape)


def write_idx(path: str | Path, tensor: Tensor) -> None:
    """Write ``tensor`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``)."""
    path = Path(path)
    codes = {v: k for k, v in _IDX_DTYPES.items()}
    t = tensor.detach().cpu().contiguous()
    if t.dtype not in codes:
        raise TypeError(f"IDX cannot store {t.dtype}")
    header = bytes([0, 0, codes[t.dtype], t.dim()]) + b"".join(int(s).to_bytes(4, "big") for s in t.shape)
    itemsize = t.element_size()
    raw = t.reshape(-1).view(torch.uint8)
    if itemsize > 1 and sys.byteorder == "little":
        raw = raw.view(-1, itemsize).flip(1).reshape(-1)
    payload = header + raw.numpy().tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)
