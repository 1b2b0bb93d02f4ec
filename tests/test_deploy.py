"""tools/deployment/deploy.py: GLNet models through mmdeploy, evaluated as
exported. Where mmdeploy runs (torch 2.1: the classic stack's checks), a
fresh run trains the toy Mask R-CNN and UPerNet briefly, exports them with
mmdeploy's torch2onnx and the deploy configs of configs/deploy/, runs them in
ONNX Runtime through mmdeploy's backend models over the toy COCO / toy ADE
and compares with PyTorch of the same weights: per image (boxes and scores
to 1e-3, masks' IoU >= 0.99, segmentation labels) and by CocoMetric /
IoUMetric (to 0.005). Everywhere: the tool refuses a stack where mmdeploy
does not run with the versions and the stack that does, and its adaptive
pooling (in place of mmdeploy's rewrite) equals PyTorch's.

GLNet itself through torch's TorchScript-based ONNX exporter, which mmdeploy
calls (``dynamo=False``; on every supported torch: the development stack
and the classic stack's checks): standard ONNX ops only, onnxruntime equal
to PyTorch at two sizes, and no export-only path missed or in-place path
taken while exporting or tracing (the dynamo exporter:
tests/test_export_onnx.py)."""
import io
import json
import os.path as osp
import warnings

import onnx
import onnxruntime as ort
import pytest
import test_export_onnx as onnx_tests
import torch
import torch.nn.functional as F
from conftest import REPO, load_golden, load_tool
from mmengine.config import Config
from train_utils import DET_CONFIG, SEG_CONFIG, train, write_config

from glnet_mm.models.backbones import glmix
from glnet_mm.utils.compat import (is_exporting, is_recording, torch_at_least,
                                   torch_version)

tool = load_tool('deployment/deploy')

try:
    import mmdeploy  # noqa: F401
    HAVE_MMDEPLOY = True
except ImportError:
    HAVE_MMDEPLOY = False
deploy_stack = pytest.mark.skipif(
    not (HAVE_MMDEPLOY and torch_version() == tool.MMDEPLOY_TORCH),
    reason='mmdeploy 1.3.1 exports on torch 2.1 only: the classic stack '
    'runs this (noxfile.py)')
DEPLOY = osp.join(REPO, 'configs', 'deploy')


def test_refuses_a_stack_where_mmdeploy_does_not_run(tmp_path, monkeypatch):
    """At once, naming the versions and the stack that works; nothing is
    written."""
    if HAVE_MMDEPLOY:  # on the deploy stack: as if its torch were another
        monkeypatch.setattr(tool, 'MMDEPLOY_TORCH', (1, 0))
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as e:
        tool.main([osp.join(DEPLOY, 'instance-seg_onnxruntime_dynamic.py'),
                   DET_CONFIG, 'x.png', '--work-dir', str(out)])
    message = str(e.value)
    assert 'classic stack' in message and 'torch 2.1.2' in message
    if HAVE_MMDEPLOY:
        assert f'torch {torch.__version__}' in message
        assert f'mmdeploy {mmdeploy.__version__}' in message
    else:
        assert 'mmdeploy is not installed' in message
    assert not out.exists()


@pytest.mark.parametrize('size,bins', [((16, 16), 6), ((16, 16), 3),
                                       ((4, 5), 6), ((7, 9), (2, 4)),
                                       ((5, 5), (None, 2))])
def test_exact_adaptive_pooling(size, bins):
    """The pooling exported in place of mmdeploy's floor-kernel rewrite is
    F.adaptive_avg_pool2d, whatever the sizes (UPerNet's bins 3 and 6 on a
    16x16 map: where mmdeploy's rewrite pools other windows)."""
    x = torch.randn(2, 3, *size)
    torch.testing.assert_close(tool.exact_adaptive_pooling(x, bins),
                               F.adaptive_avg_pool2d(x, bins))


