"""Check mmcv's compiled ops on one device: one RoIAlign and one NMS.

* ``--device cuda``: mmcv's CUDA kernels against mmcv's CPU kernels (the
  check .dev_scripts/setup_env.sh runs after a CUDA build).
* ``--device cpu``: mmcv's CPU kernels against torchvision's.

Exits with status 1 and says what differs when a result is off, with
status 2 when the check cannot run (mmcv or its dependencies do not import);
prints one JSON line with the measured differences otherwise.

    python .dev_scripts/check_mmcv_ops.py --device cuda
"""
import argparse
import json
import sys


def inputs():
    """Fixed random features, RoIs, boxes and scores (CPU tensors)."""
    import torch
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 16, 32, 40, generator=gen)
    # (batch index, x1, y1, x2, y2) in input pixels; fractional corners and
    # one RoI over the whole map exercise the bilinear sampling.
    rois = torch.tensor([[0, 1.3, 2.1, 20.7, 25.2], [1, 0., 0., 39., 31.],
                         [0, 10.5, 3.2, 14.1, 30.9], [1, 5., 5., 6., 6.]])
    xy = torch.rand(300, 2, generator=gen) * 200
    wh = torch.rand(300, 2, generator=gen) * 60 + 4
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(300, generator=gen)
    return feats, rois, boxes, scores


def run_mmcv(device):
    """mmcv's RoIAlign output and NMS keep indices on ``device``."""
    from mmcv.ops import nms, roi_align
    feats, rois, boxes, scores = inputs()
    # an autograd Function: positional arguments only (output size, spatial
    # scale, sampling ratio, pool mode, aligned)
    aligned = roi_align(feats.to(device), rois.to(device), (7, 7), 0.5, 2,
                        'avg', True)
    _, keep = nms(boxes.to(device), scores.to(device), iou_threshold=0.5)
    return aligned.cpu(), keep.cpu()


def run_reference(device):
    """The reference the device's results are compared with."""
    if device != 'cpu':
        return run_mmcv('cpu')
    import torchvision.ops
    feats, rois, boxes, scores = inputs()
    aligned = torchvision.ops.roi_align(
        feats, rois, (7, 7), spatial_scale=0.5, sampling_ratio=2,
        aligned=True)
    keep = torchvision.ops.nms(boxes, scores, 0.5)
    return aligned, keep


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda',
                        help='cuda (default), cuda:N or cpu')
    args = parser.parse_args(argv)
    import torch
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        sys.exit('check_mmcv_ops: --device cuda but torch sees no CUDA GPU')
    try:
        aligned, keep = run_mmcv(args.device)
        ref_aligned, ref_keep = run_reference(args.device)
    except Exception as e:
        print(f'check_mmcv_ops: could not run the ops: {type(e).__name__}: '
              f'{e}', file=sys.stderr)
        sys.exit(2)
    diff = (aligned - ref_aligned).abs().max().item()
    result = dict(device=args.device,
                  reference='mmcv cpu' if args.device != 'cpu' else
                  'torchvision cpu',
                  roi_align_max_abs_diff=diff,
                  nms_kept=len(keep),
                  nms_same_indices=torch.equal(keep, ref_keep))
    print(json.dumps(result))
    errors = []
    if not diff <= 1e-4:
        errors.append(f'RoIAlign differs from the reference by {diff:.3g}')
    if not result['nms_same_indices']:
        errors.append(f'NMS kept {len(keep)} boxes, the reference '
                      f'{len(ref_keep)} (or other ones)')
    if len(ref_keep) in (0, 300):
        errors.append('NMS test input is degenerate')
    if errors:
        sys.exit('check_mmcv_ops: ' + '; '.join(errors))


if __name__ == '__main__':
    main()
