"""Check a config's train and val datasets before training.

    python tools/analysis_tools/check_dataset.py CONFIG [--splits train val]
        [--cfg-options k=v ...]

The datasets are built as the config builds them (mmengine's registry in
the config's ``default_scope``: mmdet, mmseg or mmpretrain, after its
``custom_imports``), so the data root, annotation files, prefixes, suffixes
and ``metainfo`` classes are the ones training would use. Then every record
is read and checked:

* detection / instance segmentation (COCO-format annotation files, read
  raw, since mmdet silently drops what it cannot use): the config's classes
  missing from the file's categories or in another order, annotations whose
  category is not one of the classes, boxes and polygons outside the image,
  empty masks, image sizes that disagree with the file;
* semantic segmentation (image/mask folders): masks that are missing,
  unreadable, not single-channel or of another size than their image,
  labels at or above the class count (after ``reduce_zero_label``) other
  than the ignore index;
* classification: labels outside the classes, folders that are not the
  classes (mmpretrain numbers the sorted folder names), an ``Accuracy``
  top-k above the class count;
* every task: missing or unreadable images, and every ``num_classes`` of
  the model (each head that has one) against the classes.

Each fault is one line naming the file and the record; the exit status is 1
when there is a fault, 0 otherwise. Then a summary: images and instances
(classification: images; segmentation: images containing the class) per
class and split. Notes (a class absent from a split, images without
objects) do not fail the check.
"""
import argparse
import collections
import json
import os
import os.path as osp
import sys

import numpy as np


class Report:
    """Faults (fail the check) and notes (do not), printed as found."""

    def __init__(self, out=None):
        self.faults = []
        self.notes = []
        self.out = out or sys.stdout

    def fault(self, split, where, message):
        line = f'FAULT [{split}] {where}: {message}'
        self.faults.append(line)
        print(line, file=self.out)

    def note(self, split, message):
        line = f'note  [{split}] {message}'
        self.notes.append(line)
        print(line, file=self.out)


# ---- images -----------------------------------------------------------------

def read_image(path):
    """(width, height, mode) of the image at ``path``, fully decoded, or
    an error message."""
    from PIL import Image
    if not osp.isfile(path):
        return None, 'image file is missing'
    try:
        with Image.open(path) as img:
            img.load()
            return (img.width, img.height, img.mode), None
    except Exception as e:  # PIL raises many kinds for bad files
        return None, f'image file is unreadable ({type(e).__name__}: {e})'


# ---- the config -------------------------------------------------------------

def num_classes_fields(node, path='model'):
    """Every ``num_classes`` (and ``num_things_classes`` +
    ``num_stuff_classes``) of a model config: (path, value) pairs. The
    RPN's ``num_classes`` (1: object or not) is not a class count."""
    found = []
    if isinstance(node, dict):
        if 'num_classes' in node and not path.endswith('rpn_head'):
            found.append((f'{path}.num_classes', node['num_classes']))
        if 'num_things_classes' in node:
            found.append((f'{path}.num_things_classes + num_stuff_classes',
                          node['num_things_classes'] +
                          node.get('num_stuff_classes', 0)))
        for key, value in node.items():
            found += num_classes_fields(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += num_classes_fields(value, f'{path}[{i}]')
    return found


def check_num_classes(cfg, classes, report):
    for path, value in num_classes_fields(cfg.get('model', {})):
        if value != len(classes):
            report.fault('config', path,
                         f'{value} disagrees with the {len(classes)} classes '
                         f'of the dataset {tuple(classes)}')


def check_topk(cfg, classes, report):
    """mmpretrain's Accuracy fails at the first evaluation when a top-k
    exceeds the class count."""
    for name in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(name) or []
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        for ev in evaluators:
            if ev.get('type') not in ('Accuracy', 'mmpretrain.Accuracy'):
                continue
            topk = ev.get('topk', (1, ))
            topk = (topk, ) if isinstance(topk, int) else tuple(topk)
            if max(topk) > len(classes):
                report.fault('config', f'{name}.topk',
                             f'{topk} needs at least {max(topk)} classes, '
                             f'the dataset has {len(classes)}: use topk='
                             f'{tuple(k for k in topk if k <= len(classes))}')


def check_evaluator_files(cfg, report):
    """A COCO evaluator reads its own copy of the val annotations
    (``ann_file``): it must be the val dataset's file."""
    for split in ('val', 'test'):
        ev = cfg.get(f'{split}_evaluator')
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(ev, dict) or not ev.get('ann_file') or not loader:
            continue
        ds = loader['dataset']
        if 'ann_file' not in ds:
            continue
        expected = osp.normpath(osp.join(ds.get('data_root') or '',
                                         ds['ann_file']))
        if osp.normpath(ev['ann_file']) != expected:
            report.fault('config', f'{split}_evaluator.ann_file',
                         f"{ev['ann_file']} is not the {split} dataset's "
                         f'annotation file {expected}: the metric would '
                         'score against other annotations')


def dataset_cfgs(cfg, splits):
    """(split, dataset config) for each requested split that the config
    has (``{split}_dataloader.dataset``)."""
    out = []
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if loader is None:
            continue
        out.append((split, loader['dataset']))
    return out


def records(dataset):
    """The parsed records of a dataset (mmengine serialises its list)."""
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def leaves(dataset):
    """The datasets inside wrappers (Repeat/ClassBalanced/Concat)."""
    if hasattr(dataset, 'datasets'):
        return [d for sub in dataset.datasets for d in leaves(sub)]
    if hasattr(dataset, 'dataset'):
        return leaves(dataset.dataset)
    return [dataset]


# ---- detection --------------------------------------------------------------

# Pixels that a box or polygon may overshoot the image by (coordinates
# rounded to whole or half pixels by annotation tools).
TOLERANCE = 0.5


def polygon_area(xs, ys):
    return 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))


