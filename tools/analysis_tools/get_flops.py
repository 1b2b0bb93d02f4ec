"""Count parameters and FLOPs (multiply-adds) of GLNet, and show its pyramid.

Examples::

    # a preset in the official ImageNet classifier layout (1000-class head)
    python tools/analysis_tools/get_flops.py --arch stl
    # every preset, as a table
    python tools/analysis_tools/get_flops.py --arch all
    # the backbone of any OpenMMLab config (detector, segmentor, classifier)
    python tools/analysis_tools/get_flops.py --config configs/detection/xxx.py --shape 800 1333
"""
import argparse

import torch
import torch.nn as nn

from glnet_mm import GLNet, build_backbone
from glnet_mm.utils.flops import count_flops, count_params


class ImageNetClassifier(nn.Module):
    """GLNet + final BatchNorm + average pool + linear head: the layout in
    which the paper reports FLOPs and parameters."""

    def __init__(self, arch, num_classes=1000):
        super().__init__()
        self.backbone = GLNet(arch, out_indices=(3, ),
                              out_norm_cfg=dict(type='BN'))
        self.head = nn.Linear(self.backbone.channels[-1], num_classes)

    def forward(self, x):
        return self.head(self.backbone(x)[0].mean((2, 3)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    src = parser.add_mutually_exclusive_group()
    src.add_argument('--arch', default='stl',
                     help="preset name or 'all' (default: stl)")
    src.add_argument('--config', help='an OpenMMLab config with a GLNet '
                     'backbone: count the backbone alone')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224],
                        metavar=('H', 'W'), help='input size (default 224)')
    args = parser.parse_args()
    shape = (1, 3, *args.shape)

    if args.config:
        models = {args.config: build_backbone(args.config)}
    else:
        names = list(GLNet.arch_zoo) if args.arch == 'all' else [args.arch]
        models = {f'GLNet-{n}': ImageNetClassifier(n) for n in names}

    print(f'{"model":<28}{"params (M)":>12}{"FLOPs (G)":>12}'
          f'{"w/o attn core":>15}')
    for name, model in models.items():
        flops = count_flops(model, shape)
        plain = count_flops(model, shape, attention_core=False)
        print(f'{name:<28}{count_params(model) / 1e6:>12.2f}'
              f'{flops / 1e9:>12.2f}{plain / 1e9:>15.2f}')
    model = next(iter(models.values()))
    backbone = getattr(model, 'backbone', model)
    pyramid = GLNet(backbone.arch).eval()
    with torch.no_grad():
        outs = pyramid(torch.randn(shape))
    print(f'pyramid of one {args.shape[0]}x{args.shape[1]} image: ' +
          ', '.join(f'{tuple(o.shape[1:])}' for o in outs))


if __name__ == '__main__':
    main()
