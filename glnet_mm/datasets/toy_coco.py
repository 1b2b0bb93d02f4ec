"""Toy COCO: a small synthetic instance-segmentation set that trains on a CPU.

Images of coloured geometric shapes (``circle``, ``square``, ``triangle``,
``ring``) on random backgrounds (gradients, stripes, checkerboards, noise),
with partial occlusions, in the COCO format that mmdet's ``CocoDataset`` and
``CocoMetric`` read::

    out_dir/
        annotations/instances_train.json
        annotations/instances_val.json
        train/000000.png ...
        val/000000.png ...

Colours are random, so the class is the shape. Masks are stored as polygons
for fully visible polygonal shapes and as compressed RLE for the rest (rings,
which have a hole, and occluded objects, whose mask is the visible part), so
both COCO mask formats are exercised. Every image is a pure function of
``(seed, split, index)``: the output is byte-identical from run to run.

Command line::

    python -m glnet_mm.datasets.toy_coco data/toy_coco [--num-train N]
        [--num-val N] [--size H [W]] [--seed S] [--force]
"""
import json
import math
import os
import os.path as osp

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .common import as_size, check_counts, generator_main, prepare_out_dir

CLASSES = ('circle', 'square', 'triangle', 'ring')
PALETTE = [(220, 20, 60), (0, 130, 200), (60, 180, 75), (245, 130, 48)]
SPLITS = ('train', 'val')

# Fraction of an earlier object that must stay visible when a later one is
# drawn over it, and the shape size range (circumradius, in image fractions).
MIN_VISIBLE = 0.6
RADIUS_RANGE = (0.08, 0.22)


