"""Pictures people upload for their profile (avatars) and their organisation (logos).

Only PNG, JPEG and WebP are taken, recognised by their first bytes (the client's content type and
file name are ignored), no larger than ``MAX_IMAGE_BYTES`` and with sane dimensions read from the
image's own header (no image library: the headers are parsed here). The type served back is the
one found here, never what the client said, so a file can never come back as HTML or SVG.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cockpit.kit.errors import CockpitError, InvalidInput

# 1 MB (decimal): a form's multipart envelope around it still fits the REST/console body limit
# (COCKPIT_MAX_BODY_BYTES_API, 1 MiB by default), so every upload gets this module's clear refusal.
MAX_IMAGE_BYTES = 1_000_000
MAX_SIDE = 4096  # pixels, either way
MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp")
ACCEPT = ",".join(MEDIA_TYPES)

_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


class ImageTooLarge(CockpitError):
    status = 413
    default_code = "image_too_large"


@dataclass(frozen=True)
class Image:
    media_type: str
    width: int
    height: int
    data: bytes

    def store(self, row: Any, now: datetime) -> None:
        """Write the picture into its row (a ``UserAvatar`` or an ``AccountLogo``: the same columns)."""
        row.media_type, row.width, row.height = self.media_type, self.width, self.height
        row.data, row.updated_at = self.data, now

    def audited(self, what: str, *, replaced: bool) -> dict[str, Any]:
        """The audit entry's ``after`` of setting this picture as ``what`` (avatar, logo)."""
        return {
            what: "replaced" if replaced else "added",
            "media_type": self.media_type,
            "width": self.width,
            "height": self.height,
            "bytes": len(self.data),
        }


def _not_an_image(field: str, why: str) -> InvalidInput:
    message = f"The file is not a PNG, JPEG or WebP image ({why})."
    return InvalidInput("invalid_image", message, details=[{"field": field, "message": why}])


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or the scan began before any frame header
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 30:
        return None
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size + 8 > len(data) + 1:  # the RIFF header claims more than was sent (a cut file)
        return None
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            return None
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def check_image(data: bytes, *, field: str = "file") -> Image:
    """The picture, or a clear refusal: 413 ``image_too_large``, 422 ``invalid_image``."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageTooLarge(
            "image_too_large",
            f"The image is {len(data):,} bytes; at most {MAX_IMAGE_BYTES:,} bytes (1 MB) are allowed.",
            details=[{"field": field, "message": "at most 1 MB"}],
        )
    if not data:
        raise _not_an_image(field, "the file is empty")
    if data.startswith(_PNG):
        media_type, size = "image/png", _png_size(data)
    elif data.startswith(b"\xff\xd8\xff"):
        media_type, size = "image/jpeg", _jpeg_size(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        media_type, size = "image/webp", _webp_size(data)
    else:
        raise _not_an_image(field, "its content is of another kind")
    if size is None:
        raise _not_an_image(field, "its header is damaged or cut off")
    width, height = size
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise InvalidInput(
            "invalid_image",
            f"The image is {width} by {height} pixels; each side must be 1 to {MAX_SIDE} pixels.",
            details=[{"field": field, "message": f"1 to {MAX_SIDE} pixels each side"}],
        )
    return Image(media_type, width, height, data)
