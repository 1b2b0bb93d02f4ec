"""GLNet in timm (glnet_mm/models/timm_models.py, docs/timm.md): every
registered name, its feature maps against the OpenMMLab backbone's, timm's
model contract as timm's own model tests check it, the authors' files by
``pretrained_cfg_overlay``, the golden logits, and the clients that use
timm: mmpretrain's ``TIMMBackbone`` in a toy Mask R-CNN, transformers'
``AutoBackbone``."""
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import GOLDEN, REPO, arch_from_official, load_golden, needs

timm = needs('timm')
import glnet_mm  # noqa: E402  (registers the timm models)
from glnet_mm import GLNet, load_pretrained  # noqa: E402
from glnet_mm.utils.model_index import official_checkpoints  # noqa: E402
from glnet_mm.checkpoint.loading import CheckpointError  # noqa: E402
from glnet_mm.models.timm_models import GLNetTimm  # noqa: E402

# the released checkpoints (model-index), as timm names, and their arch
NAMES = {'glnet_stl': 'stl', 'glnet_stl_paramslot': 'stl_paramslot',
         'glnet_4g': '4g', 'glnet_9g': '9g', 'glnet_16g': '16g',
         'glnet_4g_tklb': '4g', 'glnet_9g_tklb': '9g'}
STRIDES = [4, 8, 16, 32]


def rel_err(out, ref):
    return ((out - ref).abs().max() / ref.abs().max()).item()


def backbone_like(timm_model, arch):
    """The OpenMMLab backbone (raw stage outputs) with a timm model's weights,
    given as an official-format checkpoint (its state dict is in the
    official keys) through glnet_mm's loader."""
    backbone = GLNet(arch, out_norm_cfg=None)
    load_pretrained(backbone, dict(model=timm_model.state_dict()))
    return backbone.eval()


def official_file(path, golden):
    """A file laid out like a release (weights under ``model``)."""
    torch.save(dict(model=golden['state_dict'], epoch=299), path)
    return str(path)


def test_the_released_models_are_registered():
    assert sorted(timm.list_models('glnet*')) == sorted(NAMES)
    for name in NAMES:
        assert timm.is_model(name)
        cfg = timm.get_pretrained_cfg(name)
        assert cfg.tag == 'in1k'


def test_only_a_timm_with_the_contract_is_used(monkeypatch):
    """timm >= 1.0.3 (forward_intermediates, feature_cls='getter'); an
    older one is left alone (nothing registered, no failed import)."""
    import glnet_mm.models as models
    for version, supported in (('0.9.16', False), ('1.0.3', True),
                               ('1.0.31', True), ('2.0.0.dev0', True)):
        monkeypatch.setattr(models.importlib.metadata, 'version',
                            lambda name, v=version: v)
        assert models.timm_supported() is supported, version


