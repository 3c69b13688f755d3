"""Every trained model kept: a copy of each training round in a per-user folder, newest first.

The folder is ``platformdirs.user_data_dir("napari-unet-loop")/models``, or
``$NAPARI_UNET_HOME/models`` when that variable is set. Only the newest :data:`KEEP` copies
stay; older ones are deleted.
"""

import contextlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .. import PLUGIN
from ..engine.errors import UNetError
from ..engine.segmenter import Segmenter
from .model_files import SUFFIX, save_model

HOME_VARIABLE = "NAPARI_UNET_HOME"
KEEP = 10
PREFIX = "round-"


@dataclass(frozen=True)
class KeptModel:
    """A kept copy: its file, when it was written, and a short label for a list."""

    path: Path
    saved: datetime
    label: str


def folder() -> Path:
    """The folder of kept models (not created)."""
    home = os.environ.get(HOME_VARIABLE)
    if home:
        return Path(home) / "models"
    import platformdirs

    base = Path(platformdirs.user_data_dir(PLUGIN))
    return base / "models"


def keep(segmenter: Segmenter, keep_last: int = KEEP) -> Path:
    """Write a copy of ``segmenter`` under a new name, delete all but the newest ``keep_last``."""
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
    for old in kept()[keep_last:]:
        with contextlib.suppress(OSError):
            old.path.unlink(missing_ok=True)
    return path


def kept() -> list[KeptModel]:
    """The kept copies, newest first."""
    found = []
    for path in folder().glob(f"{PREFIX}*{SUFFIX}"):
        try:
            saved = datetime.fromtimestamp(path.stat().st_mtime)
        except OSError:
            continue
        found.append(KeptModel(path, saved, _label(path.name, saved)))
    return sorted(found, key=lambda model: (model.saved, model.path.name), reverse=True)


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
