"""A progress line for long loops, on stderr."""

from __future__ import annotations

import sys
import time
from typing import Any

WIDTH = 120


class Progress:
    """On a terminal, one live line rewritten in place. Elsewhere (a log file, CI), a plain line
    every `every` seconds, or nothing when `every` is None."""

    def __init__(self, enabled: bool = True, stream: Any = None, every: float | None = None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every
        self.last = time.perf_counter()

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + text[:WIDTH].ljust(WIDTH))
            self.stream.flush()
            return
        now = time.perf_counter()
        if self.every is not None and now - self.last >= self.every:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.last = now

    def clear(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * WIDTH + "\r")
            self.stream.flush()
