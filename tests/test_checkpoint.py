"""Safe loading of official and OpenMMLab checkpoints, clear errors."""
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO, arch_from_official, load_golden, needs

from glnet_mm import GLNet, load_pretrained, safe_load
from glnet_mm.checkpoint.loading import CheckpointError
from glnet_mm.utils.compat import torch_at_least
from glnet_mm.checkpoint.unpickler import OpaqueObject, RefusedGlobal


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
    needs('omegaconf')  # writes the release's hydra DictConfig
    path = str(tmp_path_factory.mktemp('official') / 'glnet_stl.pth')
    official_like_checkpoint(path, golden_stl)
    return path


def test_official_checkpoint_loads_without_omegaconf(official_file):
    """omegaconf is made unimportable: the file still loads, with every
    entry of the release, and its hydra config is inert data (a stand-in
    named DictConfig; omegaconf is not imported)."""
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
    needs('mmdet')
    from mmdet.registry import MODELS
    model = MODELS.build(
        dict(type='GLNet', arch=arch_from_official(golden_stl['config']),
             out_norm_cfg=None,
             init_cfg=dict(type='Pretrained', checkpoint=official_file)))
    model.init_weights()
    w = golden_stl['state_dict']['downsample_layers.0.0.weight'] + 1
    torch.testing.assert_close(model.downsample_layers[0][0].weight, w)


def _evil(marker):
    """An object whose unpickling would run a shell command."""

    class Evil:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    return Evil()


ROUTES = ('safe_load', 'torch.load-zip', 'torch.load-legacy', 'init_cfg-url',
          'get_model-url')


@pytest.mark.parametrize('route', ROUTES)
def test_malicious_pickle_is_refused(route, tmp_path, request):
    """The one test of malicious pickles: a file whose unpickling would run
    a shell command is refused, naming ``os.system``, and runs nothing,
    whichever way it is read: ``safe_load`` of a local file; ``torch.load``
    inside ``safe_loading()`` whatever its caller passes (torch.hub passes
    ``weights_only=False``), in the zip and the legacy format, where plain
    weights still load; a URL through GLNet's ``init_cfg`` and through
    mmpretrain's ``get_model`` (mmengine's http loader unpickles with
    ``weights_only=False``; the configs' safe loading refuses)."""
    from glnet_mm.checkpoint.loading import safe_loading
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    if route.endswith('-url'):
        root, url = request.getfixturevalue('http_root')
        path = root / 'evil.pth'
    torch.save({'model': {}, 'state_dict': {}, 'x': _evil(marker)}, path,
               _use_new_zipfile_serialization=route != 'torch.load-legacy')
    if route == 'safe_load':
        with pytest.raises(CheckpointError, match='system'):
            safe_load(path)
    elif route.startswith('torch.load'):
        with safe_loading():
            with pytest.raises(RefusedGlobal, match='posix.system'):
                torch.load(path, weights_only=False)
            with pytest.raises(RefusedGlobal, match='posix.system'):
                torch.load(path, pickle_module=pickle)
        weights = {'w': torch.arange(3.)}
        torch.save(weights, path, _use_new_zipfile_serialization=(
            route == 'torch.load-zip'))
        with safe_loading():
            torch.testing.assert_close(torch.load(path)['w'], weights['w'])
    elif route == 'init_cfg-url':
        model = GLNet('stl', init_cfg=dict(type='Pretrained',
                                           checkpoint=f'{url}/evil.pth'))
        with pytest.raises(CheckpointError, match='system'):
            model.init_weights()
    else:
        from glnet_mm.apis import register_models
        get_model = needs('mmpretrain').get_model
        register_models()
        with pytest.raises(pickle.UnpicklingError, match='system'):
            get_model('glnet-4g_3rdparty_in1k', pretrained=f'{url}/evil.pth')
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
             state_dict=dict({f'backbone.{k}': v
                              for k, v in src.state_dict().items()},
                             **{'neck.conv.weight': torch.zeros(1)})), path)
    dst = GLNet(arch)
    missing, unexpected = load_pretrained(dst, str(path))
    assert not missing and not unexpected
    for a, b in zip(src.state_dict().values(), dst.state_dict().values()):
        assert torch.equal(a, b)


def test_mmengine_runner_checkpoint_loads(tmp_path):
    """What an mmengine runner saves (message hub with HistoryBuffers, numpy
    scalars and arrays) loads through mmengine's own loader, safely."""
    from glnet_mm.checkpoint.loading import safe_loading
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


