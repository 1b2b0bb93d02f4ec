"""The shipped ADE20K segmentation configs, and GLNet inside upstream mmseg
configs that we do not ship."""
import glob
import os.path as osp

import pytest
import torch
from conftest import needs
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

needs('mmseg')
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

import glnet_mm  # noqa: F401  (registers GLNet)
import glnet_mm.engine.optimizers  # noqa: F401  (ModuleLrMultConstructor)
from glnet_mm import GLNet

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO, 'configs', 'segmentation')
CONFIGS = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
# The COCO/ADE20K recipes; the *_custom-* examples for one's own data are
# tested by running docs/custom_dataset.md (tests/test_custom_dataset.py).
REAL = [c for c in CONFIGS if 'toy' not in c and '_custom-' not in c]
CHANNELS = dict(stl=[96, 192, 384, 768], toy=[32, 64, 128, 256],
                **{'4g': [64, 128, 256, 512], '9g': [96, 192, 384, 768],
                   '16g': [128, 256, 512, 1024]})


def random_batch(num, size, num_classes):
    """A data batch as a dataloader yields it: uint8 images + label maps."""
    h, w = size
    samples = []
    for _ in range(num):
        sample = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, num_classes, (1, h, w))))
        sample.set_metainfo(dict(img_shape=size, ori_shape=size,
                                 pad_shape=size))
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
              for _ in range(num)]
    return dict(inputs=inputs, data_samples=samples)


def build_segmentor(cfg, size):
    """Build ``cfg.model`` as the runner would on one CPU process."""
    init_default_scope('mmseg')
    cfg.model.data_preprocessor.size = size
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def load(name):
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def test_every_size_and_family_is_shipped():
    names = set(CONFIGS)
    for size in ('stl', '4g', '9g', '16g'):
        assert f'upernet_glnet-{size}_8xb2-160k_ade20k-512x512.py' in names
    for size in ('stl', '4g'):
        assert f'fpn_glnet-{size}_8xb2-80k_ade20k-512x512.py' in names
    for size in ('stl', '4g', '9g', '16g'):
        assert (f'mask2former_glnet-{size}_8xb2-160k_ade20k-512x512.py'
                in names)
    assert any('toy' in n for n in names)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_and_computes_losses(name):
    if name.startswith('mask2former'):  # mmseg's Mask2Former is mmdet's
        needs('mmdet')
    cfg = load(name)
    assert 'glnet_mm' in cfg.custom_imports['imports']
    arch = cfg.model.backbone.arch
    model = build_segmentor(cfg, (64, 96))
    assert isinstance(model.backbone, GLNet)
    assert model.backbone.channels == CHANNELS[arch]
    model.train()
    labels = min(6, cfg.model.decode_head.num_classes)  # custom: 3
    data = model.data_preprocessor(random_batch(2, (64, 96), labels), True)
    losses = model(**data, mode='loss')
    if name.startswith('mask2former'):  # + one set per decoder layer
        assert {'decode.loss_cls', 'decode.loss_mask',
                'decode.loss_dice', 'decode.d0.loss_mask'} <= set(losses)
    else:
        assert 'decode.loss_ce' in losses
    assert ('aux.loss_ce' in losses) == ('upernet' in name)
    for key, value in losses.items():
        if 'loss' in key:
            assert torch.isfinite(value), key
    model.eval()
    with torch.no_grad():
        pred = model.predict(data['inputs'], data['data_samples'])
    assert pred[0].pred_sem_seg.data.shape == (1, 64, 96)


