"""Files that appear whole or not at all, however many processes write them at once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path of this process next to ``path``; rename it onto ``path`` when the
    block ends normally, remove it either way.

    The temporary name keeps ``path``'s suffix, so writers that pick a format from it (PyAV's
    muxers, ``np.save``) still do. Concurrent writers of one path never mix their bytes, and an
    interrupted write leaves no half file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
