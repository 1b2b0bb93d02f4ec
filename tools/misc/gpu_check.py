"""The GPU check's measurements; ``nox -s gpu_check`` (noxfile.py) makes
the environment on the machine's own torch and runs them in turn (docs/gpu.md);
each also runs alone:

    python tools/misc/gpu_check.py parity --device cuda --out parity.json
    python tools/misc/gpu_check.py seg --device cuda --iters 100 \\
        --work DIR --out seg.json
    python tools/misc/gpu_check.py det --device cuda --iters 100 \\
        --work DIR --out det.json
    python tools/misc/gpu_check.py trt --device cuda --work DIR --out trt.json
    python tools/misc/gpu_check.py report --steps steps.jsonl \\
        --out-json results.json --out-md results.md

* ``parity``: GLNet-STL and GLNet-4G (random weights) on ``--device`` against
  the CPU in fp32, all four outputs (TF32 off; with ``--device cpu`` there is
  nothing to compare, and it says so); fp16 and bf16 autocast outputs on
  ``--device``: finite and close to fp32 on the CPU.
* ``seg``: the toy UPerNet (configs/segmentation/upernet_glnet-toy_*.py, on
  a generated toy ADE) trained ``--iters`` iterations through mmengine's
  Runner, with ``AmpOptimWrapper`` on CUDA; then the same schedule with the
  GLNet-STL and mmseg's Swin-T backbones (``--models``: which of the
  three): s/iter and peak memory of each.
* ``det``: the toy Mask R-CNN (configs/detection/mask-rcnn_glnet-toy_*.py on
  a generated toy COCO), ``--iters`` iterations, AMP on CUDA. Needs mmcv's
  compiled ops (RoIAlign, NMS).
* ``trt``: the fp16 TensorRT engines of Mask R-CNN and UPerNet with
  GLNet-STL (configs/deploy/, through tools/deployment/deploy.py's mmdeploy
  export; seeded random weights, random images): build time, latency
  against PyTorch AMP and fp32 in interleaved rounds, agreement with
  PyTorch fp32 of the engine and of AMP. It needs a CUDA device, TensorRT 8
  (``tensorrt``) and mmdeploy 1.3.1 on torch 2.1 (docs/deploy.md); where
  one is missing, the PyTorch side still runs and is compared (``--toy``:
  the toy models at tiny sizes, for the dry run), the JSON names what is
  missing, and the step exits with status :data:`SKIPPED`, which the GPU
  check reports as skipped, not failed.
* ``plan``: the steps above with their arguments, as ``nox -s gpu_check``
  runs them (``--dry-run``: tiny sizes on the CPU, fewer models);
* ``report``: the JSON and Markdown of a whole check (standard library
  only, so it also runs where the install step failed); ``run_step``, which
  ``nox -s gpu_check`` imports to run the plan, is standard library too.

A step exits with status 1 when its check fails (parity beyond tolerance,
a loss that does not fall over >= 20 iterations, non-finite outputs, an
engine outside its limits); its JSON is written first.
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import statistics
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_SEG = osp.join(REPO, 'configs', 'segmentation',
                   'upernet_glnet-toy_1xb8-600iter_toy-ade-128x128.py')
TOY_DET = osp.join(REPO, 'configs', 'detection',
                   'mask-rcnn_glnet-toy_fpn_1xb4-12e_toy-coco.py')
SWIN_SEG = ('mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_'
            '8xb2-160k_ade20k-512x512.py')
SEG_MODELS = ['glnet-toy', 'glnet-stl', 'swin-t']  # seg's backbones
# relative error ||out - ref|| / ||ref|| allowed per precision
TOLERANCE = {'fp32': 1e-4, 'fp16': 2e-2, 'bf16': 6e-2}
# a loss "falls" when the mean of its last fifth is below this share of the
# mean of its first fifth; judged only on runs of >= MIN_ITERS_FOR_LOSS
LOSS_FALL = 0.8
MIN_ITERS_FOR_LOSS = 20


def write_json(path, data):
    if path:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(data, f, indent=2)
    print(json.dumps(data))


def rel_err(out, ref):
    return ((out.float() - ref.float()).norm() /
            ref.float().norm().clamp_min(1e-12)).item()


# ---------------------------------------------------------------- parity ---
def parity(args):
    import torch
    from glnet_mm import GLNet
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device_type = args.device.split(':')[0]
    result = dict(device=args.device, batch=args.batch, size=args.size,
                  tolerance=TOLERANCE, models={})
    failures = []
    for arch in ('stl', '4g'):
        torch.manual_seed(0)
        model = GLNet(arch=arch, out_indices=(0, 1, 2, 3)).eval()
        x = torch.randn(args.batch, 3, args.size, args.size)
        with torch.no_grad():
            ref = model(x)
            model = model.to(args.device)
            out = model(x.to(args.device))
        entry = dict(shapes=[list(r.shape) for r in ref],
                     fp32=[rel_err(o.cpu(), r) for o, r in zip(out, ref)])
        if device_type == 'cpu':  # the same model on the same device
            entry['fp32'] = 'not compared: --device is the CPU'
        elif max(entry['fp32']) > TOLERANCE['fp32']:
            failures.append(f'{arch} fp32 rel. error {max(entry["fp32"]):.3g}')
        for name, dtype in (('fp16', torch.float16), ('bf16', torch.bfloat16)):
            try:
                with torch.no_grad(), torch.autocast(device_type, dtype=dtype):
                    amp = model(x.to(args.device))
            except RuntimeError as err:  # e.g. a CPU without fp16 autocast
                entry[name] = dict(error=str(err).splitlines()[0])
                failures.append(f'{arch} {name}: {entry[name]["error"]}')
                continue
            finite = all(bool(torch.isfinite(a).all()) for a in amp)
            errors = [rel_err(a.cpu(), r) for a, r in zip(amp, ref)]
            entry[name] = dict(finite=finite, rel_err=errors)
            if not finite or max(errors) > TOLERANCE[name]:
                failures.append(f'{arch} {name}: finite={finite}, rel. error '
                                f'{max(errors):.3g}')
        result['models'][f'glnet-{arch}'] = entry
    result['failures'] = failures
    write_json(args.out, result)
    return 1 if failures else 0


# ------------------------------------------------------------ toy training ---
def _train(cfg, name, device, work):
    """Train one config with mmengine's Runner; losses, s/iter, memory."""
    import torch
    from mmengine.runner import Runner

    from glnet_mm.utils.flops import count_params
    cfg.work_dir = osp.join(work, name)
    cfg.experiment_name = f'gpu_check_{name}'  # its own MessageHub
    if device == 'cpu':
        cfg.env_cfg = dict(cfg.get('env_cfg', {}), cudnn_benchmark=False)
    runner = Runner.from_cfg(cfg)
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    runner.train()
    wall = time.perf_counter() - start
    hub = runner.message_hub
    losses = [float(v) for v in hub.get_scalar('train/loss').data[0]]
    times = [float(v) for v in hub.get_scalar('train/time').data[0]]
    steady = times[min(10, len(times) // 2):] or times
    fifth = max(1, len(losses) // 5)
    first = statistics.mean(losses[:fifth])
    last = statistics.mean(losses[-fifth:])
    return dict(
        iters=len(losses), wall_s=wall,
        s_per_iter=statistics.median(steady),
        peak_mem_gib=(torch.cuda.max_memory_allocated() / 2**30
                      if device.startswith('cuda') else None),
        loss_first=first, loss_last=last,
        loss_falls=last < LOSS_FALL * first,
        finite=all(math.isfinite(v) for v in losses),
        optim_wrapper=cfg.optim_wrapper.type,
        params_m=count_params(runner.model) / 1e6)


def _schedule(cfg, args):
    """An iteration loop of ``--iters`` with validation, test and
    checkpoints off, AMP on CUDA."""
    iters = args.iters
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters,
                         val_interval=iters + 1)
    for key in ('val', 'test'):
        cfg[f'{key}_cfg'] = None
        cfg[f'{key}_dataloader'] = None
        cfg[f'{key}_evaluator'] = None
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.pop('visualization', None)  # (None is refused)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10)
    warm = max(1, iters // 10)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
             end=warm)]
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.train_dataloader.num_workers = args.workers
    cfg.train_dataloader.persistent_workers = args.workers > 0
    if args.batch:
        cfg.train_dataloader.batch_size = args.batch
    if args.device.startswith('cuda'):
        # mmengine's AmpOptimWrapper: fp16 autocast + dynamic loss scaling
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.randomness = dict(seed=0)


def seg(args):
    from mmengine.config import Config
    from mmengine.hub import get_config

    from glnet_mm import GLNet
    from glnet_mm.datasets.toy_ade import make_toy_ade
    data_root = osp.join(args.work, 'toy_ade')
    if not osp.isdir(data_root):
        make_toy_ade(data_root, num_train=args.num_images, num_val=2)
    swin = get_config(SWIN_SEG).model.backbone
    swin.init_cfg = None
    stl_channels = GLNet.arch_zoo['stl']['channels']
    result = dict(device=args.device, iters=args.iters, models={})
    failures = []
    for name in args.models:
        cfg = Config.fromfile(TOY_SEG)  # glnet-toy: the toy config as shipped
        cfg.train_dataloader.dataset.data_root = data_root
        _schedule(cfg, args)
        if name == 'glnet-stl':
            cfg.model.backbone.arch = 'stl'
        elif name == 'swin-t':
            cfg.model.backbone = swin
        if name != 'glnet-toy':  # GLNet-STL's widths
            cfg.model.decode_head.in_channels = stl_channels
            cfg.model.auxiliary_head.in_channels = stl_channels[2]
        if name == 'swin-t':  # Swin-T's and GLNet-STL's widths are equal
            assert list(swin.embed_dims * 2**i for i in range(4)) == \
                stl_channels
        run = _train(cfg, name, args.device, args.work)
        result['models'][name] = run
        print(f'{name}: {json.dumps(run)}', flush=True)
        if not run['finite']:
            failures.append(f'{name}: non-finite loss')
        if (name == 'glnet-toy' and args.iters >= MIN_ITERS_FOR_LOSS
                and not run['loss_falls']):
            failures.append(f'{name}: loss {run["loss_first"]:.3f} -> '
                            f'{run["loss_last"]:.3f} did not fall')
    result['failures'] = failures
    write_json(args.out, result)
    return 1 if failures else 0


def det(args):
    import importlib.util
    from mmengine.config import Config

    from glnet_mm.datasets.toy_coco import make_toy_coco
    if importlib.util.find_spec('mmcv._ext') is None:
        write_json(args.out, dict(device=args.device, failures=[
            'mmcv has no compiled ops (mmcv-lite): Mask R-CNN needs them']))
        return 1
    data_root = osp.join(args.work, 'toy_coco')
    if not osp.isdir(data_root):
        make_toy_coco(data_root, num_train=args.num_images, num_val=2)
    cfg = Config.fromfile(TOY_DET)
    cfg.train_dataloader.dataset.data_root = data_root + '/'
    _schedule(cfg, args)
    run = _train(cfg, 'mask-rcnn-glnet-toy', args.device, args.work)
    failures = []
    if not run['finite']:
        failures.append('non-finite loss')
    if args.iters >= MIN_ITERS_FOR_LOSS and not run['loss_falls']:
        failures.append(f'loss {run["loss_first"]:.3f} -> '
                        f'{run["loss_last"]:.3f} did not fall')
    write_json(args.out, dict(device=args.device, iters=args.iters,
                              models={'mask-rcnn-glnet-toy': run},
                              failures=failures))
    return 1 if failures else 0


# ------------------------------------------------------------------- trt ---
#: Exit status of a step that cannot run on this machine (``trt`` without a
#: GPU, TensorRT or mmdeploy): ``nox -s gpu_check`` reports it as skipped,
#: with the step's JSON saying why, not as a failure.
SKIPPED = 3
#: The fp16 TensorRT engines of the issue: deploy configs (configs/deploy/:
#: TensorRT's, and ONNX Runtime's for ``--onnxruntime``), model config and
#: the images' (height, width). ``--toy`` (the dry run): the toy models at
#: tiny sizes.
TRT_DET = ('instance-seg_tensorrt-fp16_dynamic-320x320-1344x1344.py',
           'instance-seg_onnxruntime_dynamic.py')
TRT_MODELS = {
    'mask-rcnn-glnet-stl': TRT_DET + (
        'configs/detection/mask-rcnn_glnet-stl_fpn_1x_coco.py', (480, 640)),
    'upernet-glnet-stl': (
        'segmentation_tensorrt-fp16_static-512x512.py',
        'segmentation_onnxruntime_static-512x512.py',
        'configs/segmentation/upernet_glnet-stl_8xb2-160k_ade20k-512x512.py',
        (512, 512)),
}
TRT_TOY = {
    'mask-rcnn-glnet-toy': TRT_DET + (TOY_DET, (96, 128)),
    'upernet-glnet-toy': (
        'segmentation_tensorrt-fp16_static-512x512.py',
        'segmentation_onnxruntime_static-128x160.py', TOY_SEG, (128, 160)),
}
#: The step's limits for an fp16 engine (and PyTorch AMP) against PyTorch
#: fp32 (first guesses, looser than deploy.py's fp32 limits; to be revisited
#: with the first measured run): segmentation labels agreeing, detections
#: scored >= 0.3 without a counterpart.
TRT_LABEL_AGREEMENT, TRT_UNMATCHED_SHARE = 0.99, 0.1


def load_tool(name):
    """The module of ``tools/<name>.py`` (tools/ is not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        osp.basename(name), osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trt_missing(device, deploy, onnxruntime=False):
    """Why TensorRT engines cannot be built here (empty: they can): a CUDA
    device, the ``tensorrt`` package of TensorRT 8 (mmdeploy 1.3.1's
    plugins link libnvinfer.so.8, CUDA 11 and cuDNN 8), mmdeploy on the
    torch it exports on (``deploy``'s stack check, which names the
    versions) and its TensorRT plugins (RoIAlign, NMS), loaded. With
    ``onnxruntime`` (the stand-in engine): mmdeploy only."""
    import importlib.util

    import torch
    if onnxruntime:
        try:
            deploy.check_stack()
        except SystemExit as error:
            return [str(error)]
        return []
    missing = []
    if not (device.startswith('cuda') and torch.cuda.is_available()):
        missing.append(f'no CUDA device (--device {device}, torch '
                       f'{torch.__version__})')
    if importlib.util.find_spec('tensorrt') is None:
        missing.append('tensorrt is not installed (TensorRT 8.6 for '
                       'mmdeploy 1.3.1: docs/deploy.md)')
    else:
        import tensorrt
        if not tensorrt.__version__.startswith('8.'):
            missing.append(f'tensorrt {tensorrt.__version__}: mmdeploy '
                           '1.3.1\'s plugins need TensorRT 8')
    try:
        deploy.check_stack()
    except SystemExit as error:  # mmdeploy missing, or another torch
        missing.append(str(error))
    if not missing:
        from mmdeploy.backend.tensorrt import load_tensorrt_plugin
        if not load_tensorrt_plugin():
            missing.append("mmdeploy's TensorRT plugins do not load "
                           '(libmmdeploy_tensorrt_ops.so)')
    return missing


def pipeline_inputs(cfg, image):
    """One image file through the config's test pipeline, less its
    annotation loading (as mmdeploy's and the toolboxes' inference APIs
    do): a batch of one for ``test_step``."""
    from mmengine.dataset import Compose, pseudo_collate
    pipeline = Compose([t for t in cfg.test_dataloader.dataset.pipeline
                        if 'LoadAnnotations' not in t['type']])
    return pseudo_collate([pipeline(dict(img_path=image, img_id=0))])


def agreement(deploy, refs, outs):
    """deploy.py's per-image comparison of two models' outputs (boxes,
    scores, masks' IoU; segmentation labels and mIoU), the worst over the
    images, and whether it is within the step's fp16 limits."""
    worst = deploy.compare_outputs(refs, outs, 0.3)
    if 'label_agreement' in worst:
        ok = worst['label_agreement'] >= TRT_LABEL_AGREEMENT
    else:
        ok = worst.get('unmatched', 0) <= TRT_UNMATCHED_SHARE * max(
            1, worst.get('compared', 0))
    return dict(worst, within_limits=bool(ok))


def trt_model(name, trt_file, ort_file, config, size, args, missing,
              deploy, bench):
    """One model: PyTorch fp32 and AMP on ``args.images`` random images
    (seed 0) of ``size``, the fp16 engine built and run where nothing is
    ``missing``; latency of each in interleaved rounds (benchmark.py's),
    agreement of AMP and of the engine with fp32. A model that does not run
    under autocast here (mmcv's CPU NMS takes fp32 only: the Mask R-CNN of
    the dry run) has the error as ``amp_error`` in place of AMP's
    figures."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    work = osp.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.model.backbone.init_cfg = None  # offline: seeded random weights
    if 'rcnn' in cfg.model.get('test_cfg', {}):  # random heads detect
        cfg.model.test_cfg.rcnn.score_thr = 0.005
    weights = deploy.build_weights(cfg, None, osp.join(work, 'pytorch.pth'))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = deploy.build_model(cfg, weights).to(args.device).eval()
    import mmcv
    rng = np.random.default_rng(0)
    images = []
    for i in range(args.images):
        images.append(osp.join(work, f'image{i}.png'))
        mmcv.imwrite(rng.integers(0, 256, (*size, 3), dtype=np.uint8),
                     images[-1])
    batches = [pipeline_inputs(cfg, image) for image in images]
    amp = torch.float16 if args.device.startswith('cuda') else torch.bfloat16
    device_type = args.device.split(':')[0]

    def pytorch(autocast):
        with torch.no_grad(), torch.autocast(device_type, dtype=amp,
                                             enabled=autocast):
            return [model.test_step(b)[0] for b in batches]

    deploy_file = ort_file if args.onnxruntime else trt_file
    entry = dict(config=config, deploy_config=deploy_file,
                 engine='onnxruntime (fp32 stand-in)' if args.onnxruntime
                 else 'tensorrt (fp16)',
                 image_size=list(size), images=len(images),
                 amp=str(amp).replace('torch.', ''))
    refs = pytorch(False)
    calls = {'pytorch_fp32': lambda: pytorch(False)}
    try:
        amp_outs = pytorch(True)
    except RuntimeError as error:  # mmcv's CPU NMS takes fp32 only
        entry['amp_error'] = str(error).splitlines()[0]
    else:
        calls['pytorch_amp'] = lambda: pytorch(True)
        entry['amp_vs_fp32'] = agreement(deploy, refs, amp_outs)
    if missing:
        entry['engine_error'] = 'not run: ' + '; '.join(missing)
    else:
        from mmdeploy.utils import load_config
        deploy_cfg, = load_config(osp.join(REPO, 'configs', 'deploy',
                                           deploy_file))
        start = time.perf_counter()
        files = deploy.export(deploy_cfg, cfg, weights, images[0], work,
                              args.device)
        entry['build_s'] = time.perf_counter() - start
        engine = deploy.backend_model(deploy_cfg, cfg, files, args.device)

        def run_engine():
            with torch.no_grad():
                return [engine.test_step(b)[0] for b in batches]

        calls['engine'] = run_engine
        entry['engine_vs_fp32'] = agreement(deploy, refs, run_engine())
        entry['engine_files'] = files
    times = bench.time_interleaved(calls, args.rounds, args.warmup,
                                   args.device)
    entry['seconds_per_image'] = {
        k: statistics.median(v) / len(images) for k, v in times.items()}
    per = entry['seconds_per_image']
    for faster, slower, key in (
            ('engine', 'pytorch_amp', 'engine_speedup_vs_amp'),
            ('engine', 'pytorch_fp32', 'engine_speedup_vs_fp32'),
            ('pytorch_amp', 'pytorch_fp32', 'amp_speedup_vs_fp32')):
        if faster in per and slower in per:
            entry[key] = per[slower] / per[faster]
    return entry


def trt(args):
    """The fp16 TensorRT engines of Mask R-CNN and UPerNet with GLNet-STL
    (configs/deploy/), built with tools/deployment/deploy.py's mmdeploy
    export: build time, latency against PyTorch AMP (and fp32) in
    interleaved rounds, and agreement with PyTorch fp32 of the engine and of
    AMP. Where no engine can be built (no GPU, no TensorRT 8, no mmdeploy on
    its torch 2.1) the PyTorch side still runs and is compared (AMP against
    fp32: bf16 on a CPU), the JSON names what is missing, and the exit
    status is :data:`SKIPPED`. ``--onnxruntime`` tests the engine path on a
    CPU (tests/test_deploy.py, the classic stack): the same export, run,
    timing and comparison with ONNX Runtime (fp32) engines in place of
    TensorRT's."""
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 is fp32 (parity)
    torch.backends.cudnn.allow_tf32 = False
    deploy = load_tool('deployment/deploy')
    bench = load_tool('analysis_tools/benchmark')
    missing = trt_missing(args.device, deploy, args.onnxruntime)
    if not missing:
        deploy.register_rewriters()
    result = dict(device=args.device, missing=missing, rounds=args.rounds,
                  warmup=args.warmup, models={})
    failures = []
    for name, spec in (TRT_TOY if args.toy else TRT_MODELS).items():
        entry = trt_model(name, *spec, args, missing, deploy, bench)
        result['models'][name] = entry
        print(f'{name}: {json.dumps(entry)}', flush=True)
        engine = entry.get('engine_vs_fp32')  # AMP's: for comparison
        if engine and not engine['within_limits']:
            failures.append(f'{name}: the engine against PyTorch fp32 '
                            f'{engine}')
    result['failures'] = failures
    write_json(args.out, result)
    if failures:
        return 1
    return SKIPPED if missing else 0


# ------------------------------------------------------------------ plan ---
def plan(args):
    """The measurements of a check, in order, for ``nox -s gpu_check`` (which
    installs first and does mmcv-build itself: no commands): a JSON list of
    steps, each its commands, the steps it needs and its result files."""
    py, work, dry = args.python, args.work, args.dry_run
    bench = osp.join(REPO, 'tools', 'analysis_tools', 'benchmark.py')
    device, iters = ('cpu', '3') if dry else ('cuda', '100')
    train = (['--batch', '2', '--num-images', '4', '--workers', '0'] if dry
             else ['--num-images', '64', '--workers', '4'])
    sizes = (['--batch', '2', '--size', '64', '--device', 'cpu', '--smoke']
             if dry else ['--batch', '128', '--device', 'cuda', '--rounds',
                          '10', '--warmup', '3'])
    # dry: one GLNet beside each baseline, every kind of model each builds
    models = ['glnet-stl', 'swin-t', 'convnext-t'] + ([] if dry else [
        'glnet-4g', 'glnet-stl-local-only'])
    runs = ([('backbone', 'fp32', ''), ('classifier', 'fp32', '1')] if dry
            else [(m, p, c) for m in ('backbone', 'classifier')
                  for p in ('fp32', 'fp16') for c in ('', '1')])
    out = {n: osp.join(work, f'{n}.json')
           for n in ('parity', 'seg', 'det', 'det-fps', 'trt')}
    files = [osp.join(work, f'bench-{m}-{p}-cl{c or 0}.json')
             for m, p, c in runs]
    me = [py, osp.abspath(__file__)]
    steps = [
        dict(step='parity', needs=['install'], results=[out['parity']],
             note=f'GLNet-STL/4G {device} vs CPU fp32; fp16/bf16 autocast',
             commands=[me + ['parity', '--device', device, '--out',
                             out['parity']] + (['--batch', '1', '--size', '64']
                                               if dry else [])]),
        dict(step='throughput', needs=['install'], results=files,
             note=f'{len(runs)} runs of benchmark.py: {" ".join(models)}',
             commands=[[py, bench, m, '--models', *models, '--baseline',
                        'swin-t', *sizes, '--precision', p, '--out', f] +
                       (['--channels-last'] if c else [])
                       for (m, p, c), f in zip(runs, files)]),
        dict(step='mmcv-build', needs=['install'],
             note=f'mmcv with {"CPU" if dry else "CUDA"} ops'),
        dict(step='seg-toy', needs=['mmcv-build'], results=[out['seg']],
             note=f'toy UPerNet, {iters} iterations',
             commands=[me + ['seg', '--device', device, '--iters', iters,
                             *train, '--models', *(['glnet-toy', 'swin-t']
                                                   if dry else SEG_MODELS),
                             '--work', osp.join(work, 'seg'), '--out',
                             out['seg']]]),
        dict(step='det-toy', needs=['mmcv-build'], results=[out['det']],
             note=f'toy Mask R-CNN, {iters} iterations',
             commands=[me + ['det', '--device', device, '--iters', iters,
                             *train, '--work', osp.join(work, 'det'), '--out',
                             out['det']]]),
        dict(step='det-fps', needs=['mmcv-build'], results=[out['det-fps']],
             note='Mask R-CNN FPS beside Swin-T',
             commands=[[py, bench, 'detector', '--models', 'glnet-stl', *(
                 [] if dry else ['glnet-4g']), 'swin-t', '--baseline',
                 'swin-t', '--precision', 'fp32', '--out', out['det-fps']] + (
                 ['--batch', '1', '--size', '256', '416', '--device', 'cpu',
                  '--smoke'] if dry else ['--batch', '1', '--device', 'cuda',
                                          '--rounds', '20', '--warmup', '5'])]),
        dict(step='trt', needs=['mmcv-build'], results=[out['trt']],
             skip_status=SKIPPED,
             note='fp16 TensorRT engines of Mask R-CNN and UPerNet '
             f'{"GLNet-toy" if dry else "GLNet-STL"} against PyTorch AMP '
             '(TensorRT 8 and mmdeploy on torch 2.1, else skipped)',
             commands=[me + ['trt', '--device', device, '--work',
                             osp.join(work, 'trt'), '--out', out['trt']] + (
                 ['--toy', '--images', '1', '--rounds', '1', '--warmup', '0']
                 if dry else [])]),
    ]
    print(json.dumps(steps))
    return 0


# ------------------------------------------------------------------ run ---
def run_step(steps, log, step, note, commands, needs=(), results=(),
             skip_status=None):
    """Run one step of a check (``nox -s gpu_check`` runs its plan with
    this, each command a function or a command line, its output to
    ``log``), append its record to ``steps`` and return it: skipped if a
    step it ``needs`` did not succeed, or if a command line exits with
    ``skip_status`` (it cannot run here: its JSON, ``results[0]``, says why
    under ``missing``); failed on an error or any other exit status."""
    import subprocess
    failed = [s['step'] for s in steps
              if s['step'] in needs and s['status'] != 'ok']
    t0, status = time.time(), 'skipped' if failed else 'ok'
    why = f'{", ".join(failed)} did not succeed' if failed else note
    with open(log, 'a') as f:
        f.write(f'== step {step}: {note}\n')
        for command in [] if failed else commands:
            f.flush()
            try:
                code = command() if callable(command) else subprocess.run(
                    command, stdout=f, cwd=REPO,
                    stderr=subprocess.STDOUT).returncode
            except (Exception, SystemExit) as e:  # noqa: B902
                f.write(f'{type(e).__name__}: {e}\n')
                code = -1
            if code and code == skip_status and status == 'ok':
                with open(results[0]) as r:
                    missing = json.load(r).get('missing', [])
                status, why = 'skipped', f'{note}; not run here: ' + \
                    '; '.join(missing)
            elif code:
                status = 'failed'
    steps.append(dict(step=step, status=status, results=list(results),
                      note=why, seconds=int(time.time() - t0)))
    return steps[-1]


# ---------------------------------------------------------------- report ---
def _flat(record, prefix=''):
    """A record's scalars; lists of numbers as their maximum, nested dicts
    with dotted keys."""
    out = {}
    for key, value in record.items():
        name = prefix + key
        if isinstance(value, dict):
            out.update(_flat(value, name + '.'))
        elif isinstance(value, list):
            if value and all(isinstance(v, (int, float)) and
                             not isinstance(v, bool) for v in value):
                out[name + ' (max)'] = max(value)
        else:
            out[name] = value
    return out


def _rows(data):
    """The list of flat records in a step's JSON, for a table."""
    for key in ('models', 'results'):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            return [dict(model=k, **_flat(r))
                    for k, r in data[key].items() if isinstance(r, dict)]
    for key in ('results', 'rows'):
        if isinstance(data, dict) and isinstance(data.get(key), list):
            data = data[key]
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return [_flat(r) for r in data]
    return []


def _fmt(value):
    if isinstance(value, float):
        return f'{value:.4g}'
    return '' if value is None else str(value)


def _table(rows):
    if not rows:
        return []
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = ['| ' + ' | '.join(columns) + ' |',
             '|' + '---|' * len(columns)]
    lines += ['| ' + ' | '.join(_fmt(r.get(c)) for c in columns) + ' |'
              for r in rows]
    return lines


def machine():
    info = dict(python=platform.python_version(), cpus=os.cpu_count(),
                host=platform.node())
    try:
        import torch
        info.update(torch=torch.__version__, cuda=torch.version.cuda,
                    gpu=(torch.cuda.get_device_name()
                         if torch.cuda.is_available() else None))
    except Exception as err:  # torch missing or broken: say so
        info['torch'] = f'not importable: {err}'
    return info


def report(args):
    steps = []
    with open(args.steps) as f:
        for line in f:
            if line.strip():
                steps.append(json.loads(line))
    for step in steps:
        for path in step.pop('results', []):
            if osp.isfile(path):
                with open(path) as f:
                    try:
                        step.setdefault('data', {})[osp.basename(path)] = \
                            json.load(f)
                    except ValueError:
                        step.setdefault('data', {})[osp.basename(path)] = \
                            'not JSON'
    out = dict(machine=machine(), dry_run=args.dry_run,
               wall_s=args.wall_s,
               steps_s=sum(s.get('seconds', 0) for s in steps), steps=steps)
    with open(args.out_json, 'w') as f:
        json.dump(out, f, indent=2)
    m = out['machine']
    lines = [f'# GPU check{" (dry run on the CPU)" if args.dry_run else ""}',
             '',
             f'{m.get("gpu") or "no GPU"}; torch {m.get("torch")} (CUDA '
             f'{m.get("cuda")}); Python {m["python"]}; {m["cpus"]} CPUs. '
             f'{out["wall_s"]} s in all (wall clock).',
             '',
             '| step | status | seconds | note |', '|---|---|---|---|']
    for s in steps:
        note = s.get('note', '').replace('|', '/').replace('\n', ' ')
        lines.append(f'| {s["step"]} | {s["status"]} | '
                     f'{s.get("seconds", 0):.0f} | {note} |')
    for s in steps:
        for name, data in (s.get('data') or {}).items():
            rows = _rows(data)
            if rows:
                lines += ['', f'## {s["step"]}: {name}', ''] + _table(rows)
    with open(args.out_md, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='step', required=True)
    p = sub.add_parser('parity')
    p.add_argument('--device', default='cuda')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--out')
    for name in ('seg', 'det'):
        p = sub.add_parser(name)
        p.add_argument('--device', default='cuda')
        p.add_argument('--iters', type=int, default=100)
        p.add_argument('--batch', type=int, default=0,
                       help='images per iteration (default: the config\'s)')
        p.add_argument('--num-images', type=int, default=64,
                       help='toy training images to generate')
        p.add_argument('--workers', type=int, default=2)
        p.add_argument('--work', required=True, help='data and work dirs')
        p.add_argument('--out')
    p = sub.add_parser('trt')
    p.add_argument('--device', default='cuda')
    p.add_argument('--work', required=True, help='images, weights, engines')
    p.add_argument('--out')
    p.add_argument('--images', type=int, default=2,
                   help='random images per model (seed 0)')
    p.add_argument('--rounds', type=int, default=20)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--toy', action='store_true', help='the toy models at '
                   'tiny sizes (the dry run)')
    p.add_argument('--onnxruntime', action='store_true', help='a test of '
                   'the engine path on a CPU: ONNX Runtime (fp32) engines '
                   'through the same export, run and comparison')
    sub.choices['seg'].add_argument(
        '--models', nargs='+', default=SEG_MODELS, choices=SEG_MODELS,
        help='backbones of the toy UPerNet (default: all)')
    p = sub.add_parser('plan')
    p.add_argument('--python', required=True, help='the venv\'s python')
    p.add_argument('--work', required=True, help='data and result files')
    p.add_argument('--dry-run', action='store_true')
    p = sub.add_parser('report')
    p.add_argument('--steps', required=True)
    p.add_argument('--out-json', required=True)
    p.add_argument('--out-md', required=True)
    p.add_argument('--dry-run', action='store_true')
    p.add_argument('--wall-s', type=int, help='the whole run\'s seconds')
    args = parser.parse_args(argv)
    if args.step in ('parity', 'seg', 'det'):
        import torch
        if args.device.startswith('cuda') and not torch.cuda.is_available():
            parser.error('--device cuda: torch sees no CUDA GPU')
        if args.step != 'parity' and args.iters < 1:
            parser.error('--iters must be >= 1')
    if args.step == 'trt' and (args.images < 1 or args.rounds < 1
                               or args.warmup < 0):
        parser.error('--images and --rounds must be >= 1, --warmup >= 0')
    return dict(parity=parity, seg=seg, det=det, trt=trt, plan=plan,
                report=report)[args.step](
        args)


if __name__ == '__main__':
    sys.exit(main())
