"""Convert an official GLNet ImageNet checkpoint into an mmpretrain one.

The result loads into the classifier of ``configs/classification/`` (GLNet
backbone with ``out_indices=(3, )`` and a BatchNorm output norm, global
average pooling, ``LinearClsHead``; for the token-labeling files the
``TokenLabelingClsHead`` of the ``*-tklb`` configs) with ``mim test ...
--checkpoint`` or ``load_from``. (Those configs also take the released files
directly, converted on load.) The EMA weights (``model_ema``, GLNet-16G's
reported ones) are taken when present unless ``--no-ema``. The keys are mapped
by glnet_mm's one converter (``glnet_mm.models.backbones.checkpoint_filter``), the
source is read by its restricted unpickler (``glnet_mm.safe_load``: no pickled
code runs); an existing output is never overwritten.

Example:
    python tools/model_converters/convert_official.py glnet_stl.pth \\
        checkpoints/glnet-stl_3rdparty_in1k.pth
"""
import argparse
import hashlib
import os
import os.path as osp
import sys

import torch

from glnet_mm.checkpoint.loading import CheckpointError, safe_load
from glnet_mm.models.backbones.checkpoint_filter import (
    classifier_state_dict, pick_weights, split_weights)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def convert(src, dst, prefer_ema=True):
    """Write the mmpretrain version of the official checkpoint ``src``.

    Args:
        src (str): An official GLNet classification checkpoint.
        dst (str): Output file; must not exist.
        prefer_ema (bool): Take ``model_ema`` when present. Defaults to True.

    Returns:
        dict: ``state_dict`` and ``meta`` (source file, its sha256, the key
        the weights came from), as written to ``dst``.
    """
    if osp.exists(dst):
        raise FileExistsError(f'{dst} exists; refusing to overwrite it')
    weights, key = pick_weights(safe_load(src), prefer_ema)
    backbone, heads = split_weights(weights)
    if 'head.fc.weight' not in heads or not any(
            k.startswith('stages.') for k in backbone):
        raise CheckpointError(
            f'{src} [{key}] is not an official GLNet classifier: it lacks '
            f'head.weight or stages.*; its keys are e.g. {list(weights)[:5]}')
    state_dict = classifier_state_dict(backbone, heads)
    checkpoint = dict(
        state_dict=state_dict,
        meta=dict(source=osp.basename(src), source_sha256=sha256(src),
                  source_key=key, converter='tools/model_converters/convert_official.py'))
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    with open(dst, 'xb') as f:  # 'x': never clobber a file created meanwhile
        torch.save(checkpoint, f)
    return checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official GLNet checkpoint (.pth)')
    parser.add_argument('dst', help='output mmpretrain checkpoint (.pth)')
    parser.add_argument('--no-ema', action='store_true',
                        help='take `model` even when `model_ema` exists')
    args = parser.parse_args(argv)
    try:
        ckpt = convert(args.src, args.dst, prefer_ema=not args.no_ema)
    except (FileNotFoundError, FileExistsError, CheckpointError) as err:
        sys.exit(f'error: {err}')
    print(f'{args.dst}: {len(ckpt["state_dict"])} tensors from '
          f'{args.src} [{ckpt["meta"]["source_key"]}]')


if __name__ == '__main__':
    main()
