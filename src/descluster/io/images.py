"""Read images by their case path from a folder or a zip archive, as 8-bit RGB.

Case paths come from ``images_paths.csv`` and may use Windows separators
(``veriwild\\1\\00001\\000001.jpg``). They are normalised to POSIX form and must
stay inside the image root: absolute paths and ``..`` components are refused
with :class:`~descluster.errors.UnsafePathError`. Zip members are looked up by
name in the archive's own index and read straight from the archive; nothing is
ever unpacked to disk.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable

import numpy as np
from PIL import Image, ImageFile, ImageOps

from ..errors import ImageReadError, UnsafePathError

# Truncated JPEGs must raise, never be silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

log = logging.getLogger("descluster")


def normalise_case_path(case_path: str) -> str:
    """Return ``case_path`` as a relative POSIX path, refusing escapes.

    Parameters
    ----------
    case_path : str
        A path as written in ``images_paths.csv``; ``\\`` and ``/`` are both separators.

    Returns
    -------
    str
        e.g. ``"veriwild/1/00001/000001.jpg"``.

    Raises
    ------
    UnsafePathError
        If the path is empty, absolute (``/x``, ``C:\\x``, ``\\\\server``) or contains ``..``.
    """
    raw = str(case_path).strip()
    posix = raw.replace("\\", "/")
    if not posix:
        raise UnsafePathError("empty image path")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise UnsafePathError(f"absolute image path '{raw}' is not allowed: paths must be relative to the image root")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePathError(f"image path '{raw}' contains '..' and would read outside the image root")
    if not parts:
        raise UnsafePathError(f"image path '{raw}' names no file")
    return "/".join(parts)


def path_key(path: str) -> str:
    """The key under which a path is matched between tables (labels, ImageNet summary, paths).

    :func:`normalise_case_path` where the path is safe, so ``a\\b.jpg``, ``./a/b.jpg`` and
    ``a/b.jpg`` match; an unsafe path (absolute, ``..``) is only given POSIX separators and
    loses a leading ``./``, so that it still matches itself and never raises.

    Parameters
    ----------
    path : str

    Returns
    -------
    str
    """
    try:
        return normalise_case_path(path)
    except UnsafePathError:
        p = str(path).replace("\\", "/")
        return p[2:] if p.startswith("./") else p


def to_rgb8(image: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit RGB.

    Handles grey-scale (``L``, ``1``), grey+alpha (``LA``), palette (``P``, with or
    without transparency), ``RGBA`` (composited on white), ``CMYK``, ``YCbCr`` and
    16/32-bit integer or float modes (``I;16``, ``I``, ``F``: rescaled by their
    actual range to 0–255). EXIF orientation is applied.

    Parameters
    ----------
    image : PIL.Image.Image

    Returns
    -------
    PIL.Image.Image
        Mode ``RGB``, 8 bits per channel.
    """
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF must not make a readable image unreadable
        pass
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if mode.startswith("I;16"):
            lo, hi = 0.0, 65535.0
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        grey = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


