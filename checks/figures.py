"""Drawing the pictures to PNG files, and where each data point landed in them.

`python -m checks show` draws with these; the tests read a data point's colour back at its pixel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

# Pixel coordinates of a panel's data point (x, y) in the PNG: (column, row from the top).
PixelOf = Callable[[float, float], tuple[int, int]]


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, works without a display
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, axes: list) -> list[PixelOf]:
    """Write `fig` to `path` and return, per axes, where its data points landed in the PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi)  # no bbox_inches="tight": it would move the axes after this
    height = fig.canvas.get_width_height()[1]

    def pixel_of(ax) -> PixelOf:
        def at(x: float, y: float) -> tuple[int, int]:
            px, py = ax.transData.transform((x, y))
            return int(px), int(height - py)

        return at

    found = [pixel_of(ax) for ax in axes]
    pyplot().close(fig)
    return found