def mask_problems(seg, width, height):
    """What is wrong with a COCO ``segmentation`` of a ``width`` x
    ``height`` image: a list of messages."""
    problems = []
    if isinstance(seg, list):  # polygons
        if not seg:
            return ['empty mask (no polygon)']
        area = 0.
        for k, poly in enumerate(seg):
            pts = np.asarray(poly, dtype=np.float64)
            if pts.size < 6 or pts.size % 2:
                problems.append(f'polygon {k} has {pts.size} coordinates '
                                '(needs x, y pairs, at least 3 points)')
                continue
            xs, ys = pts[0::2], pts[1::2]
            if (xs.min() < -TOLERANCE or ys.min() < -TOLERANCE
                    or xs.max() > width + TOLERANCE
                    or ys.max() > height + TOLERANCE):
                problems.append(
                    f'polygon {k} lies outside the {width}x{height} image '
                    f'(x {xs.min():g}..{xs.max():g}, '
                    f'y {ys.min():g}..{ys.max():g})')
            area += polygon_area(xs, ys)
        if area == 0 and not problems:
            problems.append('empty mask (its polygons have no area)')
        return problems
    if isinstance(seg, dict) and 'counts' in seg:  # RLE
        from pycocotools import mask as mask_utils
        size = list(seg.get('size', []))
        if size != [height, width]:
            return [f'RLE mask of size {size} on a {width}x{height} image '
                    '(COCO sizes are [height, width])']
        rle = seg
        if isinstance(seg['counts'], list):
            rle = mask_utils.frPyObjects(seg, height, width)
        if mask_utils.area(rle) == 0:
            return ['empty mask (the RLE has no pixel)']
        return []
    return [f'segmentation of unknown format {type(seg).__name__}']


