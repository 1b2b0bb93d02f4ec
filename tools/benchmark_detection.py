"""Detection speed and memory: GLNet vs mmdet's own Swin-T, in one run.

For each model it builds the Mask R-CNN (or RetinaNet) of the shipped config
(random weights: speed does not depend on them) and measures, on random
images of the given size:

* detector FPS: images/s of ``model(..., mode='predict')``, batch 1, the
  whole detector including post-processing;
* backbone FPS: images/s of the backbone alone, batch 1;
* training memory: the peak memory of one training step (forward, loss,
  backward) at ``--train-batch`` images with random boxes and masks. On CUDA
  it is ``torch.cuda.max_memory_allocated``; on a CPU it is the rise of the
  process's peak resident memory (VmHWM) during the step.

Every measurement of a model runs in a fresh process, so the models do not
share caches or allocator state. Ratios are against the first ``--baseline``
model of the same run. Examples::

    python tools/benchmark_detection.py                       # 1333x800
    python tools/benchmark_detection.py --models glnet-4g swin-t \\
        --detector retinanet --repeat 10 --out bench.json
"""
import argparse
import json
import os.path as osp
import platform
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'mask-rcnn': {
        'swin-t': 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
        'glnet-{}': 'configs/detection/mask-rcnn_glnet-{}_fpn_1x_coco.py',
    },
    'retinanet': {
        'swin-t': 'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py',
        'glnet-{}': 'configs/detection/retinanet_glnet-{}_fpn_1x_coco.py',
    },
}


def config_path(detector, model):
    """The config file of ``model`` (``'swin-t'`` or ``'glnet-<arch>'``)."""
    table = CONFIGS[detector]
    if model in table:
        return table[model]
    if model.startswith('glnet-'):
        path = osp.join(REPO, table['glnet-{}'].format(model[len('glnet-'):]))
        if osp.isfile(path):
            return path
    raise SystemExit(f'No {detector} config for model {model!r}; choose '
                     f'swin-t or glnet-<arch> with a config in '
                     f'configs/detection/')


def build_detector(detector, model, device):
    import torch
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    import glnet_mm  # noqa: F401  (registers GLNet)
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    path = config_path(detector, model)
    cfg = get_config(path) if '::' in path else Config.fromfile(path)
    cfg.model.backbone.init_cfg = None  # random weights; no download
    net = revert_sync_batchnorm(MODELS.build(cfg.model)).to(device)
    params = sum(p.numel() for p in net.backbone.parameters())
    torch.manual_seed(0)
    return net, params


def make_batch(net, batch, height, width, device, training):
    from mmdet.testing import demo_mm_inputs
    data = demo_mm_inputs(
        batch_size=batch, image_shapes=(3, height, width),
        num_items=[10] * batch, num_classes=80, with_mask=True,
        device=device)
    return net.data_preprocessor(data, training)


def timed(fn, device, warmup, repeat):
    """Median seconds of ``fn()``."""
    import torch
    sync = torch.cuda.synchronize if device.startswith('cuda') else None
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if sync:
            sync()
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _rss_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def worker(args):
    """Measure one thing of one model; print a JSON line."""
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    net, params = build_detector(args.detector, args.worker_model, device)
    h, w = args.shape
    result = dict(params_m=params / 1e6)
    if args.worker_task == 'speed':
        net.eval()
        data = make_batch(net, 1, h, w, device, training=False)
        with torch.no_grad():
            det = timed(lambda: net(**data, mode='predict'), device,
                        args.warmup, args.repeat)
            bb = timed(lambda: net.backbone(data['inputs']), device,
                       args.warmup, args.repeat)
        result.update(detector_fps=1 / det, backbone_fps=1 / bb)
    else:
        net.train()
        data = make_batch(net, args.train_batch, h, w, device, training=True)

        def step():
            losses = net(**data, mode='loss')
            loss, _ = net.parse_losses(losses)
            loss.backward()

        if device.startswith('cuda'):
            step()  # warm up kernels and the allocator
            net.zero_grad(set_to_none=True)
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            step()
            peak = torch.cuda.max_memory_allocated()
            result.update(train_peak_gib=peak / 2**30,
                          train_step_gib=(peak - base) / 2**30)
        else:
            base = _rss_kib('VmRSS')
            step()
            peak = _rss_kib('VmHWM')
            result.update(train_peak_gib=peak / 2**20,
                          train_step_gib=(peak - base) / 2**20)
    print('RESULT ' + json.dumps(result), flush=True)


