"""Running the engine's generators: progress events out, the result returned."""

from collections.abc import Callable, Generator
from typing import TypeVar

Event = TypeVar("Event")
Result = TypeVar("Result")


def drain(
    run: Generator[Event, None, Result], each: Callable[[Event], None] | None = None
) -> Result:
    """Run ``run`` to its end, passing each event to ``each``; return its return value."""
    while True:
        try:
            event = next(run)
        except StopIteration as done:
            return done.value
        if each is not None:
            each(event)