def check_coco(split, dataset, classes, report, with_mask):
    """A COCO-format dataset, from its annotation file itself."""
    ann_file = dataset.ann_file
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (OSError, ValueError) as e:
        report.fault(split, ann_file, f'unreadable annotation file ({e})')
        return None
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(coco.get(key), list):
            report.fault(split, ann_file, f'no "{key}" list: not a COCO '
                         'annotation file')
            return None
    name_of = {c['id']: c['name'] for c in coco['categories']}
    ids = [c['id'] for c in coco['categories'] if c['name'] in classes]
    missing = [c for c in classes if c not in name_of.values()]
    if missing:
        report.fault(split, ann_file,
                     f'classes {missing} of the config are not among the '
                     f'categories of the file {sorted(name_of.values())} '
                     '(mmdet would number the remaining classes wrongly)')
    elif [name_of[i] for i in ids] != list(classes):
        report.fault(split, ann_file,
                     f'the config lists the classes as {tuple(classes)} but '
                     'the file lists these categories as '
                     f'{tuple(name_of[i] for i in ids)}: mmdet numbers them '
                     "in the file's order, so the names would be wrong; "
                     "list them in the file's order")
    label_of = {cat_id: classes.index(name_of[cat_id]) for cat_id in ids}

    img_prefix = dataset.data_prefix.get('img', '')
    images = {}
    for img in coco['images']:
        path = osp.join(img_prefix, img['file_name'])
        where = f"{ann_file}: image id {img['id']} ({img['file_name']})"
        size, error = read_image(path)
        if error:
            report.fault(split, where, f'{error}: {path}')
        elif (size[0], size[1]) != (img.get('width'), img.get('height')):
            report.fault(split, where,
                         f'the file is {size[0]}x{size[1]} but the '
                         f"annotation says {img.get('width')}x"
                         f"{img.get('height')}")
        images[img['id']] = img

    instances = collections.Counter()
    images_with = collections.defaultdict(set)
    with_objects = set()
    for ann in coco['annotations']:
        img = images.get(ann.get('image_id'))
        name = img['file_name'] if img else '?'
        where = (f"{ann_file}: annotation id {ann.get('id')} "
                 f"(image id {ann.get('image_id')}, {name})")
        if img is None:
            report.fault(split, where, 'its image id is not in "images"')
            continue
        cat = ann.get('category_id')
        if cat not in label_of:
            known = name_of.get(cat)
            report.fault(split, where,
                         f'category id {cat}'
                         + (f' ({known!r})' if known else '') +
                         ' is not one of the classes of the config '
                         f'{tuple(classes)} (mmdet would drop it silently)')
            continue
        w, h = img['width'], img['height']
        x, y, bw, bh = ann.get('bbox', [0, 0, 0, 0])
        if bw <= 0 or bh <= 0:
            report.fault(split, where, f'empty box {[x, y, bw, bh]} '
                         '(width or height <= 0)')
        elif (x < -TOLERANCE or y < -TOLERANCE or x + bw > w + TOLERANCE
              or y + bh > h + TOLERANCE):
            report.fault(split, where,
                         f'box [x, y, w, h] = {[x, y, bw, bh]} lies outside '
                         f'the {w}x{h} image')
        if with_mask:
            if not ann.get('segmentation'):
                report.fault(split, where, 'empty mask (no segmentation) '
                             'in an instance segmentation dataset')
            else:
                for problem in mask_problems(ann['segmentation'], w, h):
                    report.fault(split, where, problem)
        label = label_of[cat]
        instances[label] += 1
        images_with[label].add(img['id'])
        with_objects.add(img['id'])
    empty = len(images) - len(with_objects)
    if empty:
        report.note(split, f'{empty} of {len(images)} images have no object'
                    ' (mmdet skips them in training if filter_empty_gt)')
    return dict(images=len(images),
                per_class={c: (len(images_with[i]), instances[i])
                           for i, c in enumerate(classes)},
                columns=('images', 'instances'))


def check_det_records(split, dataset, classes, report):
    """Any other mmdet dataset: its parsed records."""
    counts = collections.Counter()
    images_with = collections.defaultdict(set)
    for i, info in enumerate(records(dataset)):
        path = info.get('img_path')
        size, error = read_image(path)
        if error:
            report.fault(split, f'record {i}', f'{error}: {path}')
            continue
        w, h = size[:2]
        for j, inst in enumerate(info.get('instances', [])):
            x1, y1, x2, y2 = inst['bbox']
            if x1 < 0 or y1 < 0 or x2 > w or y2 > h or x2 <= x1 or y2 <= y1:
                report.fault(split, f'record {i} ({path}), instance {j}',
                             f'box [x1, y1, x2, y2] = {inst["bbox"]} is '
                             f'empty or outside the {w}x{h} image')
            label = inst.get('bbox_label', -1)
            if not 0 <= label < len(classes):
                report.fault(split, f'record {i} ({path}), instance {j}',
                             f'label {label} outside the {len(classes)} '
                             'classes')
                continue
            counts[label] += 1
            images_with[label].add(i)
    return dict(images=len(dataset),
                per_class={c: (len(images_with[i]), counts[i])
                           for i, c in enumerate(classes)},
                columns=('images', 'instances'))


# ---- semantic segmentation --------------------------------------------------

