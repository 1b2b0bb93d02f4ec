"""The toy ADE dataset, and the toy segmentation config trained through the
real runner and through ``mim train mmseg``."""
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image

from glnet_mm.datasets.toy_ade import TOY_ADE_CLASSES, make_toy_ade
from glnet_mm.datasets.toy_ade_dataset import ToyADEDataset

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_CONFIG = osp.join(REPO, 'configs', 'segmentation',
                      'upernet_glnet-toy_1xb8-600iter_toy-ade-128x128.py')
MIM = osp.join(osp.dirname(sys.executable), 'mim')


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy_ade'))
    make_toy_ade(root, num_train=16, num_val=4)
    return root


def files(root):
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


def test_generator_layout_and_determinism(toy_root, tmp_path):
    layout = files(toy_root)
    assert len(layout) == 2 * (16 + 4)
    assert 'images/training/toy_train_00015.jpg' in layout
    assert 'annotations/validation/toy_val_00003.png' in layout
    # same bytes again; image i does not depend on how many are asked for
    make_toy_ade(str(tmp_path / 'again'), num_train=3, num_val=6)
    again = files(str(tmp_path / 'again'))
    for name in ('images/training/toy_train_00002.jpg',
                 'annotations/training/toy_train_00002.png',
                 'annotations/validation/toy_val_00003.png'):
        assert again[name] == layout[name]
    assert again['annotations/training/toy_train_00000.png'] != again[
        'annotations/training/toy_train_00001.png']


def test_generator_labels(toy_root):
    seen = set()
    for i in range(16):
        name = f'toy_train_{i:05d}'
        label = np.asarray(
            Image.open(osp.join(toy_root, 'annotations/training',
                                name + '.png')))
        image = Image.open(osp.join(toy_root, 'images/training',
                                    name + '.jpg'))
        assert label.dtype == np.uint8 and label.shape == (128, 160)
        assert image.mode == 'RGB' and image.size == (160, 128)
        seen |= set(np.unique(label).tolist())
    # 0 is "other" (outlines, clutter); 1..6 the classes
    assert seen == set(range(len(TOY_ADE_CLASSES) + 1))


def test_generator_refuses_to_overwrite(toy_root, tmp_path):
    with pytest.raises(FileExistsError, match='not empty'):
        make_toy_ade(toy_root)
    user = tmp_path / 'mine'
    user.mkdir()
    (user / 'notes.txt').write_text('keep me')
    make_toy_ade(str(user), num_train=1, num_val=1, force=True)
    assert (user / 'notes.txt').read_text() == 'keep me'
    with pytest.raises(ValueError, match='num_train'):
        make_toy_ade(str(tmp_path / 'x'), num_train=0)
    cli = subprocess.run(  # the documented command line
        [sys.executable, '-m', 'glnet_mm.datasets.toy_ade', toy_root],
        cwd=REPO, capture_output=True, text=True)
    assert cli.returncode == 2 and 'not empty' in cli.stderr, cli.stderr


def test_dataset_reduces_zero_label(toy_root):
    init_default_scope('mmseg')
    dataset = ToyADEDataset(
        data_root=toy_root,
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=[dict(type='LoadAnnotations')])
    assert len(dataset) == 4
    assert dataset.metainfo['classes'] == TOY_ADE_CLASSES
    raw = np.asarray(Image.open(dataset[0]['seg_map_path']))
    gt = dataset[0]['gt_seg_map']
    assert (gt[raw == 0] == 255).all()
    assert (gt[raw > 0] == raw[raw > 0] - 1).all()


def toy_cfg(toy_root, work_dir, max_iters):
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.work_dir = str(work_dir)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = toy_root
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.train_dataloader.batch_size = 4
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = 100
    cfg.default_hooks.checkpoint.interval = 10
    cfg.default_hooks.logger.interval = 5
    warmup, poly = cfg.param_scheduler  # a warmup that fits a short run
    warmup.end = poly.begin = 5
    return cfg


@pytest.fixture(scope='module')
def trained(toy_root, tmp_path_factory):
    """30 iterations of the toy config through mmengine's runner."""
    work_dir = tmp_path_factory.mktemp('toy_run')
    runner = Runner.from_cfg(toy_cfg(toy_root, work_dir, 30))
    runner.train()
    return runner, work_dir


def test_toy_training_learns(trained):
    runner, work_dir = trained
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    metrics = runner.test()  # IoUMetric on the validation split
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}
    assert 0 < metrics['mIoU'] <= 100
    assert (work_dir / 'iter_30.pth').exists()


def test_toy_training_resumes(toy_root, trained):
    """``--resume``: continues from iter_30 with its optimizer state."""
    _, work_dir = trained
    cfg = toy_cfg(toy_root, work_dir, 33)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 33
    state = resumed.optim_wrapper.optimizer.state
    steps = {int(s['step']) for s in state.values()}
    assert steps == {33}


@pytest.fixture(scope='module')
def mim_run(toy_root, tmp_path_factory):
    """`mim train mmseg` of the toy config for 2 iterations."""
    tmp = tmp_path_factory.mktemp('mim')
    options = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
               'train_dataloader.batch_size=2',
               'default_hooks.checkpoint.interval=2',
               'default_hooks.visualization.interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [f'{loader}.dataset.data_root={toy_root}',
                    f'{loader}.num_workers=0',
                    f'{loader}.persistent_workers=False']
    work_dir = tmp / 'work'
    out = mim('train', TOY_CONFIG, '--work-dir', str(work_dir),
              '--cfg-options', *options)
    return out, tmp, options


def mim(command, *args):
    return subprocess.run([MIM, command, 'mmseg', *args], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=REPO))


def test_mim_train(mim_run):
    """The README command `mim train mmseg <toy config>`."""
    out, tmp, _ = mim_run
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp / 'work' / 'iter_2.pth').exists()
    assert 'mIoU' in out.stdout + out.stderr  # validation at iteration 2


def test_mim_test_with_overlays(mim_run):
    """`mim test mmseg` of the checkpoint: IoUMetric with its per-class
    table, and coloured overlays (ground truth | prediction)."""
    _, tmp, options = mim_run
    work_dir, show_dir = tmp / 'work', tmp / 'overlays'
    out = mim('test', TOY_CONFIG, '--checkpoint', str(work_dir / 'iter_2.pth'),
              '--work-dir', str(work_dir), '--show-dir', str(show_dir),
              '--cfg-options', *options)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert 'per class results' in log and 'mIoU' in log
    for name in TOY_ADE_CLASSES:
        assert re.search(rf'\|\s+{name}\s+\|', log), name
    pngs = [osp.join(d, n) for d, _, ns in os.walk(show_dir) for n in ns
            if n.endswith('.png')]
    assert len(pngs) == 4
    overlay = np.asarray(Image.open(pngs[0]).convert('RGB'))
    assert overlay.shape == (128, 2 * 160, 3)
