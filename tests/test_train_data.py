import gzip
import math

import pytest
import torch

from torchff.train import datasets as D
from torchff.train.data import (
    CirclesDataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    MoonsDataModule,
    Regression1DDataModule,
    SpiralsDataModule,
    XORDataModule,
)
from torchff.train.data import IDXImageDataModule, TensorDataModule
from torchff.train.errors import ConfigError, CorruptDataError, DataNotFoundError

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def truncate(path, keep=0.5):
    """Cut ``path`` to a fraction of its bytes (a download or copy that stopped early)."""
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def corrupt(folder, how, name=IDX_NAMES[0]):
    """Break one of the four files ``write_tiny_idx(folder, gz=True)`` wrote; returns its path."""
    path = folder / f"{name}.gz"
    if how == "truncated_gzip":  # EOFError from gzip
        truncate(path)
    elif how == "short_idx":  # a valid gzip stream holding fewer bytes than the IDX header says
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[:-100]))
    elif how == "not_gzip":  # BadGzipFile: the uncompressed bytes under a .gz name
        path.write_bytes(gzip.decompress(path.read_bytes()))
    else:
        raise ValueError(how)
    return path


def write_tiny_idx(folder, n_train=60, n_test=20, gz=True, seed=0):
    """Four IDX files of random 28x28 uint8 images and labels 0..9, as MNIST ships them."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    data = {
        IDX_NAMES[0]: torch.randint(0, 256, (n_train, 28, 28), generator=g, dtype=torch.uint8),
        IDX_NAMES[1]: (torch.arange(n_train) % 10).to(torch.uint8),
        IDX_NAMES[2]: torch.randint(0, 256, (n_test, 28, 28), generator=g, dtype=torch.uint8),
        IDX_NAMES[3]: (torch.arange(n_test) % 10).to(torch.uint8),
    }
    for name, t in data.items():
        D.write_idx(folder / (name + (".gz" if gz else "")), t)
    return data


# -- generators ------------------------------------------------------------------------
def test_xor_points_and_labels():
    x, y = D.xor()
    assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.tolist() == [0, 1, 1, 0]


def test_moons_geometry_without_noise():
    x, y = D.make_moons(401, noise=0.0, generator=torch.Generator().manual_seed(0))
    assert x.shape == (401, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert (y == 0).sum() == 200 and (y == 1).sum() == 201
    upper, lower = x[y == 0], x[y == 1]
    torch.testing.assert_close(upper.norm(dim=1), torch.ones(200))
    assert (upper[:, 1] >= 0).all()
    centre = torch.tensor([1.0, 0.5])
    torch.testing.assert_close((lower - centre).norm(dim=1), torch.ones(201))
    assert (lower[:, 1] <= 0.5 + 1e-6).all()


def test_circles_radii_without_noise():
    x, y = D.make_circles(300, noise=0.0, factor=0.3, generator=torch.Generator().manual_seed(1))
    r = x.norm(dim=1)
    torch.testing.assert_close(r[y == 0], torch.ones(150))
    torch.testing.assert_close(r[y == 1], torch.full((150,), 0.3))


def test_spirals_angle_follows_radius_without_noise():
    k, turns = 3, 1.25
    x, y = D.make_spirals(600, num_classes=k, noise=0.0, turns=turns, generator=torch.Generator().manual_seed(2))
    assert torch.bincount(y).tolist() == [200, 200, 200]
    r = x.double().norm(dim=1)
    theta = torch.atan2(x[:, 1].double(), x[:, 0].double())
    expected = 2 * math.pi * (y.double() / k + turns * r)
    # equal angles modulo 2 pi
    assert torch.allclose(torch.cos(theta - expected), torch.ones_like(r), atol=1e-5)


def test_generators_are_a_function_of_the_seed():
    a = D.make_moons(50, 0.1, torch.Generator().manual_seed(3))
    b = D.make_moons(50, 0.1, torch.Generator().manual_seed(3))
    c = D.make_moons(50, 0.1, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_regression_without_noise_is_the_function():
    x, y = D.make_regression_1d(100, function="sin", frequency=2.0, noise=0.0, generator=torch.Generator().manual_seed(0))
    assert x.shape == (100, 1) and y.shape == (100, 1)
    assert ((x >= -3) & (x <= 3)).all()
    torch.testing.assert_close(y, torch.sin(2.0 * x))


def test_positive_outliers_separate_mean_and_median():
    g = torch.Generator().manual_seed(0)
    eps = D.regression_noise(100_000, noise=0.1, outlier_prob=0.2, outlier_scale=3.0, outlier_side="positive", generator=g)
    # outliers only push up: nothing far below, a heavy right tail, mean well above the median
    assert eps.min() > -1.0
    assert eps.max() > 10.0
    assert eps.mean() - eps.median() > 0.3
    both = D.regression_noise(100_000, noise=0.1, outlier_prob=0.2, outlier_side="both",
                              generator=torch.Generator().manual_seed(0))
    assert abs(float(both.mean() - both.median())) < 0.05


# -- IDX -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.float32, torch.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, dtype, gz):
    t = (torch.randn(3, 4, 5) * 100).to(dtype)
    path = tmp_path / ("t.idx" + (".gz" if gz else ""))
    D.write_idx(path, t)
    assert torch.equal(D.read_idx(path), t)


def test_idx_is_big_endian_as_the_format_says(tmp_path):
    path = tmp_path / "labels"
    D.write_idx(path, torch.tensor([1, 258], dtype=torch.int32))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 1]) and raw[4:8] == (2).to_bytes(4, "big")
    assert raw[8:] == (1).to_bytes(4, "big") + (258).to_bytes(4, "big")


def test_idx_reader_agrees_with_torchvision(tmp_path):
    mnist = pytest.importorskip("torchvision.datasets.mnist")
    data = write_tiny_idx(tmp_path, gz=False)
    for name, t in data.items():
        ours = D.read_idx(tmp_path / name)
        theirs = mnist.read_sn3_pascalvincent_tensor(str(tmp_path / name), strict=False)
        assert torch.equal(ours, theirs) and torch.equal(ours, t)


def test_idx_rejects_other_files(tmp_path):
    p = tmp_path / "junk.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"not an idx file")
    with pytest.raises(ValueError, match="not an IDX file"):
        D.read_idx(p)


@pytest.mark.parametrize(
    "how, match",
    [
        ("truncated_gzip", "truncated gzip file"),
        ("short_idx", r"truncated: the header says \(60, 28, 28\) \(47040 bytes of data\), the file has 46940"),
        ("not_gzip", "not a valid gzip file"),
    ],
)
def test_idx_corrupt_files_raise_an_error_naming_the_file(tmp_path, how, match):
    write_tiny_idx(tmp_path)
    path = corrupt(tmp_path, how)
    with pytest.raises(CorruptDataError, match=match) as info:
        D.read_idx(path)
    assert str(info.value).startswith(str(path))
    assert isinstance(info.value, ValueError)


def test_idx_longer_than_its_header_and_truncated_header(tmp_path):
    p = tmp_path / "labels"
    D.write_idx(p, torch.arange(10, dtype=torch.uint8))
    p.write_bytes(p.read_bytes() + b"\0")
    with pytest.raises(CorruptDataError, match="longer than its header says"):
        D.read_idx(p)
    p.write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))
    with pytest.raises(CorruptDataError, match="truncated IDX header"):
        D.read_idx(p)
    # gzip data under a name without .gz: say so
    D.write_idx(tmp_path / "x.gz", torch.arange(10, dtype=torch.uint8))
    (tmp_path / "x.gz").rename(tmp_path / "x")
    with pytest.raises(CorruptDataError, match="gzip-compressed: name it .gz"):
        D.read_idx(tmp_path / "x")


# -- data modules ----------------------------------------------------------------------
@pytest.mark.parametrize("how", ["truncated_gzip", "short_idx", "not_gzip"])
def test_check_available_reads_and_rejects_corrupt_files(tmp_path, how):
    write_tiny_idx(tmp_path)
    path = corrupt(tmp_path, how, name=IDX_NAMES[3])
    dm = FashionMNISTDataModule(root=tmp_path, val_size=10)
    with pytest.raises(CorruptDataError) as info:
        dm.check_available()
    assert str(path) in str(info.value)
    assert dm.data_train is None


def test_check_available_keeps_what_it_read(tmp_path):
    write_tiny_idx(tmp_path)
    dm = FashionMNISTDataModule(root=tmp_path, val_size=10)
    dm.check_available()
    train = dm.data_train
    assert train is not None and len(train) == 50
    dm.setup()
    assert dm.data_train is train


@pytest.mark.parametrize("which", ["labels_out_of_range", "label_count", "image_shape"])
def test_inconsistent_idx_files_are_rejected(tmp_path, which):
    write_tiny_idx(tmp_path)
    if which == "labels_out_of_range":
        D.write_idx(tmp_path / f"{IDX_NAMES[1]}.gz", torch.full((60,), 10, dtype=torch.uint8))
        match = "label 10 out of range for 10 classes"
    elif which == "label_count":
        D.write_idx(tmp_path / f"{IDX_NAMES[3]}.gz", torch.zeros(19, dtype=torch.uint8))
        match = "19 labels, but .*t10k-images-idx3-ubyte.gz has 20 images"
    else:
        D.write_idx(tmp_path / f"{IDX_NAMES[2]}.gz", torch.zeros(20, 14, 14, dtype=torch.uint8))
        match = r"expected uint8 images of shape \(n, 28, 28\)"
    with pytest.raises(CorruptDataError, match=match):
        FashionMNISTDataModule(root=tmp_path, val_size=10).setup()


def test_val_size_too_large_is_a_config_error(tmp_path):
    write_tiny_idx(tmp_path)
    with pytest.raises(ConfigError, match="val_size=60 leaves no training images"):
        FashionMNISTDataModule(root=tmp_path, val_size=60).setup()


def test_single_thread_is_what_num_threads_auto_reads():
    assert MoonsDataModule.single_thread and XORDataModule.single_thread
    assert not IDXImageDataModule.single_thread and not FashionMNISTDataModule.single_thread
    assert not hasattr(MoonsDataModule(), "small")


def test_a_data_module_that_still_sets_small_is_told_the_new_name():
    with pytest.raises(TypeError, match="Big.small was renamed single_thread"):
        class Big(TensorDataModule):  # noqa: F841
            small = False

def test_xor_datamodule_train_val_test_are_the_four_points():
    dm = XORDataModule()
    dm.setup()
    for split in ("train", "val", "test"):
        x, y = dm.tensors(split)
        assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and y.tolist() == [0, 1, 1, 0]
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (4, 2) and yb.dtype == torch.int64


@pytest.mark.parametrize("cls", [MoonsDataModule, CirclesDataModule, SpiralsDataModule])
def test_synthetic_2d_datamodules(cls):
    dm = cls(n_train=100, n_val=30, n_test=40, batch_size=16, seed=5)
    dm.setup()
    assert [len(dm.data_train), len(dm.data_val), len(dm.data_test)] == [100, 30, 40]
    x, y = dm.tensors("train")
    assert x.shape == (100, 2) and set(y.unique().tolist()) == set(range(dm.num_classes))
    assert dm.in_features == 2 and dm.plot == "decision_boundary"
    batches = list(dm.train_dataloader())
    assert len(batches) == 7 and batches[0][0].shape == (16, 2)
    # the data depend on the data seed only
    again = cls(n_train=100, n_val=30, n_test=40, batch_size=16, seed=5)
    again.setup()
    assert torch.equal(again.tensors("test")[0], dm.tensors("test")[0])
    # the splits are different samples
    assert not torch.equal(dm.tensors("train")[0][:30], dm.tensors("val")[0])


def test_regression_datamodule_noise_statistics():
    dm = Regression1DDataModule(n_train=200, n_val=50, n_test=50, outlier_prob=0.2, outlier_side="positive")
    dm.setup()
    x, y = dm.tensors("train")
    assert x.shape == (200, 1) and y.shape == (200, 1) and y.dtype == torch.float32
    assert dm.task == "regression" and dm.in_features == 1 and dm.plot == "curve"
    assert dm.noise_mean > dm.noise_median + 0.3
    assert abs(dm.noise_median) < 0.1
    resid = y - dm.true_function(x)
    assert resid.min() > -1.0


@pytest.mark.parametrize("kwargs", [dict(batch_size=0), dict(batch_size="abc"), dict(noise=-1.0), dict(n_train=2.5)])
def test_datamodule_argument_errors(kwargs):
    with pytest.raises((TypeError, ValueError)):
        MoonsDataModule(**kwargs)


def test_fashion_mnist_from_debian_layout(tmp_path):
    # /usr/share/datasets/fashion-mnist: the four .gz files directly in root
    data = write_tiny_idx(tmp_path, n_train=60, n_test=20, gz=True)
    dm = FashionMNISTDataModule(root=tmp_path, val_size=10, batch_size=8, seed=0)
    dm.check_available()
    dm.prepare_data()
    dm.setup()
    assert [len(dm.data_train), len(dm.data_val), len(dm.data_test)] == [50, 10, 20]
    x, y = dm.tensors("test")
    assert x.shape == (20, 784) and x.dtype == torch.float32 and y.dtype == torch.int64
    expected = (data[IDX_NAMES[2]].reshape(20, 784).float() / 255 - 0.2860) / 0.3530
    torch.testing.assert_close(x, expected)
    assert torch.equal(y, data[IDX_NAMES[3]].long())
    # train + val is a permutation of the 60 training images, fixed by the seed
    xtr, ytr = dm.tensors("train")
    xva, yva = dm.tensors("val")
    all_train = (data[IDX_NAMES[0]].reshape(60, 784).float() / 255 - 0.2860) / 0.3530
    merged = torch.cat([xtr, xva])
    order = [int((all_train == row).all(1).nonzero()) for row in merged]
    assert sorted(order) == list(range(60))
    dm2 = FashionMNISTDataModule(root=tmp_path, val_size=10, seed=0)
    dm2.setup()
    assert torch.equal(dm2.tensors("val")[0], xva)
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (8, 784)


def test_fashion_mnist_agrees_with_torchvision_layout_and_reader(tmp_path):
    tv = pytest.importorskip("torchvision.datasets")
    raw = tmp_path / "FashionMNIST" / "raw"
    write_tiny_idx(raw, n_train=30, n_test=10, gz=False)
    dm = FashionMNISTDataModule(root=tmp_path, val_size=0.2, normalize=False)
    dm.setup()
    assert len(dm.data_val) == 6
    ref = tv.FashionMNIST(str(tmp_path), train=False, download=False)
    x, y = dm.tensors("test")
    torch.testing.assert_close(x, ref.data.reshape(10, 784).float() / 255)
    assert torch.equal(y, ref.targets)


def test_mnist_datamodule(tmp_path):
    write_tiny_idx(tmp_path / "MNIST" / "raw", n_train=40, n_test=10, gz=True)
    dm = MNISTDataModule(root=tmp_path, val_size=8)
    dm.setup()
    x, _ = dm.tensors("train")
    assert x.shape == (32, 784)
    assert abs(float(x.mean()) - (127.5 / 255 - 0.1307) / 0.3081) < 0.2


def test_missing_data_message_says_where_and_how(tmp_path):
    dm = FashionMNISTDataModule(root=tmp_path / "nothing")
    with pytest.raises(DataNotFoundError) as info:
        dm.check_available()
    msg = str(info.value)
    assert str((tmp_path / "nothing").resolve()) in msg
    assert str((tmp_path / "nothing" / "FashionMNIST" / "raw").resolve()) in msg
    assert "train-images-idx3-ubyte" in msg
    assert "data.download=true" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "/usr/share/datasets/fashion-mnist" in msg
    with pytest.raises(DataNotFoundError):
        dm.prepare_data()
    # MNIST has no Debian package: its message does not send people to one
    mnist_msg = str(pytest.raises(DataNotFoundError, MNISTDataModule(root=tmp_path).check_available).value)
    assert "MNIST not found" in mnist_msg and "apt-get" not in mnist_msg


def test_a_partial_set_of_files_is_not_enough(tmp_path):
    write_tiny_idx(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError):
        FashionMNISTDataModule(root=tmp_path).check_available()
