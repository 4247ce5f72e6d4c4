"""How often does the lecture's 2-2-1 ReLU network learn XOR? Across seeds, with and without bias_init.

Trains in-process (no Lightning) exactly what ``torchff-train experiment=xor seed=S`` trains:
``torch.manual_seed(S)``, then ``MLP(2, [2], 1, bias_init=...)``, Bernoulli output (sigmoid +
binary cross-entropy), full-batch Adam on the four points. Reports, per setting, the number of
seeds whose final accuracy is 1.0 and the mean final loss.

    PYTHONPATH=. python benchmarks/xor_seeds.py --seeds 20 --epochs 300 --lr 0.1
"""

from __future__ import annotations

import argparse

import torch

import torchff.nn as tnn
from torchff.train.datasets import xor


def train_one(seed: int, bias_init: float | None, epochs: int, lr: float, output: str) -> tuple[float, float]:
    torch.manual_seed(seed)
    net = tnn.MLP(2, [2], 1, activation="relu", bias_init=bias_init)
    out = tnn.get_output(output)
    loss_fn = out.loss()
    x, y = xor()
    target = y.float().unsqueeze(1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(net(x), target)
        loss.backward()
        opt.step()
    with torch.no_grad():
        z = net(x)
        loss = float(loss_fn(z, target))
        pred = (out.predict(z) > 0.5).float() if output == "bernoulli" else (z > 0.5).float()
        acc = float((pred == target).float().mean())
    return acc, loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--output", default="bernoulli", choices=["bernoulli", "gaussian"])
    args = p.parse_args()
    torch.set_num_threads(1)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"2-2-1 ReLU MLP, {args.output} output, full-batch Adam lr={args.lr}, {args.epochs} epochs")
    for bias_init in (None, 0.1):
        results = [train_one(s, bias_init, args.epochs, args.lr, args.output) for s in seeds]
        solved = [s for s, (acc, _) in zip(seeds, results) if acc == 1.0]
        mean_loss = sum(loss for _, loss in results) / len(results)
        print(f"bias_init={str(bias_init):<4}  solved {len(solved):2d}/{len(results)}  "
              f"mean final loss {mean_loss:.4f}  solved seeds: {solved}")


if __name__ == "__main__":
    main()
