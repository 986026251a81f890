"""A progress bar (tqdm) for waiting on many tasks, shown only when stderr is a terminal.

    with progress_bar(total=len(refs), desc="heavy_computation") as bar:
        ... bar.update(1) ...          # a no-op object when not on a terminal

`config(progress=False)` turns it off; `progress=True` forces it (even when not a TTY).
"""

from __future__ import annotations

import contextlib
import shutil
import sys

MIN_TASKS = 2


class _Quiet:
    def update(self, n: int = 1) -> None:
        pass


def enabled(setting, total: int) -> bool:
    if total < MIN_TASKS or setting is False:
        return False
    if setting is True:
        return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


@contextlib.contextmanager
def progress_bar(total: int, desc: str, setting="auto"):
    if not enabled(setting, total):
        yield _Quiet()
        return
    from tqdm import tqdm

    # a terminal that reports a 0 x 0 size (a bare pty) gets 80 x 24: tqdm would print nothing
    size = shutil.get_terminal_size()
    bar = tqdm(total=total, desc=desc, unit="task", file=sys.stderr, ncols=size.columns, nrows=size.lines)
    try:
        yield bar
    finally:
        bar.close()
