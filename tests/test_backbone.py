"""The OpenMMLab backbone contract of GLNet."""
import pytest
import torch
import torch.nn as nn

from glnet_mm import GLNet
from glnet_mm.models import resolve_arch

TINY = dict(depths=[1, 1, 2, 1], channels=[32, 64, 96, 128])


def tiny(base='stl', arch=None, **kwargs):
    return GLNet(dict(TINY, base=base, **(arch or {})), **kwargs)


@pytest.mark.parametrize('arch', ['stl', 'stl_paramslot', '4g', '9g', '16g'])
def test_presets_strides_and_channels(arch):
    model = GLNet(arch).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
    channels = resolve_arch(arch)['channels']
    assert [o.shape[1] for o in outs] == channels
    assert [tuple(o.shape[2:]) for o in outs] == [(64 // s, 96 // s)
                                                  for s in (4, 8, 16, 32)]


@pytest.mark.parametrize('base', ['stl', 'stl_paramslot', '4g', '16g'])
def test_builds_on_the_meta_device(base):
    """Deferred initialisation (FSDP, loading a large model without filling
    it first; tests/test_detection_configs.py builds on it): the same
    parameters and buffers, with their shapes, the same drop-path rates, and
    nothing allocated."""
    with torch.device('meta'):
        meta = tiny(base, drop_path_rate=0.3)
    real = tiny(base, drop_path_rate=0.3)
    assert {k: v.shape for k, v in meta.state_dict().items()} == {
        k: v.shape for k, v in real.state_dict().items()}
    assert all(v.is_meta for v in meta.state_dict().values())

    def rates(model):
        return [m.drop_prob for m in model.modules()
                if hasattr(m, 'drop_prob')]

    assert rates(meta) == rates(real)
    assert max(rates(real)) == pytest.approx(0.3)


@pytest.mark.parametrize('base', ['stl', '4g'])
@pytest.mark.parametrize('size', [(65, 97), (31, 47), (224, 160), (33, 33)])
def test_odd_sizes_give_ceil_strides(base, size):
    model = tiny(base).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    for out, stride in zip(outs, (4, 8, 16, 32)):
        assert tuple(out.shape[2:]) == tuple(-(-s // stride) for s in size)
        assert torch.isfinite(out).all()


def test_out_indices_and_out_norms():
    model = tiny(out_indices=(1, 3))
    assert not hasattr(model, 'norm0') and isinstance(model.norm3,
                                                      nn.LayerNorm)
    outs = model(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 128]
    raw = tiny(out_norm_cfg=None, out_indices=(-1, ))
    assert not any(n.startswith('norm') for n, _ in raw.named_children())
    assert len(raw(torch.randn(1, 3, 64, 64))) == 1
    with pytest.raises(ValueError, match='out_indices'):
        tiny(out_indices=(4, ))


def test_batch_one_and_train_mode_backward():
    model = tiny('4g', drop_path_rate=0.2).train()
    outs = model(torch.randn(1, 3, 64, 64))
    sum(o.mean() for o in outs).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)


def test_drop_path_is_linear_over_depth():
    model = tiny(drop_path_rate=0.3)
    rates = [b.drop_path.drop_prob for s in model.stages for b in s.blocks]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.3)
    assert rates == sorted(rates)


@pytest.mark.parametrize('frozen', [1, 3])
def test_frozen_stages_stay_frozen_through_train(frozen):
    model = tiny(frozen_stages=frozen)
    model.train()
    for i in range(4):
        modules = [model.downsample_layers[i], model.stages[i]]
        params = [p for m in modules for p in m.parameters()]
        bns = [m for mod in modules for m in mod.modules()
               if isinstance(m, nn.BatchNorm2d)]
        frozen_now = i < frozen
        assert all(p.requires_grad != frozen_now for p in params)
        assert all(bn.training != frozen_now for bn in bns)
    before = model.downsample_layers[0][1].running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(before, model.downsample_layers[0][1].running_mean)


@pytest.mark.parametrize('frozen', [-1, 0])
def test_nothing_frozen(frozen):
    """-1 (mmdet's Swin) and 0 (mmpretrain's ConvNeXt) freeze nothing."""
    model = tiny(frozen_stages=frozen).train()
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize('frozen', [-2, 5, 1.5, True])
def test_bad_frozen_stages_are_named(frozen):
    with pytest.raises(ValueError, match='frozen_stages'):
        tiny(frozen_stages=frozen)


@pytest.mark.parametrize('norm', ['BN', 'SyncBN'])
def test_norm_cfg_requires_grad_false_freezes_the_norms(norm):
    """mmdet's ``norm_cfg=dict(type='BN', requires_grad=False)``: the stem and
    downsampling norms get no gradient; everything else still trains."""
    model = tiny(norm_cfg=dict(type=norm, requires_grad=False))
    norms = [m for m in model.downsample_layers.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 4
    assert all(not p.requires_grad for n in norms for p in n.parameters())
    others = [p for n, p in model.named_parameters()
              if not any(p is q for m in norms for q in m.parameters())]
    assert others and all(p.requires_grad for p in others)
    if norm == 'BN':
        model.train()
        sum(o.mean() for o in model(torch.randn(2, 3, 64, 64))).backward()
        assert all(p.grad is None for n in norms for p in n.parameters())
        assert model.downsample_layers[0][0].weight.grad is not None
    assert all(p.requires_grad for p in tiny(
        norm_cfg=dict(type=norm)).downsample_layers.parameters())


def test_norm_eval_keeps_batchnorm_statistics():
    model = tiny(norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(bn.training for bn in bns)
    stats = [bn.running_mean.clone() for bn in bns]
    model(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(s, bn.running_mean) for s, bn in zip(stats, bns))
    assert tiny(norm_eval=False).train().downsample_layers[0][1].training


@pytest.mark.parametrize('base', ['stl', '16g'])
def test_with_cp_same_outputs_and_gradients(base, monkeypatch):
    """Checkpointed blocks give the plain model's outputs and gradients.
    Inside them the memory tricks (the lean MLP, the global and local
    branches' checkpoints) run only in blocks whose MLP has the depth-wise conv
    (16G's; STL's has none)."""
    from glnet_mm.models.backbones import glmix
    calls = []
    tail, checkpoint = glmix._ConvMLPTail.apply, glmix.checkpoint
    monkeypatch.setattr(glmix._ConvMLPTail, 'apply',
                        lambda *args: calls.append('mlp') or tail(*args))
    monkeypatch.setattr(glmix, 'checkpoint', lambda fn, *args, **kw: (
        calls.append(getattr(fn, '__name__', type(fn).__name__))
        or checkpoint(fn, *args, **kw)))
    torch.manual_seed(1)
    plain = tiny(base, dict(layerscale=0.5)) if base == '16g' else tiny(base)
    ckpt = GLNet(plain.arch, with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    plain.eval(), ckpt.eval()  # deterministic BN; checkpointing still runs
    grads = []
    for model in (plain, ckpt):
        xi = x.clone().requires_grad_()
        calls.clear()
        outs = model(xi)
        # the lean MLP, the global and the local branch's checkpoints
        tricks = {'mlp', '_global_branch', 'Sequential'}
        if model is plain or base == '16g':
            assert tricks <= set(calls), calls
        else:
            assert not tricks & set(calls), calls
        if model is ckpt:  # each block once, under a checkpoint
            assert len(calls) - sum(c in tricks for c in calls) == sum(
                len(s.blocks) for s in model.stages), calls
        sum((o * o).mean() for o in outs).backward()
        grads.append((outs, xi.grad,
                      [p.grad.clone() for p in model.parameters()]))
    for a, b in zip(grads[0][0], grads[1][0]):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(grads[0][1], grads[1][1])
    for a, b in zip(grads[0][2], grads[1][2]):
        torch.testing.assert_close(a, b)


def test_bad_inputs_are_named():
    model = tiny().eval()
    with pytest.raises(ValueError, match='in_channels=3 .* 1 channels'):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r'\(N, C, H, W\)'):
        model(torch.randn(1, 3, 2, 64, 64))
    assert GLNet(dict(TINY), in_channels=1)(torch.randn(1, 1, 32, 32))


@pytest.mark.parametrize('arch, message', [
    ('5g', 'Unknown GLNet arch'),
    (dict(depths=[1, 1, 1]), 'channels'),
    (dict(TINY, depths=[1, 1, 1]), '4 values'),
    (dict(TINY, mixing_modes='conv'), 'mixing_modes'),
    (dict(TINY, channels=[30, 60, 90, 120]), 'head_dim'),
    (dict(TINY, num_slots=50), 'square'),
    (dict(TINY, slot_init='kmeans'), 'slot_init'),
    (dict(TINY, window=7), 'Unknown GLNet arch switches'),
])
def test_impossible_configs_are_named(arch, message):
    with pytest.raises(ValueError, match=message):
        GLNet(arch)


def test_param_slots_need_no_square():
    model = tiny(arch=dict(num_slots=50, slot_init='param'))
    assert model.stages[0].blocks[0].init_slots.shape == (1, 50, 32)
    assert model(torch.randn(1, 3, 64, 64))[0].shape == (1, 32, 16, 16)


def test_glmix_assignments_are_distributions():
    """Clustering weights sum to one over pixels (per slot), dispatching
    weights over slots (per pixel)."""
    block = tiny().stages[1].blocks[0]
    x = torch.randn(2, 64, 12, 10)
    slots = block.initial_slots(x)
    assert slots.shape == (2, 64, 64)
    pixels = block.norm1(x).flatten(2).mT
    logits = block.assignment_logits(slots, pixels)
    assert logits.shape == (2, 64, 120)
    # |cosine| <= 1, scaled by the learnable temperature C^-0.5 at init
    assert logits.abs().max() <= block.slot_scale.item() + 1e-6
    assert block.slot_scale.item() == pytest.approx(64**-0.5)
    weights = []
    block.cluster_weights.register_forward_hook(
        lambda m, a, out: weights.append(out))
    clustered, dispatch = block.cluster(slots, pixels)
    weights, = weights
    assert weights.shape == (2, 64, 120) and dispatch.shape == (2, 120, 64)
    assert clustered.shape == (2, 64, 64)
    assert (weights >= 0).all() and (dispatch >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 64))
    torch.testing.assert_close(dispatch.sum(-1), torch.ones(2, 120))
    # each slot is the weighted mean of the pixels
    torch.testing.assert_close(clustered, weights @ pixels)


def test_outputs_are_nchw_contiguous():
    """Downstream ops (mmcv's RoIAlign) read raw NCHW memory."""
    for out_norm in (dict(type='LN2d', eps=1e-6), dict(type='BN'), None):
        outs = tiny(out_norm_cfg=out_norm).eval()(torch.randn(1, 3, 64, 64))
        assert all(o.is_contiguous() for o in outs)


def test_mha_window_is_windowed_attention_with_the_same_weights():
    """The dense-prediction opt-in (not the paper's model): each window of
    the token map attends only within itself (checked against attention run
    window by window on the crops, padded windows included); a map that
    fits one window is the released block exactly, so the opt-in changes
    nothing at 224x224; the released weights load as they are."""
    from glnet_mm.models.backbones.glmix import (SelfAttention,
                                                 window_attention)
    attn = SelfAttention(64, 2).eval()
    tokens = torch.randn(2, 10 * 13, 64)
    with torch.no_grad():
        windowed = window_attention(attn, tokens, (10, 13), 5).view(
            2, 10, 13, 64)
        grid = tokens.view(2, 10, 13, 64)
        for i in range(0, 10, 5):
            for j in range(0, 13, 5):
                crop = grid[:, i:i + 5, j:j + 5]
                h, w = crop.shape[1:3]
                ref = attn(crop.reshape(2, h * w, 64)).view(2, h, w, 64)
                torch.testing.assert_close(windowed[:, i:i + 5, j:j + 5],
                                           ref, rtol=1e-5, atol=1e-6)
    arch = dict(base='4g', depths=[1, 1, 2, 1])
    released = GLNet(arch=arch).eval()
    opt_in = GLNet(arch=arch, mha_window=7).eval()
    opt_in.load_state_dict(released.state_dict())  # the same keys
    x = torch.randn(1, 3, 224, 224)  # stage 3 is 14x14: two windows a side
    y = torch.randn(1, 3, 96, 96)  # every map fits one window
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(released(y), opt_in(y)))
        a, b = released(x), opt_in(x)
    assert torch.equal(a[1], b[1]) and not torch.allclose(a[2], b[2])
    for bad in (0, -1, 2.5, '7'):
        with pytest.raises(ValueError, match='mha_window'):
            GLNet(arch=arch, mha_window=bad)
