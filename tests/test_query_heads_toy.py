"""The query-based heads on the toy data, through mmengine's Runner as
tools/train.py builds it (in the test's process), with the real metrics:
DINO-4scale and Mask2Former (instance) on the toy COCO (CocoMetric),
Mask2Former (semantic) on the toy ADE (IoUMetric). Each run is a few
iterations on the same few images: the loss must fall, the validation must
report the metrics and reach a bar that the backbone frozen at its random
init does not, and the slot hook (on in every run) must write its figures
of the first and last of 4 validation images."""
import glob
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from train_utils import REPO, backbone_watch, train_here, write_config

from glnet_mm.datasets.toy_ade import make_toy_ade
from glnet_mm.datasets.toy_coco import make_toy_coco

DET = osp.join(REPO, 'configs', 'detection')
SEG = osp.join(REPO, 'configs', 'segmentation')
HOOK = ("dict(type='SlotVisualizationHook', blocks=[1, 3], num_images=2)")


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory):
    """A few images of the toy COCO and of the toy ADE."""
    root = tmp_path_factory.mktemp('toy')
    make_toy_coco(str(root / 'toy_coco'), num_train=8, num_val=4)
    make_toy_ade(str(root / 'toy_ade'), num_train=8, num_val=4)
    return dict(coco=str(root / 'toy_coco') + '/', ade=str(root / 'toy_ade'))


def coco_body(root, schedule):
    """The toy COCO at ``root``, batch 2, a constant lr, the slot hook."""
    return f"""
root = {root!r}
train_dataloader = dict(batch_size=2, dataset=dict(data_root=root))
val_dataloader = dict(dataset=dict(data_root=root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
param_scheduler = [dict(type='ConstantLR', factor=1.0)]
custom_hooks = [dict(type='RNGStateHook'), {HOOK}]
{schedule}
"""


def train(config, work_dir):
    """The training run (every backbone weight and BN statistic must move);
    its losses, validation records and slot figures."""
    watch = backbone_watch()
    losses, metrics = train_here(config, work_dir, hooks=[watch])
    watch.check()
    figures = sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data',
                                        'vis_image', 'slots_*.png')))
    return losses, metrics, figures


def check(losses, iterations, figures, height, width):
    assert len(losses) == iterations and np.isfinite(losses).all()
    assert np.mean(losses[-4:]) < 0.9 * np.mean(losses[:4]), losses
    # the hook: 2 images (dataset indices 0 and 3), one validation, rows of
    # blocks 1 and 3, each row the image, the slot mosaic, 4 slots
    assert [osp.basename(f).rsplit('_', 1)[0] for f in figures] == [
        'slots_0', 'slots_3']
    for path in figures:
        figure = np.asarray(Image.open(path))
        assert figure.shape == (2 * height, 6 * width, 3)
        assert figure.std() > 10


# toy config: its training loop and lr, the metrics it must report, and the
# bar of one of them. Measured with this run (seed 0, one thread), trained
# and with the backbone frozen at its random init
# (model.backbone.frozen_stages=4: every GLNet weight and BN statistic
# unchanged), the same on the AMD and the Intel CPU within 0.004 (Intel:
# DINO 0.017, Mask2Former 0.042). The heads alone lower the loss as much
# (last 4 iterations, frozen vs trained: DINO 20.2 vs 19.2, Mask2Former 26.4
# vs 27.5). The bars hold these seeded runs to what training reaches and no
# more: with seeds 1 and 2 DINO reaches 0.0 trained, and Mask2Former with
# seed 2 scores 0.026 trained, 0.080 frozen (Intel). The direct check:
# every backbone weight and BN statistic moved. At the shipped lr (2e-4)
# both heads reach mAP 0 either way in 16 iterations: they run at 1e-3.
COCO_HEADS = {
    'dino-4scale_glnet-toy_1xb4-6e_toy-coco.py': (
        'max_epochs=4', 1e-3, ('coco/bbox_mAP', 'coco/bbox_mAP_50'),
        dict(key='coco/bbox_mAP_50', trained=0.013, frozen=0.0, bar=0.006)),
    'mask2former_glnet-toy_1xb4-1000iter_toy-coco.py': (
        'max_iters=16', 1e-3, ('coco/bbox_mAP', 'coco/segm_mAP',
                               'coco/segm_mAP_50'),
        dict(key='coco/segm_mAP_50', trained=0.042, frozen=0.0, bar=0.02)),
}


@pytest.mark.parametrize('name', sorted(COCO_HEADS))
def test_coco_head_toy(toy_data, tmp_path, name):
    """16 iterations of batch 2 (epoch-based DINO: 4 epochs of 8 images),
    one validation at the end: it reports the metrics, and the one of
    COCO_HEADS reaches its bar, which the frozen backbone does not."""
    loop, lr, keys, bar = COCO_HEADS[name]
    interval = 4 if 'epochs' in loop else 16
    config = write_config(
        tmp_path / name, osp.join(DET, name),
        coco_body(toy_data['coco'],
                  f'train_cfg = dict({loop}, val_interval={interval})\n'
                  f'optim_wrapper = dict(optimizer=dict(lr={lr}))\n'
                  'default_hooks = dict(logger=dict(interval=1), '
                  f'checkpoint=dict(interval={interval}))'))
    losses, metrics, figures = train(config, tmp_path / 'work')
    check(losses, 16, figures, 160, 160)
    (val, ) = metrics
    for key in keys:
        assert key in val, key
    print(bar['key'], val[bar['key']])
    assert val[bar['key']] >= bar['bar'], val


# Measured with this run (seed 0): trained, and with the backbone frozen at
# its random init (model.backbone.frozen_stages=4: every GLNet weight and BN
# statistic unchanged); Intel 48.29 and 17.58. Other seeds (Intel): 1:
# trained 27.33, frozen 5.65; 2: 16.51 and 5.65: trained is above frozen
# with each seed, the bar is seed 0's.
SEMANTIC_MIOU = dict(trained=48.15, frozen=17.57, bar=30.0)


def test_mask2former_semantic_toy(toy_data, tmp_path):
    """16 iterations of batch 2, one validation at the end: its mIoU
    reaches SEMANTIC_MIOU's bar, which the frozen backbone does not."""
    toy_ade = toy_data['ade']
    config = write_config(
        tmp_path / 'mask2former.py',
        osp.join(SEG, 'mask2former_glnet-toy_1xb8-600iter_toy-ade-128x128.py'),
        f"""
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={toy_ade!r}))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root={toy_ade!r}))
test_dataloader = val_dataloader
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
custom_hooks = [dict(type='RNGStateHook'), {HOOK}]
train_cfg = dict(max_iters=16, val_interval=16)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=16))
""")
    losses, metrics, figures = train(config, tmp_path / 'work')
    check(losses, 16, figures, 128, 160)
    (val, ) = metrics
    assert 'aAcc' in val
    print('mIoU', val['mIoU'])
    assert val['mIoU'] >= SEMANTIC_MIOU['bar'], val['mIoU']
