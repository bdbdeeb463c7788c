"""What the commands share: exit statuses, signals, the progress bar."""

from __future__ import annotations

import signal

EXIT_USAGE = 2


#: Exit status after Ctrl-C (SIGINT) and SIGTERM, as a shell reports a process they end.
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: raised where there is nothing to finish first."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


def _bar(fraction: float, width: int = 28) -> str:
    n = int(round(fraction * width))
    return "#" * n + "-" * (width - n)


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "--:--"
    s = int(round(s))
    return f"{s // 60:02d}:{s % 60:02d}"
