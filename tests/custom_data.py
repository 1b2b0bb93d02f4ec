"""Generators of small datasets that look like a user's, not like COCO, ADE20K
or ImageNet, for the tests of docs/custom_dataset.md and
tools/analysis_tools/check_dataset.py: their own class names (with spaces
and capitals) and counts, odd image sizes, grayscale and RGBA images next
to RGB ones, JPEG and PNG, images without objects, one class absent from
val, non-contiguous category ids. Each is laid out as the guide tells the
user to lay out their data, and is a pure function of its arguments.
"""
import json
import os
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw

# Image sizes (width, height), odd and of both orientations, and the image
# modes and formats, used in turn.
SIZES = [(97, 131), (150, 89), (121, 121), (173, 103), (88, 140), (133, 77)]
MODES = [('RGB', '.jpg'), ('L', '.png'), ('RGBA', '.png'), ('RGB', '.png')]


def _image(rng, size, mode):
    w, h = size
    base = rng.integers(40, 200, 3)
    noise = rng.integers(-25, 25, (h, w, 3))
    img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    if mode == 'RGBA':
        img.putalpha(Image.fromarray(
            rng.integers(128, 256, (h, w)).astype(np.uint8)))
    elif mode == 'L':
        img = img.convert('L')
    return img


def _save(img, path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    if path.endswith('.jpg'):
        img.convert('RGB' if img.mode == 'RGBA' else img.mode).save(
            path, quality=90)
    else:
        img.save(path)


def _polygon(rng, w, h):
    """A convex-ish polygon well inside a w x h image: (points, bbox)."""
    r = rng.uniform(0.12, 0.25) * min(w, h)
    cx = rng.uniform(r + 1, w - r - 1)
    cy = rng.uniform(r + 1, h - r - 1)
    n = int(rng.integers(4, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = r * rng.uniform(0.7, 1.0, n)
    xs, ys = cx + radii * np.cos(angles), cy + radii * np.sin(angles)
    pts = [round(float(v), 1) for p in zip(xs, ys) for v in p]
    x0, y0 = float(xs.min()), float(ys.min())
    bbox = [round(x0, 1), round(y0, 1), round(float(xs.max()) - x0, 1),
            round(float(ys.max()) - y0, 1)]
    return pts, bbox


def make_coco(root, classes, cat_ids, num_train=8, num_val=4,
              absent_in_val=None, seed=0, empty_every=3):
    """A COCO-format instance segmentation dataset::

        root/annotations/{train,val}.json
        root/images/{train,val}/<name>.{jpg,png}

    Category ids are ``cat_ids`` (not 1..K), listed in that order with the
    names ``classes``; every ``empty_every``-th image has no object;
    ``absent_in_val`` (a class name) has no instance in val. Polygons are
    drawn in the image. Returns the number of instances per (split, class)."""
    rng = np.random.default_rng(seed)
    counts = {}
    for split, num in (('train', num_train), ('val', num_val)):
        images, anns = [], []
        allowed = [c for c in classes
                   if not (split == 'val' and c == absent_in_val)]
        for i in range(num):
            size = SIZES[i % len(SIZES)]
            mode, ext = MODES[i % len(MODES)]
            img = _image(rng, size, 'RGB')
            name = f'{split}_photo {i:03d}{ext}'  # a space, as users have
            image_id = 1000 + i * 7  # not 0..N-1
            images.append(dict(id=image_id, file_name=name, width=size[0],
                               height=size[1]))
            n_obj = 0 if i % empty_every == empty_every - 1 else 1 + i % 3
            draw = ImageDraw.Draw(img)
            for k in range(n_obj):
                cls = allowed[(i + k) % len(allowed)]
                pts, bbox = _polygon(rng, *size)
                draw.polygon(pts, fill=tuple(int(v) for v in
                                             rng.integers(0, 256, 3)))
                anns.append(dict(
                    id=len(anns) + 1, image_id=image_id,
                    category_id=cat_ids[classes.index(cls)],
                    segmentation=[pts], bbox=bbox,
                    area=round(bbox[2] * bbox[3] * 0.7, 1), iscrowd=0))
                counts[split, cls] = counts.get((split, cls), 0) + 1
            if mode == 'L':
                img = img.convert('L')
            elif mode == 'RGBA':
                img.putalpha(200)
            _save(img, osp.join(root, 'images', split, name))
        coco = dict(
            images=images, annotations=anns,
            categories=[dict(id=i, name=c, supercategory='thing')
                        for i, c in zip(cat_ids, classes)])
        os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
        with open(osp.join(root, 'annotations', f'{split}.json'), 'w') as f:
            json.dump(coco, f)
    return counts


def make_seg(root, num_classes, num_train=8, num_val=4, absent_in_val=None,
             seed=0):
    """Image and mask folders::

        root/img_dir/{train,val}/<name>.jpg (RGB, grayscale JPEG)
        root/ann_dir/{train,val}/<name>.png (class index a pixel, 255 on a
        border: ignored)

    Masks are rectangles of random classes on class 0; class
    ``absent_in_val`` (an index) does not appear in val."""
    rng = np.random.default_rng(seed)
    for split, num in (('train', num_train), ('val', num_val)):
        for i in range(num):
            w, h = SIZES[i % len(SIZES)]
            label = np.zeros((h, w), np.uint8)
            for _ in range(4):
                cls = int(rng.integers(1, num_classes))
                if split == 'val' and cls == absent_in_val:
                    continue
                x0, y0 = int(rng.integers(0, w - 20)), int(
                    rng.integers(0, h - 20))
                label[y0:y0 + int(rng.integers(10, 40)),
                      x0:x0 + int(rng.integers(10, 40))] = cls
            if split == 'train':  # every class somewhere in train
                for cls in range(num_classes):
                    if cls % num_train == i:
                        label[:4, cls * 3:cls * 3 + 3] = cls
            label[-2:, :] = 255
            img = _image(rng, (w, h), 'L' if i % 3 == 1 else 'RGB')
            _save(img, osp.join(root, 'img_dir', split, f'scene_{i:02d}.jpg'))
            _save(Image.fromarray(label),
                  osp.join(root, 'ann_dir', split, f'scene_{i:02d}.png'))


def make_imagefolder(root, classes, num_per_class=4, absent_in_val=None,
                     seed=0):
    """``root/{train,val}/<class>/<name>``: a folder per class in both splits
    (``absent_in_val``'s val folder is empty), RGB, grayscale and RGBA
    images of odd sizes."""
    rng = np.random.default_rng(seed)
    for split in ('train', 'val'):
        for c, cls in enumerate(classes):
            folder = osp.join(root, split, cls)
            os.makedirs(folder, exist_ok=True)
            if split == 'val' and cls == absent_in_val:
                continue
            n = num_per_class if split == 'train' else max(
                1, num_per_class // 2)
            for i in range(n):
                mode, ext = MODES[(i + c) % len(MODES)]
                img = _image(rng, SIZES[(i + 2 * c) % len(SIZES)], mode)
                _save(img, osp.join(folder, f'IMG_{c}{i:03d}{ext}'))


# ---- a user's checkout ----------------------------------------------------

def make_workspace(root, repo):
    """A user's working copy at ``root``: its own copy of ``configs/`` (to
    edit, as the guide says), ``tools/`` linked to the repository's, and
    empty ``data/`` and ``checkpoints/``. The guide's commands run there."""
    import shutil
    shutil.copytree(osp.join(repo, 'configs'), osp.join(root, 'configs'))
    os.symlink(osp.join(repo, 'tools'), osp.join(root, 'tools'))
    os.makedirs(osp.join(root, 'data'))
    os.makedirs(osp.join(root, 'checkpoints'))
    return root


def edit_config(path, **values):
    """The edits the guide tells the user to make: each ``name = ...`` line
    of the config's block at the top (``data_root``, ``classes``) set to
    ``repr(value)``. A name that is not there is an error."""
    import re
    with open(path) as f:
        text = f.read()
    for name, value in values.items():
        text, n = re.subn(rf'^{name} = .*$', f'{name} = {value!r}', text,
                          count=1, flags=re.M)
        assert n == 1, f'{path} has no line "{name} = ..." to edit'
    with open(path, 'w') as f:
        f.write(text)


def write_official_like(path, keys):
    """A file laid out like an official GLNet ImageNet release (its
    ``state_dict`` under ``model``, next to training state), with the keys
    and shapes of ``keys`` (``official_keys.json``'s entry of a model) and
    random values (positive BatchNorm variances). Returns its weights."""
    import torch
    g = torch.Generator().manual_seed(0)
    weights = {}
    for name, shape in keys['state_dict'].items():
        if name.endswith('num_batches_tracked'):
            weights[name] = torch.tensor(100)
        elif name.endswith('running_var'):
            weights[name] = torch.rand(shape, generator=g) + 0.5
        else:
            weights[name] = torch.randn(shape, generator=g) * 0.02
    torch.save(dict(model=weights, epoch=299, args=dict(model='glnet_stl')),
               path)
    return weights
