"""The shipped COCO detection configs: recipe, build, one training step and
one prediction per model family."""
import copy
import glob
import os.path as osp
import re

import pytest
import torch
from conftest import needs
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

mmdet = needs('mmdet')
needs('mmcv._ext')  # mmdet's detectors: mmcv's compiled ops (RoIAlign, NMS)
from mmdet.registry import MODELS  # noqa: E402
from mmdet.testing import demo_mm_inputs  # noqa: E402

import glnet_mm  # noqa: F401  (registers GLNet)
import glnet_mm.engine.optimizers  # noqa: F401  (ModuleLrMultConstructor)
from glnet_mm import GLNet

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO, 'configs', 'detection')
CONFIGS = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
# The COCO/ADE20K recipes; the *_custom-* examples for one's own data are
# tested by running docs/custom_dataset.md (tests/test_custom_dataset.py).
REAL = [c for c in CONFIGS if 'toy' not in c and '_custom-' not in c]
FPN = [c for c in REAL if '_fpn_' in c]  # the CNN-style detectors
QUERY = [c for c in REAL if c.startswith(('dino', 'mask2former'))]
TOY = [c for c in CONFIGS if 'toy' in c]
MASK_RCNN_TOY = 'mask-rcnn_glnet-toy_fpn_1xb4-12e_toy-coco.py'
IMPORTS = ['glnet_mm', 'glnet_mm.checkpoint.process_wide', 'glnet_mm.engine']
CHANNELS = dict(stl=[96, 192, 384, 768], toy=[32, 64, 128, 256],
                **{'4g': [64, 128, 256, 512], '9g': [96, 192, 384, 768],
                   '16g': [128, 256, 512, 1024]})
DROP_PATH = dict(stl=0.2, **{'4g': 0.2, '9g': 0.3, '16g': 0.4})


def load(name):
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def size_of(name):
    return re.search(r'_glnet-(\w+?)_', name).group(1)


def build_detector(cfg):
    """Build ``cfg.model`` as the runner does on one process (SyncBN -> BN)."""
    init_default_scope('mmdet')
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def cpu_optim_wrapper(cfg):
    """The config's optimiser; AMP needs a GPU, so a plain OptimWrapper."""
    optim = copy.deepcopy(cfg.optim_wrapper.to_dict())
    optim['type'] = 'OptimWrapper'
    return optim


def random_batch(num, height, width, num_classes, with_mask):
    return demo_mm_inputs(
        batch_size=num, image_shapes=(3, height, width),
        num_items=[3] * num, num_classes=num_classes, with_mask=with_mask)


def test_every_size_and_family_is_shipped():
    names = set(CONFIGS)
    for size in ('stl', '4g', '9g', '16g'):
        assert f'mask-rcnn_glnet-{size}_fpn_1x_coco.py' in names
        assert f'mask-rcnn_glnet-{size}_fpn_ms-crop-3x_coco.py' in names
    for size in ('stl', '4g'):
        assert (f'cascade-mask-rcnn_glnet-{size}_fpn_4conv1fc-giou_'
                'ms-crop-3x_coco.py') in names
        assert f'retinanet_glnet-{size}_fpn_1x_coco.py' in names
    for size in ('stl', '4g', '9g', '16g'):
        assert f'dino-4scale_glnet-{size}_8xb2-12e_coco.py' in names
        assert f'dino-4scale_glnet-{size}_8xb2-36e_coco.py' in names
        assert f'mask2former_glnet-{size}_8xb2-lsj-50e_coco.py' in names
    assert sorted(REAL) == sorted(FPN + QUERY)
    assert TOY == ['dino-4scale_glnet-toy_1xb4-6e_toy-coco.py',
                   MASK_RCNN_TOY,
                   'mask2former_glnet-toy_1xb4-1000iter_toy-coco.py']


