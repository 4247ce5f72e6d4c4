import os
import sys
from pathlib import Path

import pytest
import torch

# Without a GPU the Triton kernels run under triton's interpreter, on CPU tensors
# (tests/triton_support.py); the variable must be set before anything imports triton.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The benchmark suite (``benchmarks/``, not installed) is importable from the tests; appended, so
# an installed torchff still wins over the source tree.
sys.path.append(str(Path(__file__).resolve().parents[1]))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Run a test module on one intra-op thread: its many tiny kernels (float64 depthwise
    convolutions, small drop-in cases) only lose time to OpenMP threads contending for the
    2 cores of a CI machine, or for each other's under pytest-xdist."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
