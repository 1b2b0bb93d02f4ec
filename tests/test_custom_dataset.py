"""docs/custom_dataset.md, run as written on datasets that look like a user's.

A user's checkout is made in a temporary folder (tests/custom_data.py: its
own copy of configs/, tools/ linked, an official-format GLNet-STL ImageNet
file with random weights at checkpoints/glnet_stl.pth, four generated
datasets, two images of one's own in my_images/). Then every ``bash`` and
``python`` block of the guide runs there, in order, each command in a fresh
process. The only changes to what the guide says:

* after each ``cp`` of an example config, the edits the guide's text asks
  for, on the copy's block (``data_root``, ``classes``: EDITS below);
* CI ONLY, marked: ``--cfg-options`` appended to ``tools/train.py`` and
  ``tools/test.py`` that make the runs short on a CPU (one epoch or two
  iterations, small image scales, small batches: CI_OPTIONS below).

A guide command that fails, or that names a config, tool or file that is
not there, fails the module.
"""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, needs, reference_path
from custom_data import (edit_config, make_coco, make_imagefolder, make_seg,
                         make_workspace, write_official_like)
from train_utils import env

GUIDE = osp.join(REPO, 'docs', 'custom_dataset.md')

# The user's datasets: their own names and class counts (3, 1, 25, 3).
PARTS = ('hex nut', 'Washer', 'bolt')  # category ids 3, 7, 12
PARTS_IDS = (3, 7, 12)
POTHOLES = ('pothole', )
SCENES = ('unlabelled ground', 'asphalt', 'gravel', 'grass', 'soil',
          'water', 'sand', 'snow', 'rock', 'moss', 'leaves', 'mud', 'ice',
          'brick', 'tile', 'wood deck', 'metal grate', 'puddle', 'curb',
          'kerb paint', 'manhole', 'drain', 'shadow', 'crack', 'weed')
LEAVES = ('blight', 'healthy', 'rust')  # sorted, as the folders

DET = 'configs/detection/mask-rcnn_glnet-stl_fpn_1x_my-coco.py'
RETINA = 'configs/detection/retinanet_glnet-stl_fpn_1x_my-coco.py'
SEG = 'configs/segmentation/upernet_glnet-stl_1xb4-20k_my-seg-512x512.py'
CLS = 'configs/classification/glnet-stl_1xb32-50e_my-images.py'
# What the guide's text asks the user to edit in each copy.
EDITS = {
    DET: dict(data_root='data/parts/', classes=PARTS),
    RETINA: dict(data_root='data/potholes/', classes=POTHOLES),
    SEG: dict(data_root='data/scenes/', classes=SCENES),
    CLS: dict(data_root='data/leaves/', classes=LEAVES),
}

# ---- CI ONLY: short runs on a CPU (not part of the guide) -------------------
# 'train.' options go to tools/train.py; 'val.' ones to tools/train.py as
# val_dataloader.* and to tools/test.py as test_dataloader.*; 'both.' ones
# to both as they are. Checkpoints without the optimizer's state: nothing
# resumes here, and the detector's is 3x smaller to write and read.
_NO_OPTIMIZER = 'default_hooks.checkpoint.save_optimizer=False'
_DET_SHORT = dict(train=['train_cfg.max_epochs=1', _NO_OPTIMIZER,
                         'train_dataloader.dataset.pipeline.2.scale='
                         '(160,128)'],
                  val=['dataset.pipeline.1.scale=(160,128)'])
CI_OPTIONS = {
    # the untrained detector's 100 boxes a val image: 20 (its mask head on
    # each box is most of the evaluation's time)
    DET: dict(_DET_SHORT, both=['model.test_cfg.rcnn.max_per_img=20']),
    RETINA: _DET_SHORT,
    SEG: dict(train=['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                     _NO_OPTIMIZER,
                     'train_dataloader.batch_size=2',
                     'train_dataloader.dataset.pipeline.2.scale=(96,64)',
                     'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
                     'model.data_preprocessor.size=(64,64)'],
              val=['dataset.pipeline.1.scale=(96,64)']),
    CLS: dict(train=['train_cfg.max_epochs=1', 'train_dataloader.batch_size=4',
                     _NO_OPTIMIZER,
                     'train_dataloader.dataset.pipeline.1.scale=64'],
              val=['dataset.pipeline.1.scale=72',
                   'dataset.pipeline.2.crop_size=64']),
}
# -----------------------------------------------------------------------------


def guide_blocks(path=GUIDE):
    """The ``bash`` and ``python`` blocks of the guide, in order:
    (language, text)."""
    with open(path) as f:
        text = f.read()
    return re.findall(r'^```(bash|python)\n(.*?)^```', text, re.M | re.S)


def bash_commands(block):
    """The commands of a bash block (comments dropped, continued lines
    joined)."""
    lines = block.replace('\\\n', ' ').splitlines()
    return [ln.strip() for ln in lines
            if ln.strip() and not ln.strip().startswith('#')]