@pytest.mark.parametrize('name', REAL)
def test_real_config_recipe(name):
    """The configs are the ones to launch on 8 GPUs with ADE20K."""
    if name.startswith('mask2former'):  # custom_imports: mmdet.models
        needs('mmdet')
    cfg = load(name)
    arch = cfg.model.backbone.arch
    upernet = name.startswith('upernet')
    mask2former = name.startswith('mask2former')
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        assert loader.dataset.type == 'ADE20KDataset'
        assert loader.dataset.data_root == 'data/ade/ADEChallengeData2016'
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.model.decode_head.num_classes == 150
    assert cfg.model.data_preprocessor.size == (512, 512)
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint=f'checkpoints/glnet_{arch}.pth')
    assert cfg.model.backbone.drop_path_rate == dict(
        stl=0.2, **{'4g': 0.2, '9g': 0.3, '16g': 0.4})[arch]
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW'
    if upernet:
        assert (optimizer.lr, optimizer.weight_decay) == (6e-5, 0.01)
        warmup, poly = cfg.param_scheduler
        assert (warmup.type, warmup.end) == ('LinearLR', 1500)
        assert (poly.type, poly.begin, poly.end) == ('PolyLR', 1500, 160000)
        assert cfg.train_cfg.max_iters == 160000
        assert cfg.model.auxiliary_head.type == 'FCNHead'
        assert cfg.model.auxiliary_head.in_channels == CHANNELS[arch][2]
        assert cfg.model.decode_head.in_channels == CHANNELS[arch]
    elif mask2former:  # mmseg's Swin-T Mask2Former, see test_param_groups
        assert (optimizer.lr, optimizer.weight_decay) == (1e-4, 0.05)
        assert cfg.optim_wrapper.clip_grad.max_norm == 0.01
        assert cfg.optim_wrapper.constructor == 'ModuleLrMultConstructor'
        assert cfg.optim_wrapper.paramwise_cfg.module_lr_mult == dict(
            backbone=0.1)
        (poly, ) = cfg.param_scheduler
        assert (poly.type, poly.power, poly.end) == ('PolyLR', 0.9, 160000)
        assert cfg.train_cfg.max_iters == 160000
        assert cfg.model.decode_head.type == 'Mask2FormerHead'
        assert cfg.model.decode_head.in_channels == CHANNELS[arch]
    else:
        assert optimizer.lr == 2e-4
        (poly, ) = cfg.param_scheduler
        assert (poly.type, poly.end) == ('PolyLR', 80000)
        assert cfg.train_cfg.max_iters == 80000
        assert cfg.model.neck.in_channels == CHANNELS[arch]
    # single scale: the (2048, 512) resize; ms+flip: `--tta`
    assert cfg.test_dataloader.dataset.pipeline[1].scale == (2048, 512)
    tta = cfg.tta_pipeline[1]
    assert tta.type == 'TestTimeAug'
    assert len(tta.transforms[0]) == 6  # scales 0.5 .. 1.75
    assert [t.prob for t in tta.transforms[1]] == [0., 1.]  # flip
    assert cfg.tta_model.type == 'SegTTAModel'


def test_missing_checkpoint_is_named():
    cfg = load('upernet_glnet-stl_8xb2-160k_ade20k-512x512.py')
    cfg.model.backbone.init_cfg.checkpoint = '/nonexistent/glnet_stl.pth'
    model = build_segmentor(cfg, (64, 64))
    with pytest.raises(FileNotFoundError, match='/nonexistent/glnet_stl.pth'):
        model.init_weights()


# The README recipe applied to upstream configs that we do not ship: the
# backbone swapped for GLNet, each head's input channels set to GLNet's
# channels at its ``in_index``, the ImageNet ResNet ``pretrained`` dropped.
TOY = CHANNELS['toy']
UPSTREAM = {
    'deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_ade20k-512x512.py':
    dict(
        decode_head=dict(in_channels=TOY[3], c1_in_channels=TOY[0]),
        auxiliary_head=dict(in_channels=TOY[2])),
    'pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py':
    dict(
        decode_head=dict(in_channels=TOY[3]),
        auxiliary_head=dict(in_channels=TOY[2])),
    'segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py':
    dict(decode_head=dict(in_channels=TOY)),
}


@pytest.mark.parametrize('upstream', sorted(UPSTREAM))
def test_glnet_in_upstream_config(upstream, tmp_path):
    overrides = UPSTREAM[upstream]
    cfg_file = tmp_path / 'glnet_swap.py'
    cfg_file.write_text(
        f'_base_ = "mmseg::{upstream}"\n'
        "custom_imports = dict(imports=['glnet_mm'], "
        'allow_failed_imports=False)\n'
        'model = dict(\n'
        '    pretrained=None,\n'
        "    backbone=dict(_delete_=True, type='GLNet', arch='toy'),\n"
        f'    **{overrides!r})\n')
    cfg = Config.fromfile(str(cfg_file))
    model = build_segmentor(cfg, (64, 64))
    assert isinstance(model.backbone, GLNet)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    before = [p.detach().clone() for p in model.backbone.parameters()]
    log_vars = model.train_step(random_batch(2, (64, 64), 150), optim)
    assert torch.isfinite(log_vars['loss'])
    changed = [not torch.equal(b, p)
               for b, p in zip(before, model.backbone.parameters())]
    assert sum(changed) > len(changed) // 2
