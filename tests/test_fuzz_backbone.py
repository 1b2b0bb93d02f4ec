"""Property-based test of the GLNet backbone (hypothesis): any image size
H, W in [1, 1400], batch 1-4, float32 or bf16 autocast, every preset layout
and ablation switch (at reduced widths and depths, so that each case is
cheap), any subset of out_indices, frozen_stages, with_cp. Each case either
gives finite outputs of the documented shapes (stage i: ceil(H / 2**(i+2)))
or raises a clear ValueError for an impossible input.

Cost bound: cases above 700x700 pixels run with batch 1 (the layouts are
the same; only the time grows). NaN / inf inputs: see
test_nan_inputs_propagate_within_their_image and the README."""
import math

import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from glnet_mm import GLNet

# reduced widths/depths; depth 2 in stage 3 so that 'glmix.mha_nchw'
# layouts build both of their block kinds
SHAPE = dict(depths=[1, 1, 2, 1], channels=[32, 32, 32, 64])
ARCHES = [dict(base=name, **SHAPE)
          for name in ('stl', 'stl_paramslot', '4g', '9g', '16g')] + [
    dict(base='stl', **SHAPE, **switches) for switches in (
        dict(branches='local'), dict(branches='global'),
        dict(branches='global->local'), dict(branches='local->global'),
        dict(local_op='wmhsa', local_window=7),
        dict(slot_init='hashing', clustering='kmeans'),
        dict(slot_init='param'), dict(num_slots=9), dict(num_slots=81),
        dict(local_dw_ks=3), dict(local_dw_ks=7))]
EXAMPLES = 40


def bn_single_value(model, batch, h, w):
    """True when a BatchNorm in training would see one value per channel
    (batch 1 and a 1x1 map): torch's own ValueError, an impossible
    input for batch statistics."""
    if batch > 1:
        return False
    sizes = [(math.ceil(h / 2**(i + 2)), math.ceil(w / 2**(i + 2)))
             for i in range(4)]
    if model.arch['downsample_style'] == 'ovlp':  # stem BN at stride 2 too
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return (1, 1) in sizes


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(ARCHES),
       h=st.integers(1, 1400), w=st.integers(1, 1400),
       batch=st.integers(1, 4),
       bf16=st.booleans(),
       out_indices=st.sets(st.integers(0, 3), min_size=1),
       frozen_stages=st.integers(-1, 4),
       with_cp=st.booleans())
# the corners, always run: the largest image in the token-attention layout,
# a 1-pixel image (a BatchNorm of one value in training: ValueError),
# extreme aspect ratios
@example(arch=ARCHES[2], h=1400, w=1400, batch=4, bf16=True,
         out_indices={0, 1, 2, 3}, frozen_stages=0, with_cp=False)
@example(arch=ARCHES[0], h=1, w=1, batch=1, bf16=False, out_indices={3},
         frozen_stages=-1, with_cp=True)
@example(arch=ARCHES[0], h=1, w=1, batch=2, bf16=True, out_indices={0, 3},
         frozen_stages=2, with_cp=True)
@example(arch=ARCHES[10], h=1, w=1400, batch=3, bf16=False,
         out_indices={1, 2}, frozen_stages=4, with_cp=False)
def test_any_input_gives_documented_outputs(arch, h, w, batch, bf16,
                                            out_indices, frozen_stages,
                                            with_cp):
    if h * w > 700 * 700:
        batch = 1
        event('larger than 700x700')
    event(f'bf16={bf16} with_cp={with_cp}')
    torch.manual_seed(0)
    model = GLNet(arch, out_indices=tuple(out_indices),
                  frozen_stages=frozen_stages, with_cp=with_cp)
    # with_cp acts in training (activation checkpointing of the backward);
    # otherwise inference
    model.train(with_cp)
    x = torch.randn(batch, 3, h, w, requires_grad=with_cp)
    try:
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16), \
                torch.set_grad_enabled(with_cp):
            outs = model(x)
    except ValueError as e:
        assert with_cp and bn_single_value(model, batch, h, w), e
        assert 'Expected more than 1 value per channel' in str(e)
        event('ValueError: BatchNorm of one value')
        return
    assert not (with_cp and bn_single_value(model, batch, h, w))
    assert len(outs) == len(out_indices)
    for i, out in zip(sorted(out_indices), outs):
        assert out.shape == (batch, model.channels[i],
                             math.ceil(h / 2**(i + 2)),
                             math.ceil(w / 2**(i + 2)))
        assert torch.isfinite(out).all()
    if with_cp:
        sum(o.float().mean() for o in outs).backward()
        assert torch.isfinite(x.grad).all()
        for name, p in model.named_parameters():
            assert p.grad is None or torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize('shape, message', [
    ((1, 3, 0, 32), 'at least 1x1'),
    ((2, 3, 5, 0), 'at least 1x1'),
    ((1, 4, 8, 8), 'in_channels=3'),
    ((3, 8, 8), r'\(N, C, H, W\)'),
])
def test_impossible_inputs_raise_value_error(shape, message):
    model = GLNet(dict(base='stl', **SHAPE)).eval()
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))
    with pytest.raises(ValueError, match='floating-point'):
        model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_nan_inputs_propagate_within_their_image():
    """NaN / inf are not checked (a check costs a device sync per forward):
    they propagate. In inference each image is computed on its own, so only
    the images holding them get non-finite outputs; in training BN's batch
    statistics carry them to the whole batch (and the loss), as in any
    BN backbone."""
    model = GLNet(dict(base='stl', **SHAPE)).eval()
    x = torch.randn(3, 3, 40, 40)
    x[0, 0, 3, 3] = float('nan')
    x[2, 1, 7, 7] = float('inf')
    with torch.no_grad():
        outs = model(x)
        alone = model(x[1:2])
    for out, ref in zip(outs, alone):
        assert not torch.isfinite(out[0]).all()
        assert not torch.isfinite(out[2]).all()
        torch.testing.assert_close(out[1:2], ref, rtol=1e-5, atol=1e-5)
