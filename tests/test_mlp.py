import pytest
import torch
from torch import nn

import torchff
from torchff.nn import MLP

XOR_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


def test_lecture_xor_weights_give_exact_xor():
    # y = w^T max{0, W^T x + c} + b with the lecture's W, c, w, b.
    net = MLP(2, [2], 1, activation="relu")
    W = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    c = torch.tensor([0.0, -1.0])
    w = torch.tensor([1.0, -2.0])
    b = torch.tensor([0.0])
    net.load_state_dict(
        {
            "layers.fc1.weight": W.T,  # torch stores (out, in): W^T
            "layers.fc1.bias": c,
            "layers.out.weight": w.unsqueeze(0),
            "layers.out.bias": b,
        }
    )
    y = net(XOR_X)
    assert torch.equal(y, torch.tensor([[0.0], [1.0], [1.0], [0.0]]))
    # the hidden representation of the lecture's table: [[0,0],[1,0],[1,0],[2,1]]
    h = net.layers.act1(net.layers.fc1(XOR_X))
    assert torch.equal(h, torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 1.0]]))


def test_structure_depth_width_and_stable_keys():
    net = MLP(5, [7, 6, 4], 3)
    assert [m.out_features for m in net.hidden_layers()] == [7, 6, 4]
    assert net.layers.out.in_features == 4 and net.layers.out.out_features == 3
    keys = list(net.state_dict())
    assert keys == [f"layers.{n}.{p}" for n in ("fc1", "fc2", "fc3", "out") for p in ("weight", "bias")]
    # dropout does not move the keys: a state_dict trained with dropout loads into one without
    with_dropout = MLP(5, [7, 6, 4], 3, dropout=0.5, input_dropout=0.2)
    assert list(with_dropout.state_dict()) == keys
    net.load_state_dict(with_dropout.state_dict())
    x = torch.randn(8, 5)
    with_dropout.eval()
    torch.testing.assert_close(net(x), with_dropout(x), rtol=0, atol=0)


def test_linear_model_when_no_hidden_layers():
    net = MLP(4, [], 2)
    assert list(net.state_dict()) == ["layers.out.weight", "layers.out.bias"]
    x = torch.randn(3, 4)
    torch.testing.assert_close(net(x), x @ net.layers.out.weight.T + net.layers.out.bias)


@pytest.mark.parametrize(
    "activation, kwargs, reference",
    [
        ("relu", {}, nn.ReLU),
        ("leaky_relu", {"negative_slope": 0.2}, lambda: nn.LeakyReLU(0.2)),
        ("softplus", {}, nn.Softplus),
        ("sigmoid", {}, nn.Sigmoid),
    ],
)
def test_forward_and_grads_match_torch_sequential(activation, kwargs, reference):
    net = MLP(6, [8, 5], 3, activation=activation, activation_kwargs=kwargs)
    ref = nn.Sequential(nn.Linear(6, 8), reference(), nn.Linear(8, 5), reference(), nn.Linear(5, 3))
    ref.load_state_dict({k.replace("layers.fc1", "0").replace("layers.fc2", "2").replace("layers.out", "4"): v
                         for k, v in net.state_dict().items()})
    x = torch.randn(10, 6, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = net(x), ref(x_ref)
    torch.testing.assert_close(y, y_ref)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad)
    for p, p_ref in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad)


def test_activation_modules_are_separate_per_layer():
    net = MLP(3, [4, 4], 2, activation="prelu")
    assert net.layers.act1 is not net.layers.act2
    assert "layers.act1.weight" in net.state_dict() and "layers.act2.weight" in net.state_dict()


def test_bias_init_sets_hidden_biases_only():
    torch.manual_seed(0)
    default = MLP(3, [4, 5], 2)
    torch.manual_seed(0)
    net = MLP(3, [4, 5], 2, bias_init=0.1)
    for layer in net.hidden_layers():
        assert torch.equal(layer.bias, torch.full_like(layer.bias, 0.1))
    # same weights as without bias_init (the same random stream), output bias untouched
    torch.testing.assert_close(net.layers.fc1.weight, default.layers.fc1.weight, rtol=0, atol=0)
    torch.testing.assert_close(net.layers.out.bias, default.layers.out.bias, rtol=0, atol=0)
    # and the lecture's reason: with W^T x ~ 0 every ReLU unit is active, so every unit gets gradient
    zero_input = torch.zeros(1, 3)
    assert (net.layers.act1(net.layers.fc1(zero_input)) > 0).all()


