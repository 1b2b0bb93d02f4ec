"""GLNet in the three OpenMMLab registries and inside upstream models."""
import ast
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.hub import get_config
from mmengine.registry import init_default_scope

from conftest import REPO, needs

import glnet_mm
from glnet_mm import GLNet

TINY = dict(depths=[1, 1, 2, 1], channels=[32, 64, 96, 128])


TOOLBOXES = ('mmdet', 'mmseg', 'mmpretrain')
TOOLBOX_OF_TASK = dict(detection='mmdet', segmentation='mmseg',
                       classification='mmpretrain')


def run(script, env=None):
    """Run ``script`` in a fresh interpreter (without the safe-loading switch
    that configs loaded by earlier tests set here); its stdout."""
    env = dict(env or os.environ)
    env.pop('TORCH_FORCE_WEIGHTS_ONLY_LOAD', None)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_has_no_side_effects():
    """``import glnet_mm`` imports no toolbox, registers GLNet in
    mmengine's root registry and leaves checkpoint loading alone; the
    modules that configs import (hooks, optim) cost nothing either: no
    toolbox, no drawing code. timm is never imported by glnet_mm: where
    timm >= 1.0.3 is installed, the GLNet models are registered when the
    process imports timm (docs/timm.md); where it is not (hidden in a
    second process), nothing happens."""
    timm_modules = ("print(sorted(m for m, module in sys.modules.items() if "
                    "module and m.startswith(('timm', "
                    "'glnet_mm.models.timm'))))\n")
    timm = glnet_mm.models.timm_supported()
    out = run('import os, sys, torch\n'
              'from mmengine.runner.checkpoint import CheckpointLoader\n'
              'schemes = dict(CheckpointLoader._schemes)\n'
              'load = torch.load\n'
              'import glnet_mm\n'
              "print(sorted(m for m in ('mmdet', 'mmseg', 'mmpretrain', "
              "'mmcv') if m in sys.modules))\n"
              'print(dict(CheckpointLoader._schemes) == schemes, '
              'torch.load is load, '
              "'TORCH_FORCE_WEIGHTS_ONLY_LOAD' in os.environ)\n"
              'from mmengine.registry import MODELS\n'
              "print(MODELS.get('GLNet') is glnet_mm.GLNet)\n"
              'import glnet_mm.engine.hooks, glnet_mm.engine.optimizers\n'
              "print(sorted(m for m in ('mmdet', 'mmseg', 'mmpretrain', "
              "'mmcv', 'glnet_mm.visualization.slots') if m in sys.modules))\n"
              + timm_modules
              + ("import timm\nprint(timm.list_models('glnet_stl*'))\n"
                 if timm else ''))
    lines = out.split('\n')
    assert lines[:3] == ['[]', 'True True False', 'True']
    assert lines[3] == '[]', 'hooks/optim imported a toolbox or the slots'
    assert lines[4] == '[]', 'glnet_mm imported timm'
    if timm:
        assert lines[5] == "['glnet_stl', 'glnet_stl_paramslot']"
    out = run("import sys\nsys.modules['timm'] = None\nimport glnet_mm\n"
              + timm_modules)
    assert out.split('\n')[0] == '[]'


@pytest.mark.parametrize('scope', TOOLBOXES)
def test_each_registry_builds_glnet(scope):
    """Each toolbox finds GLNet through its registry's parent (mmengine's
    root), by plain and by scoped name; nothing was registered in the
    toolbox itself."""
    needs(scope)
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    assert 'GLNet' not in registry.module_dict
    init_default_scope(scope)
    model = registry.build(dict(type='GLNet', arch='4g', out_indices=(2, 3)))
    assert isinstance(model, GLNet)
    assert model.out_indices == [2, 3]
    assert registry.get('mmengine.GLNet') is GLNet


