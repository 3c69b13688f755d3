"""Reading files that may come from anyone (a colleague's package, a download) with bounds.

Everything here is checked before anything proportional to what a file *claims* is allocated
or read: a file must be a regular file (not a FIFO, a device or a link to one) of at most a
given size, a zip member is read through a limit whatever its header says, and a YAML
document may hold only plain values (texts, numbers, lists, mappings) and a bounded number of
them, so nested aliases ("billion laughs") cannot expand.
"""

import os
import re
import stat
import zipfile
from pathlib import Path

import yaml

from ..engine.errors import ModelFileError, os_error_message

MAX_YAML_NODES = 200_000
"""Values a YAML description may hold, counting each use of an alias again."""


def size_text(size: int) -> str:
    """E.g. "3.0 GiB", "12 kB"."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("kB", 2**10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def read_regular_file(path: Path, limit: int, what: str) -> bytes:
    """The content of ``path``, which must be a regular file of at most ``limit`` bytes."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(f"{what} ({path.name}) is not a regular file")
        if info.st_size > limit:
            raise ModelFileError(
                f"{what} ({path.name}) is {size_text(info.st_size)}, more than the "
                f"{size_text(limit)} it can be"
            )
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except OSError as error:
        raise ModelFileError(f"cannot read {what}: {os_error_message(error)}") from None
    if len(data) > limit:
        raise ModelFileError(f"{what} ({path.name}) grew past {size_text(limit)} while read")
    return data


def read_member(archive: zipfile.ZipFile, name: str, limit: int, what: str) -> bytes:
    """A zip member that is a plain file of at most ``limit`` bytes once inflated."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(f"the package has no {name}") from None
    kind = stat.S_IFMT(info.external_attr >> 16)
    if info.is_dir() or kind not in (0, stat.S_IFREG):
        raise ModelFileError(f"{name} in the package is not a plain file")
    if info.file_size > limit:
        raise ModelFileError(
            f"{what} ({name}) inflates to {size_text(info.file_size)}, more than the "
            f"{size_text(limit)} it can be"
        )
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ModelFileError(f"{what} ({name}) inflates to more than {size_text(limit)}")
    return data


class _PlainLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML's safe loader without dates, timestamps, binary data or sets."""


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PlainLoader.yaml_constructors = {
    tag: constructor
    for tag, constructor in yaml.SafeLoader.yaml_constructors.items()
    if tag is None
    or tag.rsplit(":", 1)[-1] in {"null", "bool", "int", "float", "str", "seq", "map"}
}


def load_yaml(data: bytes, what: str):
    """A YAML document of plain values only (what JSON can hold), bounded in size."""
    try:
        document = yaml.load(data, Loader=_PlainLoader)  # noqa: S506 (a safe loader)
    except yaml.constructor.ConstructorError as error:
        tag = re.search(r"'([^']*)'", error.problem or "")
        written = tag.group(1).replace("tag:yaml.org,2002:", "!!") if tag else None
        kind = f"a value tagged {written}" if written else "a value that is not plain"
        raise ModelFileError(
            f"{what} holds {kind} (only texts, numbers, lists and mappings are read)"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ModelFileError(f"{what} is not valid YAML{where}") from None
    except RecursionError:
        raise ModelFileError(f"{what} is nested too deeply to be a description") from None
    except ValueError:
        raise ModelFileError(f"{what} holds a number too long to be read") from None
    _check_plain(document, what)
    return document


def _check_plain(document, what: str) -> None:
    """Count the values of ``document`` (aliases again at each use) and check their kinds."""
    stack = [document]
    count = 0
    while stack:
        value = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise ModelFileError(
                f"{what} holds more than {MAX_YAML_NODES} values (nested YAML aliases?)"
            )
        if isinstance(value, dict):
            if not all(isinstance(key, str) for key in value):
                raise ModelFileError(f"{what} has a mapping whose keys are not all texts")
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif value is not None and not isinstance(value, str | int | float | bool):
            raise ModelFileError(f"{what} holds a {type(value).__name__}, not a plain value")
