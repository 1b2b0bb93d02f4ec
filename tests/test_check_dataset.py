"""tools/analysis_tools/check_dataset.py: each fault it looks for, planted
in a copy of a clean generated dataset (tests/custom_data.py), is reported
with a message that names the file and the record, and fails the check
(exit status 1); the clean datasets pass with a summary.

The tool runs in this process (its ``main``), on copies of the example
configs edited as docs/custom_dataset.md says (``data_root``,
``classes``), in a user's checkout made once for the module.
"""
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from conftest import REPO, load_tool, needs
from custom_data import (edit_config, make_coco, make_imagefolder, make_seg,
                         make_workspace)
from PIL import Image

PARTS = ('hex nut', 'Washer', 'bolt')
SCENES = tuple(f'surface {i}' for i in range(25))
LEAVES = ('blight', 'healthy', 'rust')
EXAMPLES = dict(
    det='configs/detection/mask-rcnn_glnet-stl_fpn_1x_custom-coco.py',
    seg='configs/segmentation/upernet_glnet-stl_1xb4-20k_custom-512x512.py',
    cls='configs/classification/glnet-stl_1xb32-50e_custom.py')


@pytest.fixture(scope='module')
def ws(tmp_path_factory):
    for toolbox in ('mmdet', 'mmseg', 'mmpretrain'):
        needs(toolbox)
    root = make_workspace(str(tmp_path_factory.mktemp('check') / 'co'), REPO)
    make_coco(osp.join(root, 'data', 'parts'), PARTS, (3, 7, 12),
              num_train=4, num_val=2, absent_in_val='bolt')
    make_seg(osp.join(root, 'data', 'scenes'), len(SCENES), num_train=3,
             num_val=2)
    make_imagefolder(osp.join(root, 'data', 'leaves'), LEAVES,
                     num_per_class=2, absent_in_val='rust')
    return root


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/check_dataset')


def planted(ws, task, name, data, classes, mutate=None):
    """A copy of dataset ``data`` as ``data/<name>`` changed by
    ``mutate(root)``, and a copy of the task's example config pointing at
    it; the config's path."""
    root = osp.join(ws, 'data', name)
    shutil.copytree(osp.join(ws, 'data', data), root)
    if mutate:
        mutate(root)
    example = osp.join(ws, EXAMPLES[task])
    config = example.replace('custom', name)
    shutil.copy(example, config)
    edit_config(config, data_root=f'data/{name}/', classes=classes)
    return config


def run(tool, ws, config, capsys, *args):
    cwd = os.getcwd()
    os.chdir(ws)
    try:
        code = tool.main([config, *args])
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    return code, out


def faults(out):
    return [ln for ln in out.splitlines() if ln.startswith('FAULT')]


def edit_json(path, change):
    with open(path) as f:
        coco = json.load(f)
    change(coco)
    with open(path, 'w') as f:
        json.dump(coco, f)


def first_ann(coco):
    """The first annotation and its image record."""
    ann = coco['annotations'][0]
    (img, ) = [i for i in coco['images'] if i['id'] == ann['image_id']]
    return ann, img


def test_clean_datasets_pass_with_a_summary(tool, ws, capsys):
    for task, data, classes, line in (
            ('det', 'parts', PARTS, '[train] 4 images, 3 classes'),
            ('seg', 'scenes', SCENES, '[train] 3 images, 25 classes'),
            ('cls', 'leaves', LEAVES, '[val] 2 images, 3 classes')):
        config = planted(ws, task, f'clean-{task}', data, classes)
        code, out = run(tool, ws, config, capsys)
        assert code == 0 and not faults(out), out
        assert line in out and 'No fault found.' in out, out


def _det_fault(tool, ws, capsys, name, change, classes=PARTS, args=()):
    """Plant ``change`` into the train annotation file of a copy of the
    detection dataset; the faults reported (the check must fail)."""
    def mutate(root):
        edit_json(osp.join(root, 'annotations', 'train.json'), change)
    config = planted(ws, 'det', name, 'parts', classes, mutate)
    code, out = run(tool, ws, config, capsys, *args)
    assert code == 1, out
    return faults(out)


