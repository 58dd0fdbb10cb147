"""Images and video frames as the `image_url` parts of an OpenAI-compatible request.

Images go as base64 data URLs, PNG by default (lossless: the model sees exactly the
pixels it would see locally); JPEG only when asked (`image_format="jpeg"`), which is
smaller but lossy. A video goes as its sampled frames, each preceded by a text part with
its `mm:ss` timestamp (the way Gemma 4's own processor lays frames out).

Images are resized on the client only when the user asks (`max_image_side`, default
None). The server's processor must see the original image, aspect ratio included, for
coordinates to stay right: Gemma 4's 0..1000 normalised coordinates survive an
aspect-preserving resize, but a server that letterboxes, or a family that answers in
pixels of the processor-resized image (Qwen2.5-VL), would not. Resizing saves bandwidth
only; the server resizes to its budget anyway.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from PIL import Image

from vistool.errors import VistoolError
from vistool.runtime.types import GenerationRequest

# id(image) -> (data URL, size sent), shared by the requests of one `generate` call.
ImageCache = dict[int, tuple[str, tuple[int, int]]]


def format_timestamp(seconds: float) -> str:
    """Return `seconds` as "mm:ss" (minutes may exceed 59), as Gemma 4 labels video frames."""
    whole = max(0, int(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def resize_to_max_side(image: Image.Image, max_side: int | None) -> Image.Image:
    """Return `image` scaled down (aspect ratio kept) so its longer side is <= `max_side`.

    None, or an image already small enough, is returned unchanged.
    """
    if max_side is None or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def encode_image(image: Image.Image, image_format: str = "png", jpeg_quality: int = 95) -> str:
    """Encode a PIL image as a base64 data URL.

    Takes the image, "png" (lossless, the default) or "jpeg", and the JPEG quality.
    Returns "data:image/png;base64,..." (or image/jpeg).
    """
    buffer = io.BytesIO()
    if image_format == "jpeg":
        rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
        rgb.save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        image.save(buffer, format="PNG", compress_level=1)  # lossless either way; level 1 is fast
    return f"data:image/{image_format};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def media_of(request: GenerationRequest) -> list[Image.Image]:
    """Return the request's images, or its video frames."""
    return list(request.images) if request.video is None else list(request.video.frames)


@dataclass(frozen=True)
class ImageTransport:
    """How images travel: `image_format` ("png" or "jpeg"), `jpeg_quality`, and the
    optional client-side `max_image_side` (None: sent at their own size)."""

    image_format: str = "png"
    jpeg_quality: int = 95
    max_image_side: int | None = None

    @classmethod
    def checked(cls, image_format: str, jpeg_quality: int, max_image_side: int | None) -> "ImageTransport":
        """Return the transport for these options ("jpg" means "jpeg"); raise VistoolError for a bad one."""
        image_format = image_format.lower().replace("jpg", "jpeg")
        if image_format not in ("png", "jpeg"):
            raise VistoolError(f"image_format must be 'png' or 'jpeg' (got {image_format!r})")
        if max_image_side is not None and max_image_side < 1:
            raise VistoolError(f"max_image_side must be a positive number of pixels or None (got {max_image_side})")
        return cls(image_format, int(jpeg_quality), max_image_side)

    def image_part(self, image: Image.Image, cache: ImageCache, sent_sizes: list[tuple[int, int]]) -> dict[str, Any]:
        """Return the `image_url` part of one image and append the size sent to `sent_sizes`.

        The image is resized and encoded once per `cache` (one `generate` call).
        """
        cached = cache.get(id(image))
        if cached is None:
            sized = resize_to_max_side(image, self.max_image_side)
            cached = (encode_image(sized, self.image_format, self.jpeg_quality), sized.size)
            cache[id(image)] = cached
        sent_sizes.append(cached[1])
        return {"type": "image_url", "image_url": {"url": cached[0]}}

    def media_parts(self, request: GenerationRequest, cache: ImageCache) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
        """Return the user turn's media parts (images, or timestamped video frames) and the size sent of each."""
        content: list[dict[str, Any]] = []
        sent_sizes: list[tuple[int, int]] = []
        for image in request.images:
            content.append(self.image_part(image, cache, sent_sizes))
        if request.video is not None:
            for frame, timestamp in zip(request.video.frames, request.video.timestamps):
                content.append({"type": "text", "text": format_timestamp(timestamp)})
                content.append(self.image_part(frame, cache, sent_sizes))
        return content, sent_sizes


__all__ = ["ImageCache", "ImageTransport", "encode_image", "format_timestamp", "media_of", "resize_to_max_side"]
