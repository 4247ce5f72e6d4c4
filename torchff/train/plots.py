"""PNG plots of a run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

__all__ = ["learning_curves", "decision_boundary", "regression_fit", "confusion_matrix"]


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(history: dict[str, list[tuple[int, float]]], path: str | Path) -> Path | None:
    """One panel per metric (``loss``, ``acc``, ``mse``, ...) with its ``train/`` and ``val/`` curves."""
    groups: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for name, series in history.items():
        if "/" not in name or not series or name.endswith("_best"):
            continue
        stage, metric = name.split("/", 1)
        groups.setdefault(metric, {})[stage] = series
    if not groups:
        return None
    metrics = sorted(groups, key=lambda m: (m != "loss", m))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for stage, series in sorted(groups[metric].items()):
            epochs = [e + 1 for e, _ in series]
            values = [v for _, v in series]
            ax.plot(epochs, values, marker="o" if len(epochs) < 30 else None, ms=3, label=stage)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


@torch.no_grad()
def decision_boundary(
    predict: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    path: str | Path,
    num_classes: int,
    resolution: int = 300,
    title: str = "decision boundary",
) -> Path:
    """The predicted class over a grid covering ``x`` (2-D), with the points coloured by true class.

    ``predict`` maps ``(n, 2)`` inputs to ``(n,)`` class indices.
    """
    x = x.detach().cpu().float()
    y = y.detach().cpu()
    lo = x.min(0).values
    hi = x.max(0).values
    pad = 0.15 * (hi - lo).clamp_min(1e-3)
    lo, hi = lo - pad, hi + pad
    gx = torch.linspace(float(lo[0]), float(hi[0]), resolution)
    gy = torch.linspace(float(lo[1]), float(hi[1]), resolution)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    zz = predict(grid).detach().cpu().reshape(resolution, resolution)
    cmap = plt.get_cmap("tab10" if num_classes <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(5, 4.4))
    levels = torch.arange(num_classes + 1).float() - 0.5
    ax.contourf(xx.numpy(), yy.numpy(), zz.float().numpy(), levels=levels.numpy(), cmap=cmap,
                vmin=-0.5, vmax=cmap.N - 0.5, alpha=0.3)
    ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), c=y.numpy(), cmap=cmap, vmin=-0.5, vmax=cmap.N - 0.5,
               s=40 if x.shape[0] < 20 else 8, edgecolors="k", linewidths=0.3)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
    return _save(fig, path)


@torch.no_grad()
def regression_fit(
    predict: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    path: str | Path,
    true_function: Callable[[Tensor], Tensor] | None = None,
    noise_mean: float | None = None,
    noise_median: float | None = None,
    label: str = "fit",
    title: str = "fitted curve",
) -> Path:
    """The data, the fitted curve and (when known) the true conditional mean and median."""
    x = x.detach().cpu().float().reshape(-1)
    y = y.detach().cpu().float().reshape(-1)
    grid = torch.linspace(float(x.min()), float(x.max()), 400)
    fit = predict(grid.unsqueeze(1)).detach().cpu().reshape(-1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(x.numpy(), y.numpy(), s=5, alpha=0.35, color="grey", label="data")
    # Keep the outliers from flattening the picture: show the bulk of the data.
    lo, hi = torch.quantile(y, 0.01).item(), torch.quantile(y, 0.99).item()
    span = hi - lo
    ax.set_ylim(lo - 0.15 * span, hi + 0.25 * span)
    if true_function is not None:
        f = true_function(grid)
        if noise_mean is not None:
            ax.plot(grid.numpy(), (f + noise_mean).numpy(), "--", color="tab:blue", label="true mean E[y|x]")
        if noise_median is not None:
            ax.plot(grid.numpy(), (f + noise_median).numpy(), ":", color="tab:green", lw=2, label="true median")
    ax.plot(grid.numpy(), fit.numpy(), color="tab:red", lw=2, label=label)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def confusion_matrix(
    cm: Tensor, path: str | Path, class_names: Sequence[str] | None = None, title: str = "confusion matrix (test)"
) -> Path:
    """A confusion matrix (rows: true class, columns: predicted) with row-normalised colours and counts."""
    cm = cm.detach().cpu().to(torch.int64)
    k = cm.shape[0]
    names = list(class_names) if class_names is not None and len(class_names) == k else [str(i) for i in range(k)]
    rates = cm.float() / cm.sum(1, keepdim=True).clamp_min(1)
    size = max(3.5, 0.55 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7 if k > 5 else 9,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)
