"""Images in and out of the ``minigen sample`` command of text-to-image runs: PNG through
matplotlib's image I/O (no other dependency) and ``.npy`` arrays, images (n, 3, H, W) in
[-1, 1] inside, masks (n, H, W) with 1 = keep and 0 = regenerate."""
import os

import numpy as np

from minigen.checkpoint import atomic_write
from minigen.errors import InvalidInput

EXTENSIONS = (".png", ".npy")


def check_extension(path, option):
    """``path`` ends in .png or .npy, else one line naming ``option``."""
    if not path.lower().endswith(EXTENSIONS):
        raise InvalidInput(f"{option} {path}: expected a .png or .npy file")


def read_images(path, option="--from"):
    """A .png (one image; RGB or RGBA, 8- or 16-bit) or .npy ((n, 3, H, W) or (3, H, W) in
    [-1, 1]) file as float32 images (n, 3, H, W) in [-1, 1]."""
    array = _read(path, option)
    if path.lower().endswith(".png"):
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise InvalidInput(f"{option} {path}: expected an RGB image, got an array of shape "
                               f"{array.shape}")
        return (array[None, :, :, :3].transpose(0, 3, 1, 2) * 2 - 1).astype(np.float32)
    array = array[None] if array.ndim == 3 else array
    if array.ndim != 4 or array.shape[1] != 3 or not np.all(np.isfinite(array)):
        raise InvalidInput(f"{option} {path}: expected finite images (n, 3, H, W) in [-1, 1], "
                           f"got shape {array.shape}")
    return array.astype(np.float32)


def read_mask(path, option="--mask"):
    """A .png (white = keep, black = regenerate; the channels are averaged and thresholded at
    a half) or .npy ((n, H, W) or (H, W) of 0 and 1) mask as float32 (n, H, W)."""
    array = _read(path, option)
    if path.lower().endswith(".png"):
        array = array[..., :3].mean(axis=-1) if array.ndim == 3 else array
        return (array[None] > 0.5).astype(np.float32)
    array = array[None] if array.ndim == 2 else array
    if array.ndim != 3 or not np.isin(array, (0, 1)).all():
        raise InvalidInput(f"{option} {path}: expected a mask (n, H, W) of 0 (regenerate) and 1 "
                           f"(keep), got shape {array.shape}")
    return array.astype(np.float32)


def write_images(path, images, columns=None):
    """Images (n, 3, H, W) in [-1, 1] to ``path`` atomically: .npy as they are, .png as one
    grid (``columns`` wide, default ceil(sqrt(n)), 2-pixel black gaps)."""
    from matplotlib import image as mpimg

    if path.lower().endswith(".npy"):
        atomic_write(path, lambda f: np.save(f, np.asarray(images, dtype=np.float32)))
    else:
        atomic_write(path, lambda f: mpimg.imsave(f, grid(images, columns), format="png"))


def grid(images, columns=None):
    """Images (n, 3, H, W) in [-1, 1] as one (rows (H + 2), columns (W + 2), 3) array in
    [0, 1]."""
    n, _, h, w = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    out = np.zeros((rows * (h + 2), columns * (w + 2), 3), np.float32)
    for i, image in enumerate(np.clip((np.asarray(images) + 1) / 2, 0, 1)):
        r, c = divmod(i, columns)
        out[r * (h + 2) + 1:r * (h + 2) + 1 + h, c * (w + 2) + 1:c * (w + 2) + 1 + w] = \
            image.transpose(1, 2, 0)
    return out


def _read(path, option):
    check_extension(path, option)
    if not os.path.isfile(path):
        raise InvalidInput(f"{option} {path}: no such file")
    try:
        if path.lower().endswith(".png"):
            from matplotlib import image as mpimg

            return np.asarray(mpimg.imread(path), dtype=np.float32)
        return np.load(path, allow_pickle=False)
    except Exception as err:
        raise InvalidInput(f"{option} {path}: cannot read the file ({type(err).__name__}: "
                           f"{err})") from None