def run_worker(args, model, task):
    cmd = [sys.executable, osp.abspath(__file__), '--worker-model', model,
           '--worker-task', task, '--detector', args.detector,
           '--device', args.device, '--shape', *map(str, args.shape),
           '--warmup', str(args.warmup), '--repeat', str(args.repeat),
           '--train-batch', str(args.train_batch),
           '--threads', str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[len('RESULT '):])
    raise RuntimeError(f'{model} {task} failed:\n{proc.stderr[-3000:]}')


def machine(device):
    import torch
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [ln.split(':', 1)[1].strip() for ln in f
                     if ln.startswith('model name')]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f'{cpu}, {torch.get_num_threads()} threads'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+',
                        default=['swin-t', 'glnet-stl', 'glnet-4g'],
                        help='swin-t and/or glnet-<arch> (stl, 4g, 9g, 16g)')
    parser.add_argument('--baseline', default='swin-t')
    parser.add_argument('--detector', choices=sorted(CONFIGS),
                        default='mask-rcnn')
    parser.add_argument('--shape', type=int, nargs=2, default=(800, 1333),
                        metavar=('H', 'W'))
    parser.add_argument('--device', default='auto',
                        help="'cpu', 'cuda', 'cuda:1' or 'auto'")
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--train-batch', type=int, default=2,
                        help='images per training step (memory)')
    parser.add_argument('--no-train', action='store_true',
                        help='skip the training-memory measurement')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (0: torch default)')
    parser.add_argument('--out', help='also write the results as JSON')
    parser.add_argument('--worker-model', help=argparse.SUPPRESS)
    parser.add_argument('--worker-task', help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.worker_model:
        return worker(args)
    for model in args.models:
        config_path(args.detector, model)  # fail early on a bad name
    if args.threads:
        torch.set_num_threads(args.threads)

    results = {}
    for model in args.models:
        res = run_worker(args, model, 'speed')
        if not args.no_train:
            res.update(run_worker(args, model, 'train'))
        results[model] = res
        print(f'{model}: ' + ', '.join(f'{k}={v:.3g}' for k, v in res.items()),
              flush=True)

    base = results.get(args.baseline)
    h, w = args.shape
    print(f'\n{args.detector}, {w}x{h}, {args.device} ({machine(args.device)})'
          f', median of {args.repeat}; training memory at batch '
          f'{args.train_batch}\n')
    cols = [('params_m', 'backbone params (M)'),
            ('detector_fps', 'detector FPS'), ('backbone_fps', 'backbone FPS'),
            ('train_step_gib', 'train-step memory (GiB)')]
    cols = [c for c in cols if any(c[0] in r for r in results.values())]
    print('| model | ' + ' | '.join(title for _, title in cols) + ' |')
    print('|---' * (len(cols) + 1) + '|')
    for model, res in results.items():
        cells = []
        for key, _ in cols:
            cell = f'{res[key]:.3g}'
            if base and model != args.baseline and key != 'params_m':
                cell += f' ({res[key] / base[key]:.2f}x)'
            cells.append(cell)
        print(f'| {model} | ' + ' | '.join(cells) + ' |')
    if base:
        print(f'\n(ratios: relative to {args.baseline} in this run)')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(device=args.device, machine=machine(args.device),
                           detector=args.detector, shape=[h, w],
                           repeat=args.repeat, train_batch=args.train_batch,
                           results=results), f, indent=2)


if __name__ == '__main__':
    sys.exit(main())
