"""Image montages (contact sheets) and small thumbnails for the report.

Every image goes through :meth:`ImageSource.open`, so it is 8-bit RGB whatever
its file mode; an image that is missing or cannot be decoded becomes a grey
placeholder tile with a cross, so one bad file never stops the report.
"""

from __future__ import annotations

import io
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from ..errors import ParameterError

BACKGROUND = (255, 255, 255)
PLACEHOLDER = (200, 200, 200)
CAPTION_HEIGHT = 14


def _font(size: int = 10) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def placeholder(size: int) -> Image.Image:
    """A grey ``size``×``size`` RGB tile with a cross: stands for an unreadable image."""
    tile = Image.new("RGB", (size, size), PLACEHOLDER)
    draw = ImageDraw.Draw(tile)
    draw.line([(0, 0), (size - 1, size - 1)], fill=(150, 150, 150), width=2)
    draw.line([(0, size - 1), (size - 1, 0)], fill=(150, 150, 150), width=2)
    return tile


def fit_tile(image: Image.Image, size: int) -> Image.Image:
    """Scale ``image`` so its longer side is ``size`` px and centre it on a square white tile.

    Returns
    -------
    PIL.Image.Image
        Mode ``RGB``, ``size``×``size``.
    """
    im = image.convert("RGB")
    scale = size / max(im.size)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BILINEAR)
    tile = Image.new("RGB", (size, size), BACKGROUND)
    tile.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
    return tile


def load_tile(source, path: str, size: int) -> tuple[Image.Image, bool]:
    """Read one image as a square tile; ``(placeholder, False)`` if it cannot be read."""
    if source is None:
        return placeholder(size), False
    try:
        return fit_tile(source.open(path), size), True
    except Exception:  # ImageReadError, UnsafePathError, anything Pillow raises
        return placeholder(size), False


def image_grid(source, paths: Sequence[str], ncols: int = 8, size: int = 96,
               captions: Sequence[str] | None = None, gap: int = 2) -> Image.Image:
    """Montage of images in a grid, optionally with a caption under each tile.

    Parameters
    ----------
    source : ImageSource or None
        Where the images are read; ``None`` draws placeholders only.
    paths : sequence of str
        Case paths, in reading order (row by row).
    ncols : int, >= 1
        Tiles per row.
    size : int, 8..1024
        Tile side in pixels; images keep their aspect ratio inside the tile.
    captions : sequence of str, optional
        One caption per path (cut to fit the tile width).
    gap : int, >= 0
        Pixels between tiles.

    Returns
    -------
    PIL.Image.Image
        Mode ``RGB``; ``ceil(len(paths) / ncols)`` rows (one white tile if ``paths`` is empty).

    Raises
    ------
    ParameterError
        For out-of-range ``ncols``, ``size`` or ``gap``, or ``captions`` of the wrong length.
    """
    if not isinstance(ncols, int) or ncols < 1:
        raise ParameterError(f"ncols={ncols!r} is invalid: it must be an integer >= 1")
    if not isinstance(size, int) or not 8 <= size <= 1024:
        raise ParameterError(f"size={size!r} is invalid: it must be an integer in [8, 1024] (pixels)")
    if not isinstance(gap, int) or gap < 0:
        raise ParameterError(f"gap={gap!r} is invalid: it must be an integer >= 0")
    if captions is not None and len(captions) != len(paths):
        raise ParameterError(f"captions has {len(captions)} entries but paths has {len(paths)}; they must match")
    n = len(paths)
    cols = max(1, min(ncols, n))
    rows = max(1, -(-n // cols))
    cell_h = size + (CAPTION_HEIGHT if captions is not None else 0)
    sheet = Image.new("RGB", (cols * size + (cols - 1) * gap, rows * cell_h + (rows - 1) * gap), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(10)
    for i, path in enumerate(paths):
        x, y = (i % cols) * (size + gap), (i // cols) * (cell_h + gap)
        tile, _ = load_tile(source, path, size)
        sheet.paste(tile, (x, y))
        if captions is not None:
            text = str(captions[i])
            while text and draw.textlength(text, font=font) > size - 2:
                text = text[:-1]
            draw.text((x + 1, y + size + 1), text, fill=(30, 30, 30), font=font)
    return sheet


def png_bytes(image: Image.Image) -> bytes:
    """Encode a PIL image as PNG bytes (for an atomic write)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
