"""tools/deployment/export_onnx.py (torch's dynamo exporter, torch >= 2.6):
onnxruntime reproduces PyTorch for the GLNet-STL and GLNet-4G families (the
golden models: the released switches, fewer blocks), at the export size and,
with --dynamic, at other batches and sizes (one not divisible by 32). The
TorchScript-based exporter, which mmdeploy calls: tests/test_deploy.py."""
import os.path as osp

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import REPO, arch_from_official, load_golden, load_tool
from mmengine.config import Config

TOLERANCE = 1e-4
EXPORT_SIZE = (160, 224)  # the golden input size
# batch, H, W after the export: 200 x 232 is not divisible by 32
OTHER_SIZES = [(1, 224, 288), (3, 200, 232)]
CASES = {
    # family: (golden, config, what is exported)
    'stl': ('stl', 'configs/detection/mask-rcnn_glnet-stl_fpn_1x_coco.py',
            'backbone'),
    '4g': ('4g_tklb', 'configs/classification/glnet-4g-tklb_3rdparty_in1k.py',
           'classifier'),
}


tool = load_tool('deployment/export_onnx')


def golden_config(tmp_path, golden, base, classifier):
    """A config on top of ``base`` with the golden model's switches."""
    arch = arch_from_official(golden['config'])
    lines = [f'_base_ = {osp.join(REPO, base)!r}',
             f'model = dict(backbone=dict(arch=dict(_delete_=True, '
             f'**{arch!r}))']
    if classifier:
        lines[-1] += (f', head=dict(num_classes=10, '
                      f'in_channels={arch["channels"][-1]})')
    lines[-1] += ')'
    path = tmp_path / 'golden_config.py'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def outputs(session, x):
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})


def reference(module, x):
    with torch.no_grad():
        out = module(x)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out, ))]


def max_rel_err(onnx_outs, torch_outs):
    assert len(onnx_outs) == len(torch_outs)
    errors = []
    for o, t in zip(onnx_outs, torch_outs):
        assert o.shape == t.shape
        errors.append(float(np.abs(o - t).max() / np.abs(t).max()))
    return max(errors)


@pytest.fixture(scope='module', params=sorted(CASES))
def dynamic_export(request, tmp_path_factory):
    family = request.param
    golden_name, base, what = CASES[family]
    golden = load_golden(golden_name)
    tmp_path = tmp_path_factory.mktemp(f'onnx_{family}')
    ckpt = tmp_path / f'glnet_{golden_name}.pth'
    torch.save(dict(model=golden['state_dict']), ckpt)
    config = golden_config(tmp_path, golden, base, what == 'classifier')
    out = tmp_path / f'{family}.onnx'
    tool.main([config, '--checkpoint', str(ckpt), '--out', str(out),
               '--shape', *map(str, EXPORT_SIZE), '--dynamic'])
    module, exported, _ = tool.build_model(Config.fromfile(config),
                                           str(ckpt))
    assert exported == what
    return family, golden, module, str(out)


def test_dynamic_axes(dynamic_export):
    _, _, _, path = dynamic_export
    model = onnx.load(path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert len(dims) == 4
    assert dims[1].dim_value == 3
    for i in (0, 2, 3):  # batch, H, W
        assert dims[i].dim_param and not dims[i].dim_value, dims[i]


def test_onnxruntime_matches_pytorch(dynamic_export):
    family, golden, module, path = dynamic_export
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    x = golden['input']  # the export size, (2, 3, 160, 224)
    ref = reference(module, x)
    if family == '4g':  # the exported classifier is the official one
        assert max_rel_err(ref, [golden['logits'].numpy()]) < 1e-5
    else:  # the backbone's four stage outputs
        assert len(ref) == 4
    errors = {tuple(x.shape): max_rel_err(outputs(session, x), ref)}
    for batch, h, w in OTHER_SIZES:
        x = torch.randn(batch, 3, h, w)
        errors[tuple(x.shape)] = max_rel_err(outputs(session, x),
                                             reference(module, x))
    print(f'{family} onnxruntime vs PyTorch, max relative error: {errors}')
    assert max(errors.values()) < TOLERANCE, errors


def test_static_export_and_force(tmp_path):
    """A fixed-size graph of the backbone of a classifier config; an existing
    file is replaced only with --force."""
    golden = load_golden('4g')
    ckpt = tmp_path / 'glnet_4g.pth'
    torch.save(dict(model=golden['state_dict']), ckpt)
    config = golden_config(
        tmp_path, golden, 'configs/classification/glnet-4g_3rdparty_in1k.py',
        classifier=True)
    out = tmp_path / 'static.onnx'
    out.write_text('keep me')
    args = [config, '--checkpoint', str(ckpt), '--out', str(out), '--shape',
            '96', '128', '--backbone']
    with pytest.raises(SystemExit, match='exists'):
        tool.main(args)
    assert out.read_text() == 'keep me'
    tool.main(args + ['--force'])
    model = onnx.load(str(out))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 96, 128]
    module, what, names = tool.build_model(Config.fromfile(config), str(ckpt),
                                           backbone_only=True)
    assert what == 'backbone' and names == ['out0']
    session = ort.InferenceSession(str(out),
                                   providers=['CPUExecutionProvider'])
    x = torch.randn(1, 3, 96, 128)
    assert max_rel_err(outputs(session, x), reference(module, x)) < TOLERANCE


def test_refuses_a_checkpoint_that_does_not_fit(tmp_path):
    """No export of half-loaded weights: another arch's file is an error."""
    golden = load_golden('4g')
    ckpt = tmp_path / 'glnet_stl.pth'
    torch.save(dict(model=load_golden('stl')['state_dict']), ckpt)
    config = golden_config(
        tmp_path, golden, 'configs/classification/glnet-4g_3rdparty_in1k.py',
        classifier=True)
    out = tmp_path / 'x.onnx'
    with pytest.raises(ValueError, match='does not fit'):
        tool.main([config, '--checkpoint', str(ckpt), '--out', str(out),
                   '--shape', '64', '64'])
    assert not out.exists()


def test_refuses_a_config_without_glnet(tmp_path):
    config = tmp_path / 'resnet.py'
    config.write_text(
        "_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'\n")
    with pytest.raises(ValueError, match='not a GLNet'):
        tool.main([str(config), '--out', str(tmp_path / 'x.onnx'),
                   '--shape', '64', '64'])

