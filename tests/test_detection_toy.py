"""The toy COCO generator and a short toy training through the real runner
(the README's ``mim train``, ``--resume`` and ``mim test`` on the toy
detector: tests/test_resume.py)."""
import glob
import hashlib
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from pycocotools.coco import COCO
from train_utils import backbone_watch, scalars, train_on_threads

import glnet_mm  # noqa: F401  (registers GLNet)
from glnet_mm.datasets.toy_coco import CLASSES, main, make_toy_coco

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_CONFIG = osp.join(REPO, 'configs', 'detection',
                      'mask-rcnn_glnet-toy_fpn_1xb4-12e_toy-coco.py')


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy') / 'toy_coco')
    make_toy_coco(root, num_train=8, num_val=4)
    return root


def data_overrides(root):
    """Point the toy config at ``root`` (as ``--cfg-options`` would)."""
    ann = osp.join(root, 'annotations', 'instances_val.json')
    options = {
        f'{split}_dataloader.dataset.data_root': root + '/'
        for split in ('train', 'val', 'test')
    }
    options.update({'val_evaluator.ann_file': ann,
                    'test_evaluator.ann_file': ann})
    return options


def digest(folder):
    files = sorted(glob.glob(osp.join(folder, '**', '*.*'), recursive=True))
    h = hashlib.sha256()
    for path in files:
        h.update(osp.relpath(path, folder).encode())
        with open(path, 'rb') as f:
            h.update(f.read())
    return len(files), h.hexdigest()


def test_generator_is_deterministic(tmp_path):
    make_toy_coco(str(tmp_path / 'a'), num_train=3, num_val=2)
    make_toy_coco(str(tmp_path / 'b'), num_train=3, num_val=2)
    make_toy_coco(str(tmp_path / 'c'), num_train=3, num_val=2, seed=1)
    count, a = digest(str(tmp_path / 'a'))
    assert count == 3 + 2 + 2
    assert digest(str(tmp_path / 'b'))[1] == a
    assert digest(str(tmp_path / 'c'))[1] != a


def test_generator_writes_coco(toy_root):
    kinds = set()
    for split, num in (('train', 8), ('val', 4)):
        coco = COCO(osp.join(toy_root, 'annotations',
                             f'instances_{split}.json'))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(
            CLASSES)
        assert len(coco.getImgIds()) == num
        for img in coco.loadImgs(coco.getImgIds()):
            path = osp.join(toy_root, split, img['file_name'])
            assert osp.isfile(path)
            assert coco.getAnnIds(imgIds=img['id']), 'every image has shapes'
        for ann in coco.loadAnns(coco.getAnnIds()):
            kinds.add(type(ann['segmentation']).__name__)
            # polygon or RLE, the mask is what was drawn: the box is its
            # extent and the area its pixel count
            mask = coco.annToMask(ann)
            ys, xs = np.nonzero(mask)
            assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                   ys.max() - ys.min() + 1]
            assert ann['area'] == mask.sum() and ann['iscrowd'] == 0
    assert kinds == {'list', 'dict'}  # polygons and RLE


def test_generator_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'notes.txt').write_text('user data')
    with pytest.raises(FileExistsError, match='not empty'):
        make_toy_coco(str(out), num_train=1, num_val=1)
    with pytest.raises(SystemExit):
        main([str(out), '--num-train', '1', '--num-val', '1'])
    assert '--force' in capsys.readouterr().err
    make_toy_coco(str(out), num_train=1, num_val=1, force=True)
    assert (out / 'notes.txt').read_text() == 'user data'
    assert (out / 'annotations' / 'instances_val.json').is_file()
    with pytest.raises(ValueError, match='num_val'):
        make_toy_coco(str(tmp_path / 'x'), num_train=1, num_val=0)
    with pytest.raises(ValueError, match='size'):
        make_toy_coco(str(tmp_path / 'y'), size=(8, 8))


# bbox mAP@50 on the 4 validation images, seed 0, one thread: trained, and
# with the backbone frozen at its random init (model.backbone.frozen_stages=4),
# on the two CPUs of the project's machines: AMD EPYC trained 0.059, frozen
# 0.028; Intel Xeon trained 0.084, frozen 0.008. The bar holds this seeded
# run to what training reaches; it does not prove more: with seed 1 the
# frozen backbone scores higher (Intel: 0.064 against 0.042), and so it can
# on 16 validation images and after 48 iterations (the heads alone fit this
# toy in a few steps). segm mAP has no bar: Intel trained 0.008,
# frozen 0.0, AMD 0.024 and 0.0. The direct check: every backbone weight
# and BN statistic moved (frozen: none does).
BARS = {'coco/bbox_mAP_50': 0.045}


def test_toy_training_runner(toy_root, tmp_path):
    """A few iterations of the toy config through mmengine's Runner: the
    loss falls, CocoMetric reports bbox and segm mAP, bbox mAP@50 reaches
    a bar that the frozen backbone's run does not (above), and every
    backbone weight and BN statistic moved."""
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.merge_from_dict(data_overrides(toy_root))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = 8  # 16 iters
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0)]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 8  # the last epoch's only
    runner = Runner.from_cfg(cfg)
    watch = backbone_watch()
    runner.register_hook(watch)
    train_on_threads(runner, 1)  # the measured numbers: one thread

    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 16 and np.isfinite(losses).all()
    assert losses[-4:].mean() < 0.8 * losses[:4].mean()
    assert runner.epoch == 8
    _, (val, ) = scalars(cfg.work_dir)
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'):
        assert key in val, key
    for key, bar in BARS.items():
        assert val[key] >= bar, (key, val[key])
    watch.check()
