"""Questions about one moment of the range ("Is there a red square at the end of the video?") are
answered from the window that holds that moment, whatever else the range holds.

Windows are given to the model as one media item; a model trained on clips of one window (the demo
model) reads "at the end" as its last frame, and over several windows answers from whichever shows
the object. The question names where to look, so the answer stage gives the model that window: the
range's first for "start"/"beginning", its last for "end" (a live stream's: its newest).
"""

from __future__ import annotations

import re

_MOMENT = re.compile(r"\b(?:at|in) the (start|beginning|end) of the (?:video|clip|stream)\b", re.IGNORECASE)


def moment_of(question: str | None) -> str | None:
    """The moment ``question`` asks about ("start" or "end" of the video), or None."""
    found = _MOMENT.search(question or "")
    if found is None:
        return None
    return "end" if found.group(1).lower() == "end" else "start"


def moment_window(moment: str, n: int) -> list[int]:
    """The position, among a range's ``n`` windows in time order, of the one holding ``moment``."""
    return [0] if moment == "start" else [n - 1]
