"""Drawing of default-box coverage: the objects' sizes against the default boxes' scales, and the
share of objects some default box matches, per size, before and after fitting.

Pairs with :mod:`ssd_edu.coverage` and :mod:`ssd_edu.fit_boxes` (and the diagnosis).

Paper: §2.2 "Choosing scales and aspect ratios for default boxes", eq. 4; matching at IoU 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ssd_edu.coverage import Coverage
from ssd_edu.priors import PriorConfig


def plot_coverage(
    coverages: Sequence[Coverage],
    configs: Sequence[PriorConfig],
    names: Sequence[str] = ("before", "after"),
) -> Figure:
    """Object sizes with each configuration's scales ``s_k`` (left); covered share per size (right).

    Args:
        coverages: one :class:`Coverage` per configuration, of the same objects.
        configs: the configurations measured (their ``s_k`` are drawn as lines).
        names: a legend name for each.

    Returns:
        The figure (two axes; the right one holds one bar group per size bin with objects).

    Paper: §2.2, eq. 4 (the scales), the matching threshold 0.5.
    """
    if not coverages or len(coverages) != len(configs):
        raise ValueError(
            f"give one coverage per config, got {len(coverages)} coverages, {len(configs)} configs"
        )
    fig, (ax_s, ax_c) = plt.subplots(1, 2, figsize=(10, 3.6))
    scale = coverages[0].scale.numpy()
    bins = np.geomspace(max(scale.min(), 1e-3), max(scale.max(), 2e-3), 30) if len(scale) else 10
    ax_s.hist(scale, bins=bins, color="0.6", label="objects")
    for n, (cfg, name) in enumerate(zip(configs, names)):
        for k, s in enumerate(cfg.min_sizes):
            ax_s.axvline(s / cfg.image_size, color=f"C{n}", lw=1.5, ls="-" if n else "--",
                         label=f"s_k, {name}" if k == 0 else None)  # fmt: skip
    ax_s.set_xscale("log")
    ax_s.set(xlabel="size sqrt(w h), fraction of the image side", ylabel="objects",
             title="object sizes and default-box scales s_k")  # fmt: skip
    ax_s.legend(fontsize=8)

    rows = [c.by_size() for c in coverages]
    used = [b for b, (_, n, _) in enumerate(rows[0]) if n]  # bins holding objects
    width = 0.8 / len(coverages)
    for n, (bins_n, name) in enumerate(zip(rows, names)):
        shares = [bins_n[b][2] / bins_n[b][1] for b in used]
        x = np.arange(len(used)) + (n - (len(coverages) - 1) / 2) * width
        ax_c.bar(x, shares, width, color=f"C{n}", label=f"{name}: {100 * coverages[n].share:.0f}%")
    ax_c.set_xticks(np.arange(len(used)), [rows[0][b][0] for b in used], rotation=30,
                    ha="right", fontsize=7)  # fmt: skip
    ax_c.axhline(1.0, color="0.8", lw=0.8)
    ax_c.set(ylim=(0, 1.05), ylabel="share covered (IoU >= 0.5)", title="coverage per size")
    ax_c.legend(fontsize=8)
    fig.tight_layout()
    return fig
