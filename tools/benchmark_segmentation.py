"""Benchmark whole segmentors: GLNet vs Swin-T, UPerNet on ADE20K settings.

* Peak memory of training steps (forward, backward, AdamW update) on
  ``--train-batch`` 512x512 crops, each model in a fresh process:
  ``torch.cuda.max_memory_allocated`` on a GPU; on a CPU the growth of the
  peak resident memory (VmHWM) over the process before the model was built.
  (The step time is in the JSON output only: one isolated step on a shared
  machine is too noisy to compare.)
* Inference FPS (images/s, batch 1, median over ``--iters`` rounds in which
  the models take turns) at 512x512 in ``whole`` mode and on a 2048x512
  image in ``slide`` mode (512x512 windows, stride 341; 2048x512 is the
  ADE20K test size of mmseg's configs).

Ratios are against the baseline (``--baseline``, default Swin-T) measured in
the same run. Weights are random (no checkpoint needed).

Examples::

    python tools/benchmark_segmentation.py                # CPU, all threads
    python tools/benchmark_segmentation.py --device cuda --iters 20
    python tools/benchmark_segmentation.py --models \
        glnet-16g=configs/segmentation/upernet_glnet-16g_8xb2-160k_ade20k-512x512.py \
        swin-t
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
    'glnet-stl': osp.join(SEG,
                          'upernet_glnet-stl_8xb2-160k_ade20k-512x512.py'),
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
    """The segmentor of an mmseg config with random weights, on one
    process (SyncBN reverted to BN as mmengine's runner does)."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import glnet_mm  # noqa: F401  (registers GLNet)
    if '::' in config:  # an upstream config, e.g. mmseg::swin/...
        from mmengine.hub import get_config
        cfg = get_config(config)
    else:
        cfg = Config.fromfile(config)
    init_default_scope('mmseg')
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def batch(num, height, width, device, num_classes=None):
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(num):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(height, width),
                                 ori_shape=(height, width),
                                 pad_shape=(height, width)))
        if num_classes:  # random ground truth for a training step
            sample.gt_sem_seg = PixelData(
                data=torch.randint(0, num_classes, (1, height, width)))
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                            device=device) for _ in range(num)]
    return dict(inputs=inputs, data_samples=samples)


def _sync(device):
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


def measure_training(config, args):
    """Parameters, time and peak memory of a training step of one model.

    Runs in a fresh process (see :func:`run_isolated`), so that the peak
    memory is this model's alone.
    """
    import torch
    from mmengine.optim import OptimWrapper
    if args.threads:
        torch.set_num_threads(args.threads)
    rss_before = vm_kib('VmRSS')
    model = build_segmentor(config).to(args.device)
    model.train()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-4))
    data = batch(args.train_batch, 512, 512, args.device,
                 num_classes=model.decode_head.num_classes)
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(2):  # the first step also allocates AdamW's state
        _sync(args.device)
        start = time.perf_counter()
        model.train_step(data, optim)
        _sync(args.device)
        times.append(time.perf_counter() - start)
    if args.device == 'cuda':
        memory = torch.cuda.max_memory_allocated() / 2**30
    else:
        memory = (vm_kib('VmHWM') - rss_before) / 2**20
    return dict(
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        backbone_params_m=sum(
            p.numel() for p in model.backbone.parameters()) / 1e6,
        train_step_s=times[-1],
        train_mem_gib=memory)


def measure_inference(models, args):
    """Inference FPS (batch 1) of every model at both test sizes.

    The models take turns within every round, so that a change of the load
    of a shared machine hits them all alike.

    Returns:
        dict: ``{name: {'fps_512': ..., 'fps_2048_slide': ...}}``.
    """
    import torch
    from mmengine.config import ConfigDict
    built = {
        name: build_segmentor(config).to(args.device).eval()
        for name, config in models.items()
    }
    results = {name: {} for name in models}
    for key, (height, width), test_cfg in (
            ('fps_512', (512, 512), dict(mode='whole')),
            ('fps_2048_slide', (512, 2048),
             dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))):
        data = batch(1, height, width, args.device)
        times = {name: [] for name in models}
        for i in range(args.warmup + args.iters):
            for name, model in built.items():
                model.test_cfg = ConfigDict(test_cfg)
                with torch.no_grad():
                    _sync(args.device)
                    start = time.perf_counter()
                    model.test_step(data)
                    _sync(args.device)
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - start)
        for name in models:
            results[name][key] = 1 / statistics.median(times[name])
    return results


def _worker(config, args, queue):
    try:
        queue.put(('ok', measure_training(config, args)))
    except Exception as err:  # reported by the parent
        queue.put(('error', f'{type(err).__name__}: {err}'))


def run_isolated(config, args):
    """:func:`measure_training` in a fresh process."""
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(config, args, queue))
    proc.start()
    status, result = queue.get()
    proc.join()
    if status != 'ok':
        raise RuntimeError(f'training step of {config} failed: {result}')
    return result


def machine(device):
    """The device in words, e.g. ``'AMD EPYC CPU, 2 threads'``."""
    import torch
    if device == 'cuda':
        return torch.cuda.get_device_name()
    name = platform.processor() or platform.machine()
    if osp.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            models = [line.split(':', 1)[1].strip() for line in f
                      if line.startswith('model name')]
        name = models[0] if models else name
    return f'{name} CPU, {torch.get_num_threads()} threads'


def table(results, baseline, mem_label):
    """A Markdown table, each figure with its ratio to the baseline's."""
    base = results[baseline]
    columns = (('fps_512', 'FPS 512x512', '.2f'),
               ('fps_2048_slide', 'FPS 2048x512 slide', '.3f'),
               ('train_mem_gib', mem_label, '.2f'))
    lines = ['| model | params (M) | ' +
             ' | '.join(title for _, title, _ in columns) + ' |',
             '|---' * (len(columns) + 2) + '|']
    for name, r in results.items():
        cells = [f'{r[key]:{fmt}}' + ('' if name == baseline else
                                       f' ({r[key] / base[key]:.2f}x)')
                 for key, _, fmt in columns]
        lines.append(f"| {name} | {r['params_m']:.1f} | " +
                     ' | '.join(cells) + ' |')
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
    if args.train_batch < 2:
        parser.error('--train-batch must be >= 2: the BatchNorm after the '
                     "decode head's global pooling needs two values per "
                     'channel')
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
        print(f'{name} training step: {json.dumps(results[name])}',
              flush=True)
    for name, fps in measure_inference(args.models, args).items():
        results[name].update(fps)
        print(f'{name} inference: {json.dumps(fps)}', flush=True)
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
