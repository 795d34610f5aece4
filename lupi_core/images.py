"""Reading and normalising images: whatever a user hands us becomes uint8 RGB.

Grayscale, RGBA, palette, 16-bit and EXIF-rotated inputs are converted, not
rejected; unreadable files raise `ImageError` with a message that says what is
wrong and what to do.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

# scikit-image photographs that ship inside the package (no download), all public
# domain or CC0 according to skimage.data's docstrings. Grayscale ones become RGB.
BUNDLED_IMAGES = ("astronaut", "camera", "chelsea", "coffee", "rocket", "hubble_deep_field", "brick", "gravel")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageError(ValueError):
    """An input that cannot be used as an image; the message is meant for the user."""


def to_rgb_uint8(image: np.ndarray | Image.Image) -> np.ndarray:
    """Any PIL image or HxW / HxWxC array (uint8, uint16, bool or float in [0, 1]) -> HxWx3 uint8."""
    if isinstance(image, Image.Image):
        return _pil_to_rgb_uint8(image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"expected an H x W (gray) or H x W x 3/4 (RGB/RGBA) image, got shape {array.shape}")
    if array.dtype == np.uint16:
        array = (array.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageError(f"unsupported pixel type {array.dtype}; use uint8, uint16 or float in [0, 1]")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 4:
        array = _composite_on_white(array)
    return np.ascontiguousarray(array)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    rgb = rgba[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return (rgb + 0.5).astype(np.uint8)


def _pil_to_rgb_uint8(image: Image.Image) -> np.ndarray:
    if getattr(image, "is_animated", False):
        image.seek(0)  # an animated GIF/WebP: its first frame
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float32)
        scale = 65535.0 if array.max() > 255 else 255.0
        return to_rgb_uint8(np.clip(array / scale, 0.0, 1.0))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return _composite_on_white(np.asarray(image.convert("RGBA")))
    return np.asarray(image.convert("RGB")).copy()


def load_image(path: str | Path, name: str | None = None) -> np.ndarray:
    """Read a file as HxWx3 uint8, applying its EXIF orientation. Errors name the file as
    `name` when given (an upload's own name, not the server's temporary path)."""
    path = Path(path)
    shown = name or str(path)
    if not path.is_file():
        raise ImageError(f"{shown}: no such file")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb_uint8(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as error:
        raise ImageError(f"{shown}: the image is too large to decode safely ({error}); "
                         f"downscale it first") from None
    except UnidentifiedImageError:
        raise ImageError(f"{shown}: not an image file PIL can read (PNG, JPEG, BMP, TIFF, WebP, GIF)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{shown}: the image is damaged or truncated ({error}); re-export or re-download it") from None


def save_png(image: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")
    return path


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files in a folder (and its subfolders when recursive), sorted; hidden ones skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: {'not a folder' if folder.exists() else 'folder not found'}")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW float32 in [0, 1]. A read-only array (np.asarray of a PIL image)
    is copied first: torch warns on it otherwise."""
    image = image if image.flags.writeable else image.copy()
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0).unsqueeze(0)


def to_float_image(tensor: torch.Tensor) -> np.ndarray:
    """1x3xHxW (or 3xHxW) -> HxWx3 float32, clamped to [0, 1], not quantised."""
    return tensor.detach().float().clamp_(0.0, 1.0).squeeze(0).permute(1, 2, 0).cpu().numpy()


def quantize(image: np.ndarray) -> np.ndarray:
    """Float HxWx3 in [0, 1] -> uint8 with rounding."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# -- photographs shipped with scikit-image, folders, thumbnails ------------------------------------

def fit_within(image: np.ndarray, side: int) -> np.ndarray:
    """Downscale (never up, area filter) so the longer side is at most `side`."""
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    scale = side / max(h, w)
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return np.array(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def fit_square(image: np.ndarray, size: int = 256) -> np.ndarray:
    """Resize so the short side is `size` (area filter), then centre-crop to size x size."""
    image = to_rgb_uint8(image)
    h, w = image.shape[:2]
    scale = size / min(h, w)
    if scale != 1.0:
        new = (max(size, round(w * scale)), max(size, round(h * scale)))
        image = np.array(Image.fromarray(image).resize(new, Image.Resampling.LANCZOS if scale > 1 else Image.Resampling.BOX))
    h, w = image.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[y:y + size, x:x + size])


def bundled_image(name: str, size: int | None = 256) -> np.ndarray:
    """A photograph shipped inside scikit-image (read from the package, never downloaded)."""
    import skimage.data

    if name not in BUNDLED_IMAGES:
        raise ValueError(f"unknown bundled image {name!r}; choose from {', '.join(BUNDLED_IMAGES)}")
    image = to_rgb_uint8(getattr(skimage.data, name)())
    return fit_square(image, size) if size else image


def bundled_images(names: Sequence[str] = BUNDLED_IMAGES, size: int = 256) -> dict[str, np.ndarray]:
    return {name: bundled_image(name, size) for name in names}


def folder_images(folder: str | Path, limit: int | None = None, size: int = 256) -> dict[str, np.ndarray]:
    """Images of a folder, keyed "folder:<file name>" (their thumbnails are never stored)."""
    paths = list_images(folder)[:limit]
    return {f"folder:{p.name}": fit_square(load_image(p), size) for p in paths}


def encode_thumbnail(image: np.ndarray, size: int = 64, quality: int = 85) -> bytes:
    """A size x size JPEG (the hover preview only; restorations are never JPEG)."""
    thumb = Image.fromarray(image).resize((size, size), Image.Resampling.BOX)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
