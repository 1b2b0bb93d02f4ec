"""The fast paths compute what the plain PyTorch layers compute.

Fused self-attention, in-place GELU and residual sums, channels-last maps
and the pooling: each against its reference, with
and without autograd; every model the same with the speed tricks on and off
(glmix.py's module docstring: how to turn each off).
"""
import functools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from glnet_mm import GLNet
from glnet_mm.utils.compat import NEEDS, torch_at_least
from glnet_mm.models.backbones import glmix
from glnet_mm.models.backbones.glmix import (GELU, GLMixBlock, SelfAttention,
                                             residual)
from glnet_mm.models.utils.pooling import adaptive_avg_pool2d, running_sum_pool2d


@pytest.mark.parametrize('train', [False, True])
def test_self_attention_is_multihead_attention(train):
    torch.manual_seed(0)
    ours = SelfAttention(64, 2).train(train)
    ref = nn.MultiheadAttention(64, 2, batch_first=True).train(train)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 37, 64, requires_grad=train)
    with torch.set_grad_enabled(train):
        out = ours(x)
        expected = ref(x, x, x, need_weights=False)[0]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    if train:
        grads = torch.autograd.grad(out.square().sum(),
                                    [x, ours.in_proj_weight])
        ref_grads = torch.autograd.grad(expected.square().sum(),
                                        [x, ref.in_proj_weight])
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def test_gelu_in_place_only_without_grad():
    x = torch.randn(4, 8, 5, 5)
    expected = F.gelu(x)
    with torch.no_grad():
        y = x.clone()
        out = GELU()(y)
    assert out.data_ptr() == y.data_ptr()  # overwritten: no new map
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    y = x.clone().requires_grad_()
    out = GELU()(y)
    assert out.data_ptr() != y.data_ptr()
    out.sum().backward()
    y2 = x.clone().requires_grad_()
    F.gelu(y2).sum().backward()
    torch.testing.assert_close(y.grad, y2.grad)


def test_residual_sums_in_place_only_when_the_result_is_the_same():
    x, branch = torch.randn(2, 3), torch.randn(2, 3)
    expected = x + branch
    out = residual(x, branch.clone())
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    low = branch.to(torch.bfloat16)  # fp32 + bf16 is fp32: out of place
    out = residual(x, low)
    assert out.dtype == torch.float32 and out.data_ptr() != low.data_ptr()
    small = torch.randn(1, 3)  # a broadcast sum: out of place
    assert residual(x, small).shape == (2, 3)
    same = torch.randn(2, 3)  # never sums a tensor into itself
    torch.testing.assert_close(residual(same, same), same * 2)
    fresh = branch.clone()  # same dtype and shape: written in place
    assert residual(x, fresh) is fresh
    torch.testing.assert_close(fresh, expected, rtol=0, atol=0)


@pytest.mark.parametrize('size', [(56, 56), (14, 14), (7, 9), (1, 1),
                                  (45, 61)])
def test_pooling_paths_agree(size):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    expected = F.adaptive_avg_pool2d(x, 8)
    torch.testing.assert_close(adaptive_avg_pool2d(x, 8), expected)
    torch.testing.assert_close(running_sum_pool2d(x, 8), expected)


@pytest.mark.skipif(
    not torch_at_least(*NEEDS['onnx_export'][0]),
    reason='exporting with dynamic sizes needs torch >= '
    f"{'.'.join(map(str, NEEDS['onnx_export'][0]))} (glnet_mm.utils.compat.NEEDS)")
def test_exported_pooling_follows_the_input_size():
    class Pool(nn.Module):
        def forward(self, x):
            return adaptive_avg_pool2d(x, 8)

    h, w = torch.export.Dim('h', min=8, max=128), torch.export.Dim(
        'w', min=8, max=128)
    program = torch.export.export(
        Pool(), (torch.randn(1, 3, 24, 40), ),
        dynamic_shapes=({2: h, 3: w}, ), strict=False)
    ops = {str(n.target) for n in program.graph.nodes}
    assert not any('adaptive_avg_pool' in op for op in ops), ops
    x = torch.randn(1, 3, 14, 29)
    torch.testing.assert_close(program.module()(x),
                               F.adaptive_avg_pool2d(x, 8))


@pytest.mark.parametrize('arch', ['stl', '4g'])
def test_memory_format_and_input_untouched(arch):
    """Channels-last and NCHW inputs give the same NCHW-contiguous maps, and
    the in-place sums never write into the caller's tensor."""
    torch.manual_seed(0)
    small = dict(base=arch, depths=[1, 1, 2, 1], channels=[32, 64, 96, 128])
    model = GLNet(small, drop_path_rate=0.1).eval()
    x = torch.randn(2, 3, 61, 45)
    keep = x.clone()
    with torch.no_grad():
        ref = model(x)
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(x, keep)
    for a, b in zip(ref, out):
        assert b.is_contiguous()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    model.train()
    xg = x.clone().requires_grad_()
    sum(o.mean() for o in model(xg)).backward()
    assert torch.equal(xg.detach(), keep) and xg.grad.abs().sum() > 0


# Every kind of block and every ablation switch, so that every use of the
# speed tricks runs (tiny sizes: the rule does not depend on them).
RULE_ARCHS = [
    dict(base='stl'),  # GLMix (parallel) + TransformerBlock
    dict(base='4g', layerscale=1e-4),  # + MHABlock, cpe, mlp_dw, layerscale
    dict(base='stl', branches='local'),
    dict(base='stl', branches='global'),
    dict(base='stl', branches='global->local'),
    dict(base='stl', branches='local->global'),
    dict(base='stl', local_op='wmhsa', local_window=3),
    dict(base='stl', slot_init='hashing', clustering='kmeans',
         kmeans_iters=2),
    dict(base='stl', slot_init='param'),
]