@pytest.mark.parametrize('name', sorted(NAMES))
def test_features_only_equal_the_openmmlab_backbone(name):
    """Every name with ``features_only=True``: four maps, strides 4-32, the
    arch's channels in ``feature_info``, bit for bit the maps of
    glnet_mm's GLNet loaded with the same weights."""
    model = timm.create_model(name, features_only=True).eval()
    channels = glnet_mm.models.resolve_arch(NAMES[name])['channels']
    assert model.feature_info.channels() == channels
    assert model.feature_info.reduction() == STRIDES
    assert isinstance(model.model, GLNetTimm)
    backbone = backbone_like(model.model, NAMES[name])
    x = torch.randn(1, 3, 32, 64)  # small: the full-size models, on CPU
    with torch.no_grad():
        maps, ref = model(x), backbone(x)
    assert [tuple(m.shape) for m in maps] == [
        (1, c, 32 // s, 64 // s) for c, s in zip(channels, STRIDES)]
    for out, expected in zip(maps, ref):
        assert torch.equal(out, expected)


@pytest.mark.parametrize('variant', GOLDEN + ('4g_tklb', ))
def test_official_file_by_pretrained_cfg_overlay(variant, tmp_path):
    """A file in the official layout (the golden models of the authors'
    code) through ``pretrained=True, pretrained_cfg_overlay=dict(file=)``:
    the classifier gives the official logits (token labeling included),
    features_only the official stage outputs, bit for bit those of GLNet
    loaded from the same file by its own ``init_cfg``."""
    golden = load_golden(variant)
    arch = arch_from_official(golden['config'])
    name = 'glnet_' + variant
    path = official_file(tmp_path / f'{name}.pth', golden)
    overlay = dict(pretrained=True, pretrained_cfg_overlay=dict(file=path),
                   arch=arch)
    classifier = timm.create_model(name, num_classes=10, **overlay).eval()
    features = timm.create_model(name, features_only=True, **overlay).eval()
    backbone = GLNet(arch, out_norm_cfg=None,
                     init_cfg=dict(type='Pretrained', checkpoint=path))
    backbone.init_weights()
    backbone.eval()
    with torch.no_grad():
        logits = classifier(golden['input'])
        maps, ref = features(golden['input']), backbone(golden['input'])
    assert rel_err(logits, golden['logits']) < 1e-5
    for out, expected, official in zip(maps, ref, golden['stage_outputs']):
        assert torch.equal(out, expected)
        assert rel_err(out, official) < 1e-5
    # the model's own state dict is the official file's, key for key
    assert set(classifier.state_dict()) == set(golden['state_dict'])


def test_a_released_file_with_its_training_arguments(tmp_path):
    """A file as released (the weights in ``model`` and ``model_ema``, the
    hydra ``DictConfig`` of the training arguments): read by glnet_mm's
    restricted unpickler, the EMA weights taken (as for GLNet-16G)."""
    omegaconf = needs('omegaconf')
    golden = load_golden('16g')
    arch = arch_from_official(golden['config'])
    noisy = {k: v + 1 if v.is_floating_point() else v
             for k, v in golden['state_dict'].items()}
    path = tmp_path / 'glnet_16g.pth'
    torch.save(dict(model=noisy, model_ema=golden['state_dict'], epoch=299,
                    args=omegaconf.OmegaConf.create(dict(model='glnet_16g'))),
               path)
    model = timm.create_model(
        'glnet_16g', arch=arch, features_only=True, pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path))).eval()
    with torch.no_grad():
        maps = model(golden['input'])
    for out, official in zip(maps, golden['stage_outputs']):
        assert rel_err(out, official) < 1e-5


def test_pretrained_state_dict_and_other_class_counts(tmp_path):
    """The same filter for ``pretrained_cfg_overlay=dict(state_dict=...)``;
    a head of another class count is left out (timm's rule), the backbone
    loads; a file of another arch is refused naming the keys."""
    golden = load_golden('stl')
    arch = arch_from_official(golden['config'])
    ref = timm.create_model('glnet_stl', arch=arch, num_classes=10)
    ref.load_pretrained(dict(model=golden['state_dict']))
    # timm's rule for a state dict: heads of the class count of the
    # pretrained_cfg (the file's: 10 here), else left out
    model = timm.create_model(
        'glnet_stl', arch=arch, num_classes=10, pretrained=True,
        pretrained_cfg_overlay=dict(state_dict=golden['state_dict'],
                                    num_classes=10))
    for key, value in ref.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    path = official_file(tmp_path / 'glnet_stl.pth', golden)
    three = timm.create_model('glnet_stl', arch=arch, num_classes=3,
                              pretrained=True,
                              pretrained_cfg_overlay=dict(file=path))
    assert torch.equal(three.norm.running_mean, ref.norm.running_mean)
    assert torch.equal(three.stages[3].blocks[0].mlp[0].weight,
                       ref.stages[3].blocks[0].mlp[0].weight)
    assert three.head.weight.shape == (3, 128)
    with pytest.raises(CheckpointError, match='does not fit'):
        timm.create_model('glnet_4g', arch=arch_from_official(
            load_golden('4g')['config']), pretrained=True,
            pretrained_cfg_overlay=dict(file=path))


def test_pretrained_without_a_file_says_where_the_weights_are():
    with pytest.raises(ValueError, match=r'pretrained_cfg_overlay=dict\('
                       r"file='PATH/glnet_4g_tklb.pth'\)"):
        timm.create_model('glnet_4g_tklb', pretrained=True)


def test_default_cfg():
    """timm's test_model_default_cfgs: input size, mean, std, crop, the
    first conv and the classifiers name real modules; the weights' pages
    are the model index's."""
    pages = official_checkpoints()
    for name, arch in NAMES.items():
        model = timm.create_model(name, arch='toy' if 'stl' in arch else
                                  dict(base=arch, depths=[1, 1, 2, 1],
                                       channels=[32, 64, 96, 128]))
        cfg = model.default_cfg
        assert cfg['input_size'] == (3, 224, 224)
        assert cfg['mean'] == timm.data.IMAGENET_DEFAULT_MEAN
        assert cfg['std'] == timm.data.IMAGENET_DEFAULT_STD
        assert cfg['crop_pct'] == 0.875 and cfg['interpolation'] == 'bicubic'
        assert cfg['num_classes'] == 1000 == model.num_classes
        conv = model.get_submodule(cfg['first_conv'])
        assert isinstance(conv, torch.nn.Conv2d) and conv.in_channels == 3
        heads = cfg['classifier']
        heads = (heads, ) if isinstance(heads, str) else heads
        assert set(heads) == ({'head', 'tklb_aux_head'} if 'tklb' in name
                              else {'head'})
        for head in heads:
            assert model.get_submodule(head).out_features == 1000
        index = name.replace('glnet_', 'glnet-').replace('_', '-') + \
            '_3rdparty_in1k'
        assert cfg['origin_url'] == pages[index]