def test_category_id_absent_from_metainfo(tool, ws, capsys):
    def change(coco):
        coco['annotations'][0]['category_id'] = 99
        coco['annotations'][1]['category_id'] = 5
        coco['categories'].append(dict(id=5, name='spring'))
    found = _det_fault(tool, ws, capsys, 'cat-id', change)
    assert len(found) == 2, found
    assert ('annotations/train.json: annotation id 1 (image id 1000, '
            'train_photo 000.jpg): category id 99 is not one of the classes'
            in found[0]), found
    assert "annotation id 2" in found[1] and "category id 5 ('spring')" in \
        found[1], found


def test_classes_missing_from_or_ordered_unlike_the_file(tool, ws, capsys):
    found = _det_fault(tool, ws, capsys, 'cls-name', lambda coco: None,
                       classes=('hex nut', 'washer', 'bolt'))
    assert any("classes ['washer'] of the config are not among the "
               'categories' in f for f in found), found
    found = _det_fault(tool, ws, capsys, 'cls-order', lambda coco: None,
                       classes=('bolt', 'hex nut', 'Washer'))
    assert any("the file lists these categories as ('hex nut', 'Washer', "
               "'bolt')" in f for f in found), found


def test_num_classes_disagrees(tool, ws, capsys):
    found = _det_fault(
        tool, ws, capsys, 'num-classes', lambda coco: None,
        args=('--cfg-options', 'model.roi_head.mask_head.num_classes=80'))
    assert found == [
        'FAULT [config] model.roi_head.mask_head.num_classes: 80 disagrees '
        "with the 3 classes of the dataset ('hex nut', 'Washer', 'bolt')"]


def test_evaluator_reads_other_annotations(tool, ws, capsys):
    found = _det_fault(
        tool, ws, capsys, 'evaluator', lambda coco: None,
        args=('--cfg-options',
              'val_evaluator.ann_file=data/parts/annotations/val.json'))
    assert found == [
        'FAULT [config] val_evaluator.ann_file: data/parts/annotations/'
        "val.json is not the val dataset's annotation file "
        'data/evaluator/annotations/val.json: the metric would score '
        'against other annotations'], found


def test_missing_and_unreadable_images(tool, ws, capsys):
    def mutate(root):
        os.remove(osp.join(root, 'images', 'train', 'train_photo 000.jpg'))
        with open(osp.join(root, 'images', 'val', 'val_photo 001.png'),
                  'wb') as f:
            f.write(b'\x89PNG\r\n\x1a\n not really')
    config = planted(ws, 'det', 'images', 'parts', PARTS, mutate)
    code, out = run(tool, ws, config, capsys)
    found = faults(out)
    assert code == 1 and len(found) == 2, out
    assert found[0].startswith(
        'FAULT [train] data/images/annotations/train.json: image id 1000 '
        '(train_photo 000.jpg): image file is missing: '
        'data/images/images/train/train_photo 000.jpg'), found
    assert ('[val] data/images/annotations/val.json: image id 1007 '
            '(val_photo 001.png): image file is unreadable') in found[1]


def test_box_outside_the_image(tool, ws, capsys):
    def change(coco):
        ann, img = first_ann(coco)
        ann['bbox'] = [img['width'] - 10, 5, 30, 20]
    found = _det_fault(tool, ws, capsys, 'box', change)
    assert len(found) == 1 and 'annotation id 1 ' in found[0], found
    assert 'box [x, y, w, h] = [87, 5, 30, 20] lies outside the 97x131 ' \
        'image' in found[0], found


def test_polygon_outside_the_image(tool, ws, capsys):
    def change(coco):
        ann, img = first_ann(coco)
        ann['segmentation'][0][1] = img['height'] + 7.5
    found = _det_fault(tool, ws, capsys, 'polygon', change)
    assert len(found) == 1 and 'annotation id 1 ' in found[0], found
    assert 'polygon 0 lies outside the 97x131 image' in found[0], found


def test_empty_masks(tool, ws, capsys):
    def change(coco):
        coco['annotations'][0]['segmentation'] = [[10, 10, 20, 20, 30, 30]]
        coco['annotations'][1]['segmentation'] = {
            'size': [coco['images'][1]['height'],
                     coco['images'][1]['width']],
            'counts': [coco['images'][1]['height'] *
                       coco['images'][1]['width']]}
    found = _det_fault(tool, ws, capsys, 'empty-mask', change)
    assert len(found) == 2, found
    assert 'annotation id 1 ' in found[0] and \
        'empty mask (its polygons have no area)' in found[0], found
    assert 'annotation id 2 ' in found[1] and \
        'empty mask (the RLE has no pixel)' in found[1], found