def load_and_check_backbone(name):
    """The config, its GLNet size and backbone: the shared imports and
    hooks, SyncBN, drop path per size, the ImageNet checkpoint of the size."""
    cfg = load(name)
    size = size_of(name)
    assert cfg.custom_imports.imports == IMPORTS
    assert cfg.custom_hooks == [dict(type='RNGStateHook')]
    backbone = cfg.model.backbone
    assert backbone.type == 'GLNet' and backbone.arch == size
    assert backbone.drop_path_rate == DROP_PATH[size]
    assert backbone.norm_cfg == dict(type='SyncBN')
    assert backbone.init_cfg == dict(
        type='Pretrained', checkpoint=f'checkpoints/glnet_{size}.pth')
    return cfg, size, backbone


@pytest.mark.parametrize('name', FPN)
def test_real_config_recipe(name):
    """What a cluster launch needs: COCO paths, batch 2 x 8 with LR scaling,
    AdamW + AMP with the no-decay groups, SyncBN, drop path per size, the
    ImageNet checkpoint of the right size, the schedule of the name."""
    cfg, size, backbone = load_and_check_backbone(name)
    assert cfg.model.neck.in_channels == [
        CHANNELS[size][i] for i in backbone.out_indices]

    optim = cfg.optim_wrapper
    assert optim.type == 'AmpOptimWrapper'
    assert 'constructor' not in optim  # mmengine's default, paramwise_cfg
    assert optim.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                                   weight_decay=0.05)
    # the weight-decay groups: tests/test_param_groups.py
    assert optim.paramwise_cfg.flat_decay_mult == 0
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=16)
    assert cfg.train_dataloader.batch_size == 2

    train_set = cfg.train_dataloader.dataset
    assert train_set.data_root == 'data/coco/'
    assert train_set.ann_file == 'annotations/instances_train2017.json'
    assert cfg.val_evaluator.ann_file == (
        'data/coco/annotations/instances_val2017.json')
    metrics = cfg.val_evaluator.metric
    assert 'bbox' in metrics
    assert ('segm' in metrics) == ('mask-rcnn' in name)

    epochs = 12 if '_1x_' in name else 36
    assert cfg.train_cfg.max_epochs == epochs
    multi_scale = [t for t in train_set.pipeline
                   if t.type == 'RandomChoice']
    assert bool(multi_scale) == ('ms-crop-3x' in name)


FAMILIES = {
    'mask-rcnn_glnet-stl_fpn_1x_coco.py': ('loss_mask', True),
    'cascade-mask-rcnn_glnet-stl_fpn_4conv1fc-giou_ms-crop-3x_coco.py':
    ('s2.loss_mask', True),
    'retinanet_glnet-stl_fpn_1x_coco.py': ('loss_cls', False),
    'dino-4scale_glnet-stl_8xb2-12e_coco.py': ('dn_loss_cls', False),
    'mask2former_glnet-stl_8xb2-lsj-50e_coco.py': ('d0.loss_mask', True),
}


def check_built(cfg, model):
    """What every config builds: the GLNet of its size, whose outputs the
    neck (or Mask2Former's pixel decoder) takes, with BN for SyncBN on one
    process."""
    assert isinstance(model.backbone, GLNet)
    size = cfg.model.backbone.arch
    assert model.backbone.channels == CHANNELS[size]
    taken = [model.backbone.channels[i] for i in model.backbone.out_indices]
    # the neck, or Mask2Former's pixel decoder, takes them
    head = cfg.model.get('neck') or cfg.model.panoptic_head
    assert list(head.in_channels) == taken
    assert not any(isinstance(m, torch.nn.SyncBatchNorm)
                   for m in model.modules())


@pytest.mark.parametrize('name', [c for c in CONFIGS if c not in FAMILIES])
def test_config_builds(name):
    """Every config builds (the configs of FAMILIES are built, checked the
    same way and trained by test_family_trains_and_predicts)."""
    cfg = load(name)
    with torch.device('meta'):  # the structure, without filling the weights
        model = build_detector(cfg)
    check_built(cfg, model)


def test_missing_checkpoint_is_named(tmp_path):
    cfg = load('mask-rcnn_glnet-4g_fpn_1x_coco.py')
    missing = str(tmp_path / 'glnet_4g.pth')
    cfg.model.backbone.init_cfg.checkpoint = missing
    model = build_detector(cfg)
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        model.init_weights()


