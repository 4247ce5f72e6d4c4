"""``LightningDataModule``\\ s for the examples.

Every data module here holds its splits as tensors and tells the training code what the
network needs to know about it:

* ``task``: ``"classification"`` (int64 labels) or ``"regression"`` (float targets ``(n, d)``);
* ``in_features``: the size of one (flattened) input;
* ``num_classes`` (classification) or ``target_dim`` (regression);
* ``plot``: ``"decision_boundary"`` (2-D inputs), ``"curve"`` (1-D regression) or ``None``.

The synthetic data are a pure function of ``seed`` (a ``torch.Generator`` of their own), so
they do not change with the training seed. Batch sizes are per process (as Lightning's).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from torchff._validate import check_int, check_number
from torchff.train import datasets as D
from torchff.train.errors import ConfigError, CorruptDataError, DataNotFoundError

__all__ = [
    "TensorDataModule",
    "XORDataModule",
    "MoonsDataModule",
    "CirclesDataModule",
    "SpiralsDataModule",
    "Regression1DDataModule",
    "IDXImageDataModule",
    "FashionMNISTDataModule",
    "MNISTDataModule",
]

Split = tuple[Tensor, Tensor]


class TensorDataModule(L.LightningDataModule):
    """Base class: subclasses implement :meth:`make_splits` returning ``(train, val, test)``.

    Args:
        batch_size: training batch size (per process).
        eval_batch_size: validation/test batch size (default: ``batch_size``).
        num_workers: ``DataLoader`` workers (0: load in the main process; the data are in memory).
        pin_memory: pin host memory (for GPU training).
        seed: seed of the data's own generator (synthetic data, train/val split).
    """

    task: str = "classification"
    in_features: int
    num_classes: int | None = None
    target_dim: int = 1
    plot: str | None = None
    class_names: list[str] | None = None
    #: ``num_threads=auto`` trains on one thread (small in-memory data, whose tiny matrix products
    #: only lose time to thread synchronisation); renamed from ``small``
    single_thread: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "small" in cls.__dict__:
            raise TypeError(f"{cls.__name__}.small was renamed single_thread (num_threads=auto trains a data "
                            f"module on one thread when its single_thread is true)")

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.batch_size = check_int("batch_size", batch_size)
        self.eval_batch_size = self.batch_size if eval_batch_size is None else check_int("eval_batch_size", eval_batch_size)
        self.num_workers = check_int("num_workers", num_workers, minimum=0)
        self.pin_memory = bool(pin_memory)
        self.seed = check_int("seed", seed, minimum=0)
        self.data_train: TensorDataset | None = None
        self.data_val: TensorDataset | None = None
        self.data_test: TensorDataset | None = None

    # -- to implement -------------------------------------------------------------------
    def make_splits(self) -> tuple[Split, Split, Split]:
        raise NotImplementedError

    # -- LightningDataModule --------------------------------------------------------------
    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def setup(self, stage: str | None = None) -> None:
        if self.data_train is None:
            train, val, test = self.make_splits()
            self.data_train = TensorDataset(*train)
            self.data_val = TensorDataset(*val)
            self.data_test = TensorDataset(*test)

    def _loader(self, ds: TensorDataset | None, batch_size: int, shuffle: bool) -> DataLoader:
        assert ds is not None, "setup() runs first"
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.data_train, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.data_val, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.data_test, self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def tensors(self, split: str = "train") -> Split:
        """The ``(x, y)`` tensors of ``split`` (``train``, ``val`` or ``test``)."""
        self.setup()
        ds = {"train": self.data_train, "val": self.data_val, "test": self.data_test}[split]
        return ds.tensors[0], ds.tensors[1]


# --------------------------------------------------------------------------------------
# synthetic classification
# --------------------------------------------------------------------------------------
class XORDataModule(TensorDataModule):
    """The lecture's XOR: the points ``[0,0], [0,1], [1,0], [1,1]`` with labels ``0, 1, 1, 0``.

    There is nothing to generalise to: train, validation and test are the same four points.
    """

    in_features = 2
    num_classes = 2
    plot = "decision_boundary"

    def __init__(self, batch_size: int = 4, **kwargs: Any) -> None:
        super().__init__(batch_size=batch_size, **kwargs)

    def make_splits(self) -> tuple[Split, Split, Split]:
        x, y = D.xor()
        return (x, y), (x.clone(), y.clone()), (x.clone(), y.clone())


class _Synthetic2D(TensorDataModule):
    in_features = 2
    num_classes = 2
    plot = "decision_boundary"

    def __init__(
        self,
        n_train: int = 1000,
        n_val: int = 500,
        n_test: int = 1000,
        noise: float = 0.1,
        batch_size: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        self.n_train = check_int("n_train", n_train)
        self.n_val = check_int("n_val", n_val)
        self.n_test = check_int("n_test", n_test)
        self.noise = check_number("noise", noise)

    def sample(self, n: int, generator: torch.Generator) -> Split:
        raise NotImplementedError

    def make_splits(self) -> tuple[Split, Split, Split]:
        g = self.generator()
        return tuple(self.sample(n, g) for n in (self.n_train, self.n_val, self.n_test))  # type: ignore[return-value]


class MoonsDataModule(_Synthetic2D):
    """Two interleaving half moons (:func:`torchff.train.datasets.make_moons`)."""

    def sample(self, n: int, generator: torch.Generator) -> Split:
        return D.make_moons(n, self.noise, generator)


class CirclesDataModule(_Synthetic2D):
    """Two concentric circles (:func:`torchff.train.datasets.make_circles`); ``factor`` is the inner radius."""

    def __init__(self, factor: float = 0.5, noise: float = 0.05, **kwargs: Any) -> None:
        super().__init__(noise=noise, **kwargs)
        self.factor = check_number("factor", factor)
        if not 0.0 < self.factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")

    def sample(self, n: int, generator: torch.Generator) -> Split:
        return D.make_circles(n, self.noise, self.factor, generator)


class SpiralsDataModule(_Synthetic2D):
    """``num_classes`` interleaved spirals (:func:`torchff.train.datasets.make_spirals`)."""

    def __init__(self, num_classes: int = 3, turns: float = 1.0, noise: float = 0.05, **kwargs: Any) -> None:
        super().__init__(noise=noise, **kwargs)
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.turns = check_number("turns", turns)

    def sample(self, n: int, generator: torch.Generator) -> Split:
        return D.make_spirals(n, self.num_classes, self.noise, self.turns, generator)


# --------------------------------------------------------------------------------------
# 1-D regression
# --------------------------------------------------------------------------------------
class Regression1DDataModule(TensorDataModule):
    """``y = f(x) + noise`` on an interval, with optional heavy-tailed one-sided outliers.

    With outliers on one side the conditional mean of ``y`` moves away from its conditional median,
    so a Gaussian output (MSE: it learns the mean) and a Laplace output (L1: it learns the median)
    fit visibly different curves. See :func:`torchff.train.datasets.regression_noise` for the noise.

    ``noise_mean`` and ``noise_median`` (set by :meth:`setup`) are the mean and median of the noise,
    estimated from 200,000 draws: the conditional mean is ``f(x) + noise_mean``, the median
    ``f(x) + noise_median``.
    """

    task = "regression"
    in_features = 1
    target_dim = 1
    plot = "curve"

    def __init__(
        self,
        n_train: int = 1000,
        n_val: int = 500,
        n_test: int = 1000,
        function: str = "sin",
        frequency: float = 1.5,
        x_min: float = -3.0,
        x_max: float = 3.0,
        noise: float = 0.1,
        outlier_prob: float = 0.0,
        outlier_scale: float = 3.0,
        outlier_df: int = 3,
        outlier_side: str = "positive",
        batch_size: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        self.n_train = check_int("n_train", n_train)
        self.n_val = check_int("n_val", n_val)
        self.n_test = check_int("n_test", n_test)
        D.regression_function(function, torch.zeros(1))  # validates the name
        self.function = function
        self.frequency = check_number("frequency", frequency, minimum=-math.inf)
        self.x_min = check_number("x_min", x_min, minimum=-math.inf)
        self.x_max = check_number("x_max", x_max, minimum=-math.inf)
        if not self.x_min < self.x_max:
            raise ValueError(f"x_min must be < x_max, got {x_min} and {x_max}")
        self.noise = check_number("noise", noise)
        self.outlier_prob = check_number("outlier_prob", outlier_prob)
        if self.outlier_prob > 1:
            raise ValueError(f"outlier_prob must be in [0, 1], got {outlier_prob}")
        self.outlier_scale = check_number("outlier_scale", outlier_scale)
        self.outlier_df = check_int("outlier_df", outlier_df)
        if outlier_side not in ("positive", "both"):
            raise ValueError(f"outlier_side must be 'positive' or 'both', got {outlier_side!r}")
        self.outlier_side = outlier_side
        self.noise_mean: float | None = None
        self.noise_median: float | None = None

    def _noise_kwargs(self) -> dict[str, Any]:
        return dict(
            noise=self.noise,
            outlier_prob=self.outlier_prob,
            outlier_scale=self.outlier_scale,
            outlier_df=self.outlier_df,
            outlier_side=self.outlier_side,
        )

    def true_function(self, x: Tensor) -> Tensor:
        """The noiseless ``f(x)``."""
        return D.regression_function(self.function, x, self.frequency)

    def make_splits(self) -> tuple[Split, Split, Split]:
        g = self.generator()
        kw = dict(function=self.function, frequency=self.frequency, x_range=(self.x_min, self.x_max))
        splits = tuple(D.make_regression_1d(n, **kw, **self._noise_kwargs(), generator=g)
                       for n in (self.n_train, self.n_val, self.n_test))
        eps = D.regression_noise(200_000, **self._noise_kwargs(), generator=torch.Generator().manual_seed(12345))
        self.noise_mean = float(eps.mean())
        self.noise_median = float(eps.median())
        return splits  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# IDX image data (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------
class IDXImageDataModule(TensorDataModule):
    """28x28 grey images from the four IDX files of MNIST-style data sets, flattened to 784 inputs.

    The images are scaled to [0, 1] and standardised with the data set's usual mean and std
    (``normalize``); the 60,000 training images are split into train and validation
    (``val_size`` images, or a fraction when a float < 1) with the data module's ``seed``.

    ``root`` may hold the four files (``.gz`` or not) directly, as Debian's ``dataset-fashion-mnist``
    package lays them out in ``/usr/share/datasets/fashion-mnist``, or in torchvision's layout
    ``root/<Name>/raw``. With ``download=True``, ``torchvision.datasets`` fetches missing files into
    ``root/<Name>/raw`` (needs the internet).
    """

    name: str = ""
    torchvision_name: str = ""
    mean: float = 0.5
    std: float = 0.5
    how_to_get: str = ""
    files = {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }
    in_features = 784
    num_classes = 10
    single_thread = False

    def __init__(
        self,
        root: str | Path = "data",
        batch_size: int = 256,
        val_size: int | float = 5000,
        normalize: bool = True,
        download: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        if not isinstance(root, (str, Path)):
            raise TypeError(f"root must be a path, got {root!r}")
        self.root = Path(root).expanduser()
        if isinstance(val_size, float) and 0.0 < val_size < 1.0:
            self.val_size: int | float = val_size
        else:
            self.val_size = check_int("val_size", val_size)
        self.normalize = bool(normalize)
        self.download = bool(download)

    def search_dirs(self) -> list[Path]:
        """The folders looked in, in order: ``root`` itself, then torchvision's ``root/<Name>/raw``."""
        return [self.root, self.root / self.torchvision_name / "raw"]

    def find_files(self) -> dict[str, Path] | None:
        """The four files from the first folder that holds all of them (``.gz`` or not), else ``None``."""
        for d in self.search_dirs():
            found = {}
            for key, stem in self.files.items():
                for candidate in (d / stem, d / f"{stem}.gz"):
                    if candidate.is_file():
                        found[key] = candidate
                        break
            if len(found) == len(self.files):
                return found
        return None

    def _not_found(self) -> DataNotFoundError:
        dirs = "\n".join(f"  {d.resolve()}" for d in self.search_dirs())
        names = ", ".join(f"{s}[.gz]" for s in self.files.values())
        return DataNotFoundError(
            f"{self.name} not found: looked for {names} in\n{dirs}\n"
            f"To get the data:\n"
            f"  * add data.download=true where the internet is reachable (torchvision saves the files "
            f"under {(self.root / self.torchvision_name / 'raw').resolve()});\n"
            f"{self.how_to_get}"
            f"  * or set data.root to a folder that holds the four files."
        )

    def check_available(self) -> None:
        """Raise :class:`DataNotFoundError` (saying where it looked and how to get the data) unless the
        files are there or ``download`` is set. Files that are there are read and checked now (and kept
        for :meth:`setup`): a corrupt one raises :class:`CorruptDataError` naming it."""
        if self.find_files() is not None:
            self.setup()
        elif not self.download:
            raise self._not_found()

    def prepare_data(self) -> None:
        if self.find_files() is not None:
            return
        if not self.download:
            raise self._not_found()
        import torchvision.datasets

        cls = getattr(torchvision.datasets, self.torchvision_name)
        for train in (True, False):
            cls(str(self.root), train=train, download=True)
        if self.find_files() is None:
            raise self._not_found()

    def _images(self, path: Path) -> Tensor:
        x = D.read_idx(path)
        if x.dim() != 3 or x.shape[1] * x.shape[2] != self.in_features or x.dtype != torch.uint8:
            raise CorruptDataError(f"{path}: expected uint8 images of shape (n, 28, 28), got {x.dtype} "
                                   f"{tuple(x.shape)}")
        x = x.reshape(x.shape[0], -1).to(torch.float32).div_(255.0)
        if self.normalize:
            x.sub_(self.mean).div_(self.std)
        return x

    def _labels(self, path: Path, images: Path, n: int) -> Tensor:
        y = D.read_idx(path)
        if y.dim() != 1 or y.dtype != torch.uint8:
            raise CorruptDataError(f"{path}: expected uint8 labels of shape (n,), got {y.dtype} {tuple(y.shape)}")
        if y.shape[0] != n:
            raise CorruptDataError(f"{path}: {y.shape[0]} labels, but {images} has {n} images")
        if y.numel() and int(y.max()) >= self.num_classes:
            raise CorruptDataError(f"{path}: label {int(y.max())} out of range for {self.num_classes} classes")
        return y.to(torch.int64)

    def make_splits(self) -> tuple[Split, Split, Split]:
        files = self.find_files()
        if files is None:
            raise self._not_found()
        x = self._images(files["train_images"])
        y = self._labels(files["train_labels"], files["train_images"], x.shape[0])
        x_test = self._images(files["test_images"])
        y_test = self._labels(files["test_labels"], files["test_images"], x_test.shape[0])
        n_val = round(self.val_size * x.shape[0]) if isinstance(self.val_size, float) else self.val_size
        if not 0 < n_val < x.shape[0]:
            raise ConfigError(f"data.val_size={self.val_size} leaves no training images out of {x.shape[0]}")
        perm = torch.randperm(x.shape[0], generator=self.generator())
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx]), (x_test, y_test)


class FashionMNISTDataModule(IDXImageDataModule):
    """Fashion-MNIST (Zalando): 70,000 28x28 images of 10 kinds of clothing."""

    name = "Fashion-MNIST"
    torchvision_name = "FashionMNIST"
    mean = 0.2860
    std = 0.3530
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    how_to_get = (
        "  * on Debian/Ubuntu: apt-get install dataset-fashion-mnist, which puts the four .gz files in "
        "/usr/share/datasets/fashion-mnist; use data.root=/usr/share/datasets/fashion-mnist as it is;\n"
    )


class MNISTDataModule(IDXImageDataModule):
    """MNIST: 70,000 28x28 images of handwritten digits."""

    name = "MNIST"
    torchvision_name = "MNIST"
    mean = 0.1307
    std = 0.3081
    class_names = [str(i) for i in range(10)]
