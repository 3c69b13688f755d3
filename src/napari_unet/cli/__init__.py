"""``napari-unet-loop train | predict | export | info | demo``: the engine from the command
line. Every failure ends in one line and exit code 2 (130 for Ctrl-C, 143 for ``kill``)."""

import contextlib
import signal
import sys
import threading

from .. import PLUGIN
from ..engine.errors import UNetError, os_error_message


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (0 success, 2 bad input or a fault)."""
    try:
        from .arguments import parser  # torch and numpy: seconds of imports
        from .commands import Terminated
    except KeyboardInterrupt:
        print(f"{PLUGIN}: interrupted", file=sys.stderr)
        return 130
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 2
    with _sigterm_interrupts():
        try:
            return args.command(args)
        except UNetError as error:
            return _fail(str(error))
        except OSError as error:
            return _fail(os_error_message(error))
        except MemoryError:
            return _fail("out of memory: use a smaller image, model, tile or batch size")
        except Terminated:
            print(f"{PLUGIN}: terminated; no partial output was left", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print(f"{PLUGIN}: interrupted; no partial output was left", file=sys.stderr)
            return 130


def _fail(message: str) -> int:
    print(f"{PLUGIN}: error: {message}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def _sigterm_interrupts():
    """Turn SIGTERM into :class:`Terminated` while a command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    from .commands import Terminated

    def terminate(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