@pytest.fixture(scope='module')
def small():
    """GLNet-4G's switches (overlapping stem, mha_nchw blocks), tiny."""
    return dict(base='4g', depths=[1, 1, 2, 1], channels=[32, 64, 96, 128])


def test_forward_intermediates(small):
    """timm's forward_intermediates: indices (None all, int last n, list),
    norm (the final BatchNorm on the last map), stop_early,
    intermediates_only; the maps GLNet's."""
    model = timm.create_model('glnet_4g', arch=small).eval()
    backbone = backbone_like(model, small)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = backbone(x)
        final, maps = model.forward_intermediates(x)
        assert torch.equal(final, model.forward_features(x))
        assert len(maps) == 4
        for out, expected in zip(maps, ref):
            assert torch.equal(out, expected)
        two = model.forward_intermediates(x, indices=2,
                                          intermediates_only=True)
        assert [torch.equal(a, b) for a, b in zip(two, ref[2:])] == [1, 1]
        picked = model.forward_intermediates(x, indices=[0, -2],
                                             stop_early=True)[1]
        assert torch.equal(picked[0], ref[0]) and torch.equal(picked[1],
                                                              ref[2])
        normed = model.forward_intermediates(x, indices=[3], norm=True)[1]
        assert torch.equal(normed[0], final)
        pooled = model.forward_head(final, pre_logits=True)
        assert pooled.shape == (2, 128)
        assert torch.equal(model.forward_head(final), model(x))
    for bad in (5, 0, [4], [], [0, -5], (1.5, )):
        with pytest.raises(ValueError, match='feature maps'):
            model.forward_intermediates(x, indices=bad)
    with pytest.raises(ValueError, match='NCHW'):
        model.forward_intermediates(x, output_fmt='NHWC')


def test_prune_intermediate_layers(small):
    model = timm.create_model('glnet_4g', arch=small).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model.forward_intermediates(x, intermediates_only=True)
    assert model.prune_intermediate_layers([0, 1]) == [0, 1]
    assert len(model.stages) == len(model.downsample_layers) == 2
    assert model.num_classes == 0 and isinstance(model.norm, torch.nn.Identity)
    with torch.no_grad():
        maps = model.forward_intermediates(x, [0, 1], intermediates_only=True)
    assert all(torch.equal(a, b) for a, b in zip(maps, ref[:2]))


def test_features_only_out_indices(small):
    model = timm.create_model('glnet_4g', arch=small, features_only=True,
                              out_indices=(1, -1)).eval()
    assert model.feature_info.channels() == [64, 128]
    assert model.feature_info.reduction() == [8, 32]
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == [64, 128]
    # the stages after the last one taken are pruned away
    shallow = timm.create_model('glnet_4g', arch=small, features_only=True,
                                out_indices=(0, 1))
    assert len(shallow.model.stages) == 2
    for bad in ((0, 4), (7, ), 5):
        with pytest.raises(ValueError, match=r'stage numbers in \[-4, 4\)'):
            timm.create_model('glnet_4g', arch=small, features_only=True,
                              out_indices=bad)


def test_classifier_contract(small):
    """forward_features / forward_head / reset_classifier / num_classes /
    get_classifier, and what they refuse."""
    model = timm.create_model('glnet_9g_tklb', arch=small, num_classes=7)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        assert model.forward_features(x).shape == (2, 128, 2, 2)
        model.reset_classifier(0)
        assert model.num_classes == 0 and model(x).shape == (2, 128)
        model.reset_classifier(5)
        assert model(x).shape == (2, 5)
        assert model.get_classifier() is model.head
        assert model.tklb_aux_head.out_features == 5
        model.reset_classifier(0, '')
        assert model(x).shape == (2, 128, 2, 2)
    with pytest.raises(ValueError, match="'avg' or ''"):
        model.reset_classifier(3, 'max')
    with pytest.raises(ValueError, match='needs num_classes=0'):
        model.reset_classifier(3)
    with pytest.raises(ValueError, match='sets .*out_norm_cfg'):
        timm.create_model('glnet_stl', out_norm_cfg=dict(type='BN'))