def rule_model(arch):
    """A small GLNet of one of :data:`RULE_ARCHS` (seed 0, drop path on)."""
    torch.manual_seed(0)
    return GLNet(dict(arch, depths=[1, 1, 2, 1], channels=[32, 64, 96, 128]),
                 drop_path_rate=0.1)


def tricks_off(monkeypatch):
    """Every speed trick of glmix.py off, the documented way (its module
    docstring): each operation computed out of place."""
    monkeypatch.setattr(glmix, 'can_add_in_place', lambda x, branch: False)
    monkeypatch.setattr(glmix.GELU, 'forward', nn.GELU.forward)


def _forward_and_grads(model, x, grad):
    x = x.clone().requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        outs = model(x)
    if not grad:
        return list(outs)
    sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum()
        for o in outs).backward()
    return list(outs) + [x.grad] + [p.grad for p in model.parameters()
                                    if p.grad is not None]


def _kind(block):
    return 'GLMixBlock' if isinstance(block, GLMixBlock) else type(
        block).__name__


@pytest.mark.parametrize('grad', [False, True])
def test_speed_tricks_change_nothing(grad, monkeypatch):
    """The rule of glmix's in-place speed tricks (residual sums, GELU)
    holds wherever they are used: every block kind and ablation computes the
    same with them as with every trick off, values and gradients, and each
    trick did write in place in every block kind that uses it."""
    in_place_sums, gelu_in_place = set(), set()
    current = [None]  # the kind of the block running
    can_add = glmix.can_add_in_place

    def recording_can_add(x, branch):
        ok = can_add(x, branch)
        if ok:
            in_place_sums.add(current[0])
        return ok

    def record_gelu(module, args, out, kind):
        if out.data_ptr() == args[0].data_ptr():
            gelu_in_place.add(kind)

    x = torch.randn(2, 3, 45, 61)
    for arch in RULE_ARCHS:
        model = rule_model(arch).eval()
        for stage in model.stages:
            for block in stage.blocks:
                block.register_forward_pre_hook(
                    lambda m, a: current.__setitem__(0, _kind(m)))
                for module in block.mlp.modules():
                    if isinstance(module, GELU):
                        module.register_forward_hook(functools.partial(
                            record_gelu, kind=_kind(block)))
        with monkeypatch.context() as patch:
            patch.setattr(glmix, 'can_add_in_place', recording_can_add)
            fast = _forward_and_grads(model, x, grad)
        model.zero_grad(set_to_none=True)
        with monkeypatch.context() as patch:
            tricks_off(patch)
            plain = _forward_and_grads(model, x, grad)
        model.zero_grad(set_to_none=True)
        assert len(fast) == len(plain), arch
        for a, b in zip(fast, plain):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5,
                                       msg=lambda m: f'{arch}: {m}')
    kinds = {'GLMixBlock', 'MHABlock', 'TransformerBlock'}
    assert in_place_sums == kinds, in_place_sums
    # GELU writes in place only without autograd
    assert gelu_in_place == (set() if grad else kinds), gelu_in_place


def _saved_bytes(model):
    """A context that sums the bytes of the distinct storages autograd
    saves for backward (not ``model``'s weights: they are there anyway),
    and the list it adds them to."""
    seen = {p.untyped_storage().data_ptr() for p in model.parameters()}
    total = [0]

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total[0] += storage.nbytes()
        return t
    return torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), total


def _train_step(model, x, autocast):
    """Outputs, input and weight gradients, and BN statistics after one
    training forward and backward; and the bytes kept for backward."""
    torch.manual_seed(1)  # the same drop-path draws in both runs
    x = x.clone().requires_grad_()
    hooks, saved = _saved_bytes(model)
    with hooks, torch.autocast('cpu', torch.bfloat16, enabled=autocast):
        outs = model(x)
    sum((o.float() * torch.linspace(-1, 1, o.numel()).view_as(o)).sum()
        for o in outs).backward()
    stats = [b.clone() for n, b in model.named_buffers() if 'running' in n]
    return [o.detach() for o in outs] + [x.grad] + [
        p.grad for p in model.parameters()] + stats, saved[0]


@pytest.mark.parametrize('autocast', [False, True])
def test_lean_backward_keeps_less_and_changes_nothing(autocast, monkeypatch):
    """The memory trick (glmix.py: ConvMLP, GLMixBlock.global_branch) in a
    training step of every block kind and ablation, at an odd size, in
    float32 and under bf16 autocast: outputs, the gradients of the input and
    of every weight, and the updated BN statistics are bit-identical to
    plain autograd's, while the tensors kept for backward are fewer (the
    released presets: at least 25% less)."""
    x = torch.randn(2, 3, 45, 61)
    for arch in RULE_ARCHS:
        model = rule_model(arch).train()
        state = {k: v.clone() for k, v in model.state_dict().items()}
        lean, lean_bytes = _train_step(model, x, autocast)
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        with monkeypatch.context() as patch:
            patch.setattr(glmix, 'lean_backward', lambda h: False)
            plain, plain_bytes = _train_step(model, x, autocast)
        assert len(lean) == len(plain), arch
        for a, b in zip(lean, plain):
            torch.testing.assert_close(a, b, rtol=0, atol=0,
                                       msg=lambda m: f'{arch}: {m}')
        print(arch, f'kept for backward: {lean_bytes / plain_bytes:.2f}x')
        assert lean_bytes < plain_bytes, arch
        if set(arch) == {'base'} or arch.get('layerscale'):  # stl, 4g
            assert lean_bytes < 0.75 * plain_bytes, arch