class ImageSource:
    """Images of a case, read by case path from a folder or a ``.zip`` archive.

    Parameters
    ----------
    root : str or PathLike
        A folder, or a ``.zip`` file. For a zip, a case path is matched against
        member names exactly, or with the archive's single top-level folder
        removed or added (``veriwild/1/...`` vs ``1/...``).

    Attributes
    ----------
    root : Path
    is_zip : bool

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist.

    Notes
    -----
    Thread-safe for reads (a lock guards the shared zip handle). Open one
    source per process when using multiprocessing.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"image root {self.root} does not exist")
        self.is_zip = self.root.is_file() and zipfile.is_zipfile(self.root)
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] | None = None
        self._lock = threading.Lock()
        self._real_root: Path | None = None
        if not self.is_zip and not self.root.is_dir():
            raise FileNotFoundError(f"image root {self.root} is neither a folder nor a zip archive")

    # -- lookup -----------------------------------------------------------------
    def _zip_index(self) -> dict[str, str]:
        if self._members is None:
            with self._lock:
                if self._zip is None:
                    self._zip = zipfile.ZipFile(self.root)
                names = [n for n in self._zip.namelist() if not n.endswith("/")]
                index = {}
                for n in names:
                    key = n.replace("\\", "/")
                    index.setdefault(key, n)
                tops = {k.split("/", 1)[0] for k in index if "/" in k}
                if len(tops) == 1:
                    top = next(iter(tops))
                    for k, n in list(index.items()):
                        if k.startswith(top + "/"):
                            index.setdefault(k[len(top) + 1 :], n)
                self._members = index
                self._top = next(iter(tops)) if len(tops) == 1 else None
        return self._members

    def _member(self, key: str) -> str | None:
        index = self._zip_index()
        if key in index:
            return index[key]
        if "/" in key:  # the case path carries a top folder the archive lacks
            return index.get(key.split("/", 1)[1])
        return None

    def _file(self, key: str) -> Path | None:
        """The file of case path ``key`` under the root, or None; refuses links that leave the root.

        Raises
        ------
        UnsafePathError
            If the file, or a folder on its way, is a symbolic link resolving outside the image root.
        """
        for rel in (key, key.split("/", 1)[1] if "/" in key else None):
            if rel is None:
                continue
            p = self.root / rel
            if p.is_file():
                return self._contained(p)
        return None

    def _contained(self, p: Path) -> Path:
        """``p`` resolved, after checking that it lies inside the resolved image root."""
        real = p.resolve()
        if self._real_root is None:
            self._real_root = self.root.resolve()
        if not real.is_relative_to(self._real_root):
            raise UnsafePathError(f"{p}: is a symbolic link (or lies under one) that leads outside the image root "
                                  f"{self._real_root}, to {real}; refused: nothing is read outside the image root")
        return real

    def exists(self, case_path: str) -> bool:
        """Whether ``case_path`` names an image in this source (False for unsafe paths)."""
        try:
            key = normalise_case_path(case_path)
            return (self._member(key) if self.is_zip else self._file(key)) is not None
        except UnsafePathError:
            return False

    def missing(self, case_paths: Iterable[str]) -> list[str]:
        """Case paths (as given) that this source does not hold, in input order."""
        return [p for p in case_paths if not self.exists(p)]

    # -- reading ----------------------------------------------------------------
    def read_bytes(self, case_path: str) -> bytes:
        """Return the raw file bytes of one image.

        Raises
        ------
        UnsafePathError
            For absolute paths or paths with ``..``.
        ImageReadError
            If the image is not in the source or cannot be read.
        """
        key = normalise_case_path(case_path)
        if self.is_zip:
            member = self._member(key)
            if member is None:
                raise ImageReadError(f"{case_path}: not found in {self.root}")
            with self._lock:
                try:
                    return self._zip.read(member)  # type: ignore[union-attr]
                except Exception as exc:  # bad CRC, truncated archive
                    raise ImageReadError(f"{case_path}: cannot read from {self.root}: {exc}") from exc
        path = self._file(key)
        if path is None:
            raise ImageReadError(f"{case_path}: not found under {self.root}")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ImageReadError(f"{case_path}: {exc}") from exc

    def open(self, case_path: str) -> Image.Image:
        """Decode one image fully and return it as 8-bit RGB (see :func:`to_rgb8`).

        Raises
        ------
        ImageReadError
            Missing, 0-byte, truncated or undecodable file (message names the path).
        UnsafePathError
            For absolute paths or paths with ``..``.
        """
        return self.decode(self.read_bytes(case_path), case_path)

    @staticmethod
    def decode(data: bytes, case_path: str) -> Image.Image:
        """Decode the bytes of one image (from :meth:`read_bytes`) fully, as 8-bit RGB (see :func:`to_rgb8`).

        What :meth:`open` does after reading; for a caller that needs the bytes too (to hash
        them) and should not read the file twice.

        Parameters
        ----------
        data : bytes
            The file's bytes.
        case_path : str
            The image's case path, named in the error message.

        Raises
        ------
        ImageReadError
            0-byte, truncated or undecodable data (message names ``case_path``).
        """
        if not data:
            raise ImageReadError(f"{case_path}: file is empty (0 bytes)")
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                return to_rgb8(im)
        except Exception as exc:
            raise ImageReadError(f"{case_path}: cannot decode image ({type(exc).__name__}: {exc})") from exc

    def read_rgb(self, case_path: str) -> np.ndarray:
        """Return one image as an array of shape (height, width, 3), dtype uint8.

        Raises the same errors as :meth:`open`.
        """
        return np.asarray(self.open(case_path), dtype=np.uint8)

    def thumbnail(self, case_path: str, size: int = 96) -> Image.Image:
        """Return an RGB thumbnail whose longer side is at most ``size`` pixels."""
        im = self.open(case_path)
        im.thumbnail((size, size), Image.Resampling.BILINEAR)
        return im

    def list_images(self) -> list[str]:
        """All image files in the source as relative POSIX paths, sorted."""
        if self.is_zip:
            names = {self._zip_index()[k] for k in self._zip_index()}
            return sorted(n.replace("\\", "/") for n in names if n.lower().endswith(IMAGE_SUFFIXES))
        found = []
        for p in self.root.rglob("*"):
            if not (p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
                continue
            try:
                self._contained(p)
            except UnsafePathError as exc:
                log.warning("%s", exc)
                continue
            found.append(str(PurePosixPath(p.relative_to(self.root).as_posix())))
        return sorted(found)

    def close(self) -> None:
        """Close the zip handle, if any."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None
            self._members = None

    def __getstate__(self):  # picklable for multiprocessing: reopen lazily
        state = self.__dict__.copy()
        state["_zip"] = None
        state["_members"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ImageSource({str(self.root)!r}, zip={self.is_zip})"
