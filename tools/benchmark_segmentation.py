"""Benchmark whole segmentors: GLNet vs Swin-T, UPerNet on ADE20K settings.

For each model, in a fresh process (so that peak memories do not mix):

* peak memory of a training step (forward, backward, AdamW update) on
  ``--train-batch`` 512x512 crops: ``torch.cuda.max_memory_allocated`` on a
  GPU, the growth of the peak resident memory (VmHWM) over the process before
  the model was built on a CPU;
* inference FPS (images/s, batch 1, median over ``--iters`` runs) at 512x512
  in ``whole`` mode and on a 2048x512 image in ``slide`` mode (512x512
  windows, stride 341: the ADE20K test size of mmseg's Swin configs).

Ratios are against the baseline (``--baseline``, default Swin-T) measured in
the same run. Weights are random (no checkpoint needed).

Examples::

    python tools/benchmark_segmentation.py                # CPU, all threads
    python tools/benchmark_segmentation.py --device cuda --iters 20
    python tools/benchmark_segmentation.py --models glnet-4g=configs/segmentation/upernet_glnet-4g_8xb2-160k_ade20k-512x512.py swin-t
"""
import argparse
import json
import multiprocessing as mp
import os.path as osp
import platform
import statistics
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG = osp.join(REPO, 'configs', 'segmentation')
PRESETS = {
    'glnet-stl': osp.join(SEG, 'upernet_glnet-stl_8xb2-160k_ade20k-512x512.py'),
    'glnet-4g': osp.join(SEG, 'upernet_glnet-4g_8xb2-160k_ade20k-512x512.py'),
    'swin-t': 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_'
              '8xb2-160k_ade20k-512x512.py',
}


def vm_kib(field):
    """A memory figure of this process from /proc/self/status, in KiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def build_segmentor(config):
    """The segmentor of an mmseg config, randomly initialised, on one
    process (SyncBN reverted to BN as mmengine's runner does)."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import glnet_mm  # noqa: F401  (registers GLNet)
    cfg = Config.fromfile(config)
    init_default_scope('mmseg')
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    return model


def batch(num, height, width, device, with_gt=False):
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(num):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(height, width),
                                 ori_shape=(height, width),
                                 pad_shape=(height, width)))
        if with_gt:
            sample.gt_sem_seg = PixelData(
                data=torch.randint(0, 150, (1, height, width)))
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                            device=device) for _ in range(num)]
    return dict(inputs=inputs, data_samples=samples)


def measure(config, args):
    """Everything measured for one model; runs in its own process."""
    import torch
    from mmengine.optim import OptimWrapper
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rss_before = vm_kib('VmRSS')
    model = build_segmentor(config).to(args.device)
    params = sum(p.numel() for p in model.parameters())
    backbone_params = sum(p.numel() for p in model.backbone.parameters())

    # training step: forward, backward, update
    model.train()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-4))
    data = batch(args.train_batch, 512, 512, args.device, with_gt=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    train_times = []
    for _ in range(2):
        sync()
        start = time.perf_counter()
        model.train_step(data, optim)
        sync()
        train_times.append(time.perf_counter() - start)
    if cuda:
        train_mem = torch.cuda.max_memory_allocated() / 2**30
    else:
        train_mem = (vm_kib('VmHWM') - rss_before) / 2**20

    # inference, batch 1
    model.eval()
    fps = {}
    for key, (height, width), test_cfg in (
            ('512x512', (512, 512), dict(mode='whole')),
            ('2048x512_slide', (512, 2048),
             dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))):
        model.test_cfg = test_cfg
        data = batch(1, height, width, args.device)
        times = []
        with torch.no_grad():
            for i in range(args.warmup + args.iters):
                sync()
                start = time.perf_counter()
                model.test_step(data)
                sync()
                if i >= args.warmup:
                    times.append(time.perf_counter() - start)
        fps[key] = 1 / statistics.median(times)
    return dict(params_m=params / 1e6, backbone_params_m=backbone_params / 1e6,
                fps_512=fps['512x512'], fps_2048_slide=fps['2048x512_slide'],
                train_step_s=train_times[-1], train_mem_gib=train_mem)


def _worker(config, args, queue):
    try:
        queue.put(('ok', measure(config, args)))
    except Exception as err:  # reported by the parent
        queue.put(('error', f'{type(err).__name__}: {err}'))


def run_isolated(config, args):
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(config, args, queue))
    proc.start()
    status, result = queue.get()
    proc.join()
    if status != 'ok':
        raise RuntimeError(f'benchmark of {config} failed: {result}')
    return result


def machine(device):
    import torch
    if device == 'cuda':
        return torch.cuda.get_device_name()
    threads = torch.get_num_threads()
    return f'{platform.processor() or platform.machine()} CPU, ' \
           f'{threads} threads'


def table(results, baseline, mem_label):
    base = results[baseline]
    lines = [
        '| model | params (M) | FPS 512x512 | FPS 2048x512 slide | '
        f'train step (s) | {mem_label} |',
        '|---|---|---|---|---|---|',
    ]

    def cell(value, ref, fmt):
        ratio = '' if value is ref else f' ({value / ref:.2f}x)'
        return f'{value:{fmt}}{ratio}'

    for name, r in results.items():
        lines.append(
            f"| {name} | {r['params_m']:.1f} "
            f"| {cell(r['fps_512'], base['fps_512'], '.2f')} "
            f"| {cell(r['fps_2048_slide'], base['fps_2048_slide'], '.3f')} "
            f"| {cell(r['train_step_s'], base['train_step_s'], '.2f')} "
            f"| {cell(r['train_mem_gib'], base['train_mem_gib'], '.2f')} |")
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--models', nargs='+', default=['glnet-stl', 'glnet-4g', 'swin-t'],
        help=f'presets ({", ".join(PRESETS)}) or NAME=CONFIG pairs')
    parser.add_argument('--baseline', default='swin-t',
                        help='model the ratios refer to')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--iters', type=int, default=3,
                        help='timed inference runs per size')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--train-batch', type=int, default=2,
                        help='crops per training step (2 per GPU in the '
                        'configs)')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (0: torch default)')
    parser.add_argument('--out', help='also write the results as JSON here')
    args = parser.parse_args(argv)
    models = {}
    for item in args.models:
        name, _, config = item.partition('=')
        if not config:
            if name not in PRESETS:
                parser.error(f'unknown model {name!r}: use one of '
                             f'{sorted(PRESETS)} or NAME=CONFIG')
            config = PRESETS[name]
        elif not config.startswith('mmseg::') and not osp.isfile(config):
            parser.error(f'config {config!r} of {name!r} does not exist')
        models[name] = config
    if args.baseline not in models:
        parser.error(f'baseline {args.baseline!r} is not among --models')
    if args.iters < 1:
        parser.error('--iters must be >= 1')
    args.models = models
    return args


def main(argv=None):
    args = parse_args(argv)
    import torch
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device is available')
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    for name, config in args.models.items():
        results[name] = run_isolated(config, args)
        print(f'{name}: {json.dumps(results[name])}', flush=True)
    mem_label = ('peak train memory (GiB, max allocated)' if args.device
                 == 'cuda' else 'peak train memory (GiB, RSS growth)')
    print(f'\nUPerNet segmentors, {machine(args.device)}; training step: '
          f'batch {args.train_batch} of 512x512; ratios vs {args.baseline}\n')
    print(table(results, args.baseline, mem_label))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(machine=machine(args.device), args=dict(
                iters=args.iters, warmup=args.warmup,
                train_batch=args.train_batch), results=results), f, indent=2)
    return results


if __name__ == '__main__':
    main()