def test_custom_imports_in_a_config(tmp_path):
    """In a fresh process, a config of each installed toolbox's scope whose
    custom_imports names glnet_mm builds GLNet through that toolbox's
    registry; the first one is what imports glnet_mm. (The newest stack has
    mmpretrain only; test_each_registry_builds_glnet needs all three.)"""
    needs('mmpretrain')
    scopes = [s for s in TOOLBOXES if importlib.util.find_spec(s)]
    assert 'mmpretrain' in scopes
    files = []
    for scope in scopes:
        files.append(tmp_path / f'{scope}.py')
        files[-1].write_text(
            "custom_imports = dict(imports=['glnet_mm'], "
            "allow_failed_imports=False)\n"
            f"default_scope = {scope!r}\n"
            "model = dict(type='GLNet', arch='stl')\n")
    out = run('import importlib, sys\n'
              'from mmengine.config import Config\n'
              'from mmengine.registry import init_default_scope\n'
              f'for scope, path in {list(zip(scopes, map(str, files)))!r}:\n'
              '    MODELS = importlib.import_module(scope + ".registry").MODELS\n'
              '    print("glnet_mm" in sys.modules)\n'
              '    cfg = Config.fromfile(path)\n'
              '    init_default_scope(cfg.default_scope)\n'
              '    print(type(MODELS.build(cfg.model)).__name__)\n')
    assert out.split() == ['False', 'GLNet'] + ['True', 'GLNet'] * (
        len(scopes) - 1)


def test_glnet_needs_only_torch_and_mmengine(tmp_path):
    """The model layer needs only torch and mmengine. In a fresh process
    where mmcv and mmpretrain are not installed and mmdet / mmseg are
    broken as mmdet 3.3 / mmseg 1.2 are on an mmcv they do not accept
    (AssertionError at import), GLNet imports, builds through mmengine's
    registry and runs, and its FLOPs are counted."""
    for name in ('mmdet', 'mmseg'):
        (tmp_path / name).mkdir()
        (tmp_path / name / '__init__.py').write_text(
            "raise AssertionError('MMCV==2.2.0 is used but incompatible')\n")
    out = run('import sys\n'
              "for m in ('mmcv', 'mmpretrain'):\n"
              '    sys.modules[m] = None  # not installed\n'
              'import glnet_mm, torch\n'
              'from mmengine.registry import MODELS\n'
              "m = MODELS.build(dict(type='GLNet', arch='stl')).eval()\n"
              'print([tuple(o.shape) for o in m(torch.randn(1, 3, 64, 64))])\n'
              'from glnet_mm.utils.flops import count_flops\n'
              'print(count_flops(m, (1, 3, 64, 64)) > 0)\n'
              'try:\n    import mmdet\n'
              'except AssertionError:\n    print("mmdet broken")\n',
              env=dict(os.environ, PYTHONPATH=f'{tmp_path}:{REPO}'))
    shapes, flops, broken = out.splitlines()
    shapes = ast.literal_eval(shapes)
    assert len(shapes) == 4 and shapes[-1] == (1, 768, 2, 2), shapes
    assert flops == 'True' and broken == 'mmdet broken'


def swap_backbone(cfg, channels):
    cfg.model.backbone = dict(type='GLNet', arch=TINY, drop_path_rate=0.1)
    cfg.model.neck.in_channels = channels
    return cfg


def test_mask_rcnn_from_upstream_config():
    """Upstream Mask R-CNN with the backbone swapped: a loss step and a
    prediction on random input."""
    needs('mmdet')
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    init_default_scope('mmdet')
    cfg = get_config('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    model = MODELS.build(swap_backbone(cfg, TINY['channels']).model)
    feats = model.extract_feat(torch.randn(1, 3, 128, 160))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (256, 32, 40), (256, 16, 20), (256, 8, 10), (256, 4, 5), (256, 2, 3)]
    packed = demo_mm_inputs(2, [[3, 128, 160], [3, 96, 128]], num_items=[3, 2],
                            num_classes=80, with_mask=True)
    model.train()
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k
                for v in (v if isinstance(v, list) else [v]))
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    total.backward()
    assert model.backbone.stages[0].blocks[0].slot_scale.grad is not None
    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(packed, False),
                        mode='predict')
    assert len(results) == 2 and hasattr(results[0], 'pred_instances')