def test_dropout_train_and_eval():
    net = MLP(20, [50], 2, dropout=0.5, input_dropout=0.2)
    x = torch.randn(4, 20)
    net.eval()
    torch.testing.assert_close(net(x), net(x), rtol=0, atol=0)
    net.train()
    assert not torch.equal(net(x), net(x))


def test_repr_is_readable():
    r = repr(MLP(784, [1024, 1024], 10, dropout=0.2, bias_init=0.1))
    assert "in_features=784, hidden_features=[1024, 1024], out_features=10, activation='relu'" in r
    assert "dropout=0.2" in r and "bias_init=0.1" in r
    assert "(fc1): Linear(in_features=784, out_features=1024, bias=True)" in r


def test_dtype_device_and_gradcheck():
    net = MLP(3, [4, 3], 2, activation="leaky_relu", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in net.parameters())
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(net, (x,))


def test_maxout_hidden_layers():
    net = MLP(6, [4, 3], 2, activation="maxout", pieces=3, dropout=0.1)
    hidden = list(net.hidden_layers())
    assert all(isinstance(m, torchff.nn.MaxoutLinear) for m in hidden)
    assert [tuple(m.weight.shape) for m in hidden] == [(12, 6), (9, 4)]
    assert not any(name.startswith("act") for name, _ in net.layers.named_children())
    assert "activation='maxout', pieces=3" in repr(net)
    net.eval()
    x = torch.randn(7, 6)
    # each unit is the max over its pieces; row i*k + j of the weight is piece j of unit i
    h = x
    for m in hidden:
        h = torch.nn.functional.linear(h, m.weight, m.bias).unflatten(-1, (m.out_features, 3)).amax(-1)
    torch.testing.assert_close(net(x), net.layers.out(h))


def test_max_norm_renormalises_rows():
    torch.manual_seed(0)
    net = MLP(6, [5], 3, max_norm=0.5)
    with torch.no_grad():
        net.layers.fc1.weight.mul_(10)
        net.layers.fc1.weight[0] = 0.01  # a row inside the ball stays as it is
    before = net.layers.fc1.weight.detach().clone()
    net.apply_max_norm_()
    for layer in net.linear_layers():
        assert (layer.weight.norm(dim=1) <= 0.5 + 1e-5).all()
    assert torch.equal(net.layers.fc1.weight[0], before[0])
    # rescaled rows keep their direction
    cos = torch.nn.functional.cosine_similarity(net.layers.fc1.weight[1:], before[1:], dim=1)
    torch.testing.assert_close(cos, torch.ones_like(cos))


def test_max_norm_reaches_maxout_layers():
    net = MLP(6, [5], 3, activation="maxout", pieces=2)
    with torch.no_grad():
        net.layers.fc1.weight.mul_(100)
    net.apply_max_norm_(1.0)
    assert (net.layers.fc1.weight.norm(dim=1) <= 1.0 + 1e-5).all()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(hidden_features="64"), TypeError),
        (dict(hidden_features=[64, 0]), ValueError),
        (dict(hidden_features=[64.5]), TypeError),
        (dict(in_features=True), TypeError),
        (dict(dropout=1.0), ValueError),
        (dict(dropout="0.1"), TypeError),
        (dict(pieces=3), ValueError),
        (dict(activation="maxout"), ValueError),
        (dict(activation="nope"), ValueError),
        (dict(bias=False, bias_init=0.1), ValueError),
        (dict(max_norm=-1.0), ValueError),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error):
    args = dict(in_features=4, hidden_features=[8], out_features=2)
    args.update(kwargs)
    with pytest.raises(error):
        MLP(**args)
