"""Toy shapes: a small synthetic image-folder classification dataset.

Six classes, three shapes and three textures, each drawn at a random place,
size, angle and colour on a noisy background of another random colour:

* ``circle``, ``square`` (rotated), ``triangle`` (rotated): one filled shape;
* ``stripes`` (random angle and period), ``checker`` (axis-aligned, random
  cell size), ``dots`` (a rotated grid of discs): a textured patch.

Colour says nothing about the class, so a model has to look at shape and
texture. The files follow the image-folder layout that mmpretrain's
``CustomDataset`` reads (sub-folder names are the classes)::

    <root>/{train,val}/<class>/<class>_00000.png

Generation is deterministic: image ``i`` of a class and split depends only on
``(seed, split, class, i)``, never on how many images are requested.
"""
import os
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw

from .common import as_size, check_counts, generator_main, prepare_out_dir

TOY_SHAPES_CLASSES = ('circle', 'square', 'triangle', 'stripes', 'checker',
                      'dots')
SPLITS = dict(train=0, val=1)


def _colours(rng):
    """A background and a foreground colour that differ clearly."""
    while True:
        bg, fg = rng.uniform(0, 255, (2, 3))
        if np.abs(bg - fg).sum() > 180:
            return bg, fg


def _rotated(points, angle, centre):
    c, s = np.cos(angle), np.sin(angle)
    points = np.asarray(points, float) - centre
    return points @ np.array([[c, s], [-s, c]]) + centre


def _texture(name, rng, yy, xx):
    """Boolean foreground mask of a texture over the whole canvas."""
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    if name == 'stripes':
        period = rng.uniform(8, 12)
        return (u % period) < period / 2
    if name == 'checker':  # axis-aligned, random phase
        cell = rng.uniform(5, 8)
        y0, x0 = rng.uniform(0, 2 * cell, 2)
        return (((yy + y0) // cell) + ((xx + x0) // cell)) % 2 == 0
    period = rng.uniform(10, 13)  # dots
    du = (u % period) - period / 2
    dv = (v % period) - period / 2
    return du**2 + dv**2 < (period * rng.uniform(0.2, 0.3))**2


def render_toy_shape(name, rng, size=32):
    """Draw one image of class ``name``.

    Args:
        name (str): One of :data:`TOY_SHAPES_CLASSES`.
        rng (numpy.random.Generator): Source of all randomness.
        size (int): Side of the square image. Defaults to 32.

    Returns:
        np.ndarray: An RGB uint8 ``(size, size, 3)`` image.
    """
    if name not in TOY_SHAPES_CLASSES:
        raise ValueError(f'Unknown toy class {name!r}; choose from '
                         f'{TOY_SHAPES_CLASSES}')
    bg, fg = _colours(rng)
    extent = rng.uniform(0.5, 0.8) * size  # side of the object
    centre = rng.uniform(extent / 2 + 2, size - extent / 2 - 2, 2)
    mask = Image.new('L', (size, size))
    draw = ImageDraw.Draw(mask)
    angle = rng.uniform(0, 2 * np.pi)
    half = extent / 2
    if name == 'circle':
        draw.ellipse([*(centre - half), *(centre + half)], fill=1)
    elif name == 'square':
        corners = centre + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]
                                     ]) * half * 0.85
        draw.polygon([tuple(p) for p in _rotated(corners, angle, centre)],
                     fill=1)
    elif name == 'triangle':
        corners = [centre + half * np.array([np.cos(a), np.sin(a)])
                   for a in (np.pi / 2, np.pi * 7 / 6, np.pi * 11 / 6)]
        draw.polygon([tuple(p) for p in _rotated(corners, angle, centre)],
                     fill=1)
    else:  # a textured rectangular patch
        draw.rectangle([*(centre - half), *(centre + half)], fill=1)
    mask = np.asarray(mask, bool)
    if name in ('stripes', 'checker', 'dots'):
        yy, xx = np.mgrid[:size, :size]
        mask &= _texture(name, rng, yy, xx)
    image = np.where(mask[..., None], fg, bg)
    image = image + rng.normal(0, 10, image.shape)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def make_toy_imagefolder(out_dir, num_train=500, num_val=50, size=32, seed=0,
                         force=False):
    """Write the toy shapes dataset (see the module docstring).

    Args:
        out_dir (str): Root folder, e.g. ``data/toy_shapes``.
        num_train (int): Training images per class. Defaults to 500.
        num_val (int): Validation images per class. Defaults to 50.
        size (int | tuple[int, int]): Image side; square images only.
            Defaults to 32.
        seed (int): Seed of the whole dataset. Defaults to 0.
        force (bool): Write into a non-empty ``out_dir`` (the toy images are
            rewritten, other files are left alone). Defaults to False.

    Returns:
        dict: Number of images written per split.
    """
    height, width = as_size(size, minimum=32)
    if height != width:
        raise ValueError(f'toy shapes are square: size must be one side, got '
                         f'{height}x{width}')
    check_counts(num_train, num_val)
    prepare_out_dir(out_dir, force)
    counts = {}
    for split, num in (('train', num_train), ('val', num_val)):
        for label, name in enumerate(TOY_SHAPES_CLASSES):
            folder = osp.join(out_dir, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(num):
                rng = np.random.default_rng([seed, SPLITS[split], label, i])
                Image.fromarray(render_toy_shape(name, rng, height)).save(
                    osp.join(folder, f'{name}_{i:05d}.png'))
        counts[split] = num * len(TOY_SHAPES_CLASSES)
    return counts


def main(argv=None):
    """``python -m glnet_mm.datasets.toy_imagefolder [OUT_DIR] ...``"""
    generator_main(make_toy_imagefolder, 'Toy shapes image-folder '
                   'classification (6 classes; counts per class).',
                   'data/toy_shapes', 500, 50, (32, ), argv)


if __name__ == '__main__':
    main()
