"""The argument checks that ``torchff.nn.MLP`` and the data modules / ``FeedforwardModule`` of
``torchff.train`` share (``torchff._validate``): one set of rules and messages for both."""

import math

import numpy as np
import pytest
import torch

from torchff._validate import check_int, check_number, check_positive_or_none, check_probability
from torchff.nn import MLP


def test_check_int():
    assert check_int("n", 3) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_int("n", torch.tensor(2)) == 2
    assert check_int("seed", 0, minimum=0) == 0
    for bad in (True, 2.5, "3", None):
        with pytest.raises(TypeError, match=r"^n must be an int, got "):
            check_int("n", bad)
    with pytest.raises(ValueError, match=r"^n must be >= 1, got 0$"):
        check_int("n", 0)


def test_check_number():
    assert check_number("noise", 1) == 1.0 and type(check_number("noise", 1)) is float
    assert check_number("x", -5.0, minimum=-math.inf) == -5.0
    for bad in (True, "0.1", None):
        with pytest.raises(TypeError, match=r"^noise must be a number, got "):
            check_number("noise", bad)
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match=r"^noise must be >= 0.0, got "):
            check_number("noise", bad)
    with pytest.raises(ValueError):
        check_number("x", math.nan, minimum=-math.inf)


def test_check_probability():
    assert check_probability("p", 0) == 0.0 and check_probability("p", 0.5) == 0.5
    for bad in (True, "0.1"):
        with pytest.raises(TypeError, match=r"^p must be a float in \[0, 1\), got "):
            check_probability("p", bad)
    for bad in (1.0, -0.1, math.nan):
        with pytest.raises(ValueError, match=r"^p must be in \[0, 1\), got "):
            check_probability("p", bad)


def test_check_positive_or_none():
    assert check_positive_or_none("max_norm", None) is None
    assert check_positive_or_none("max_norm", 2) == 2.0 and check_positive_or_none("max_norm", math.inf) == math.inf
    for bad in (0.0, -1.0, math.nan, True, "1"):
        with pytest.raises(ValueError, match=r"^max_norm must be a positive number or None, got "):
            check_positive_or_none("max_norm", bad)


def test_max_norm_nan_is_refused():
    # max_norm <= 0 let NaN through (every comparison with NaN is false): a NaN max-norm would
    # have turned every weight row into NaN at the first apply_max_norm_
    with pytest.raises(ValueError, match="max_norm must be a positive number or None"):
        MLP(4, [8], 2, max_norm=math.nan)
    pytest.importorskip("lightning")
    from torchff.train.module import FeedforwardModule

    with pytest.raises(ValueError, match="max_norm must be a positive number or None"):
        FeedforwardModule(MLP(4, [8], 2), max_norm=math.nan)


def test_mlp_and_data_modules_give_the_same_messages():
    pytest.importorskip("lightning")
    from torchff.train.data import MoonsDataModule

    with pytest.raises(TypeError, match=r"^in_features must be an int, got 'abc'$"):
        MLP("abc", [8], 2)
    with pytest.raises(TypeError, match=r"^batch_size must be an int, got 'abc'$"):
        MoonsDataModule(batch_size="abc")
    with pytest.raises(ValueError, match=r"^hidden_features\[1\] must be >= 1, got 0$"):
        MLP(4, [8, 0], 2)
    with pytest.raises(ValueError, match=r"^n_train must be >= 1, got 0$"):
        MoonsDataModule(n_train=0)
