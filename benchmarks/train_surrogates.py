"""Train the small ReLU surrogates used by ``benchmarks/end_to_end.py`` and export them to ONNX.

Usage::

    python benchmarks/train_surrogates.py            # writes benchmarks/data/*.onnx and prints RMSEs

Networks (inputs are the raw coordinates, no input scaling):

* ``peaks_2x50.onnx``: 2-50-50-1 fit of MATLAB's ``peaks`` on [-3, 3]^2 (target unscaled);
* ``rosenbrock2_2x50.onnx``: 2-50-50-1 fit of the 2-D Rosenbrock function on [-2, 2]^2,
  target ``log1p(f(x))``;
* ``peaks_3x100.onnx``: 2-100-100-100-1 fit of ``peaks`` on [-3, 3]^2;
* ``rosenbrock8_2x128.onnx``: 8-128-128-1 fit of ``log1p`` of the 8-D Rosenbrock function on [-2, 2]^8;
* ``rosenbrock_8x64x3.onnx``: 8-64-64-64-1 fit of the 8-D Rosenbrock function
  ``sum_{i<7} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2`` on [-2, 2]^8, target ``log1p(f(x))``.

Seeded (``torch.manual_seed(0)``, numpy ``default_rng(0)``), deterministic algorithms,
CPU, one thread.  RMSE is measured on 20,000 held-out uniform samples in the units of the
(scaled) target the network outputs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

DATA = Path(__file__).resolve().parent / "data"


def peaks(x: np.ndarray) -> np.ndarray:
    a, b = x[:, 0], x[:, 1]
    return (
        3 * (1 - a) ** 2 * np.exp(-(a**2) - (b + 1) ** 2)
        - 10 * (a / 5 - a**3 - b**5) * np.exp(-(a**2) - b**2)
        - np.exp(-((a + 1) ** 2) - b**2) / 3
    )


def rosenbrock(x: np.ndarray) -> np.ndarray:
    return np.sum(100 * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (1 - x[:, :-1]) ** 2, axis=1)


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train(name: str, sizes: list[int], box: float, target, n_train: int, epochs: int, batch: int, lr: float) -> dict:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    dim = sizes[0]
    x_train = rng.uniform(-box, box, size=(n_train, dim))
    x_test = rng.uniform(-box, box, size=(20_000, dim))
    y_train, y_test = target(x_train), target(x_test)
    xt = torch.tensor(x_train, dtype=torch.float32)
    yt = torch.tensor(y_train, dtype=torch.float32).unsqueeze(1)
    model = mlp(sizes)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n_train, generator=generator)
        for i in range(0, n_train, batch):
            idx = order[i : i + batch]
            optimiser.zero_grad()
            loss = nn.functional.mse_loss(model(xt[idx]), yt[idx])
            loss.backward()
            optimiser.step()
        scheduler.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(x_test, dtype=torch.float32)).squeeze(1).double().numpy()
    rmse = float(np.sqrt(np.mean((pred - y_test) ** 2)))
    path = DATA / f"{name}.onnx"
    torch.onnx.export(
        model,
        torch.zeros(1, dim),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        dynamo=False,
    )
    return {
        "name": name,
        "sizes": sizes,
        "rmse": rmse,
        "range": (float(y_test.min()), float(y_test.max())),
        "seconds": seconds,
        "path": path,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", nargs="*", default=None, metavar="NAME", help="train only these surrogates (names without .onnx)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    DATA.mkdir(parents=True, exist_ok=True)
    log_rosen = lambda x: np.log1p(rosenbrock(x))  # noqa: E731
    recipes = {
        "peaks_2x50": ([2, 50, 50, 1], 3.0, peaks, 20_000, 300, 256, 3e-3),
        "rosenbrock2_2x50": ([2, 50, 50, 1], 2.0, log_rosen, 20_000, 300, 256, 3e-3),
        "rosenbrock_8x64x3": ([8, 64, 64, 64, 1], 2.0, log_rosen, 100_000, 60, 256, 2e-3),
        "peaks_3x100": ([2, 100, 100, 100, 1], 3.0, peaks, 20_000, 150, 256, 2e-3),
        "rosenbrock8_2x128": ([8, 128, 128, 1], 2.0, log_rosen, 100_000, 40, 256, 2e-3),
    }
    unknown = set(args.only or ()) - set(recipes)
    if unknown:
        parser.error(f"unknown surrogate(s) {sorted(unknown)}; choose from {sorted(recipes)}")
    runs = [train(name, *recipe) for name, recipe in recipes.items() if args.only is None or name in args.only]
    for r in runs:
        print(
            f"{r['path'].name}: {'-'.join(map(str, r['sizes']))}, held-out RMSE {r['rmse']:.4f} "
            f"(target range [{r['range'][0]:.2f}, {r['range'][1]:.2f}]), trained in {r['seconds']:.1f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
