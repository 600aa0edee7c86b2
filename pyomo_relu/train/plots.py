"""Pictures of trained weights (matplotlib, imported only here)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pyomo_relu.network import NetworkDefinition


def plot_first_layer(
    networks: Sequence[tuple[str, NetworkDefinition]], image_shape: tuple[int, int], path: str | Path
) -> Path:
    """One row per network, one image per first-layer neuron (its weights: -1 blue, 0 white, +1 red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(net.layers[0].n_outputs for _, net in networks)
    fig, axes = plt.subplots(len(networks), width, figsize=(1.6 * width, 1.9 * len(networks)), squeeze=False)
    for row, (title, net) in enumerate(networks):
        weights = np.asarray(net.layers[0].weights)
        limit = max(1.0, float(np.abs(weights).max()))
        for j, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= weights.shape[0]:
                ax.axis("off")
                continue
            ax.imshow(weights[j].reshape(image_shape), cmap="bwr", vmin=-limit, vmax=limit)
            ax.set_title(f"{title}: {j}" if j == 0 else str(j), fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
