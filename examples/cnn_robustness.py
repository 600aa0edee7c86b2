"""Is a small CNN robust around these digits?  Train, read, verify — every verdict checked.

Trains a convolutional network (two convolutions, max pooling, dense head) on
scikit-learn's 8x8 digits with PyTorch, reads it with ``load_torch``, and asks
``pyomo_relu.verify`` whether each of a few test images keeps its label on the L-inf
ball of radius eps.  ``sat`` comes with a counterexample that the torch model itself
misclassifies; ``unsat`` is a proof (bounds, or a HiGHS MILP).

    python examples/cnn_robustness.py
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from pyomo_relu.io.torch import load_torch
from pyomo_relu.verify import robustness_property, verify


def train() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    labels = digits.target
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 10),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=0.03)
    x, y = torch.tensor(images[:1200]), torch.tensor(labels[:1200])
    for _ in range(60):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    return model.eval(), images, labels


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    model, images, labels = train()
    accuracy = (model(torch.tensor(images[1400:])).argmax(1).numpy() == labels[1400:]).mean()
    net = load_torch(model, example_input=torch.zeros(1, 1, 8, 8))
    print(f"test accuracy {accuracy:.3f}; network read as:\n{net.summary()}\n")
    print(f"{'image':>5} {'label':>5} {'eps':>5}  verdict  method        seconds")
    for index in range(1400, 1408):
        x0, label = images[index].ravel().astype(float), int(labels[index])
        if int(np.argmax(net.evaluate(x0))) != label:
            print(f"{index:>5} {label:>5}     -  misclassified already")
            continue
        for eps in (0.02, 0.05, 0.1):
            result = verify(net, robustness_property(x0, eps, label, 10), time_limit=60)
            verdict = {"sat": "NOT robust", "unsat": "robust", "unknown": "unknown"}[result.status]
            if result.status == "sat":
                x, _ = result.counterexample
                with torch.no_grad():
                    theirs = int(model(torch.tensor(x.reshape(1, 1, 8, 8), dtype=torch.float32)).argmax())
                verdict += f" (torch says {theirs})"
            print(f"{index:>5} {label:>5} {eps:>5}  {verdict:<24} {result.method:<12} {result.seconds:6.2f}")


if __name__ == "__main__":
    main()
