"""mmcv's ops as .dev_scripts/mmcv_wheel.py built them: RoIAlign and NMS
against torchvision's (CPU) and against mmcv's CPU kernels (GPU)."""
import pytest
import torch

ops = pytest.importorskip('mmcv.ops')  # mmcv-lite (newest stack) has none
torchvision_ops = pytest.importorskip('torchvision.ops')


def inputs():
    """Features, RoIs (fractional, one the whole map), 300 scored boxes."""
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 16, 32, 40, generator=gen)
    rois = torch.tensor([[0, 1.3, 2.1, 20.7, 25.2], [1, 0., 0., 39., 31.],
                         [0, 10.5, 3.2, 14.1, 30.9], [1, 5., 5., 6., 6.]])
    xy = torch.rand(300, 2, generator=gen) * 200
    wh = torch.rand(300, 2, generator=gen) * 60 + 4
    return feats, rois, torch.cat([xy, xy + wh], 1), torch.rand(300,
                                                                generator=gen)


def mmcv_ops(device):
    feats, rois, boxes, scores = (t.to(device) for t in inputs())
    aligned = ops.roi_align(feats, rois, (7, 7), 0.5, 2, 'avg', True)
    _, keep = ops.nms(boxes, scores, iou_threshold=0.5)
    return aligned.cpu(), keep.cpu()


@pytest.mark.parametrize('device', [
    'cpu', pytest.param('cuda', marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs a CUDA GPU'))])
def test_roi_align_and_nms_match_a_reference(device):
    if device == 'cpu':
        feats, rois, boxes, scores = inputs()
        ref_aligned = torchvision_ops.roi_align(
            feats, rois, (7, 7), spatial_scale=0.5, sampling_ratio=2,
            aligned=True)
        ref_keep = torchvision_ops.nms(boxes, scores, 0.5)
    else:
        ref_aligned, ref_keep = mmcv_ops('cpu')
    aligned, keep = mmcv_ops(device)
    assert 0 < len(ref_keep) < 300  # the input is not degenerate
    assert (aligned - ref_aligned).abs().max().item() <= 1e-4
    assert torch.equal(keep, ref_keep)
