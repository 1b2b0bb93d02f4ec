"""Toy ADE: a small synthetic dataset in the ADE20K layout that a CPU learns.

Scenes are an upper and a lower textured region split by a wavy horizon, with
a few textured shapes on top. Each of the six classes has its own colour *and*
texture (sky and water are both blue and differ by their waves; grass is green
noise with streaks; brick a masonry pattern...), and every region gets its own
colour cast and every image its own brightness, contrast and noise, so a model
must look at texture, not only at the mean colour.

The files follow ``ADEChallengeData2016``::

    <root>/images/{training,validation}/toy_{train,val}_00000.jpg
    <root>/annotations/{training,validation}/toy_{train,val}_00000.png

Annotation PNGs hold ``0`` for "other" (shape outlines and clutter blobs of no
class) and ``1..6`` for the classes. As for ADE20K, the dataset is read with
``reduce_zero_label=True``: 0 becomes the ignore index 255 and class ``k`` is
trained as ``k - 1``.

Generation is deterministic: image ``i`` of a split depends only on
``(seed, split, i)``, never on how many images are requested.
"""
import os
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw

from .common import as_size, check_counts, generator_main, prepare_out_dir

TOY_ADE_CLASSES = ('sky', 'grass', 'water', 'brick', 'sand', 'road')
TOY_ADE_PALETTE = [[70, 130, 180], [60, 180, 75], [0, 60, 200],
                   [200, 60, 40], [240, 210, 110], [120, 120, 120]]
SPLITS = dict(train=('training', 0), val=('validation', 1))
_UPPER = (1, 4)  # sky, brick: classes that fill the upper region
_LOWER = (2, 3, 5, 6)  # grass, water, sand, road


def _texture(label, rng, yy, xx):
    """RGB texture in [0, 1] of one class over the whole canvas."""
    h, w = yy.shape
    phase = rng.uniform(0, 2 * np.pi)
    noise = rng.normal(0, 1, (h, w))
    if label == 1:  # sky: smooth vertical gradient
        tex = np.stack([0.45 - 0.2 * yy / h, 0.65 - 0.2 * yy / h,
                        np.full((h, w), 0.95)], -1)
        return tex + 0.015 * noise[..., None]
    if label == 2:  # grass: green grain with vertical streaks
        streaks = 0.08 * np.sin(1.3 * xx + phase)
        shade = 0.12 * noise + streaks
        return np.array([0.25, 0.58, 0.2]) + shade[..., None] * [0.6, 1, 0.6]
    if label == 3:  # water: horizontal waves
        waves = np.sin(0.7 * yy + 1.5 * np.sin(0.12 * xx + phase))
        return (np.array([0.1, 0.3, 0.62]) + 0.12 * waves[..., None] *
                [0.3, 1, 1] + 0.02 * noise[..., None])
    if label == 4:  # brick: offset rows of bricks and light mortar
        row = (yy + int(phase * 3)) // 8
        col = (xx + 8 * (row % 2) + int(phase * 5)) // 16
        mortar = ((yy + int(phase * 3)) % 8 < 2) | (
            (xx + 8 * (row % 2) + int(phase * 5)) % 16 < 2)
        tint = 0.08 * np.sin(row * 3.1 + col * 1.7)
        brick = np.array([0.66, 0.26, 0.16]) + tint[..., None]
        return np.where(mortar[..., None], [0.82, 0.8, 0.76], brick)
    if label == 5:  # sand: beige with dark speckles
        speckle = (rng.random((h, w)) < 0.08)[..., None]
        base = np.array([0.86, 0.76, 0.52]) + 0.03 * noise[..., None]
        return np.where(speckle, [0.55, 0.45, 0.3], base)
    if label == 6:  # road: dark asphalt with light diagonal stripes
        stripes = ((xx + yy + int(phase * 4)) % 14) < 3
        base = np.array([0.33, 0.33, 0.35]) + 0.05 * noise[..., None]
        return np.where(stripes[..., None], [0.62, 0.62, 0.55], base)
    raise ValueError(f'no texture for label {label}')


def _shape(draw, kind, box, **kwargs):
    x0, y0, x1, y1 = box
    if kind == 'ellipse':
        draw.ellipse(box, **kwargs)
    elif kind == 'rectangle':
        draw.rectangle(box, **kwargs)
    else:  # triangle
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], **kwargs)


