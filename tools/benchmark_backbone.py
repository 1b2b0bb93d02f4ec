"""Classification throughput of GLNet beside Swin-T and ConvNeXt-T, same run.

Every model is timed in rounds that interleave the models, so machine noise
hits them alike; the table gives the median images/s and the ratio to the
baseline (Swin-T by default). Models are mmpretrain ImageClassifiers (backbone,
pooling, 1000-class head) in eval mode at 224².

Examples::

    python tools/benchmark_backbone.py                      # CPU, batch 16
    python tools/benchmark_backbone.py --device cuda --batch 128 --amp
"""
import argparse
import platform
import statistics
import time

import torch

import glnet_mm  # noqa: F401  (registers GLNet)

SWIN = dict(type='SwinTransformer', arch='tiny', img_size=224)
CONVNEXT = dict(type='ConvNeXt', arch='tiny', gap_before_final_norm=True)
MODELS = {
    'Swin-T': (SWIN, 768, None),
    'ConvNeXt-T': (CONVNEXT, 768, None),
    'GLNet-STL': (dict(type='GLNet', arch='stl'), 768, 'BN'),
    'GLNet-4G': (dict(type='GLNet', arch='4g'), 512, 'BN'),
    'GLNet-9G': (dict(type='GLNet', arch='9g'), 768, 'BN'),
}


def build(name):
    from mmpretrain.registry import MODELS as REGISTRY
    backbone, channels, out_norm = MODELS[name]
    if out_norm:
        backbone = dict(backbone, out_indices=(3, ),
                        out_norm_cfg=dict(type=out_norm))
    neck = None if backbone['type'] == 'ConvNeXt' else dict(
        type='GlobalAveragePooling')
    return REGISTRY.build(
        dict(type='ImageClassifier', backbone=backbone, neck=neck,
             head=dict(type='LinearClsHead', num_classes=1000,
                       in_channels=channels)))


def time_once(model, x, amp, device):
    with torch.no_grad(), torch.autocast(device.type, enabled=amp):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(x)
        if device.type == 'cuda':
            torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS),
                        choices=list(MODELS))
    parser.add_argument('--baseline', default='Swin-T', choices=list(MODELS))
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', action='store_true',
                        help='autocast (fp16 on CUDA, bf16 on CPU)')
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = list(dict.fromkeys([args.baseline] + args.models))
    models = {n: build(n).to(device).eval() for n in names}
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    for model in models.values():
        for _ in range(args.warmup):
            time_once(model, x, args.amp, device)
    times = {n: [] for n in names}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name].append(time_once(model, x, args.amp, device))

    machine = (torch.cuda.get_device_name(device) if device.type == 'cuda'
               else f'{platform.processor() or platform.machine()}, '
               f'{torch.get_num_threads()} threads')
    print(f'device: {machine}; batch {args.batch}, {args.size}², '
          f'{"AMP" if args.amp else "fp32"}, median of {args.rounds} '
          f'interleaved rounds')
    base = args.batch / statistics.median(times[args.baseline])
    print(f'{"model":<14}{"images/s":>10}{"vs " + args.baseline:>12}')
    for name in names:
        speed = args.batch / statistics.median(times[name])
        print(f'{name:<14}{speed:>10.1f}{speed / base:>12.2f}')


if __name__ == '__main__':
    main()
