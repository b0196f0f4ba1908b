"""Progress bars for the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable


def download_bar(label: str) -> Callable[[int, int], Callable[[int], None]]:
    """A tqdm progress bar for long operations such as the first assembly of a model."""

    def start(total: int, parts: int) -> Callable[[int], None]:
        from tqdm import tqdm

        bar = tqdm(
            total=total, unit="B", unit_scale=True, desc=f"{label} ({parts} parts)", file=sys.stderr
        )

        def tick(size: int) -> None:
            bar.update(size)
            if bar.n >= total:
                bar.close()

        return tick

    return start