def render_toy_scene(rng, height=128, width=160):
    """Draw one scene.

    Args:
        rng (numpy.random.Generator): Source of all randomness.
        height (int): Image height. Defaults to 128.
        width (int): Image width. Defaults to 160.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(image, label)``: an RGB uint8
        ``(H, W, 3)`` image and a uint8 ``(H, W)`` map with 0 for "other"
        and ``1..len(TOY_ADE_CLASSES)`` for the classes.
    """
    yy, xx = np.mgrid[:height, :width]
    horizon = (rng.uniform(0.3, 0.6) * height + rng.uniform(3, 10) *
               np.sin(rng.uniform(0.02, 0.08) * xx[0] + rng.uniform(0, 6)))
    label = np.where(yy < horizon[None], rng.choice(_UPPER),
                     rng.choice(_LOWER)).astype(np.uint8)
    other = np.zeros((height, width, 3))  # colour of the label-0 pixels

    for _ in range(rng.integers(1, 4)):
        size = rng.integers(16, 48, 2)
        x0, y0 = rng.integers(0, width - size[0]), rng.integers(0, height -
                                                                 size[1])
        box = (int(x0), int(y0), int(x0 + size[0]), int(y0 + size[1]))
        kind = rng.choice(['ellipse', 'rectangle', 'triangle'])
        centre = label[(box[1] + box[3]) // 2, (box[0] + box[2]) // 2]
        cls = rng.choice([c for c in range(1, 7) if c != centre])
        fill, ring = Image.new('L', (width, height)), Image.new(
            'L', (width, height))
        _shape(ImageDraw.Draw(fill), kind, box, fill=1)
        _shape(ImageDraw.Draw(ring), kind, box, outline=1, width=2)
        fill, ring = np.asarray(fill, bool), np.asarray(ring, bool)
        label[fill] = cls
        label[ring] = 0
        other[ring] = rng.uniform(0, 0.15, 3)
    if rng.random() < 0.5:  # clutter: a flat blob of no class
        r = rng.integers(5, 12)
        cy, cx = rng.integers(r, height - r), rng.integers(r, width - r)
        blob = (yy - cy)**2 + (xx - cx)**2 <= r * r
        label[blob] = 0
        other[blob] = rng.uniform(0, 1, 3)

    image = other
    for cls in np.unique(label[label > 0]):
        mask = label == cls
        gain = rng.uniform(0.8, 1.2, 3)  # per-region colour cast
        image[mask] = _texture(int(cls), rng, yy, xx)[mask] * gain
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-0.08, 0.08)
    image = (image - 0.5) * contrast + 0.5 + brightness
    image += rng.normal(0, 0.02, image.shape)
    image = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    return image, label


def make_toy_ade(out_dir, num_train=240, num_val=60, size=(128, 160), seed=0,
                 force=False):
    """Write a toy ADE dataset (see the module docstring) to ``out_dir``.

    Args:
        out_dir (str): Root folder, e.g. ``data/toy_ade``.
        num_train (int): Training images. Defaults to 240.
        num_val (int): Validation images. Defaults to 60.
        size (int | tuple[int, int]): Image ``(height, width)``.
            Defaults to ``(128, 160)``.
        seed (int): Seed of the whole dataset. Defaults to 0.
        force (bool): Write into a non-empty ``out_dir`` (the files of the
            toy dataset are rewritten, other files are left alone).
            Defaults to False.

    Returns:
        dict: Number of images written per split.
    """
    height, width = as_size(size, minimum=64)
    check_counts(num_train, num_val)
    prepare_out_dir(out_dir, force)
    counts = {}
    for split, num in (('train', num_train), ('val', num_val)):
        folder, split_id = SPLITS[split]
        img_dir = osp.join(out_dir, 'images', folder)
        ann_dir = osp.join(out_dir, 'annotations', folder)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(num):
            rng = np.random.default_rng([seed, split_id, i])
            image, label = render_toy_scene(rng, height, width)
            name = f'toy_{split}_{i:05d}'
            Image.fromarray(image).save(
                osp.join(img_dir, name + '.jpg'), quality=95)
            Image.fromarray(label).save(osp.join(ann_dir, name + '.png'))
        counts[split] = num
    return counts


def main(argv=None):
    """``python -m glnet_mm.datasets.toy_ade [OUT_DIR] ...``"""
    generator_main(make_toy_ade, 'Toy ADE semantic segmentation (ADE20K '
                   'layout).', 'data/toy_ade', 240, 60, (128, 160), argv)


if __name__ == '__main__':
    main()