@pytest.mark.parametrize('name', QUERY)
def test_query_head_recipe(name):
    """DINO and Mask2Former: the upstream recipe of the head (mmdet's
    DINO-4scale, its Swin-T Mask2Former), the backbone at 0.1x the lr on
    top of GLNet's decay rule (tests/test_param_groups.py checks the
    groups), GLNet's backbone settings, the schedule of the name."""
    cfg, size, backbone = load_and_check_backbone(name)
    optim = cfg.optim_wrapper
    assert optim.type == 'AmpOptimWrapper'
    assert optim.constructor == 'ModuleLrMultConstructor'
    assert optim.paramwise_cfg.module_lr_mult == dict(backbone=0.1)
    assert 'backbone' not in optim.paramwise_cfg.custom_keys
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=16)
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.train_dataloader.dataset.ann_file == (
        'annotations/instances_train2017.json')
    if name.startswith('dino'):
        assert backbone.out_indices == (1, 2, 3)  # + 1 level from stage 3
        assert cfg.model.neck.in_channels == CHANNELS[size][1:]
        assert cfg.model.neck.num_outs == 4
        assert optim.optimizer == dict(type='AdamW', lr=1e-4,
                                       weight_decay=1e-4)
        assert optim.clip_grad == dict(max_norm=0.1, norm_type=2)
        epochs = 12 if '-12e_' in name else 36
        assert cfg.train_cfg.max_epochs == epochs
        (step, ) = cfg.param_scheduler
        assert step.type == 'MultiStepLR'
        assert step.milestones == [11 if epochs == 12 else 30]
        assert step.get('gamma', 0.1) == 0.1 and step.end == epochs
        assert cfg.val_evaluator.metric == 'bbox'
    else:
        assert backbone.out_indices == (0, 1, 2, 3)
        assert optim.optimizer == dict(type='AdamW', lr=1e-4,
                                       weight_decay=0.05, eps=1e-8,
                                       betas=(0.9, 0.999))
        assert optim.clip_grad == dict(max_norm=0.01, norm_type=2)
        assert cfg.train_cfg.max_iters == 368750  # 50 epochs of 16 images
        assert cfg.val_evaluator.metric == ['bbox', 'segm']
        for key in ('query_embed', 'query_feat', 'level_embed'):
            assert optim.paramwise_cfg.custom_keys[key] == dict(
                decay_mult=0.)


@pytest.mark.parametrize('name', sorted(FAMILIES))
def test_family_trains_and_predicts(name):
    """One training step (the config's optimiser, on a CPU) and one
    prediction of each detector family, real GLNet-STL, random data; the
    built model checked as test_config_builds checks the other configs."""
    loss_key, with_mask = FAMILIES[name]
    cfg = load(name)
    # CPU budget: fewer proposals and RoI samples than on COCO
    if 'rpn_proposal' in cfg.model.train_cfg:
        cfg.model.train_cfg.rpn_proposal.max_per_img = 100
        rcnn = cfg.model.train_cfg.rcnn
        for stage in rcnn if isinstance(rcnn, list) else [rcnn]:
            stage.sampler.num = 32
        cfg.model.test_cfg.rpn.max_per_img = 50
        cfg.model.test_cfg.rcnn.max_per_img = 10
    if 'num_queries' in cfg.model:  # DINO: no more than the 128x160 tokens
        cfg.model.num_queries = 100
    if 'batch_augments' in cfg.model.data_preprocessor:
        cfg.model.data_preprocessor.batch_augments = None  # no 1024 pad
    cfg.model.backbone.init_cfg = None  # the heads' own init, as a run
    model = build_detector(cfg)        # does (DETR heads need their
    model.init_weights()               # classification prior)
    check_built(cfg, model)
    model.train()
    optim_wrapper = build_optim_wrapper(model, cpu_optim_wrapper(cfg))
    data = random_batch(2, 128, 160, 80, with_mask)
    before = model.backbone.stages[0].blocks[0].mlp[0].weight.clone()
    log_vars = model.train_step(data, optim_wrapper)
    assert loss_key in log_vars
    assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(before, model.backbone.stages[0].blocks[0].mlp[0]
                           .weight)

    model.eval()
    with torch.no_grad():
        (result, ) = model.test_step(random_batch(1, 128, 160, 80, False))
    pred = result.pred_instances
    assert pred.bboxes.shape[1] == 4 and len(pred.scores) == len(pred.bboxes)
    assert ('masks' in pred) == with_mask


