"""Drawing of the localisation loss: Smooth L1 against L1 and L2, values and gradients.

Pairs with notebook 04 (the MultiBox loss).

Paper: §2.2 "Training objective" (eq. 1-3; Smooth L1 localisation loss in eq. 2).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure


def plot_smooth_l1(beta: float = 1.0, x_max: float = 3.0) -> Figure:
    """Smooth L1 next to L1 and L2, as values (left) and as gradients (right).

    Args:
        beta: where Smooth L1 turns from quadratic to linear (1 in the paper).
        x_max: the curves span ``[-x_max, x_max]``.

    Returns:
        The figure.

    Paper: §2.2, eq. 2 (Smooth L1 for the localisation loss).
    """
    from ssd_edu.loss import smooth_l1

    x = torch.linspace(-x_max, x_max, 601, dtype=torch.float64, requires_grad=True)
    curves = {
        "L1  |x|": x.abs(),
        "L2  x²/2": 0.5 * x**2,
        f"Smooth L1 (beta={beta:g})": smooth_l1(x, beta=beta),
    }
    styles = {"L1  |x|": ":", "L2  x²/2": "--"}
    fig, (ax_v, ax_g) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, y in curves.items():
        (grad,) = torch.autograd.grad(y.sum(), x)
        xs = x.detach().numpy()
        ax_v.plot(xs, y.detach().numpy(), styles.get(name, "-"), label=name, lw=2)
        ax_g.plot(xs, grad.numpy(), styles.get(name, "-"), label=name, lw=2)
    ax_v.set_ylim(0, x_max)
    ax_v.set(xlabel="x = prediction - target", ylabel="loss", title="loss")
    ax_g.set(xlabel="x = prediction - target", ylabel="d loss / d x", title="gradient")
    for ax in (ax_v, ax_g):
        ax.axvspan(-beta, beta, color="0.92", zorder=0)
        ax.grid(alpha=0.3)
    ax_v.legend(fontsize=8)
    fig.tight_layout()
    return fig