def test_safe_loading_is_explicit_and_kept(official_file):
    """mmengine's own loader (``load_from``, ``resume``) reads through the
    restricted unpickler only once safe loading is turned on: by the config
    line ``custom_imports=dict(imports=['glnet_mm.checkpoint.process_wide'])``,
    never by ``import glnet_mm``. Before, torch's default applies: torch >= 2.6
    refuses the official file (``weights_only=True`` without the
    allow-list), older torch unpickles anything (``weights_only=False``).
    A ``safe_loading()`` block (every GLNet Pretrained init opens one) gives
    torch.load back on exit when it alone turned safe loading on, and does
    not take back the process-wide switch. One fresh process: torch.load
    as a fresh shell has it."""
    script = textwrap.dedent(f"""
        import os, sys, tempfile
        import torch
        from mmengine.config import Config
        from mmengine.runner.checkpoint import CheckpointLoader
        import glnet_mm
        from glnet_mm.checkpoint.loading import (safe_loading,
                                                 safe_loading_enabled)
        with safe_loading():
            print('block:', safe_loading_enabled(), torch.load.__module__)
        print('after the block:', safe_loading_enabled(),
              torch.load.__module__)
        try:
            ckpt = CheckpointLoader.load_checkpoint({official_file!r})
            print('loaded before:', type(ckpt['args']).__module__)
        except Exception as error:
            print('refused before:', type(error).__name__)
        cfg = os.path.join(tempfile.mkdtemp(), 'cfg.py')
        with open(cfg, 'w') as f:
            f.write("custom_imports = dict(imports=['glnet_mm.checkpoint.process_wide'])")
        Config.fromfile(cfg)
        print('enabled after:', safe_loading_enabled())
        ckpt = CheckpointLoader.load_checkpoint({official_file!r})
        print('loaded after:', sorted(ckpt)[:3], type(ckpt['args']).__name__,
              type(ckpt['args']).__module__)
        with safe_loading():
            pass
        print('after a block:', safe_loading_enabled(), torch.load.__module__)
    """)
    env = dict(os.environ)  # as a fresh shell: torch's own default
    env.pop('TORCH_FORCE_WEIGHTS_ONLY_LOAD', None)
    out = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines()
             if ' - mmengine - ' not in line]  # mmengine's log lines
    before = ('refused before: UnpicklingError' if torch_at_least(2, 6) else
              'loaded before: omegaconf.dictconfig')  # torch's own default
    assert lines == [
        'block: True glnet_mm.checkpoint.unpickler',
        'after the block: False torch.serialization', before,
        'enabled after: True',
        "loaded after: ['args', 'epoch', 'model'] DictConfig "
        "glnet_mm.checkpoint.unpickler",
        'after a block: True glnet_mm.checkpoint.unpickler']


def test_state_setting_and_extensions_are_refused(tmp_path):
    """The two ways around find_class: BUILD on an object that is not of an
    allowed class (here a torch function), and copyreg extension codes
    (their cache skips find_class: here it holds os.system)."""
    import copyreg
    # PROTO 2, GLOBAL torch._utils._rebuild_tensor_v2 (allowed), {'pwned': 1},
    # BUILD: would write into the function's __dict__
    build = (b'\x80\x02ctorch._utils\n_rebuild_tensor_v2\n'
             b'}X\x05\x00\x00\x00pwnedK\x01sb.')
    with pytest.raises(CheckpointError, match='sets the state'):
        safe_load(build)
    marker = tmp_path / 'pwned'
    command = f'touch {marker}'.encode()
    # PROTO 2, EXT2 0xfe01, BINUNICODE command, TUPLE1, REDUCE
    ext = (b'\x80\x02\x82\x01\xfeX' + len(command).to_bytes(4, 'little')
           + command + b'\x85R.')
    copyreg.add_extension('posix', 'system', 0xfe01)
    copyreg._extension_cache[0xfe01] = os.system
    try:
        with pytest.raises(CheckpointError, match='extension'):
            safe_load(ext)
    finally:
        copyreg.remove_extension('posix', 'system', 0xfe01)
    assert not marker.exists()


@pytest.mark.filterwarnings('ignore:`torch.jit:FutureWarning')  # torch 2.15
def test_torchscript_archive_is_refused(tmp_path):
    """torch.load hands TorchScript archives to torch.jit.load (code)."""
    path = tmp_path / 'scripted.pt'
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(CheckpointError, match='TorchScript'):
        safe_load(path)


def test_user_allowed_globals(tmp_path):
    """add_safe_globals lets a trusted class through, on every torch."""
    from glnet_mm.checkpoint import unpickler as safe_unpickler
    path = tmp_path / 'extra.pth'
    torch.save({'x': Trusted(3)}, path)
    with pytest.raises(CheckpointError, match='Trusted'):
        safe_load(path)
    saved = list(safe_unpickler._user_globals)
    safe_unpickler.add_safe_globals([Trusted])
    try:
        assert safe_load(path)['x'].value == 3
    finally:
        safe_unpickler._user_globals[:] = saved


class Trusted:
    """A user class for test_user_allowed_globals."""

    def __init__(self, value):
        self.value = value
