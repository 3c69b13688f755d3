"""Every trained model kept: a copy of each training round in a per-user folder, newest first.

The folder is ``platformdirs.user_data_dir("napari-unet-loop")/models``, or
``$NAPARI_UNET_HOME/models`` when that variable is set. The copies share a size budget
(:data:`BUDGET_MB` unless the user sets another, stored in the folder's ``kept.json``); when a
new copy takes them over it, the oldest go, except those the user opened (*pinned*), those a
caller still uses (*protected*, e.g. the source of a layer in the viewer) and the newest one.
"""

import contextlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .. import PLUGIN
from ..engine.checks import Bound
from ..engine.errors import UNetError, os_error_message
from ..engine.segmenter import Segmenter
from .model_files import SUFFIX, save_model

HOME_VARIABLE = "NAPARI_UNET_HOME"
BUDGET_MB = 500
BUDGET = Bound("space for kept models (MB)", int, 10, 10**6)
SETTINGS = "kept.json"
PREFIX = "round-"


@dataclass(frozen=True)
class KeptModel:
    """A kept copy: its file, when it was written, a short label for a list, its size in
    bytes, and whether the user opened it (then it is never pruned)."""

    path: Path
    saved: datetime
    label: str
    size: int = 0
    pinned: bool = False


def folder() -> Path:
    """The folder of kept models (not created)."""
    home = os.environ.get(HOME_VARIABLE)
    if home:
        return Path(home) / "models"
    import platformdirs

    base = Path(platformdirs.user_data_dir(PLUGIN))
    return base / "models"


def keep(segmenter: Segmenter, protect=()) -> Path:
    """Write a copy of ``segmenter`` under a new name, then :func:`prune` the older ones."""
    now = datetime.now()
    classes = "-".join(_slug(name) for name in segmenter.class_names[1:]) or "model"
    name = (
        f"{PREFIX}{now:%Y%m%d-%H%M%S}-{classes[:40]}-{len(segmenter.history)}-"
        f"{secrets.token_hex(3)}{SUFFIX}"
    )
    try:
        path = save_model(segmenter, folder() / name)
    except (UNetError, OSError) as error:
        raise UNetError(f"cannot keep a copy of the model in {folder()}: {error}") from error
    prune({path, *protect})
    return path


def prune(protect=()) -> list[Path]:
    """Delete the oldest copies that take the kept ones over the budget, never a pinned or
    protected one; return the deleted paths."""
    spared = {Path(p).resolve() for p in protect}
    used, deleted, limit = 0, [], budget()
    for model in kept():
        used += model.size
        if used > limit and not model.pinned and model.path.resolve() not in spared:
            with contextlib.suppress(OSError):
                model.path.unlink(missing_ok=True)
                deleted.append(model.path)
                used -= model.size
    return deleted


def kept() -> list["KeptModel"]:
    """The kept copies, newest first."""
    pinned = set(_settings()["pinned"])
    found = []
    for path in folder().glob(f"{PREFIX}*{SUFFIX}"):
        try:
            info = path.stat()
        except OSError:
            continue
        saved = datetime.fromtimestamp(info.st_mtime)
        found.append(
            KeptModel(
                path, saved, _label(path.name, saved), info.st_size, path.resolve() in pinned
            )
        )
    return sorted(found, key=lambda model: (model.saved, model.path.name), reverse=True)


def budget() -> int:
    """The space the kept copies may take, in bytes."""
    return _settings()["budget_mb"] * 2**20


def set_budget(megabytes: int) -> None:
    """Change the space the kept copies may take (stored for the next sessions)."""
    _store(budget_mb=BUDGET.check(megabytes))


def pin(path: str | Path) -> None:
    """Never delete the kept copy at ``path`` when pruning (the user opened it)."""
    path = Path(path).resolve()
    if path.parent == folder().resolve() and path not in _settings()["pinned"]:
        _store(pinned=[str(p) for p in [*_settings()["pinned"], path]])


def usage() -> str:
    """E.g. "12 rounds, 96 MB": the kept rounds and the space they take."""
    models = kept()
    used = sum(model.size for model in models) / 2**20
    return f"{len(models)} round{'s' if len(models) != 1 else ''}, {used:.0f} MB"


def summary() -> str:
    """E.g. "12 rounds, 96 MB of 500 MB kept, 1 opened (never deleted); the oldest go
    first"."""
    pinned = sum(model.pinned for model in kept())
    opened = f", {pinned} opened (never deleted)" if pinned else ""
    return f"{usage()} of {budget() // 2**20} MB kept{opened}; the oldest go first"


def _settings() -> dict:
    """The stored budget and pins (the defaults where the file is missing or damaged)."""
    settings = {"budget_mb": BUDGET_MB, "pinned": []}
    try:
        stored = json.loads((folder() / SETTINGS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return settings
    if isinstance(stored, dict):
        with contextlib.suppress(UNetError, TypeError):
            settings["budget_mb"] = BUDGET.check(stored.get("budget_mb", BUDGET_MB))
        pinned = stored.get("pinned")
        if isinstance(pinned, list):
            settings["pinned"] = [Path(p) for p in pinned if isinstance(p, str)]
    return settings


def _store(**changes) -> None:
    settings = {**_settings(), **changes}
    settings["pinned"] = [str(p) for p in settings["pinned"]]
    target = folder() / SETTINGS
    temporary = target.with_name(f".{SETTINGS}.{secrets.token_hex(3)}")
    try:
        folder().mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(settings, indent=1), encoding="utf-8")
        os.replace(temporary, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise UNetError(
            f"cannot store the kept models' settings: {os_error_message(error)}"
        ) from None


def _label(name: str, saved: datetime) -> str:
    """E.g. "15:40 · nucleus · 3 rounds" (with the date if not today), from a name written
    by :func:`keep`."""
    parts = name[len(PREFIX) : -len(SUFFIX)].split("-")
    when = f"{saved:%H:%M}" if saved.date() == datetime.now().date() else f"{saved:%d %b %H:%M}"
    if len(parts) < 5 or not parts[-2].isdigit():
        return f"{when} · {name}"
    rounds = int(parts[-2])
    return f"{when} · {'-'.join(parts[2:-2])} · {rounds} round{'s' if rounds != 1 else ''}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
