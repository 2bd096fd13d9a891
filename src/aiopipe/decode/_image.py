"""``image``: PNG or JPEG bytes to an HWC uint8 array (TensorFlow's ``decode_image``).

Pillow is the optional ``image`` extra: it is imported only when a decoder is made.
"""

from __future__ import annotations

import io
from types import ModuleType
from typing import Any, final

import numpy as np

from .._core.engine._errors import DecodeError

__all__ = ["ImageDecoder", "image"]

_INSTALL_HINT = "decode.image needs Pillow: pip install 'aiopipe[image]'"
# Pillow modes per channel count; everything else is converted to one of these.
_MODE_FOR_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
_CHANNELS_OF_MODE = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def image(*, channels: int | None = None) -> ImageDecoder:
    """A function turning PNG or JPEG bytes into an ``(height, width, channels)`` uint8 array.

    ``channels=None`` keeps the file's (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA; palettes become RGB
    or RGBA); 1, 3 or 4 converts. Raises ImportError with an install hint when Pillow is missing.
    """
    return ImageDecoder(channels=channels)


@final
class ImageDecoder:
    """The callable :func:`image` returns; an object rather than a closure so that it pickles."""

    __name__ = "decode.image"

    def __init__(self, *, channels: int | None = None) -> None:
        if channels is not None and (
            isinstance(channels, bool) or channels not in _MODE_FOR_CHANNELS
        ):
            raise ValueError(f"channels must be None, 1, 3 or 4, got {channels!r}")
        self.channels = channels
        _pillow()  # fail when the pipeline is built, not at the first record

    def __call__(self, data: bytes | bytearray | memoryview) -> np.ndarray[Any, Any]:
        pil = _pillow()
        try:
            with pil.open(io.BytesIO(data)) as img:
                img.load()
                converted = _to_8_bit(img, pil).convert(self._target_mode(img))
        except (OSError, ValueError, SyntaxError, pil.DecompressionBombError) as exc:
            size = len(data) if not isinstance(data, memoryview) else data.nbytes
            raise DecodeError(f"cannot decode {size} bytes as an image: {exc}") from None
        array = np.asarray(converted, dtype=np.uint8)
        return array[:, :, np.newaxis] if array.ndim == 2 else array

    def _target_mode(self, img: Any) -> str:
        if self.channels is not None:
            return _MODE_FOR_CHANNELS[self.channels]
        mode: str = img.mode
        if mode in _CHANNELS_OF_MODE:
            return mode
        if mode in ("1", "I", "F") or mode.startswith("I;16"):
            return "L"
        has_alpha = "A" in mode or "transparency" in img.info
        return "RGBA" if has_alpha else "RGB"

    def __repr__(self) -> str:
        return f"decode.image(channels={self.channels!r})"


def _to_8_bit(img: Any, pil: ModuleType) -> Any:
    """16-bit greyscale scaled to 8 bits (Pillow's own conversion would clip at 255)."""
    if img.mode != "I" and not img.mode.startswith("I;16"):
        return img
    wide = np.asarray(img).astype(np.int64)
    return pil.fromarray((np.clip(wide, 0, 0xFFFF) >> 8).astype(np.uint8), "L")


def _pillow() -> ModuleType:
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return Image
