"""Where a GLNet training step's memory goes: the tensors autograd keeps for
backward, per part of the blocks.

One training forward of the backbone (random weights, fp32 unless
``--precision``) under ``torch.autograd.graph.saved_tensors_hooks``: each
distinct storage kept for backward is counted once, for the module that
kept it first, and the modules are grouped by part (the MLP, GLMix's local
and global branches, norms, token attention, position embedding, stem and
downsampling). Weights are not counted (they exist anyway). A part that
recomputes in backward (glmix.py's memory tricks) keeps only its inputs:
what it recomputes is not counted, as it is not kept. ``--without
lean-backward`` counts the plain autograd graph instead.

Example (docs/speed.md)::

    python tools/analysis_tools/memory_account.py glnet-4g --size 800 1333
"""
import argparse
import collections
import re

import torch

from glnet_mm import GLNet
from glnet_mm.models.backbones import glmix

# part of the blocks: a pattern on the module path inside a block
PARTS = (('MLP', r'\.mlp(\.|$)'), ('local branch', r'\.(feature_conv|local_attn)'),
         ('token attention', r'\.mha_op'), ('norms', r'\.norm[12]$'),
         ('position embedding', r'\.pos_conv$'),
         ('global branch', r'\.blocks\.\d+(\.(relation_mha|cluster_weights|'
                           r'slot_scale|hash).*)?$'),
         ('stem and downsampling', r'^(downsample_layers|norm\d)'))


def part(path):
    return next((name for name, pattern in PARTS
                 if re.search(pattern, path)), 'other')


def account(model, x, autocast=None):
    """MiB kept for backward by each part, in one training forward."""
    owner, kept = [], collections.Counter()
    seen = {p.untyped_storage().data_ptr() for p in model.parameters()}
    for path, module in model.named_modules():
        module.register_forward_pre_hook(
            lambda m, a, path=path: owner.append(path))
        module.register_forward_hook(lambda m, a, o: owner.pop() and None)

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            kept[part(owner[-1] if owner else '')] += storage.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast('cpu', autocast or torch.bfloat16,
                           enabled=autocast is not None):
        model(x.requires_grad_())
    return {k: v / 2**20 for k, v in kept.most_common()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', help='glnet-<stl|4g|9g|16g|toy>')
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1333))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--precision', choices=('fp32', 'bf16'),
                        default='fp32')
    parser.add_argument('--without', choices=('lean-backward', ),
                        help='count the plain autograd graph')
    args = parser.parse_args(argv)
    if not args.model.startswith('glnet-'):
        parser.error(f'{args.model!r}: a GLNet preset, glnet-<arch>')
    if args.without:
        glmix.lean_backward = lambda h: False
    torch.manual_seed(0)
    model = GLNet(arch=args.model[len('glnet-'):]).train()
    x = torch.randn(args.batch, 3, *args.size)
    kept = account(model, x, torch.bfloat16 if args.precision == 'bf16'
                   else None)
    total = sum(kept.values())
    print(f'| {args.model} {args.size[0]}x{args.size[1]}, batch '
          f'{args.batch}, {args.precision}'
          f'{", without " + args.without if args.without else ""} | MiB | '
          'share |\n|---|---|---|')
    for name, mib in kept.items():
        print(f'| {name} | {mib:.0f} | {mib / total:.0%} |')
    print(f'| all | {total:.0f} | |')
    return kept


if __name__ == '__main__':
    main()
