"""Built-in starting models, shipped in the wheel: weights (safetensors) and a model card each.

A built-in model is named wherever a model file is accepted ("nuclei"); a file of that name in
the working folder wins. How each was made: ``pretrain/`` in the repository.
"""

from pathlib import Path

FOLDER = Path(__file__).parent
BUILTIN = {"nuclei": "fluorescence nuclei (DAPI, Hoechst, H2B), 2D, any magnification"}
"""Name -> what it segments."""


def builtin_path(name: str) -> Path | None:
    """The weights of built-in model ``name``, or None if there is no such built-in model."""
    return FOLDER / f"{name}.safetensors" if name in BUILTIN else None


def builtin_name(path) -> str | None:
    """The name of the built-in model whose weights ``path`` is, or None."""
    for name in BUILTIN:
        if Path(path).resolve() == builtin_path(name).resolve():
            return name
    return None


def card(name: str) -> str:
    """The model card (Markdown) of built-in model ``name``."""
    return (FOLDER / f"{name}.md").read_text(encoding="utf-8")


def resolve(path) -> Path:
    """``path`` itself if it is a file or names no built-in model; else the built-in's file
    (a folder of that name, of images say, does not hide it)."""
    path = Path(path)
    builtin = builtin_path(str(path))
    return builtin if builtin is not None and not path.is_file() else path