def test_upernet_from_upstream_config():
    """Upstream UPerNet (Swin base) with the backbone swapped: a loss step
    and a full-resolution logit map."""
    needs('mmseg')
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    init_default_scope('mmseg')
    cfg = get_config('mmseg::_base_/models/upernet_swin.py')
    cfg.model.backbone = dict(type='GLNet', arch=TINY)
    cfg.model.decode_head.in_channels = TINY['channels']
    cfg.model.auxiliary_head.in_channels = TINY['channels'][2]
    for head in (cfg.model.decode_head, cfg.model.auxiliary_head):
        head.norm_cfg = dict(type='BN')
    model = MODELS.build(cfg.model)
    num_classes = cfg.model.decode_head.num_classes
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(128, 128),
                                             pad_shape=(128, 128)))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, 128, 128)))
        samples.append(sample)
    model.train()
    losses = model(torch.randn(2, 3, 128, 128), samples, mode='loss')
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
    (losses['decode.loss_ce'] + losses['aux.loss_ce']).backward()
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 128, 128), mode='tensor')
    assert logits.shape == (1, num_classes, 32, 32)


@pytest.mark.parametrize('config', [
    'detection/mask-rcnn_glnet-toy_fpn_1xb4-12e_toy-coco.py',
    'segmentation/upernet_glnet-toy_1xb8-600iter_toy-ade-128x128.py',
    'classification/glnet-toy_1xb64-20e_toy-shapes.py'])
def test_build_backbone_of_a_config(config, tmp_path):
    """``glnet_mm.build_backbone``, what every tool builds: the config's
    GLNet through the registry, settings overridden, weights loaded."""
    import os.path as osp
    from mmengine.config import Config

    from glnet_mm import build_backbone
    needs(TOOLBOX_OF_TASK[config.split('/')[0]])
    path = osp.join(REPO, 'configs', config)
    expected = Config.fromfile(path).model.backbone
    backbone = build_backbone(path, with_cp=True)
    assert isinstance(backbone, GLNet) and backbone.with_cp
    assert backbone.out_indices == sorted(expected.out_indices)
    assert backbone.arch == GLNet(expected.arch).arch
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v + 1 for k, v in
                                backbone.state_dict().items()}), checkpoint)
    loaded = build_backbone(path, str(checkpoint))
    for (k, a), b in zip(backbone.state_dict().items(),
                         loaded.state_dict().values()):
        assert torch.equal(a + 1, b), k
    resnet = tmp_path / 'resnet.py'
    resnet.write_text("model = dict(backbone=dict(type='ResNet', depth=18))")
    with pytest.raises(ValueError, match="resnet.py: model.backbone is not "
                       "a GLNet \\(type='ResNet'\\)"):
        build_backbone(str(resnet))


def test_layout_and_one_way_imports():
    """At most three modules at the package's top; ``models`` imports none
    of ``engine``, ``apis``, ``visualization`` or ``tools`` (imports flow
    one way: apis and engine build on models, never the reverse); and no
    module of the package imports a toolbox at its top (only inside a
    function, or in a module a config imports for that toolbox)."""
    import glob
    root = osp.dirname(osp.abspath(glnet_mm.__file__))
    assert len(glob.glob(osp.join(root, '*.py'))) <= 3
    for sub in ('models/backbones', 'models/heads', 'engine/hooks',
                'engine/optimizers', 'apis', 'checkpoint', 'utils',
                'visualization'):
        assert osp.isfile(osp.join(root, sub, '__init__.py')), sub
    upward = ('engine', 'apis', 'visualization', 'tools')
    toolbox_modules = {'models/heads/tklb_cls_head.py',
                       'datasets/toy_ade_dataset.py'}
    for path in glob.glob(osp.join(root, '**', '*.py'), recursive=True):
        rel = osp.relpath(path, root)
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                dotted = node.module or ''
                if node.level:  # resolve the relative import
                    base = rel.split(os.sep)[:-node.level]
                    dotted = '.'.join(['glnet_mm', *base, dotted]).strip('.')
                names = [dotted]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split('.')
                if rel.startswith('models'):
                    assert not (parts[0] == 'glnet_mm' and len(parts) > 1
                                and parts[1] in upward), (rel, name)
                if node in tree.body and rel not in toolbox_modules:
                    assert parts[0] not in ('mmdet', 'mmseg', 'mmpretrain'), \
                        (rel, name)