def test_forward_backward_and_grad_checkpointing(small):
    """timm's test_model_backward (every parameter gets a gradient) and
    set_grad_checkpointing: the same gradients."""
    torch.manual_seed(0)
    model = timm.create_model('glnet_4g_tklb', arch=small, num_classes=5)
    x = torch.randn(2, 3, 64, 64)

    def grads():
        model.zero_grad()
        model(x).logsumexp(-1).sum().backward()
        return {k: p.grad.clone() for k, p in model.named_parameters()}

    plain = grads()
    assert all(g is not None for g in plain.values())
    assert len(plain) == len(list(model.parameters()))
    model.set_grad_checkpointing(True)
    assert model.with_cp
    for key, grad in grads().items():
        assert torch.equal(grad, plain[key]), key


def test_features_model_is_one_graph(small):
    """torch.compile (timm's models are scripted or compiled; GLNet does not
    script: mmengine's BaseModule and the ONNX-export switches): the
    features_only model traces as one graph, no breaks."""
    import torch._dynamo as dynamo
    dynamo.reset()
    model = timm.create_model('glnet_4g', arch=small, features_only=True)
    with torch.no_grad():
        explained = dynamo.explain(model.eval())(torch.randn(1, 3, 64, 64))
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


# --- the clients that use timm --------------------------------------------


def test_transformers_auto_backbone():
    """transformers' ``AutoBackbone`` with ``use_timm_backbone=True`` (a
    ``TimmBackboneConfig``) builds the timm model by name: GLNet's maps."""
    # the timm stack's (nox -s timm): beside it mmpretrain 1.2.0 fails to
    # import, so no OpenMMLab stack has it (docs/timm.md)
    pytest.importorskip('transformers', reason='transformers is not '
                        'installed (the timm stack has it: docs/timm.md)')
    from transformers import AutoBackbone, TimmBackboneConfig
    config = TimmBackboneConfig(backbone='glnet_stl', out_indices=(1, 2, 3),
                                use_pretrained_backbone=False)
    model = AutoBackbone.from_config(config).eval()
    assert list(model.channels) == [192, 384, 768]
    backbone = backbone_like(model._backbone.model, 'stl')
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps, ref = model(x).feature_maps, backbone(x)
    assert len(maps) == 3
    for out, expected in zip(maps, ref[1:]):
        assert torch.equal(out, expected)


TIMM_TOY_CONFIG = osp.join(REPO, 'configs', 'detection', 'timm',
                           'mask-rcnn_glnet-toy-timm_fpn_1xb4-12e_toy-coco.py')


def test_toy_mask_rcnn_through_mmpretrain_timm_backbone(tmp_path):
    """mmpretrain's ``TIMMBackbone`` (``glnet_stl`` with the toy arch,
    features_only) in mmdet's toy Mask R-CNN: it trains (4 iterations of 2
    images: the loss falls and the backbone's weights move) and its maps
    stay GLNet's."""
    needs('mmdet')
    needs('mmpretrain')
    from mmengine.config import Config
    from mmengine.runner import Runner

    from train_utils import train_on_threads

    from glnet_mm.datasets.toy_coco import make_toy_coco
    root = str(tmp_path / 'toy_coco')
    make_toy_coco(root, num_train=2, num_val=1)
    cfg = Config.fromfile(TIMM_TOY_CONFIG)
    cfg.train_dataloader.dataset.data_root = root + '/'
    cfg.train_dataloader.batch_size = 2
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=4)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # train only
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0)]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = None  # nothing reads one
    runner = Runner.from_cfg(cfg)
    backbone = runner.model.backbone
    assert type(backbone).__name__ == 'TIMMBackbone'
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    train_on_threads(runner, 1)  # as the toy runs (test_detection_toy.py)
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 4 and np.isfinite(losses).all()
    assert losses[-2:].mean() < 0.9 * losses[:2].mean()
    moved = [k for k, v in backbone.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any('stages.0.blocks' in k for k in moved)
    assert any('downsample_layers.0' in k for k in moved)
    # its maps are GLNet's with the trained weights
    features = backbone.timm_model.eval()
    reference = backbone_like(features.model, 'toy')
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        for out, expected in zip(backbone(x), reference(x)):
            assert torch.equal(out, expected)
