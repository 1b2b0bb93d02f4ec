"""Safe loading of official and OpenMMLab checkpoints, clear errors."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO, load_golden

from glnet_mm import GLNet, load_pretrained, safe_load
from glnet_mm.checkpoint import (CheckpointError, OpaqueObject,
                                 arch_from_official)


def official_like_checkpoint(path, golden):
    """Write a file shaped like an official release in a subprocess that has
    omegaconf: model + model_ema + optimizer + scaler + a hydra DictConfig."""
    torch.save(golden['state_dict'], f'{path}.weights')
    script = textwrap.dedent(f"""
        import torch
        from omegaconf import OmegaConf
        sd = torch.load({f'{path}.weights'!r}, weights_only=True)
        ema = {{k: v + 1 if v.is_floating_point() else v
               for k, v in sd.items()}}
        args = OmegaConf.create(dict(
            model=dict(name='glnet_stl', drop_path=0.1), lr=2e-3,
            epochs=300, output_dir=None, aug=dict(mixup=0.8, cutmix=1.0),
            nested=[1, 2, dict(a='b')]))
        opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])
        torch.save(dict(model=sd, model_ema=ema, optimizer=opt.state_dict(),
                        epoch=299, scaler={{'scale': 65536.0}}, args=args),
                   {path!r})
    """)
    subprocess.run([sys.executable, '-c', script], check=True)


@pytest.fixture(scope='module')
def golden_stl():
    return load_golden('stl')


@pytest.fixture(scope='module')
def official_file(tmp_path_factory, golden_stl):
    path = str(tmp_path_factory.mktemp('official') / 'glnet_stl.pth')
    official_like_checkpoint(path, golden_stl)
    return path


def test_official_checkpoint_loads_without_omegaconf(official_file):
    """omegaconf is made unimportable: the file still loads, the config is
    inert data, and the model gets the EMA weights."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules['omegaconf'] = None  # as if not installed
        from glnet_mm import safe_load
        ckpt = safe_load({official_file!r})
        assert ckpt['epoch'] == 299, ckpt['epoch']
        args = ckpt['args']
        assert type(args).__name__ == 'DictConfig', type(args)
        assert 'omegaconf' not in sys.modules or sys.modules['omegaconf'] is None
        print('OK', sorted(ckpt))
    """)
    out = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "OK ['args', 'epoch', 'model', 'model_ema', 'optimizer'" in out.stdout


def test_official_checkpoint_prefers_ema(official_file, golden_stl):
    model = GLNet(arch_from_official(golden_stl['config']))
    missing, unexpected = load_pretrained(model, official_file)
    # output norms 0-2 are not in a classifier checkpoint; norm3 is replaced
    # by the official final BatchNorm only when out_norm_cfg is BN
    assert {k.split('.')[0] for k in missing} <= {'norm0', 'norm1', 'norm2',
                                                  'norm3'}
    ref = golden_stl['state_dict']['stages.0.blocks.0.slot_scale']
    assert model.stages[0].blocks[0].slot_scale.item() == pytest.approx(
        ref.item() + 1)
    model = GLNet(arch_from_official(golden_stl['config']))
    load_pretrained(model, official_file, prefer_ema=False)
    assert model.stages[0].blocks[0].slot_scale.item() == pytest.approx(
        ref.item())


def test_args_survive_as_plain_data(official_file):
    args = safe_load(official_file)['args']
    assert isinstance(args, OpaqueObject)
    assert 'omegaconf.dictconfig.DictConfig' in repr(args)
    assert isinstance(args.state, dict) and '_content' in args.state


def test_init_cfg_pretrained_through_the_registry(official_file, golden_stl):
    from mmdet.registry import MODELS
    model = MODELS.build(
        dict(type='GLNet', arch=arch_from_official(golden_stl['config']),
             out_norm_cfg=None,
             init_cfg=dict(type='Pretrained', checkpoint=official_file)))
    model.init_weights()
    w = golden_stl['state_dict']['downsample_layers.0.0.weight'] + 1
    torch.testing.assert_close(model.downsample_layers[0][0].weight, w)


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / 'pwned'

    class Evil:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    path = tmp_path / 'evil.pth'
    torch.save({'model': {}, 'x': Evil()}, path)
    with pytest.raises(CheckpointError, match='system'):
        safe_load(path)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('hello')
    with pytest.raises(CheckpointError, match='not a readable PyTorch'):
        safe_load(path)
    with pytest.raises(FileNotFoundError, match='not found'):
        safe_load(tmp_path / 'missing.pth')


def test_wrong_arch_is_named(official_file, golden_stl):
    arch = dict(arch_from_official(golden_stl['config']),
                channels=[64, 64, 96, 128])
    with pytest.raises(CheckpointError, match='shape mismatches'):
        load_pretrained(GLNet(arch), official_file)
    deeper = dict(arch_from_official(golden_stl['config']),
                  depths=[2, 1, 2, 1])
    with pytest.raises(CheckpointError, match='backbone weights are missing'):
        load_pretrained(GLNet(deeper), official_file)
    with pytest.raises(CheckpointError, match='no GLNet weights'):
        load_pretrained(GLNet('stl'),
                        dict(state_dict={'fc.weight': torch.zeros(2)}))
    with pytest.raises(CheckpointError, match='No weights found'):
        load_pretrained(GLNet('stl'), dict(epoch=3))


def test_openmmlab_checkpoint_with_backbone_prefix(tmp_path, golden_stl):
    arch = arch_from_official(golden_stl['config'])
    src = GLNet(arch)
    path = tmp_path / 'detector.pth'
    torch.save(
        dict(meta=dict(epoch=1),
             state_dict={f'backbone.{k}': v
                         for k, v in src.state_dict().items()}
             | {'neck.conv.weight': torch.zeros(1)}), path)
    dst = GLNet(arch)
    missing, unexpected = load_pretrained(dst, str(path))
    assert not missing and not unexpected
    for a, b in zip(src.state_dict().values(), dst.state_dict().values()):
        assert torch.equal(a, b)


def test_mmengine_runner_checkpoint_loads(tmp_path):
    """What an mmengine runner saves (message hub with HistoryBuffers, numpy
    scalars and arrays) loads through mmengine's own loader, safely."""
    from glnet_mm.checkpoint import safe_loading
    import numpy as np
    from mmengine.logging import HistoryBuffer, MessageHub
    from mmengine.runner.checkpoint import CheckpointLoader
    hub = MessageHub.get_instance('glnet_mm_test')
    for value in (1.0, np.float64(2.0)):
        hub.update_scalar('train/loss', value)
    hub.update_info('shape', np.arange(3))
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(meta=dict(seed=np.int64(3), epoch=1),
                    message_hub=hub.state_dict(),
                    state_dict={'w': torch.ones(2)}), path)
    with safe_loading():
        ckpt = CheckpointLoader.load_checkpoint(str(path))
    loss = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss, HistoryBuffer) and loss.mean() == 1.5
    assert ckpt['meta']['seed'] == 3
    assert list(ckpt['message_hub']['runtime_info']['shape']) == [0, 1, 2]