def ci_options(command):
    """The CI-only ``--cfg-options`` for a train/test command."""
    config = next((c for c in CI_OPTIONS if c in command), None)
    if config is None:
        return ''
    opts = CI_OPTIONS[config]
    if 'tools/train.py' in command:
        items = opts['train'] + [f'val_dataloader.{o}' for o in opts['val']]
    elif 'tools/test.py' in command:
        items = [f'test_dataloader.{o}' for o in opts['val']]
    else:
        return ''
    items += opts.get('both', [])
    return ' --cfg-options ' + ' '.join(f'"{o}"' for o in items)


def run_guide(ws):
    """Every block of the guide in ``ws``; the output of each command, by
    command, in order."""
    run_env = env()
    run_env['PATH'] = (osp.dirname(sys.executable) + os.pathsep
                       + run_env.get('PATH', ''))
    outputs = {}
    for k, (lang, block) in enumerate(guide_blocks()):
        if lang == 'python':
            script = osp.join(ws, f'guide_block_{k}.py')
            with open(script, 'w') as f:
                f.write(block)
            commands = [(f'python block {k}', [sys.executable, script])]
        else:
            commands = [(c, ['bash', '-c', c + ci_options(c)])
                        for c in bash_commands(block)]
        for name, argv in commands:
            start = time.perf_counter()
            proc = subprocess.run(argv, cwd=ws, env=run_env, text=True,
                                  capture_output=True, timeout=900)
            print(f'{time.perf_counter() - start:6.1f} s  {name}')  # -rP
            out = proc.stdout + proc.stderr
            assert proc.returncode == 0, (
                f'guide command failed: {name}\n{out[-5000:]}')
            outputs[name] = out
            cp = re.match(r'cp (\S+) (?:\./)?(\S+)$', name)
            if cp:  # the edits the text after it asks for
                edit_config(osp.join(ws, cp.group(2)), **EDITS[cp.group(2)])
    return outputs


@pytest.fixture(scope='module')
def official_keys_stl():
    with open(reference_path('official_keys.json')) as f:
        return json.load(f)['glnet_stl']


@pytest.fixture(scope='module')
def workspace(tmp_path_factory, official_keys_stl):
    for toolbox in ('mmdet', 'mmseg', 'mmpretrain'):
        needs(toolbox)
    ws = make_workspace(str(tmp_path_factory.mktemp('user') / 'checkout'),
                        REPO)
    counts = make_coco(osp.join(ws, 'data', 'parts'), PARTS, PARTS_IDS,
                       num_train=3, num_val=3, absent_in_val='bolt')
    make_coco(osp.join(ws, 'data', 'potholes'), POTHOLES, (1, ),
              num_train=3, num_val=2, seed=1)
    make_seg(osp.join(ws, 'data', 'scenes'), len(SCENES), num_train=4,
             num_val=2, absent_in_val=len(SCENES) - 1)
    make_imagefolder(osp.join(ws, 'data', 'leaves'), LEAVES,
                     num_per_class=2, absent_in_val='rust')
    # "a few images of your own in my_images/": an RGB JPEG, an RGBA PNG
    import shutil
    os.makedirs(osp.join(ws, 'my_images'))
    (jpg, ) = glob.glob(osp.join(ws, 'data', 'parts', 'images', 'val',
                                 '*000.jpg'))
    shutil.copy(jpg, osp.join(ws, 'my_images', 'photo.jpg'))
    (png, ) = glob.glob(osp.join(ws, 'data', 'leaves', 'train', 'healthy',
                                 '*.png'))[:1]
    shutil.copy(png, osp.join(ws, 'my_images', 'scan.png'))
    weights = write_official_like(
        osp.join(ws, 'checkpoints', 'glnet_stl.pth'), official_keys_stl)
    return dict(root=ws, parts_counts=counts, weights=weights)


@pytest.fixture(scope='module')
def guide(workspace):
    return run_guide(workspace['root'])


def command(outputs, *words):
    """The output of the one guide command containing every word."""
    (out, ) = [o for c, o in outputs.items() if all(w in c for w in words)]
    return out


def trained_state(ws, work_dir):
    with open(osp.join(ws, work_dir, 'last_checkpoint')) as f:
        path = f.read().strip()
    from glnet_mm import safe_load
    return safe_load(path)['state_dict']


def test_guide_blocks_cover_every_task():
    """The guide's blocks copy, check, train every example config and run
    the three inferencers and the slot tool (so that the run below covers
    them)."""
    text = '\n'.join(b for _, b in guide_blocks())
    for config in EDITS:
        assert re.search(rf'^cp configs/\S+ \./{config}$', text, re.M), config
        assert f'check_dataset.py ./{config}' in text, config
        assert f'tools/train.py ./{config}' in text, config
    for name in ('DetInferencer', 'MMSegInferencer',
                 'ImageClassificationInferencer', 'visualize_slots.py'):
        assert name in text, name