def check_seg(split, dataset, classes, ignore_index, report):
    from PIL import Image
    infos = records(dataset)
    if not infos:
        report.fault(split, dataset.data_prefix.get('img_path', ''),
                     f'no image ending in {dataset.img_suffix!r} found')
    images_with = collections.Counter()
    for info in infos:
        img_path, seg_path = info['img_path'], info.get('seg_map_path')
        size, error = read_image(img_path)
        if error:
            report.fault(split, img_path, error)
        if seg_path is None:
            continue
        if not osp.isfile(seg_path):
            report.fault(split, seg_path, f'mask file is missing (image '
                         f'{osp.basename(img_path)}; masks end in '
                         f'{dataset.seg_map_suffix!r})')
            continue
        try:
            with Image.open(seg_path) as m:
                mode = m.mode
                label = np.asarray(m)
        except Exception as e:
            report.fault(split, seg_path, f'mask file is unreadable '
                         f'({type(e).__name__}: {e})')
            continue
        if label.ndim != 2:
            report.fault(split, seg_path,
                         f'mask has {label.shape[-1]} channels (mode '
                         f'{mode}): a label mask holds one class index a '
                         'pixel (convert colour masks to indices)')
            continue
        if size and label.shape != (size[1], size[0]):
            report.fault(split, seg_path,
                         f'mask is {label.shape[1]}x{label.shape[0]}, its '
                         f'image {size[0]}x{size[1]}')
        values = np.unique(label).astype(np.int64)
        if info.get('reduce_zero_label'):
            values = np.where(values == 0, 255, values - 1)
            values = np.where(values == 254, 255, values)
        bad = [int(v) for v in values
               if v >= len(classes) and v != ignore_index]
        if bad:
            shift = (' after reduce_zero_label (value - 1, 0 ignored)'
                     if info.get('reduce_zero_label') else '')
            report.fault(split, seg_path,
                         f'labels {bad}{shift} are not among the '
                         f'{len(classes)} classes (0..{len(classes) - 1}) '
                         f'nor the ignore index {ignore_index}')
        for v in values:
            if 0 <= v < len(classes):
                images_with[int(v)] += 1
    return dict(images=len(dataset),
                per_class={c: (images_with[i], )
                           for i, c in enumerate(classes)},
                columns=('images', ))


# ---- classification ---------------------------------------------------------

def folder_hint(dataset):
    """For class folders that mmpretrain refused: which class has no
    folder, which folder is no class."""
    root = getattr(dataset, 'img_prefix', None)
    classes = dataset.metainfo.get('classes')
    if not classes or not isinstance(root, str) or not osp.isdir(root):
        return ''
    folders = sorted(d for d in os.listdir(root)
                     if osp.isdir(osp.join(root, d)))
    missing = [c for c in classes if c not in folders]
    extra = [f for f in folders if f not in classes]
    hint = ''
    if missing:
        hint += (f'; {root} has no folder for the classes {missing} '
                 '(make an empty one)')
    if extra:
        hint += f'; its folders {extra} are not among the classes'
    return hint


def check_cls(split, dataset, classes, report):
    folder_to_idx = getattr(dataset, 'folder_to_idx', None)
    if folder_to_idx:
        folders = sorted(folder_to_idx, key=folder_to_idx.get)
        if list(folders) != list(classes):
            report.fault(split, dataset.img_prefix,
                         f'the class folders {folders} are not the classes '
                         f'{tuple(classes)}: mmpretrain numbers the sorted '
                         'folder names, so list the classes sorted and give '
                         'every class a folder in every split')
    counts = collections.Counter()
    for i, info in enumerate(records(dataset)):
        path = info.get('img_path')
        _, error = read_image(path)
        if error:
            report.fault(split, f'record {i}', f'{error}: {path}')
        label = int(np.asarray(info.get('gt_label', -1)).reshape(-1)[0])
        if not 0 <= label < len(classes):
            report.fault(split, f'record {i} ({path})',
                         f'label {label} outside the {len(classes)} classes')
            continue
        counts[label] += 1
    return dict(images=len(dataset),
                per_class={c: (counts[i], ) for i, c in enumerate(classes)},
                columns=('images', ))


# ---- main -------------------------------------------------------------------

def build_dataset(dataset_cfg):
    """The dataset, built lazily (a COCO file is read raw here, and mmdet's
    parsing may fail on the very faults to report)."""
    from mmengine.registry import DATASETS
    return DATASETS.build(dict(dataset_cfg, lazy_init=True))