def test_getattr_is_restricted(tmp_path):
    from mmengine.logging import HistoryBuffer

    class Sneaky:

        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    path = tmp_path / 'sneaky.pth'
    buffer = HistoryBuffer()
    buffer.update(1.0)
    torch.save({'meta': buffer, 'x': Sneaky()}, path)
    with pytest.raises(Exception, match='refused getattr'):
        safe_load(path)


def test_pretrained_over_http(http_root, official_file, golden_stl):
    """``init_cfg`` with an http URL downloads through mmengine's
    CheckpointLoader and loads the converted weights."""
    import shutil
    root, url = http_root
    shutil.copy(official_file, root / 'glnet_stl.pth')
    model = GLNet(arch_from_official(golden_stl['config']), out_norm_cfg=None,
                  init_cfg=dict(type='Pretrained',
                                checkpoint=f'{url}/glnet_stl.pth'))
    model.init_weights()
    w = golden_stl['state_dict']['downsample_layers.0.0.weight'] + 1  # EMA
    torch.testing.assert_close(model.downsample_layers[0][0].weight, w)


def test_downloads_are_loaded_safely(http_root, tmp_path):
    """mmengine downloads with ``weights_only=False``; through GLNet they
    are read with the same safe loading as local files."""
    root, url = http_root
    marker = tmp_path / 'pwned'

    class Evil:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    torch.save({'model': {}, 'x': Evil()}, root / 'evil.pth')
    model = GLNet('stl', init_cfg=dict(type='Pretrained',
                                       checkpoint=f'{url}/evil.pth'))
    with pytest.raises(CheckpointError, match='system'):
        model.init_weights()
    assert not marker.exists()


def test_safe_loading_is_explicit(official_file):
    """mmengine's own loader (``load_from``, ``resume``) reads an official
    file only once safe loading is turned on: by the config line
    ``custom_imports=dict(imports=['glnet_mm.safe_loading'])``, never by
    ``import glnet_mm``."""
    script = textwrap.dedent(f"""
        import os, sys, tempfile
        from mmengine.config import Config
        from mmengine.runner.checkpoint import CheckpointLoader
        import glnet_mm
        try:
            CheckpointLoader.load_checkpoint({official_file!r})
        except Exception as error:
            print('refused before:', type(error).__name__)
        cfg = os.path.join(tempfile.mkdtemp(), 'cfg.py')
        with open(cfg, 'w') as f:
            f.write("custom_imports = dict(imports=['glnet_mm.safe_loading'])")
        Config.fromfile(cfg)
        ckpt = CheckpointLoader.load_checkpoint({official_file!r})
        print('loaded after:', sorted(ckpt)[:3], type(ckpt['args']).__name__)
        print(os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD'])
    """)
    env = dict(os.environ)  # as a fresh shell: without the switch
    env.pop('TORCH_FORCE_WEIGHTS_ONLY_LOAD', None)
    out = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines()
             if ' - mmengine - ' not in line]  # mmengine's log lines
    assert lines == [
        'refused before: UnpicklingError',
        "loaded after: ['args', 'epoch', 'model'] DictConfig", '1']


def test_safe_loading_context_keeps_the_process_switch(tmp_path):
    """A safe_loading() block (every GLNet Pretrained init opens one) must
    not take back what enable_safe_loading() allowed for the process."""
    script = textwrap.dedent("""
        import torch
        from glnet_mm.checkpoint import (allowed_globals, enable_safe_loading,
                                         safe_loading)
        enable_safe_loading()
        with safe_loading():
            pass
        now = torch.serialization.get_safe_globals()
        print(all(g in now for g in allowed_globals()))
    """)
    out = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'True'