def test_glnet_features_work_with_mmcv_roi_ops():
    """mmcv's RoIAlign reads its input as NCHW-contiguous memory: the FPN
    features of a GLNet detector must give the same RoI features as their
    contiguous copies (channels-last strides would be read as garbage)."""
    cfg = load(MASK_RCNN_TOY)
    model = build_detector(cfg).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(2, 3, 160, 160))
        rois = torch.tensor([[0, 10., 12., 60., 70.], [1, 30., 20., 150.,
                                                       120.]])
        extractor = model.roi_head.bbox_roi_extractor
        got = extractor(feats[:extractor.num_inputs], rois)
        want = extractor(
            tuple(f.contiguous() for f in feats[:extractor.num_inputs]),
            rois)
    torch.testing.assert_close(got, want)


# Dropping GLNet into upstream mmdet configs that we do not ship: the recipe
# of docs/detection.md, verbatim. Necks that start at the stride-8 level
# (RetinaNet, FCOS) get GLNet stages 1-3 and start_level=0, as mmdet's Swin
# RetinaNet does.
SWAP_RECIPE = """
_base_ = 'mmdet::{upstream}'
custom_imports = dict(imports=['glnet_mm'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True, type='GLNet', arch='toy', out_indices={out_indices}),
    neck=dict(in_channels={in_channels}{neck_extra}))
"""
MMDET_CONFIGS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
UPSTREAM = {
    'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py': ('loss_bbox', False),
    'cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py': ('s0.loss_mask',
                                                          True),
    'retinanet/retinanet_r50_fpn_1x_coco.py': ('loss_cls', False),
    'fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py': ('loss_centerness', False),
}


def swapped_config(upstream, tmp_path):
    cfg = Config.fromfile(osp.join(MMDET_CONFIGS, upstream))
    from_stride_8 = cfg.model.neck.get('start_level', 0) == 1
    out_indices = (1, 2, 3) if from_stride_8 else (0, 1, 2, 3)
    text = SWAP_RECIPE.format(
        upstream=upstream, out_indices=out_indices,
        in_channels=[CHANNELS['toy'][i] for i in out_indices],
        neck_extra=', start_level=0' if from_stride_8 else '')
    path = tmp_path / 'swapped.py'
    path.write_text(text)
    return Config.fromfile(str(path))


@pytest.mark.parametrize('upstream', sorted(UPSTREAM))
def test_glnet_in_upstream_config(upstream, tmp_path):
    """Build the upstream detector with GLNet and run one training step with
    the upstream optimiser on random data."""
    loss_key, with_mask = UPSTREAM[upstream]
    cfg = swapped_config(upstream, tmp_path)
    if 'rcnn' in cfg.model.get('train_cfg', {}):  # CPU: fewer RoI samples
        rcnn = cfg.model.train_cfg.rcnn
        for stage in rcnn if isinstance(rcnn, list) else [rcnn]:
            stage.sampler.num = 64
    model = build_detector(cfg)
    assert isinstance(model.backbone, GLNet)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    data = model.data_preprocessor(
        random_batch(2, 128, 160, 80, with_mask), True)
    loss, log_vars = model.parse_losses(model(**data, mode='loss'))
    assert loss_key in log_vars and torch.isfinite(loss)
    optim_wrapper.backward(loss)
    # every GLNet output feeds the neck: no unused parameters (DDP-safe)
    unused = [n for n, p in model.backbone.named_parameters()
              if p.grad is None]
    assert not unused
    optim_wrapper.step()