def test_dataset_check_passes_user_data(guide, workspace):
    """The check accepts each generated dataset and counts what is there:
    per class and split, 'bolt' absent from val (a note, not a fault)."""
    for config in EDITS:
        out = command(guide, 'check_dataset.py', config)
        assert 'No fault found.' in out and 'FAULT' not in out, out
    out = command(guide, 'check_dataset.py', DET)
    counts = workspace['parts_counts']
    for name in PARTS:
        train = counts.get(('train', name), 0)
        assert re.search(rf'\n  {name} +\d+ +{train}\n', out), (name, out)
    assert re.search(r"note  \[val\] no image of the classes \['bolt'\]",
                     out), out
    out = command(guide, 'check_dataset.py', SEG)
    assert '[train] 4 images, 25 classes' in out, out


def test_each_task_trains_and_evaluates(guide):
    """Each training run logs its iterations and evaluates on the val
    split with the task's metric, and tools/test.py evaluates the detector's
    last checkpoint again (CocoMetric). RetinaNet after one iteration scores
    below its 0.05 threshold everywhere (its classifier starts at a 0.01
    prior): mmdet's CocoMetric then says the results are empty."""
    for config, metric in ((DET, 'coco/segm_mAP'), (RETINA, 'coco/bbox_mAP'),
                           (SEG, 'mIoU'), (CLS, 'accuracy/top1')):
        out = command(guide, 'tools/train.py', config)
        assert re.search(r'Epoch\(train\)|Iter\(train\)', out), out[-3000:]
        val = r'(Epoch\(val\) \[\d+\]|Iter\(val\) )\[\d+/\d+\]'
        assert re.search(val, out), (config, out[-3000:])
        assert re.search(rf'{re.escape(metric)}: [-\d.]+', out) or (
            config == RETINA and 'The testing results of the whole dataset '
            'is empty' in out), (config, out[-3000:])
    out = command(guide, 'tools/test.py', DET)
    assert re.search(r'coco/bbox_mAP: [-\d.]+', out), out[-3000:]


def test_detector_loads_every_backbone_weight(guide, workspace,
                                              official_keys_stl):
    """The full-size GLNet-STL Mask R-CNN with 3 classes, from the
    official-format file: every backbone tensor of the file is loaded (the
    frozen stem and stage 0 are still exactly the file's after training;
    the rest moved by at most the few warm-up steps), the ImageNet head is
    dropped, the heads are new 3-class ones, and the log says exactly
    that."""
    out = command(guide, 'tools/train.py', DET)
    keys = official_keys_stl['state_dict']
    backbone_keys = [k for k in keys if not k.startswith('head.')]
    assert (f'checkpoints/glnet_stl.pth [model]: {len(backbone_keys)} GLNet '
            "backbone tensors, heads ['fc'] (dropped: a backbone does not "
            'use them)') in out
    norms = [f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias')]
    assert f'Not in the checkpoint (kept their init): {norms}' in out
    assert ("Unused checkpoint weights: ['norm.weight', 'norm.bias', "
            "'norm.running_mean', 'norm.running_var', "
            "'norm.num_batches_tracked']") in out

    state = trained_state(workspace['root'], 'work_dirs/my-coco')
    weights = workspace['weights']
    loaded = [k for k in backbone_keys if not k.startswith('norm.')]
    assert len(loaded) == len(backbone_keys) - 5
    for key in loaded:
        trained = state[f'backbone.{key}']
        if key.startswith(('downsample_layers.0.', 'stages.0.')):
            torch.testing.assert_close(trained, weights[key], rtol=0,
                                       atol=0)  # frozen_stages=1
        elif trained.is_floating_point() and 'running' not in key:
            torch.testing.assert_close(trained, weights[key], rtol=0,
                                       atol=1e-5)
    assert state['roi_head.bbox_head.fc_cls.weight'].shape[0] == 3 + 1
    assert state['roi_head.bbox_head.fc_reg.weight'].shape[0] == 3 * 4
    assert state['roi_head.mask_head.conv_logits.weight'].shape[0] == 3
    retina = trained_state(workspace['root'], 'work_dirs/my-retinanet')
    assert retina['bbox_head.retina_cls.weight'].shape[0] == 9 * 1


def test_inference_and_slots_on_own_images(guide, workspace):
    ws = workspace['root']
    assert osp.isfile(osp.join(ws, 'outputs', 'my-coco', 'vis',
                               'photo.jpg'))
    (out, ) = [o for c, o in guide.items() if c.startswith('python block')]
    assert '1 images; drawn in outputs/my-coco/vis' in out
    assert glob.glob(osp.join(ws, 'outputs', 'my-seg', 'vis', '*'))
    assert any(ln in LEAVES for ln in out.splitlines()), out[-2000:]
    assert osp.getsize(osp.join(ws, 'outputs', 'slots_photo.png')) > 1000
    # a portrait photo, a barely trained model: many equal slot maps, and
    # still distinct representative slots in each block
    picked = re.findall(r'block (\d+): representative slots \[([\d, ]+)\]',
                        command(guide, 'visualize_slots.py'))
    assert [b for b, _ in picked] == ['2', '5', '10'], picked
    for _, slots in picked:
        slots = slots.split(', ')
        assert len(set(slots)) == len(slots) == 4, picked