def check_split(cfg, split, dataset_cfg, report):
    """Build one split's dataset as the config does and check it; its
    summary, or None where it could not be built."""
    toolbox = cfg.get('default_scope')
    where = f'{split}_dataloader.dataset'
    try:
        dataset = build_dataset(dataset_cfg)
    except Exception as e:
        report.fault(split, where,
                     f'the dataset cannot be built: {type(e).__name__}: {e}')
        return None
    summaries = []
    for ds in leaves(dataset):
        coco = False
        if toolbox == 'mmdet':
            from mmdet.datasets import CocoDataset
            coco = isinstance(ds, CocoDataset)
        if not coco:
            try:
                ds.full_init()
            except Exception as e:
                report.fault(split, where, f'the dataset cannot be read: '
                             f'{type(e).__name__}: {e}' + folder_hint(ds))
                continue
        classes = ds.metainfo.get('classes') or ()
        if isinstance(classes, str):
            report.fault(split, 'metainfo.classes',
                         f'{classes!r} is a string, read as the classes '
                         f'{tuple(classes)}: write one class as '
                         f'({classes!r}, ), with the comma')
            continue
        classes = list(classes)
        if not classes:
            report.fault(split, f'{split}_dataloader.dataset',
                         'no classes in the dataset metainfo (set '
                         'metainfo=dict(classes=(...)))')
            continue
        if toolbox == 'mmdet':
            if coco:
                with_mask = cfg.model.get('mask_head') is not None or (
                    cfg.model.get('roi_head', {}).get('mask_head')
                    is not None)
                summary = check_coco(split, ds, classes, report, with_mask)
            else:
                summary = check_det_records(split, ds, classes, report)
        elif toolbox == 'mmseg':
            head = cfg.model.get('decode_head', {})
            head = head[0] if isinstance(head, list) else head
            summary = check_seg(split, ds, classes,
                                head.get('ignore_index', 255), report)
        else:
            summary = check_cls(split, ds, classes, report)
        if summary:
            summaries.append((classes, summary))
    return summaries


def print_summary(results, out):
    for split, summaries in results:
        for classes, s in summaries:
            print(f'[{split}] {s["images"]} images, {len(classes)} classes',
                  file=out)
            width = max(len(str(c)) for c in classes)
            head = '  '.join(f'{c:>9}' for c in s['columns'])
            print(f'  {"class":<{width}}  {head}', file=out)
            for c in classes:
                cells = '  '.join(f'{n:>9}' for n in s['per_class'][c])
                print(f'  {str(c):<{width}}  {cells}', file=out)


def check(cfg, splits=('train', 'val'), out=None):
    """Check the datasets of a loaded config; the :class:`Report`."""
    from mmengine.registry import init_default_scope
    report = Report(out)
    out = report.out
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    results, all_classes = [], {}
    for split, dataset_cfg in dataset_cfgs(cfg, splits):
        summaries = check_split(cfg, split, dataset_cfg, report)
        if summaries:
            results.append((split, summaries))
            all_classes[split] = summaries[0][0]
    if all_classes:
        classes = next(iter(all_classes.values()))
        for split, other in all_classes.items():
            if other != classes:
                report.fault(split, 'metainfo', f'classes {tuple(other)} '
                             f'differ from those of the first split '
                             f'{tuple(classes)}')
        check_num_classes(cfg, classes, report)
        check_topk(cfg, classes, report)
        check_evaluator_files(cfg, report)
        for split, summaries in results:
            for cls_names, s in summaries:
                absent = [c for c in cls_names if s['per_class'][c][0] == 0]
                if absent:
                    report.note(split, f'no image of the classes {absent}')
    print_summary(results, out)
    if report.faults:
        print(f'{len(report.faults)} fault(s) found.', file=out)
    else:
        print('No fault found.', file=out)
    return report


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Check the datasets of a config before training')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'],
                        choices=['train', 'val', 'test'],
                        help='the dataloaders to check (default: train val)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, as in '
                        'tools/train.py')
    return parser.parse_args(argv)


def main(argv=None):
    from mmengine.config import Config
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    report = check(cfg, args.splits)
    return 1 if report.faults else 0


if __name__ == '__main__':
    sys.exit(main())