def short_training(tmp_path, base, body, data_root_keys, root):
    """Train ``base`` briefly on the toy data at ``root``; its last
    checkpoint."""
    options = '\n'.join(f'{k} = dict(dataset=dict(data_root={root!r}))'
                        for k in data_root_keys)
    config = write_config(tmp_path / 'short.py', base, body + '\n' + options)
    work = tmp_path / 'train'
    train(config, work)
    with open(work / 'last_checkpoint') as f:
        return config, f.read().strip()


def deploy(deploy_cfg, config, img, checkpoint, work_dir, *args):
    """The tool's report; its exit status must be 0. The tracer's warnings
    about Python values of sizes (GLNet's input checks) are expected while
    mmdeploy traces: the comparison at other sizes is what counts."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        code = tool.main([osp.join(DEPLOY, deploy_cfg), config, img,
                          '--checkpoint', checkpoint, '--work-dir',
                          str(work_dir), '--evaluate', *args])
    with open(work_dir / 'comparison.json') as f:
        report = json.load(f)
    assert code == 0, report['failures']
    return report


@deploy_stack
def test_toy_mask_rcnn_as_exported(tmp_path):
    """Mask R-CNN, trained 32 iterations (a model that detects something, so
    that CocoMetric means something): dynamic shapes (traced at mmdet's
    1333x800 test scale, evaluated on 160x160 images), standard ONNX ops
    only, the same detections and CocoMetric as PyTorch. Its RPN's NMS
    suppresses nothing here (IoU threshold 1.0, in the exported graph too):
    mmdeploy runs one NMS over all FPN levels where mmdet runs one per
    level (docs/deploy.md, "The RPN"), which moves this weak model's
    low-score detections (Intel CPU: bbox mAP_s 0.067 PyTorch, 0.053
    exported); without it the two are the same computation, so every
    metric must agree."""
    from glnet_mm.datasets.toy_coco import make_toy_coco
    root = str(tmp_path / 'toy_coco') + '/'
    make_toy_coco(root, num_train=32, num_val=6)
    ann = root + 'annotations/instances_val.json'
    config, ckpt = short_training(
        tmp_path, DET_CONFIG,
        'param_scheduler = []\ntrain_cfg = dict(max_epochs=4, '
        'val_interval=100)\n'
        'model = dict(test_cfg=dict(rpn=dict(nms=dict(iou_threshold=1.0))))\n'
        f'test_evaluator = dict(ann_file={ann!r})\n'
        'val_evaluator = test_evaluator',
        ('train_dataloader', 'val_dataloader', 'test_dataloader'), root)
    report = deploy('instance-seg_onnxruntime_dynamic.py', config,
                    root + 'val/000000.png', ckpt, tmp_path / 'ort',
                    '--compare', root + 'val/000001.png')
    assert set(report['onnx_ops']) == {''}  # standard ONNX ops only
    images = report['evaluate']
    assert len(images) == 6
    # the detections compared one to one (a weak model: some images have
    # none above 0.3; the top one of each image that has any)
    assert sum(c['compared'] for c in images.values()) >= 3
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50'):
        ref, out = report['metrics'][key]
        assert abs(ref - out) <= 0.005
    worst = report['evaluate_worst']
    assert worst['unmatched'] == 0 and worst['box_max_abs'] <= 1e-3
    assert worst['score_max_abs'] <= 1e-3 and worst['mask_min_iou'] >= .99
    print('toy Mask R-CNN, exported vs PyTorch:', worst, report['metrics'])


@deploy_stack
def test_toy_upernet_as_exported(tmp_path):
    """UPerNet at mmdeploy's static shape (the toy test images' 128x160):
    the same labels per pixel and the same IoUMetric as PyTorch."""
    from glnet_mm.datasets.toy_ade import make_toy_ade
    root = str(tmp_path / 'toy_ade')
    make_toy_ade(root, num_train=16, num_val=4)
    config, ckpt = short_training(
        tmp_path, SEG_CONFIG,
        'param_scheduler = []\ntrain_cfg = dict(max_iters=8, '
        'val_interval=1000)\n'
        'default_hooks = dict(checkpoint=dict(interval=8))',
        ('train_dataloader', 'val_dataloader', 'test_dataloader'), root)
    report = deploy('segmentation_onnxruntime_static-128x160.py', config,
                    osp.join(root, 'images', 'validation',
                             'toy_val_00000.jpg'), ckpt, tmp_path / 'ort')
    assert set(report['onnx_ops']) == {''}
    assert len(report['evaluate']) == 4
    assert report['evaluate_worst']['label_agreement'] >= .999
    for key in ('mIoU', 'aAcc'):
        ref, out = report['metrics'][key]
        assert abs(ref - out) <= 0.005
    print('toy UPerNet, exported vs PyTorch:', report['metrics'])


@deploy_stack
def test_benchmark_times_the_whole_model_in_onnxruntime():
    """tools/analysis_tools/benchmark.py ``--backend onnxruntime`` on a
    detector and a segmentor (the toy Mask R-CNN and UPerNet, random
    weights): each exported whole through mmdeploy (deploy.py's export, its
    rewriters, configs/deploy/) and timed beside PyTorch in the same rounds
    on the same input and threads. The UPerNet's labels equal PyTorch's on
    every pixel; the Mask R-CNN's detections are compared as deploy.py
    compares them (random heads: mmdeploy's one-NMS RPN keeps other weak
    proposals, docs/deploy.md, so only the figures' presence is checked
    here; the trained toy model's agreement: the tests above)."""
    bench = load_tool('analysis_tools/benchmark')
    common = ['--size', '128', '160', '--smoke', '--threads', '1',
              '--backend', 'onnxruntime']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        seg = bench.main(['segmentor', '--models', f'toy={SEG_CONFIG}',
                          *common])
        det = bench.main(['detector', '--models', f'toy={DET_CONFIG}',
                          *common])
    for rows in (seg, det):
        assert [(r['model'], r['backend']) for r in rows] == [
            ('toy', 'pytorch'), ('toy (onnxruntime)', 'onnxruntime')]
        assert rows[1]['ort_vs_pytorch'] == pytest.approx(
            rows[1]['images_per_s'] / rows[0]['images_per_s'])
    assert seg[1]['ort_label_agreement'] == 1.0
    assert det[1]['ort_compared'] >= 1
    assert {'ort_unmatched', 'ort_box_max_abs', 'ort_score_max_abs'} <= set(
        det[1])
    print('toy UPerNet, toy Mask R-CNN in ONNX Runtime vs PyTorch:',
          seg[1], det[1])


@deploy_stack
def test_gpu_check_trt_step_engine_path_on_the_cpu(tmp_path):
    """tools/misc/gpu_check.py's trt step with ONNX Runtime engines in place
    of TensorRT's (``--onnxruntime``; no GPU here): the toy Mask R-CNN and
    UPerNet exported by deploy.py, built by mmdeploy's task processor, run
    and timed beside PyTorch fp32 and AMP (bf16: the UPerNet; mmcv's CPU NMS
    takes fp32 only, which the detector's entry says), compared with PyTorch
    fp32 (an fp32 engine: the top detection and every pixel's label equal);
    exit status 0. The TensorRT engines themselves: docs/deploy.md."""
    gpu_check = load_tool('misc/gpu_check')
    out = tmp_path / 'trt.json'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        status = gpu_check.main([
            'trt', '--device', 'cpu', '--work', str(tmp_path / 'work'),
            '--out', str(out), '--toy', '--onnxruntime', '--images', '1',
            '--rounds', '1', '--warmup', '0'])
    result = json.loads(out.read_text())
    assert status == 0, result['failures']
    assert result['missing'] == [] and result['failures'] == []
    det, seg = result['models'].values()
    for entry in (det, seg):
        assert entry['engine'] == 'onnxruntime (fp32 stand-in)'
        assert entry['build_s'] > 0 and entry['engine_speedup_vs_fp32'] > 0
        assert entry['engine_vs_fp32']['within_limits']
        assert osp.isfile(entry['engine_files'][0])
    assert det['engine_vs_fp32']['compared'] >= 1
    assert det['engine_vs_fp32']['unmatched'] == 0
    assert det['engine_vs_fp32']['mask_min_iou'] >= .99
    assert 'BFloat16' in det['amp_error']
    assert seg['engine_vs_fp32']['label_agreement'] == 1.0
    assert seg['engine_vs_fp32']['label_miou'] == 1.0
    assert seg['engine_speedup_vs_amp'] > 0
    print('gpu_check trt, ONNX Runtime stand-in:', det, seg)


def torchscript_export(module, x, opset=14):
    """``torch.onnx.export`` with the TorchScript-based exporter (opset 14:
    the first with scaled_dot_product_attention), batch, height and width
    dynamic, under no_grad as mmdeploy exports. The tracer's warnings about
    Python values of sizes (GLNet's input checks) are expected here: the
    outputs at another size show that nothing size-dependent was frozen."""
    f = io.BytesIO()
    kwargs = dict(dynamo=False) if torch_at_least(2, 5) else {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(module, (x, ), f, opset_version=opset,
                          input_names=['input'], dynamic_axes=dict(
                              input={0: 'batch', 2: 'height', 3: 'width'}),
                          **kwargs)
    return f.getvalue()


@pytest.mark.parametrize('family', sorted(onnx_tests.CASES))
def test_torchscript_exporter_matches_pytorch(family, tmp_path):
    """The exporter that knew neither GLNet's export-only pooling nor its
    in-place paths (a graph 1.1 off in relative error, or no export at all
    on a dynamic size): now standard ONNX ops only, and onnxruntime equal to
    PyTorch at the traced size and at another one (batch 3, 200 x 232, not
    a multiple of 32)."""
    golden_name, base, what = onnx_tests.CASES[family]
    golden = load_golden(golden_name)
    ckpt = tmp_path / 'golden.pth'
    torch.save(dict(model=golden['state_dict']), ckpt)
    config = onnx_tests.golden_config(tmp_path, golden, base,
                                      what == 'classifier')
    module, exported, _ = onnx_tests.tool.build_model(
        Config.fromfile(config), str(ckpt))
    assert exported == what
    x = golden['input']
    model = onnx.load_from_string(torchscript_export(module, x))
    assert {n.domain for n in model.graph.node} <= {'', 'ai.onnx'}
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=['CPUExecutionProvider'])
    errors = {}
    for x in (x, torch.randn(3, 3, 200, 232)):
        errors[tuple(x.shape)] = onnx_tests.max_rel_err(
            onnx_tests.outputs(session, x), onnx_tests.reference(module, x))
    print(f'{family} TorchScript exporter, max relative error: {errors}')
    assert max(errors.values()) < onnx_tests.TOLERANCE, errors


class _Probe(torch.nn.Module):
    """Records what the model code sees while it runs."""

    def forward(self, x):
        self.seen = dict(exporting=is_exporting(), recording=is_recording(),
                         in_place=glmix.can_add_in_place(x, x * 2))
        return glmix.GELU()(x * 2)


def test_export_and_tracing_are_detected():
    """is_exporting is true under each exporter, and then no in-place path
    is taken; a plain torch.jit.trace (mmengine's FLOP counter) keeps the
    eager kernels but takes no in-place path either; eager runs keep them."""
    probe, x = _Probe(), torch.randn(1, 4)
    exporting = dict(exporting=True, recording=True, in_place=False)
    with torch.no_grad():
        probe(x)
        assert probe.seen == dict(exporting=False, recording=False,
                                  in_place=True)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            torch.jit.trace(probe, x, check_trace=False)
        assert probe.seen == dict(exporting=False, recording=True,
                                  in_place=False)
        torchscript_export(probe, torch.randn(1, 3, 4, 4))
        assert probe.seen == exporting
        if torch_at_least(2, 6):  # the dynamo exporter's torch.export
            torch.export.export(probe, (x, ))
            assert probe.seen == exporting

def test_refuses_a_checkpoint_that_does_not_fit(tmp_path):
    """No export of half-loaded weights: a file of another model is an error
    naming what is missing, and a backbone-only file is pointed to the
    config's init_cfg; nothing is written."""
    from mmengine.config import Config
    config = Config.fromfile(DET_CONFIG)
    wrong = tmp_path / 'backbone_only.pth'
    torch.save(dict(state_dict={'backbone.stem.weight': torch.zeros(1)}),
               wrong)
    out = tmp_path / 'pytorch.pth'
    with pytest.raises(ValueError, match='does not fit') as e:
        tool.build_weights(config, str(wrong), str(out))
    assert 'missing' in str(e.value) and 'init_cfg' in str(e.value)
    assert not out.exists()


def test_keeps_a_non_empty_work_dir(tmp_path):
    (tmp_path / 'mine.txt').write_text('keep me')
    with pytest.raises(SystemExit, match='not empty'):
        tool.work_dir(str(tmp_path), force=False)
    assert tool.work_dir(str(tmp_path), force=True) == str(tmp_path)
    assert (tmp_path / 'mine.txt').read_text() == 'keep me'

def official_format_stl(path):
    """An official-format GLNet-STL file ({'model': state dict} with the
    release's keys and shapes, ../shared/reference/official_keys.json):
    GLNet's own initial values where it has the key, else small random
    values (the classifier head, which a detector drops)."""
    from conftest import reference_path

    from glnet_mm import GLNet
    with open(reference_path('official_keys.json')) as f:
        keys = json.load(f)['glnet_stl']['state_dict']
    own = GLNet(arch='stl').state_dict()
    state = {}
    for key, shape in keys.items():
        if key in own and list(own[key].shape) == shape:
            state[key] = own[key]
        elif key.endswith('num_batches_tracked'):
            state[key] = torch.zeros(shape, dtype=torch.long)
        else:
            state[key] = torch.rand(shape) if key.endswith(
                'running_var') else torch.randn(shape) * .02
    torch.save(dict(model=state), path)
    return str(path)


@deploy_stack
def test_full_size_mask_rcnn_from_an_official_file(tmp_path):
    """The GLNet-STL Mask R-CNN of configs/detection, its backbone from an
    official-format file (docs/deploy.md's command, no detector checkpoint:
    random heads, a low score threshold so that they detect), exported with
    dynamic shapes and compared on real-size images (640x480, resized by
    mmdet's test pipeline to 1067x800): standard ONNX ops, the top
    detection of each image with its box, score and mask."""
    from glnet_mm.datasets.toy_coco import make_toy_coco
    official = official_format_stl(tmp_path / 'glnet_stl.pth')
    root = tmp_path / 'real'
    make_toy_coco(str(root), num_train=1, num_val=2, size=(480, 640))
    images = sorted(str(p) for p in (root / 'val').glob('*.png'))
    config = osp.join(REPO, 'configs', 'detection',
                      'mask-rcnn_glnet-stl_fpn_1x_coco.py')
    work = tmp_path / 'ort'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        code = tool.main([
            osp.join(DEPLOY, 'instance-seg_onnxruntime_dynamic.py'), config,
            images[0], '--work-dir', str(work), '--compare', *images,
            '--cfg-options', f'model.backbone.init_cfg.checkpoint={official}',
            'model.test_cfg.rcnn.score_thr=0.005'])
    with open(work / 'comparison.json') as f:
        report = json.load(f)
    assert code == 0, report['failures']
    assert set(report['onnx_ops']) == {''}
    assert [c['compared'] for c in report['compare'].values()] == [1, 1]
    worst = report['compare_worst']
    assert worst['box_max_abs'] <= 1e-3 and worst['mask_min_iou'] >= .99
    print('full-size Mask R-CNN, exported vs PyTorch:', worst,
          report['compare_seconds'])
