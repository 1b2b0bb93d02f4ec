"""Visualize GLMix's semantic slots: the soft-clustering weights of chosen
blocks, pseudo-coloured, with 4 representative slots picked by k-medoids.

Works with any config whose ``model.backbone`` is a GLNet: a classifier, a
detector or a segmentor, with its checkpoint (an OpenMMLab checkpoint of the
whole model or an official GLNet file). The PNG has one row per block: the
input image, a mosaic of every slot's weight map with the representative
slots framed in their colours, and the representative slots overlaid on the
image (jet colour map, red = high weight).

Blocks are numbered 1, 2, ... over the whole network, as in the paper. By
default the figure shows those of the paper's 2nd, 5th and 10th block that
are GLMix blocks (all three in GLNet-STL), or every GLMix block of a model
with fewer of them.

Example:
    python tools/visualization/visualize_slots.py \\
        configs/classification/glnet-stl_3rdparty_in1k.py demo.jpg \\
        --checkpoint checkpoints/glnet-stl_3rdparty_in1k.pth \\
        --blocks 2 5 10 --out slots.png
"""
import argparse
import os
import os.path as osp
import sys
import warnings

import mmcv
import numpy as np
import torch
from mmengine.config import Config

from glnet_mm import build_backbone
from glnet_mm.visualization.slots import (COLOURS, capture_assignments,  # noqa: F401
                            default_blocks, kmedoids, slot_distances,
                            slot_figure)

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def backbone_and_preprocess(config, checkpoint=None):
    """The GLNet backbone of ``config`` (eval mode), ``checkpoint`` loaded,
    and the config's data preprocessor settings (may be empty)."""
    if not checkpoint:
        warnings.warn('no --checkpoint: visualizing a randomly initialised '
                      'GLNet')
    cfg = Config.fromfile(config)
    net = build_backbone(cfg, checkpoint)
    model = cfg.get('model') or {}
    preprocess = model.get('data_preprocessor') or cfg.get(
        'data_preprocessor') or {}
    return net.eval(), dict(preprocess)


def load_image(path, short_side, preprocess):
    """Read ``path``, resize its short side, normalise as the config does.

    Returns:
        tuple[np.ndarray, torch.Tensor]: The resized RGB image and the
        ``(1, 3, H, W)`` network input.
    """
    image = mmcv.imread(path, channel_order='rgb')  # raises if unreadable
    h, w = image.shape[:2]
    scale = short_side / min(h, w)
    image = mmcv.imresize(image, (round(w * scale), round(h * scale)),
                          interpolation='bicubic')
    rgb = preprocess.get('to_rgb', preprocess.get('bgr_to_rgb', True))
    pixels = image if rgb else image[..., ::-1]
    mean = np.array(preprocess.get('mean', IMAGENET_MEAN), np.float32)
    std = np.array(preprocess.get('std', IMAGENET_STD), np.float32)
    x = torch.from_numpy((pixels - mean) / std).permute(2, 0, 1)[None]
    return image, x.float().contiguous()


def visualize(config, image, out, checkpoint=None, blocks=None,
              num_medoids=4, short_side=224):
    """Write the slot figure of ``image`` for the GLNet of ``config``.

    Args:
        config (str): OpenMMLab config with a GLNet ``model.backbone``.
        image (str): Input image file.
        out (str): Output PNG; an existing file is not overwritten.
        checkpoint (str, optional): Weights (whole model or backbone).
        blocks (list[int], optional): Block numbers (1-based). Defaults to
            those of the paper's 2, 5, 10 that have slots, or all blocks with
            slots when fewer than two of them do.
        num_medoids (int): Representative slots per block. Defaults to 4.
        short_side (int): Resize the image's short side to this. Defaults to
            224.

    Returns:
        dict[int, dict]: Per block: ``medoids`` (slot indices), ``labels``
        (each slot's group) and ``maps`` (``(S, h, w)`` weights).
    """
    if osp.exists(out):
        raise FileExistsError(f'{out} exists; refusing to overwrite it')
    if not out.lower().endswith('.png'):
        raise ValueError(f'--out must be a .png file, got {out}')
    net, preprocess = backbone_and_preprocess(config, checkpoint)
    if blocks is None:
        blocks = default_blocks(net)
        if not blocks:
            raise ValueError(f'{config}: the GLNet has no block with slots')
    picture, x = load_image(image, short_side, preprocess)
    assignments = capture_assignments(net, x, list(blocks))
    grid, results = slot_figure(picture, assignments, num_medoids)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    if not mmcv.imwrite(grid[..., ::-1], out):  # RGB -> BGR
        raise OSError(f'could not write {out}')
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config with a GLNet backbone')
    parser.add_argument('image', help='input image')
    parser.add_argument('--checkpoint', help='model or official checkpoint')
    parser.add_argument('--blocks', type=int, nargs='+',
                        help='block numbers, 1-based (default: those of 2 5 '
                        '10, as in the paper, that are GLMix blocks)')
    parser.add_argument('--num-medoids', type=int, default=4)
    parser.add_argument('--short-side', type=int, default=224)
    parser.add_argument('--out', default='slots.png', help='output PNG')
    args = parser.parse_args(argv)
    if args.num_medoids < 1:
        parser.error('--num-medoids must be >= 1')
    try:
        results = visualize(args.config, args.image, args.out,
                            args.checkpoint, args.blocks, args.num_medoids,
                            args.short_side)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
    for b, r in results.items():
        print(f'block {b}: representative slots {r["medoids"]}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
