"""The model zoo from mmpretrain's side: the token-labeling classifiers,
models by name (``mmpretrain.get_model``), official files converted or
refused on load, local files and URLs, and the packaged model index that
``mim search`` reads."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import (REPO, arch_from_official, load_golden, load_tool,
                      needs, reference_path)
from mmengine.config import Config

needs('mmpretrain')  # the whole file is mmpretrain's side
import glnet_mm.models.heads  # noqa: E402
from glnet_mm.apis import register_models
from glnet_mm.utils.flops import count_flops, count_params
from glnet_mm import checkpoint_filter_fn
from glnet_mm.checkpoint.loading import CheckpointError
from glnet_mm.models.backbones.checkpoint_filter import (
    classifier_state_dict, split_weights)

REGISTERED = register_models()  # the head and the models by name

CONFIGS = osp.join(REPO, 'configs', 'classification')
TKLB = {'4g': 84.4, '9g': 85.3}  # official top-1
OFFICIAL_PAGE = 'https://1drv.ms/u/'


def rel_err(out, ref):
    return ((out - ref).abs().max() / ref.abs().max()).item()


def get_model(*args, **kwargs):
    from mmpretrain import get_model
    return get_model(*args, **kwargs)


def golden_overrides(golden, num_classes=10):
    """``get_model`` keyword arguments that shrink a released config to the
    golden model's switches."""
    arch = arch_from_official(golden['config'])
    return dict(backbone=dict(arch=dict(_delete_=True, **arch)),
                head=dict(num_classes=num_classes,
                          in_channels=arch['channels'][-1]))


def write_official(path, golden, **extra):
    """A file laid out like a release: the weights under ``model``."""
    torch.save(dict(model=golden['state_dict'], epoch=299, **extra), path)
    return str(path)


@pytest.fixture(scope='module')
def golden_tklb():
    return load_golden('4g_tklb')


@pytest.fixture(scope='module')
def golden_4g():
    return load_golden('4g')


@pytest.fixture(scope='module')
def tklb_keys():
    with open(reference_path('official_keys_tklb.json')) as f:
        return json.load(f)


# --- token labeling ------------------------------------------------------


@pytest.mark.parametrize('size', TKLB)
def test_tklb_config(size):
    cfg = Config.fromfile(
        osp.join(CONFIGS, f'glnet-{size}-tklb_3rdparty_in1k.py'))
    shared = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'glnet.py'))
    assert cfg.custom_imports['imports'] == \
        shared.glnet_custom_imports.imports + ['glnet_mm.models.heads']
    assert cfg.model.neck is None
    assert cfg.model.head.type == 'TokenLabelingClsHead'
    assert cfg.model.head.aux_weight == 0.5
    assert cfg.model.backbone.arch == size
    assert cfg.model.backbone.out_indices == (3, )
    assert cfg.model.backbone.out_norm_cfg == dict(type='BN')
    assert cfg.load_from == f'checkpoints/glnet_{size}_tklb.pth'


@pytest.mark.parametrize('size', TKLB)
def test_tklb_params_and_keys(size, tklb_keys):
    """Parameter counts and every released key and shape, exactly."""
    ref = tklb_keys[f'glnet_{size}_tklb']
    model = get_model(f'glnet-{size}-tklb_3rdparty_in1k')
    assert count_params(model) == ref['params_total']
    assert count_params(model.backbone) == ref['params_without_heads']
    converted = checkpoint_filter_fn(
        {k: torch.empty(s) for k, s in ref['state_dict'].items()},
        model.backbone, classifier=True)
    own = model.state_dict()
    assert set(converted) == set(own)
    for key, tensor in converted.items():
        assert tuple(own[key].shape) == tuple(tensor.shape), key
    # the model zoo's numbers are the built model's
    from mmpretrain.apis import ModelHub
    meta = ModelHub.get(f'glnet-{size}-tklb_3rdparty_in1k').metadata
    assert meta.parameters == ref['params_total']
    assert meta.flops == count_flops(model)


