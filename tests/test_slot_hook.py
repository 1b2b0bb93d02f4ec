"""SlotVisualizationHook (glnet_mm/engine/hooks/): its arguments, its checks
before a run, what it imports, and a classification run through mmengine's
runner (the detection and segmentation runs: tests/test_query_heads_toy.py).
"""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from conftest import needs

from glnet_mm import GLNet
from glnet_mm.datasets.toy_imagefolder import make_toy_imagefolder
from glnet_mm.engine.hooks import SlotVisualizationHook

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_images=0), 'num_images must be an int >= 1'),
    (dict(interval=1.5), 'interval must be an int >= 1'),
    (dict(num_medoids=-1), 'num_medoids'),
    (dict(blocks=[0, 2]), 'block numbers >= 1'),
    (dict(blocks=[]), 'block numbers >= 1'),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SlotVisualizationHook(**kwargs)


class _Runner:

    def __init__(self, backbone):
        self.model = torch.nn.Module()
        self.model.backbone = backbone


def test_checks_before_the_run():
    with pytest.raises(TypeError, match='backbone` is a GLNet, got Linear'):
        SlotVisualizationHook().before_run(_Runner(torch.nn.Linear(1, 1)))
    with pytest.raises(ValueError, match=r'blocks \[5\] have no slot '
                       r'clustering.*clustering in blocks \[1, 2, 3, 4\]'):
        SlotVisualizationHook(blocks=[1, 5]).before_run(
            _Runner(GLNet('toy')))
    local_only = GLNet(dict(base='toy', branches='local'))
    with pytest.raises(ValueError, match=r'clustering in blocks \[\]'):
        SlotVisualizationHook().before_run(_Runner(local_only))
    hook = SlotVisualizationHook()
    hook.before_run(_Runner(GLNet('stl')))
    assert hook.blocks == [2, 5, 10]  # the paper's


def test_classifier_run_draws_the_slots(tmp_path):
    """The toy classifier, 2 epochs validated after each: 2 images x 2
    validations, at the validation size, in the run's visualizer."""
    from mmengine.runner import Runner
    needs('mmpretrain')
    root = str(tmp_path / 'toy')
    make_toy_imagefolder(root, num_train=2, num_val=2)  # 12 val images
    cfg = Config.fromfile(osp.join(
        REPO, 'configs', 'classification',
        'glnet-toy_1xb64-20e_toy-shapes.py'))
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.update(num_workers=0, persistent_workers=False, batch_size=12)
        loader.dataset.data_root = root
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    cfg.custom_hooks.append(
        dict(type='SlotVisualizationHook', blocks=[2, 4], num_images=2,
             num_medoids=3))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    figures = sorted(glob.glob(osp.join(
        cfg.work_dir, '*', 'vis_data', 'vis_image', 'slots_*.png')))
    assert [osp.basename(f) for f in figures] == [
        'slots_0_1.png', 'slots_0_2.png', 'slots_11_1.png', 'slots_11_2.png']
    for path in figures:  # rows: blocks 2 and 4; image, mosaic, 3 slots
        assert np.asarray(Image.open(path)).shape == (2 * 32, 5 * 32, 3)
    # the model is left as it was: no hooks, training mode after training
    for module in runner.model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
