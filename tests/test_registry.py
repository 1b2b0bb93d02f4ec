"""GLNet in the three OpenMMLab registries and inside upstream models."""
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import glnet_mm
from glnet_mm import GLNet

TINY = dict(depths=[1, 1, 2, 1], channels=[32, 64, 96, 128])


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_each_registry_builds_glnet(scope):
    assert scope in glnet_mm.REGISTERED_IN
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    model = registry.build(dict(type='GLNet', arch='4g', out_indices=(2, 3)))
    assert isinstance(model, GLNet)
    assert model.out_indices == [2, 3]


def test_custom_imports_in_a_config(tmp_path):
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        "custom_imports = dict(imports=['glnet_mm'], "
        "allow_failed_imports=False)\n"
        "model = dict(type='GLNet', arch='stl')\n")
    script = ('from mmengine.config import Config\n'
              'from mmdet.registry import MODELS\n'
              f'cfg = Config.fromfile({str(cfg_file)!r})\n'
              'print(type(MODELS.build(cfg.model)).__name__)\n')
    out = subprocess.run([sys.executable, '-c', script], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'GLNet'


def swap_backbone(cfg, channels):
    cfg.model.backbone = dict(type='GLNet', arch=TINY, drop_path_rate=0.1)
    cfg.model.neck.in_channels = channels
    return cfg


def test_mask_rcnn_from_upstream_config():
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = Config.fromfile('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    model = MODELS.build(swap_backbone(cfg, TINY['channels']).model).eval()
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        feats = model.extract_feat(x)
        rpn_out = model(x, mode='tensor')
    assert [f.shape[-1] for f in feats] == [40, 20, 10, 5, 3]
    assert all(f.shape[1] == 256 for f in feats)
    assert rpn_out is not None


def test_upernet_from_upstream_config():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile('mmseg::_base_/models/upernet_swin.py')
    cfg.model.backbone = dict(type='GLNet', arch=TINY)
    cfg.model.decode_head.in_channels = TINY['channels']
    cfg.model.auxiliary_head.in_channels = TINY['channels'][2]
    cfg.norm_cfg = dict(type='BN')
    cfg.model.decode_head.norm_cfg = dict(type='BN')
    cfg.model.auxiliary_head.norm_cfg = dict(type='BN')
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 128, 128), mode='tensor')
    assert logits.shape == (1, 150, 32, 32)


def test_model_code_imports_without_mmcv():
    """The model layer needs only torch and mmengine."""
    script = ('import sys\n'
              "for m in ('mmcv', 'mmdet', 'mmseg', 'mmpretrain'):\n"
              '    sys.modules[m] = None\n'
              'import torch, glnet_mm\n'
              "assert glnet_mm.REGISTERED_IN == [], glnet_mm.REGISTERED_IN\n"
              "m = glnet_mm.GLNet('stl').eval()\n"
              'print([tuple(o.shape) for o in m(torch.randn(1, 3, 64, 64))])\n'
              'from glnet_mm.analysis import count_flops\n'
              'print(count_flops(m, (1, 3, 64, 64)) > 0)\n')
    out = subprocess.run([sys.executable, '-c', script], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert '(1, 768, 2, 2)' in out.stdout and 'True' in out.stdout