def test_tklb_golden_logits_through_image_classifier(golden_tklb, tmp_path):
    """The official evaluation output of the golden token-labeling model,
    through mmpretrain's ImageClassifier built from the tklb config, the
    file loaded as released (converted on load, strict)."""
    from mmengine.runner import load_checkpoint
    from mmpretrain.models import ImageClassifier
    path = write_official(tmp_path / 'glnet_4g_tklb.pth', golden_tklb)
    cfg = Config.fromfile(osp.join(CONFIGS, 'glnet-4g-tklb_3rdparty_in1k.py'))
    cfg.merge_from_dict(dict(model=golden_overrides(golden_tklb)))
    from mmpretrain.registry import MODELS
    model = MODELS.build(cfg.model)
    assert isinstance(model, ImageClassifier)
    load_checkpoint(model, path, map_location='cpu', strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(golden_tklb['input'])
    assert rel_err(logits, golden_tklb['logits']) < 1e-5
    # the token head matters: without it the logits are far off
    with torch.no_grad():
        pooled = model.head.fc(
            model.extract_feat(golden_tklb['input'])[-1].mean((2, 3)))
    assert rel_err(pooled, golden_tklb['logits']) > 1e-2


def test_tklb_head_is_evaluation_only():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')  # whatever scope an earlier test left
    head = MODELS.build(dict(type='TokenLabelingClsHead', num_classes=3,
                             in_channels=8))
    feats = (torch.randn(2, 8, 4, 5), )
    assert head(feats).shape == (2, 3)
    with pytest.raises(NotImplementedError, match='teacher labels'):
        head.loss(feats, [])
    with pytest.raises(ValueError, match='no neck'):
        head((torch.randn(2, 8), ))


def test_tklb_registration_does_not_override():
    from mmpretrain.registry import MODELS
    assert MODELS.get('TokenLabelingClsHead') is \
        glnet_mm.models.heads.TokenLabelingClsHead
    with pytest.raises(KeyError):
        MODELS.register_module('TokenLabelingClsHead',
                               module=glnet_mm.models.heads.tklb_cls_head.ClsHead)


# --- models by name ------------------------------------------------------


def test_models_are_listed():
    from mmpretrain import list_models
    names = set(list_models('glnet*'))
    expected = {f'glnet-{s}_3rdparty_in1k'
                for s in ('stl', 'stl-paramslot', '4g', '9g', '16g')}
    expected |= {f'glnet-{s}-tklb_3rdparty_in1k' for s in TKLB}
    assert expected <= names
    assert 'glnet-stl_16xb128_in1k' in names
    # registering again is a no-op
    assert set(REGISTERED) <= names
    assert register_models() == REGISTERED


def test_metafile_pages_and_top1():
    """Each released checkpoint: its official download page, the official
    code and the expected top-1."""
    from mmpretrain.apis import ModelHub
    top1 = dict(stl=82.5, **{'stl-paramslot': 82.1}, **{'4g': 83.7},
                **{'9g': 84.5, '16g': 85.0, '4g-tklb': 84.4, '9g-tklb': 85.3})
    for size, acc in top1.items():
        meta = ModelHub.get(f'glnet-{size}_3rdparty_in1k')
        assert meta.results[0].metrics['Top 1 Accuracy'] == acc
        source = meta.data['Converted From']
        assert source['Weights'].startswith(OFFICIAL_PAGE), size
        assert source['Code'] == 'https://github.com/rayleizhu/GLMix'
        assert meta.weights is None  # no direct download: pass the file
        assert isinstance(meta.config, Config)


def test_get_model_by_name_converts_an_official_file(golden_4g, tmp_path):
    path = write_official(tmp_path / 'glnet_4g.pth', golden_4g)
    model = get_model('glnet-4g_3rdparty_in1k', pretrained=path,
                      **golden_overrides(golden_4g))
    with torch.no_grad():
        logits = model(golden_4g['input'])
    assert rel_err(logits, golden_4g['logits']) < 1e-5


def test_get_model_by_config_path(golden_tklb, tmp_path):
    path = write_official(tmp_path / 'glnet_4g_tklb.pth', golden_tklb)
    model = get_model(osp.join(CONFIGS, 'glnet-4g-tklb_3rdparty_in1k.py'),
                      pretrained=path, **golden_overrides(golden_tklb))
    with torch.no_grad():
        logits = model(golden_tklb['input'])
    assert rel_err(logits, golden_tklb['logits']) < 1e-5


def test_get_model_prefers_ema(golden_4g, tmp_path):
    """``model_ema`` is taken when the file has it (GLNet-16G)."""
    noisy = {k: v + 1 if v.is_floating_point() else v
             for k, v in golden_4g['state_dict'].items()}
    path = tmp_path / 'glnet_4g.pth'
    torch.save(dict(model=noisy, model_ema=golden_4g['state_dict']), path)
    model = get_model('glnet-4g_3rdparty_in1k', pretrained=str(path),
                      **golden_overrides(golden_4g))
    with torch.no_grad():
        logits = model(golden_4g['input'])
    assert rel_err(logits, golden_4g['logits']) < 1e-5


def test_get_model_refuses_a_file_that_does_not_fit(golden_4g, tmp_path):
    """Another arch: an error naming the mismatch, no random model."""
    stl = load_golden('stl')
    path = write_official(tmp_path / 'glnet_stl.pth', stl)
    with pytest.raises(CheckpointError, match='does not fit'):
        get_model('glnet-4g_3rdparty_in1k', pretrained=path,
                  **golden_overrides(golden_4g))
    # the official final BatchNorm needs the official classifier layout
    path = write_official(tmp_path / 'glnet_4g.pth', golden_4g)
    with pytest.raises(CheckpointError, match="out_norm_cfg=dict"):
        get_model('glnet-4g_3rdparty_in1k', pretrained=path,
                  backbone=dict(arch=golden_overrides(golden_4g)['backbone']
                                ['arch'], out_norm_cfg=dict(type='LN2d')),
                  head=dict(num_classes=10, in_channels=128))


def test_mmpretrain_checkpoints_still_load(golden_4g, tmp_path):
    """A converted (mmpretrain-layout) file passes through untouched."""
    path = tmp_path / 'converted.pth'
    converted = classifier_state_dict(*split_weights(golden_4g['state_dict']))
    torch.save(dict(state_dict=converted, meta=dict()), path)
    model = get_model('glnet-4g_3rdparty_in1k', pretrained=str(path),
                      **golden_overrides(golden_4g))
    with torch.no_grad():
        logits = model(golden_4g['input'])
    assert rel_err(logits, golden_4g['logits']) < 1e-5


def test_get_model_from_a_url(golden_tklb, http_root, tmp_path):
    """A released-style file (with its hydra DictConfig) over HTTP:
    downloaded into $TORCH_HOME's checkpoint cache and converted: the
    golden logits."""
    needs('omegaconf')  # writes the release's hydra DictConfig
    root, url = http_root
    weights = tmp_path / 'weights.pth'
    torch.save(golden_tklb['state_dict'], weights)
    target = root / 'glnet_4g_tklb.pth'
    script = textwrap.dedent(f"""
        import torch
        from omegaconf import OmegaConf
        sd = torch.load({str(weights)!r}, weights_only=True)
        args = OmegaConf.create(dict(model='glnet_4g_tklb', drop_path=0.1))
        torch.save(dict(model=sd, epoch=299, args=args), {str(target)!r})
    """)
    subprocess.run([sys.executable, '-c', script], check=True)
    model = get_model('glnet-4g-tklb_3rdparty_in1k',
                      pretrained=f'{url}/glnet_4g_tklb.pth',
                      **golden_overrides(golden_tklb))
    with torch.no_grad():
        logits = model(golden_tklb['input'])
    assert rel_err(logits, golden_tklb['logits']) < 1e-5
    assert osp.isfile(tmp_path / 'torch_home' / 'hub' / 'checkpoints' /
                      'glnet_4g_tklb.pth')


# --- packaging for mim ---------------------------------------------------


def test_mim_search_lists_the_models(tmp_path):
    """``pip install .`` packages the model index and configs where mim
    looks (glnet_mm/.mim); ``mim search glnet_mm`` lists the classification,
    detection and segmentation models."""
    needs('mim')
    target = tmp_path / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
                    '--no-build-isolation', '--target', str(target), REPO],
                   check=True, capture_output=True)
    mim_dir = target / 'glnet_mm' / '.mim'
    assert (mim_dir / 'model-index.yml').is_file()
    assert not (mim_dir / 'configs').is_symlink()  # real files in the wheel
    assert (mim_dir / 'configs' / 'classification' /
            'glnet-9g-tklb_3rdparty_in1k.py').is_file()
    # both searches in one fresh process (the installed package first on
    # its path): `mim search glnet_mm --field top_1_accuracy`, then the
    # detection and segmentation models too (their metafiles; no top-1,
    # so a search without that field)
    env = dict(os.environ, PYTHONPATH=str(target))
    script = ('from mim.cli import cli\n'
              "for args in (['--field', 'top_1_accuracy'], []):\n"
              "    print('=== search', *args, flush=True)\n"
              "    cli.main(['search', 'glnet_mm', *args], "
              'standalone_mode=False)\n')
    result = subprocess.run([sys.executable, '-c', script], env=env,
                            capture_output=True, text=True,
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    _, top1, everything = result.stdout.split('=== search')
    for name in ('glnet-4g-tklb_3rdparty_in1k', 'glnet-9g-tklb_3rdparty_in1k',
                 'glnet-stl_3rdparty_in1k', 'glnet-16g_3rdparty_in1k'):
        assert f'config id: {name}' in top1, name
    assert '85.3' in top1
    for name in ('mask-rcnn_glnet-stl_fpn_1x_coco',
                 'dino-4scale_glnet-4g_8xb2-12e_coco',
                 'mask2former_glnet-stl_8xb2-lsj-50e_coco',
                 'upernet_glnet-stl_8xb2-160k_ade20k-512x512',
                 'mask2former_glnet-stl_8xb2-160k_ade20k-512x512'):
        assert f'config id: {name}' in everything, name


def test_tklb_file_initialises_a_backbone(golden_tklb, tmp_path):
    """Detection / segmentation: a token-labeling file initialises the
    GLNet-4G backbone like the regular one (same backbone weights)."""
    from glnet_mm import GLNet
    path = write_official(tmp_path / 'glnet_4g_tklb.pth', golden_tklb)
    backbone = GLNet(arch_from_official(golden_tklb['config']),
                     out_norm_cfg=None,
                     init_cfg=dict(type='Pretrained', checkpoint=path))
    backbone.init_weights()
    backbone.eval()
    with torch.no_grad():
        outs = backbone(golden_tklb['input'])
    for out, ref in zip(outs, golden_tklb['stage_outputs']):
        assert rel_err(out, ref) < 1e-5


def test_converted_tklb_file_loads_strictly(golden_tklb, tmp_path):
    """tools/model_converters/convert_official.py on a token-labeling file: an mmpretrain
    checkpoint of the tklb classifier (the token head under head.)."""
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS
    converter = load_tool('model_converters/convert_official')
    src = write_official(tmp_path / 'glnet_4g_tklb.pth', golden_tklb)
    dst = str(tmp_path / 'glnet-4g-tklb_3rdparty_in1k.pth')
    converter.convert(src, dst)
    cfg = Config.fromfile(osp.join(CONFIGS, 'glnet-4g-tklb_3rdparty_in1k.py'))
    cfg.merge_from_dict(dict(model=golden_overrides(golden_tklb)))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, dst, map_location='cpu', strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(golden_tklb['input'])
    assert rel_err(logits, golden_tklb['logits']) < 1e-5
