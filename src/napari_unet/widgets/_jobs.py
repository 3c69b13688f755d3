"""Running the engine beside napari: thread workers, error notifications, throttled updates
and the CPU threads left to napari."""

import functools
import inspect
import os
import threading
import time

import torch
from napari.qt.threading import create_worker
from napari.utils.notifications import notification_manager, show_error
from qtpy.QtCore import QCoreApplication, QEventLoop, QTimer
from superqt.utils import FunctionWorker, GeneratorWorker, WorkerBase

from ..engine.device import is_out_of_memory
from ..engine.errors import UNetError


def start(run, *args, now: bool = True, on_quit=None, **handlers) -> WorkerBase:
    """Run ``run(*args)``, a generator function or not, in a thread (later, with the
    worker's ``start()``, unless ``now``); ``handlers`` maps the worker's signals to slots.

    Connect slots that are methods of Qt widgets: they are dropped when the widget is deleted.
    The plain superqt worker classes are used so that errors reach ``handlers["errored"]``.
    With ``on_quit``, a generator is never abandoned halfway: asking the worker to quit (napari
    does for every worker when its window closes) calls ``on_quit()``, which must make the
    generator end soon, and the generator still returns its result.
    """
    if on_quit is not None:
        return create_worker(
            run,
            *args,
            _worker_class=FinishingWorker,
            _connect=handlers,
            _start_thread=now,
            on_quit=on_quit,
        )
    kind = GeneratorWorker if inspect.isgeneratorfunction(run) else FunctionWorker
    return create_worker(run, *args, _worker_class=kind, _connect=handlers, _start_thread=now)


class FinishingWorker(GeneratorWorker):
    """A generator worker whose ``quit`` calls ``on_quit`` instead of abandoning the generator
    (and with it the result it would return)."""

    def __init__(self, func, *args, on_quit, **kwargs):
        super().__init__(func, *args, **kwargs)
        self._on_quit = on_quit

    def quit(self) -> None:
        self._on_quit()


def wait_until(ended, seconds: float) -> bool:
    """Run the event loop, without user input, until ``ended()`` or ``seconds`` pass (for when
    napari closes: the window is going, and the slots of finishing jobs must still run);
    whether ``ended()``."""
    deadline = time.monotonic() + seconds
    while not ended():
        if time.monotonic() > deadline:
            return False
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents, 50)
        time.sleep(0.02)
    return True


class Throttle(QTimer):
    """Calls ``slot`` at most every ``ms`` milliseconds while :meth:`poke` is called, so that
    progress events (dozens per second on a GPU) do not each re-layout and repaint the dock."""

    def __init__(self, slot, ms: int = 250, parent=None):
        super().__init__(parent, singleShot=True, interval=ms)
        self.timeout.connect(slot)

    def poke(self) -> None:
        if not self.isActive():
            self.start()


def notify_error(what: str, error: BaseException) -> None:
    """A notification for a failed job: the message for known errors, a traceback otherwise."""
    if isinstance(error, UNetError):
        show_error(f"{what}: {error}")
    elif is_out_of_memory(error):
        show_error(
            f"{what}: the device ran out of memory; choose a smaller model or run on the CPU"
        )
    else:
        notification_manager.receive_error(type(error), error, error.__traceback__)


def leave_a_core_for_the_gui() -> int:
    """Limit torch to one thread fewer than the cores it would use (set again at each call:
    whatever changed it since, each dock and each job puts it back).

    Compute threads spinning on every core delay napari's event loop and are slowed down by
    it in turn (OpenMP waits for its slowest thread).
    """
    threads = _threads_for_torch()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@functools.cache
def _threads_for_torch() -> int:
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1) - 1)


@functools.cache
def warm_up() -> threading.Thread:
    """Create an optimizer once in the background, so that its first-use imports (torch's
    compiler stack, seconds of imports holding the GIL) do not stall napari during training."""
    thread = threading.Thread(
        target=torch.optim.AdamW, args=([torch.zeros(1, requires_grad=True)],), daemon=True
    )
    thread.start()
    return thread
