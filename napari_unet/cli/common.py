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


class BlockProgress:
    """The progress line of a block prediction on stderr: ``progress(what, done, total)``
    for each task finished (a new line when ``what`` changes), :meth:`close` at the end."""

    def __init__(self, quiet: bool = False):
        self.quiet, self.last = quiet, None

    def __call__(self, what: str, done: int, total: int) -> None:
        import sys

        if self.quiet:
            return
        if self.last not in (None, what):
            sys.stderr.write("\n")
        elif self.last == what and done < total and _bar(done / total) == _bar(
                (done - 1) / total):
            return  # the bar did not move
        self.last = what
        sys.stderr.write(f"\r[{_bar(done / total)}] {what} {done}/{total}  ")
        sys.stderr.flush()

    def close(self) -> None:
        import sys

        if self.last is not None:
            sys.stderr.write("\n")
            self.last = None
