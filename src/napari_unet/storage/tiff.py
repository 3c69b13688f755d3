"""TIFF images to predict, opened read-only and read only where the prediction asks.

:func:`open_tiff` gives the first image series, as ``tifffile.imread`` reads it (same shape,
data type and values), without reading it whole where that can be avoided:

- a stack of several pages in one file (compressed or not, tiled, in strips, either byte
  order) is a dask array with one TIFF page per chunk: each page is read, and decoded, when a
  slice needs it, into memory of its own that is freed once the slice is predicted;
- other image data stored uncompressed, contiguously and in this machine's byte order (a
  single page, an ImageJ stack written with one page header, any stack when dask is not
  installed) are memory-mapped, like ``tifffile.memmap``;
- anything else (a compressed single page, a series split over several files, pages that do
  not map onto the series' axes, a compressed stack without dask) is read whole.

Pages come first because the parts of a mapping that a process has read count in its resident
memory until the kernel needs them back: predicting a 1.5 GB uncompressed stack peaked at
2.8 GiB resident through a mapping (the whole file, plus the outputs), at 1.4 GiB page by page.

:func:`read_tiff` reads an image whole, for training (which needs it in memory).
"""

import contextlib
import logging
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..engine.errors import UNetError

TIFF_SUFFIXES = (".tif", ".tiff")
"""The names of the TIFF files the command line writes."""


def read_tiff(path: Path) -> np.ndarray:
    """The whole of ``path``'s image, as ``tifffile.imread`` reads it."""
    with _opened(path) as tif, _reading(path):
        return _read_whole(tif, path)


@contextlib.contextmanager
def open_tiff(path: Path) -> Iterator:
    """``path``'s image as an array read lazily where possible (see the module);
    the file stays open, read-only, until the ``with`` block ends."""
    with _opened(path) as tif:
        with _reading(path):
            series = tif.series[0] if tif.series else None
            if series is None or math.prod(series.shape) == 0:
                raise UNetError(f"cannot read {path} as a TIFF image: it holds no image data")
            image = _by_page(series, path)
            if image is None:
                image = _memory_map(tif, series, path)
            if image is None:
                image = _read_whole(tif, path)
        yield image


@contextlib.contextmanager
def _opened(path: Path) -> Iterator:
    """``path`` as an open ``TiffFile`` (read-only), closed when the block ends."""
    import tifffile

    if not path.is_file():
        raise UNetError(f"{path} does not exist or is not a file")
    with _reading(path):
        tif = tifffile.TiffFile(path)
    with tif:
        with _reading(path):
            series = tif.series
        if len(series) > 1:
            shapes = ", ".join(str(tuple(one.shape)) for one in series[:4])
            more = ", ..." if len(series) > 4 else ""
            raise UNetError(
                f"{path} holds {len(series)} images ({shapes}{more}), not one: save each "
                "image (or position) as a file of its own"
            )
        yield tif


DAMAGE = (
    "invalid page offset",
    "invalid offset to page",
    "invalid next page",
    "corrupted tag list",
    "failed to reshape",
)
"""What tifffile logs, and reads on past, when pages are missing: a truncated or damaged file,
read as fewer pages or as one page of a stack."""


class _Damage(logging.Handler):
    """Keeps the first message of tifffile's log that says pages are missing (DAMAGE)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.found = None

    def emit(self, record) -> None:
        message = record.getMessage()
        if self.found is None and any(sign in message for sign in DAMAGE):
            self.found = message


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """tifffile's log quiet, pages that it cannot find an error, and anything but an OS error
    or our own as a UNetError."""
    log = logging.getLogger("tifffile")
    damage = _Damage()
    propagate, log.propagate = log.propagate, False
    log.addHandler(damage)
    try:
        yield
    except (OSError, UNetError):
        raise
    except Exception as error:
        raise UNetError(f"cannot read {path} as a TIFF image: {error}") from None
    finally:
        log.removeHandler(damage)
        log.propagate = propagate
    if damage.found is not None:
        raise UNetError(
            f"cannot read {path} as a TIFF image: it is truncated or damaged, some of its "
            f"pages cannot be found ({damage.found.split('> ', 1)[-1]})"
        )


def _read_whole(tif, path: Path) -> np.ndarray:
    data = tif.asarray()
    if data.size == 0:
        raise UNetError(f"cannot read {path} as a TIFF image: it holds no image data")
    return data


def _memory_map(tif, series, path: Path) -> np.ndarray | None:
    """The series memory-mapped where its data lie in one uncompressed block in native byte
    order (what ``tifffile.memmap`` maps), else None.

    The file is opened read-only; the mapping is copy-on-write (``mode="c"``), so the array is
    writable, as numpy arrays handed to torch must be, yet nothing can reach the file.
    """
    if series.dataoffset is None or series.is_multifile or _transformed(series):
        return None
    dtype = np.dtype(tif.byteorder + series.dtype.char)
    if not dtype.isnative:
        return None
    try:
        return np.memmap(path, dtype, mode="c", offset=series.dataoffset, shape=series.shape)
    except (ValueError, OSError):
        return None


def _transformed(series) -> bool:
    """Whether tifffile maps the stored values (MD Gel files): only a whole read does that."""
    return getattr(series, "transform", None) is not None


def _by_page(series, path: Path):
    """The series as a dask array with one page per chunk, or None where that cannot be."""
    if len(series) < 2 or series.is_multifile or _transformed(series):
        return None
    shape = tuple(series.shape)
    leading = _page_axes(shape, len(series), math.prod(series.keyframe.shape))
    if leading is None:
        return None
    try:
        import dask.array as da
    except ImportError:
        return None
    pages = _Pages(series, shape, leading, path)
    return da.from_array(
        pages,
        chunks=(1,) * leading + shape[leading:],
        name=False,
        meta=np.empty((0,) * len(shape), pages.dtype),
    )


def _page_axes(shape: tuple[int, ...], pages: int, page_size: int) -> int | None:
    """How many leading axes of ``shape`` number the pages (the others hold one page each), or
    None if the pages do not tile the shape that way (tifffile stacks pages in C order)."""
    for leading in range(len(shape) + 1):
        if math.prod(shape[:leading]) == pages and math.prod(shape[leading:]) == page_size:
            return leading
    return None


class _Pages:
    """A series' image data as an array that reads only the pages a selection touches.

    Page reads are serialised: tifffile's file handle is shared, and dask may ask for several
    chunks at once.
    """

    def __init__(self, series, shape: tuple[int, ...], leading: int, path: Path):
        self.shape = shape
        self.dtype = np.dtype(series.dtype)
        self.ndim = len(shape)
        self._series, self._path = series, path
        self._numbers = np.arange(len(series)).reshape(shape[:leading])
        self._lock = threading.Lock()

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > self.ndim or any(k is Ellipsis or k is None for k in key):
            raise IndexError(f"unsupported index {key!r}")
        key += (slice(None),) * (self.ndim - len(key))
        leading = self._numbers.ndim
        numbers = self._numbers[key[:leading]]
        page_shape = self.shape[leading:]
        out = np.empty(numbers.shape + page_shape, self.dtype)
        for index, number in np.ndenumerate(numbers):
            out[index] = self._page(int(number), page_shape)
        return out[(slice(None),) * numbers.ndim + key[leading:]]

    def _page(self, number: int, shape: tuple[int, ...]) -> np.ndarray:
        with self._lock, _reading(self._path):
            page = self._series[number]
            if page is None:
                return np.zeros(shape, self.dtype)
            return page.asarray().reshape(shape)
