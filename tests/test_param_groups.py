"""Weight decay of every shipped recipe: the authors' rule, in every task.

No decay on 1-d parameters, on biases and on parameters named ``*.gamma`` /
``*.beta`` (layer scales, whatever their shape); everything else decays, the
0-d ``slot_scale``, the 3-d ``init_slots`` and the conv position embeddings
included (configs/_base_/glnet.py).
"""
import glob
import os.path as osp

import pytest
from conftest import REPO, needs
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import glnet_mm.engine.optimizers  # noqa: F401  (ModuleLrMultConstructor)

CONFIGS = osp.join(REPO, 'configs')
# the training recipes (configs/deploy holds mmdeploy's deploy configs)
SHIPPED = sorted(
    p for task in ('classification', 'classification/ablations', 'detection',
                   'segmentation')
    for p in glob.glob(osp.join(CONFIGS, task, '*.py'))
    if 'toy' not in osp.basename(p))
# One model per recipe, chosen to hold every kind of GLNet parameter: 4-d and
# 1-d layer scales (16G), learned slots (paramslot), conv position
# embeddings (4G), window-attention bias tables (an ablation).
BUILT = [  # task, config, a parameter name it must hold
    ('classification', 'glnet-16g_16xb128_in1k.py', 'ls1.gamma'),
    ('classification', 'glnet-stl-paramslot_16xb128_in1k.py', 'init_slots'),
    ('classification', 'ablations/glnet-stl-local-wmhsa-w7_16xb128_in1k.py',
     'relative_position_bias_table'),
    ('detection', 'mask-rcnn_glnet-stl_fpn_1x_coco.py', 'slot_scale'),
    ('detection', 'cascade-mask-rcnn_glnet-4g_fpn_4conv1fc-giou_'
     'ms-crop-3x_coco.py', 'pos_conv.weight'),
    ('detection', 'retinanet_glnet-stl_fpn_1x_coco.py', 'slot_scale'),
    ('segmentation', 'upernet_glnet-4g_8xb2-160k_ade20k-512x512.py',
     'pos_conv.weight'),
    ('segmentation', 'fpn_glnet-stl_8xb2-80k_ade20k-512x512.py',
     'slot_scale'),
    ('detection', 'dino-4scale_glnet-stl_8xb2-12e_coco.py', 'slot_scale'),
    ('detection', 'mask2former_glnet-4g_8xb2-lsj-50e_coco.py',
     'pos_conv.weight'),
    ('segmentation', 'mask2former_glnet-stl_8xb2-160k_ade20k-512x512.py',
     'slot_scale'),
]
# Mask2Former's learned queries and level embeddings: no decay, as in its
# upstream configs.
EMBEDDINGS = ('query_embed.weight', 'query_feat.weight', 'level_embed.weight')
SCOPES = dict(classification='mmpretrain', detection='mmdet',
              segmentation='mmseg')


def authors_rule(name, param):
    """True where the authors' optimiser applies weight decay."""
    return not (param.ndim == 1 or name.endswith('.bias')
                or name.endswith(('.gamma', '.beta')))


def test_every_recipe_uses_the_shared_rule():
    for toolbox in SCOPES.values():  # the configs' bases
        needs(toolbox)
    shared = Config.fromfile(osp.join(CONFIGS, '_base_', 'glnet.py'))
    assert len(SHIPPED) > 40
    for path in SHIPPED:
        cfg = Config.fromfile(path)
        paramwise = cfg.optim_wrapper.paramwise_cfg
        for key, value in shared.glnet_paramwise_cfg.items():
            if key == 'custom_keys':  # ImageNet: merged into Swin's keys
                for name, rule in value.items():
                    assert paramwise.custom_keys[name] == rule, (path, name)
            else:
                assert paramwise[key] == value, (path, key)
        assert 'glnet_mm.checkpoint.process_wide' in cfg.custom_imports.imports, path


@pytest.mark.parametrize('task, config, holds', BUILT,
                         ids=[c for _, c, _ in BUILT])
def test_param_groups(task, config, holds):
    needs(SCOPES[task])
    if 'mask2former' in config:  # mmseg's Mask2Former is mmdet's
        needs('mmdet')
    init_default_scope(SCOPES[task])
    cfg = Config.fromfile(osp.join(CONFIGS, task, config))
    cfg.model.backbone.init_cfg = None
    registry = __import__(f'{SCOPES[task]}.registry', fromlist=['MODELS'])
    model = registry.MODELS.build(cfg.model)
    cfg.optim_wrapper.type = 'OptimWrapper'  # AMP needs a GPU; same groups
    cfg.optim_wrapper.pop('loss_scale', None)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    base = optimizer.defaults['weight_decay']
    assert base > 0
    decay = {id(p): g['weight_decay'] for g in optimizer.param_groups
             for p in g['params']}
    lr = {id(p): g['lr'] for g in optimizer.param_groups
          for p in g['params']}
    # the query-based heads: the backbone at 0.1x (module_lr_mult)
    backbone_mult = cfg.optim_wrapper.paramwise_cfg.get(
        'module_lr_mult', {}).get('backbone', 1.)
    base_lr = optimizer.defaults['lr']
    checked = []
    for name, param in model.named_parameters():
        expected = base if authors_rule(name, param) else 0.
        if name.endswith('relative_position_bias_table'):
            expected = 0.  # Swin's schedule: the W-MHSA ablation only
        if 'mask2former' in config and name.endswith(EMBEDDINGS):
            expected = 0.
        assert decay[id(param)] == pytest.approx(expected), name
        mult = backbone_mult if name.startswith('backbone.') else 1.
        assert lr[id(param)] == pytest.approx(base_lr * mult), name
        checked.append(name)
    assert any(n.endswith(holds) for n in checked), holds
    if 'mask2former' in config:
        assert sum(n.endswith(EMBEDDINGS) for n in checked) == 3
    if backbone_mult != 1.:
        assert backbone_mult == 0.1


def test_module_lr_mult_errors():
    from torch import nn
    model = nn.Sequential()
    model.add_module('backbone', nn.Linear(2, 2))
    model.add_module('head', nn.Linear(2, 2))

    def build(mults):
        return build_optim_wrapper(model, dict(
            optimizer=dict(type='SGD', lr=1., weight_decay=1.),
            constructor='ModuleLrMultConstructor',
            paramwise_cfg=dict(module_lr_mult=mults, bias_decay_mult=0.)))

    groups = build(dict(backbone=0.5)).optimizer.param_groups
    assert [(g['lr'], g['weight_decay']) for g in groups] == [
        (0.5, 1.), (0.5, 0.), (1., 1.), (1., 0.)]
    with pytest.raises(ValueError, match=r"does not have: \['neck'\]"):
        build(dict(neck=0.1))
    with pytest.raises(ValueError, match='multipliers >= 0'):
        build(dict(backbone=-1))
    with pytest.raises(ValueError, match='multipliers >= 0'):
        build([0.1])
