"""Image processor of ChatBridge: the original evaluation preprocessing, reading files and unusual images itself."""

import io
import os

import numpy as np
from PIL import Image, UnidentifiedImageError
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

from .media_cache import active_media_cache


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB as the original converts it (alpha dropped, palette and CMYK mapped); 16/32-bit grey scaled to 8 bits."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(values / scale * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    return image if image.mode == "RGB" else image.convert("RGB")


def _decode_file(image, label: str, max_pixels: int | None) -> Image.Image:
    source = io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else image
    try:
        opened = Image.open(source)  # reads the header only
    except FileNotFoundError as error:
        raise ValueError(f"Image file {label!r} does not exist.") from error
    except UnidentifiedImageError as error:
        raise ValueError(f"{label!r} is not an image file PIL can read.") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"Cannot decode image {label!r}: {error}") from error
    with opened:
        width, height = opened.size
        if max_pixels is not None and width * height > max_pixels:
            raise ValueError(
                f"Image {label!r} is {width}x{height} = {width * height:,} pixels, more than max_image_pixels "
                f"({max_pixels:,}); it was not decoded."
            )
        try:
            opened.load()
            return _to_rgb(opened)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise ValueError(f"Cannot decode image {label!r}: {error}") from error


def load_image(image, name: str | None = None, max_pixels: int | None = None) -> Image.Image | np.ndarray:
    """An RGB PIL image from a path, file bytes or a PIL image; arrays and tensors pass through unchanged.

    Errors name the file (or `name`) and say what is wrong, and come before any preprocessing; a file whose header
    declares more than `max_pixels` pixels is refused before it is decoded. A path is decoded once while a
    `DecodedMediaCache` is active (each call gets its own copy).
    """
    if isinstance(image, (str, os.PathLike, bytes, bytearray)):
        label = name or (os.fspath(image) if isinstance(image, (str, os.PathLike)) else "<image bytes>")
        cache = active_media_cache()
        file_key = cache.file_key(image) if cache is not None else None
        if file_key is None:
            return _decode_file(image, label, max_pixels)
        key = ("image", file_key, max_pixels)
        decoded = cache.get(key)
        if decoded is None:
            decoded = _decode_file(image, label, max_pixels)
            cache.put(key, decoded, decoded.width * decoded.height * len(decoded.getbands()))
        return decoded.copy()
    if isinstance(image, Image.Image):
        return _to_rgb(image)
    return image


class ChatBridgeImageProcessor(BlipImageProcessorPil):
    r"""
    224x224 bicubic resize with PIL (aspect ratio not kept, no crop), rescale 1/255, CLIP mean/std: the original's
    pixels exactly (transformers' torchvision BLIP backend differs by up to ~0.015). Accepts paths, file bytes, PIL
    images of any mode, arrays and tensors; unreadable files raise a `ValueError` naming the file, and so do files
    declaring more than `max_image_pixels` pixels (64 million by default: an 8000x8000 picture), before decoding.
    """

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"height": 224, "width": 224}
    max_image_pixels = 64_000_000

    def fetch_images(self, images):
        if isinstance(images, (list, tuple)):
            return [self.fetch_images(image) for image in images]
        return load_image(images, max_pixels=self.max_image_pixels)


__all__ = ["ChatBridgeImageProcessor", "load_image"]