def _background(rng, size):
    """A random background, float32 (H, W, 3) in [0, 255]."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(4)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 0:  # linear gradient in a random direction
        angle = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(angle) + yy * math.sin(angle)
        t = (t - t.min()) / max(t.max() - t.min(), 1)
    elif kind == 1:  # stripes
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(8, 24)
        t = 0.5 + 0.5 * np.sin(2 * math.pi / period *
                               (xx * math.cos(angle) + yy * math.sin(angle)))
    elif kind == 2:  # checkerboard
        cell = int(rng.integers(8, 24))
        t = ((xx // cell + yy // cell) % 2).astype(np.float32)
    else:  # smooth blobs: upsampled noise
        coarse = rng.uniform(0, 1, (h // 16 + 2, w // 16 + 2))
        img = Image.fromarray((coarse * 255).astype(np.uint8))
        t = np.asarray(img.resize((w, h), Image.BILINEAR), np.float32) / 255
    # low contrast so that the shapes stand out
    c1 = c0 + (c1 - c0) * 0.35
    return c0 + (c1 - c0) * t[..., None]


def _outline(rng, cls, cx, cy, r):
    """Vertices (x, y) of the outer boundary, and the hole of a ring."""
    theta = rng.uniform(0, 2 * math.pi)
    if cls in ('circle', 'ring'):
        n = 48
    else:
        n = 4 if cls == 'square' else 3
    angles = theta + 2 * math.pi * np.arange(n) / n
    outer = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)
    hole = None
    if cls == 'ring':
        hole = np.stack([cx, cy]) + (outer - [cx, cy]) * rng.uniform(.45, .6)
        hole = np.round(hole, 2)
    # rounded as stored in the json, so the polygon is exactly the mask
    return np.round(outer, 2), hole


def _rasterize(size, outer, hole):
    """The mask of a polygon (minus a hole) as COCO tools rasterise it."""
    def fill(polygon):
        rle = mask_utils.frPyObjects([polygon.ravel().tolist()], *size)
        return mask_utils.decode(rle)[..., 0].astype(bool)

    mask = fill(outer)
    return mask & ~fill(hole) if hole is not None else mask


def _colour(rng, background, mask):
    """A random colour that differs clearly from the background under it."""
    under = background[mask].mean(0)
    for _ in range(50):
        colour = rng.uniform(0, 255, 3)
        if np.abs(colour - under).sum() > 180:
            break
    return colour


def render_image(seed, split, index, size=(160, 160), max_objects=4):
    """Render one toy image and its instances.

    Args:
        seed (int): Seed of the dataset.
        split (str): ``'train'`` or ``'val'``.
        index (int): Index of the image in its split.
        size (tuple[int, int]): ``(height, width)``.
        max_objects (int): At most this many shapes (at least one).

    Returns:
        tuple[np.ndarray, list[dict]]: The uint8 (H, W, 3) image and, per
        object, ``label`` (index into :data:`CLASSES`), ``mask`` (visible
        part, bool (H, W)), ``outline`` (vertices, or None when the mask is
        not that polygon: rings and occluded objects).
    """
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    h, w = size
    image = _background(rng, size)
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(20):
            cls = CLASSES[rng.integers(len(CLASSES))]
            r = rng.uniform(*RADIUS_RANGE) * min(h, w)
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            outer, hole = _outline(rng, cls, cx, cy, r)
            mask = _rasterize(size, outer, hole)
            if all((o['mask'] & ~mask).sum() >= MIN_VISIBLE * o['area']
                   for o in objects):
                break
        else:
            continue  # no placement leaves the others visible enough
        for o in objects:
            o['mask'] = o['mask'] & ~mask
        colour = _colour(rng, image, mask)
        shade = rng.normal(0, 8, (h, w, 1))  # a little texture
        image = np.where(mask[..., None], colour + shade, image)
        objects.append(
            dict(label=CLASSES.index(cls), mask=mask, area=int(mask.sum()),
                 outline=outer if hole is None else None))
    image = image + rng.normal(0, 4, image.shape)
    image = np.clip(image, 0, 255).round().astype(np.uint8)
    for o in objects:
        if o['mask'].sum() < o.pop('area'):  # occluded: keep the visible part
            o['outline'] = None
    return image, objects


def _segmentation(obj):
    """COCO segmentation: a polygon when exact, else compressed RLE."""
    if obj['outline'] is not None:
        return [obj['outline'].ravel().tolist()]
    rle = mask_utils.encode(np.asfortranarray(obj['mask'].astype(np.uint8)))
    return dict(size=list(rle['size']), counts=rle['counts'].decode('ascii'))


def _write_split(out_dir, split, num_images, seed, size):
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image, objects = render_image(seed, split, index, size)
        file_name = f'{index:06d}.png'
        Image.fromarray(image).save(osp.join(out_dir, split, file_name))
        image_id = index + 1
        images.append(dict(id=image_id, file_name=file_name,
                           height=size[0], width=size[1]))
        for obj in objects:
            ys, xs = np.nonzero(obj['mask'])
            x0, y0 = int(xs.min()), int(ys.min())
            annotations.append(
                dict(id=len(annotations) + 1, image_id=image_id,
                     category_id=obj['label'] + 1,
                     bbox=[x0, y0, int(xs.max()) - x0 + 1,
                           int(ys.max()) - y0 + 1],
                     area=int(obj['mask'].sum()),
                     segmentation=_segmentation(obj), iscrowd=0))
    coco = dict(
        info=dict(description=f'glnet_mm toy COCO ({split}), seed {seed}'),
        images=images,
        annotations=annotations,
        categories=[
            dict(id=i + 1, name=name, supercategory='shape')
            for i, name in enumerate(CLASSES)
        ])
    ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
    with open(ann_file, 'w') as f:
        json.dump(coco, f)


def make_toy_coco(out_dir, num_train=320, num_val=64, size=(160, 160),
                  seed=0, force=False):
    """Write the toy COCO dataset to ``out_dir``.

    Args:
        out_dir (str): Output folder; created if missing.
        num_train (int): Training images. Defaults to 320.
        num_val (int): Validation images. Defaults to 64.
        size (int | tuple[int, int]): Image ``(height, width)``.
            Defaults to ``(160, 160)``.
        seed (int): Seed; the same seed gives the same files. Defaults to 0.
        force (bool): Write into a non-empty ``out_dir`` (files of the same
            names are replaced). Defaults to False.

    Returns:
        dict: Number of images written per split.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``force`` is False.
        ValueError: Bad counts or size.
    """
    size = as_size(size, minimum=32)
    check_counts(num_train, num_val)
    prepare_out_dir(out_dir, force)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    for split, n in zip(SPLITS, (num_train, num_val)):
        _write_split(out_dir, split, n, seed, size)
    return dict(zip(SPLITS, (num_train, num_val)))


def main(argv=None):
    """``python -m glnet_mm.datasets.toy_coco [OUT_DIR] ...``"""
    generator_main(make_toy_coco, 'Toy COCO instance segmentation.',
                   'data/toy_coco', 320, 64, (160, 160), argv)


if __name__ == '__main__':
    main()