def test_segmentation_labels_above_the_class_count(tool, ws, capsys):
    def mutate(root):
        path = osp.join(root, 'ann_dir', 'train', 'scene_01.png')
        label = np.array(Image.open(path))
        label[5, 5], label[6, 6] = 25, 31  # 25 classes: 0..24, and 255
        Image.fromarray(label).save(path)
        path = osp.join(root, 'ann_dir', 'val', 'scene_00.png')
        Image.fromarray(np.stack([label] * 3, -1)).save(path)  # colour
    config = planted(ws, 'seg', 'labels', 'scenes', SCENES, mutate)
    code, out = run(tool, ws, config, capsys)
    found = faults(out)
    assert code == 1 and len(found) == 2, out
    assert found[0] == (
        'FAULT [train] data/labels/ann_dir/train/scene_01.png: labels '
        '[25, 31] are not among the 25 classes (0..24) nor the ignore '
        'index 255'), found
    assert found[1].startswith(
        'FAULT [val] data/labels/ann_dir/val/scene_00.png: mask has 3 '
        'channels'), found


def test_classification_topk_and_folders(tool, ws, capsys):
    config = planted(ws, 'cls', 'topk', 'leaves', LEAVES)
    code, out = run(tool, ws, config, capsys, '--cfg-options',
                    'val_evaluator.topk=(1,5)')
    assert code == 1 and faults(out) == [
        'FAULT [config] val_evaluator.topk: (1, 5) needs at least 5 '
        'classes, the dataset has 3: use topk=(1,)'], out
    config = planted(ws, 'cls', 'order', 'leaves',
                     ('rust', 'healthy', 'blight'))
    code, out = run(tool, ws, config, capsys)
    found = faults(out)
    assert code == 1 and len(found) == 2, out
    assert found[0].startswith(
        "FAULT [train] data/order/train: the class folders ['blight', "
        "'healthy', 'rust'] are not the classes ('rust', 'healthy', "
        "'blight')"), found


def test_class_folder_missing_in_val(tool, ws, capsys):
    """mmpretrain refuses a split with fewer class folders than classes;
    the check says which folder is missing."""
    config = planted(ws, 'cls', 'no-folder', 'leaves', LEAVES,
                     lambda root: os.rmdir(osp.join(root, 'val', 'rust')))
    code, out = run(tool, ws, config, capsys)
    found = faults(out)
    assert code == 1 and len(found) == 1, out
    assert found[0].startswith('FAULT [val] val_dataloader.dataset: the '
                               'dataset cannot be read: '), found
    assert found[0].endswith(
        "data/no-folder/val has no folder for the classes ['rust'] (make "
        'an empty one)'), found


def test_one_class_without_the_comma(tool, ws, capsys):
    """``classes = ('pothole')`` is a string: each split says so."""
    def keep_one(root):
        for split in ('train', 'val'):
            edit_json(osp.join(root, 'annotations', f'{split}.json'),
                      lambda coco: coco.update(categories=[
                          dict(id=3, name='hex nut')], annotations=[
                          a for a in coco['annotations']
                          if a['category_id'] == 3]))
    config = planted(ws, 'det', 'one-class', 'parts', ('hex nut', ),
                     keep_one)
    code, out = run(tool, ws, config, capsys)
    assert code == 0 and not faults(out), out  # ('hex nut', ) is right
    with open(config) as f:
        text = f.read()
    with open(config, 'w') as f:
        f.write(text.replace("classes = ('hex nut',)",
                             "classes = ('hex nut')"))
    code, out = run(tool, ws, config, capsys)
    found = faults(out)
    assert code == 1 and len(found) == 2, out
    assert found[0] == (
        "FAULT [train] metainfo.classes: 'hex nut' is a string, read as the "
        "classes ('h', 'e', 'x', ' ', 'n', 'u', 't'): write one class as "
        "('hex nut', ), with the comma"), found
