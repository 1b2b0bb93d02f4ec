"""GLMix: convolution on the fine feature grid, attention on a coarse slot set.

A GLMix block keeps two views of the same feature map:

* the **grid**, ``(B, C, H, W)``, processed by a light local branch
  (1x1 conv, k x k depth-wise conv, 1x1 conv);
* the **set** of ``S`` (64) semantic slots, ``(B, S, C)``, processed by
  multi-head self-attention (the global branch).

Soft clustering moves the grid into the set and dispatching moves it back.
Both use the same logits, a learnable scale times the cosine similarity between
the slots and the normalised pixels: softmax over pixels clusters, softmax over
slots dispatches. The file also holds the two plain transformer blocks that the
GLNet presets mix in at the deepest stages (token MHSA with a linear or conv MLP).
The paper's ablations of the block are subclasses in :mod:`.glmix_ablations`.

Only ``torch`` is needed here; the layout of parameter names follows the
official release so its checkpoints load without renaming. Transposes are
written ``transpose(-2, -1)``, not ``.mT``: torch's TorchScript-based ONNX
exporter (mmdeploy's) has no symbolic for ``aten::mT``.

**Speed tricks.** Each lives in one named place below (section "Speed
tricks") and changes no value; the rule of the in-place ones: *the tensor
written into is a fresh result that nothing else reads* (a layer's output
just computed: not the block input, not a tensor autograd saved, not a view
of either). To turn one off (``tests/test_fast_paths.py`` compares every
model with and without them), replace its function:

1. in-place residual sums: :func:`can_add_in_place` returning False;
2. in-place GELU without autograd: ``GELU.forward = nn.GELU.forward``.

Each stays because an A/B of the whole backbone showed it worth at least 3%
of inference or training time (docs/speed.md, ``benchmark.py --without``).

**Memory tricks.** In training, three parts keep less for backward and
recompute the rest there: the conv MLP (:class:`ConvMLP`) and GLMix's global
and local branches (:meth:`GLMixBlock.global_branch`,
:meth:`GLMixBlock.local_branch`). Off: :func:`lean_backward`
returning False; with ``with_cp``, off in the blocks that
:func:`checkpointed_block` runs plain. The same values and bit-identical
gradients.
"""
import contextlib
import contextvars
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ...utils.compat import autocast_state, is_compiling, is_recording
from ..utils.pooling import adaptive_avg_pool2d


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at inference).

    Args:
        drop_prob (float): Probability of dropping the residual branch.
    """

    def __init__(self, drop_prob: float = 0.):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0. or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0], ) + (1, ) * (x.ndim - 1))
        return x * mask.bernoulli_(keep).div_(keep)

    def extra_repr(self):
        return f'drop_prob={self.drop_prob}'


class LayerScale(nn.Module):
    """Learnable per-channel scale of a residual branch.

    Args:
        shape (tuple[int]): Shape of ``gamma``, broadcast against the branch.
        init_value (float): Initial value of every entry.
    """

    def __init__(self, shape, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full(shape, float(init_value)))

    def forward(self, x):
        return x * self.gamma


class HookPoint(nn.Identity):
    """A parameter-free point that a tensor flows through, so that forward
    hooks can read it (visualization/slots.py). Silent while backward
    recomputes the forward around it (memory tricks): hooks see each forward
    once."""

    silent = False

    def __call__(self, x):
        return x if self.silent else super().__call__(x)

    @contextlib.contextmanager
    def silenced(self):
        self.silent = True
        try:
            yield
        finally:
            self.silent = False


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)


# --------------------------------------------------------------------------
# Speed tricks (module docstring). Each is one function; the plain
# computation is the code around its call.


def can_add_in_place(x, branch):
    """Speed trick 1: may :func:`residual` sum into ``branch``? Where that
    gives the same tensor: ``branch`` of the sum's dtype and shape, not
    ``x`` itself. Autograd is unaffected: no layer here saves its own
    output. Compiled graphs sum out of place: the compiler plans their memory
    itself, and torch 2.1's dynamo cannot trace the identity test without a
    graph break. Exported or traced graphs too (ONNX): a tracer may record
    the in-place write into a graph that computes something else."""
    return (not is_compiling() and not is_recording() and branch is not x
            and branch.shape == x.shape
            and branch.dtype == torch.promote_types(x.dtype, branch.dtype))


class GELU(nn.GELU):
    """Speed trick 2: ``nn.GELU`` that writes over its input when no gradient
    is recorded (its input is the hidden map of an MLP, the widest tensor of
    the block, a fresh result). With autograd, or while exported or traced
    (:func:`~glnet_mm.utils.compat.is_recording`), it is ``nn.GELU``."""

    def forward(self, x):
        if (torch.is_grad_enabled() and x.requires_grad) or is_recording():
            return super().forward(x)
        return torch.ops.aten.gelu_(x, approximate=self.approximate)


# --------------------------------------------------------------------------


def residual(x, branch):
    """``x + branch``: every residual sum of the blocks (in place where
    :func:`can_add_in_place` allows)."""
    if can_add_in_place(x, branch):
        return branch.add_(x)
    return x + branch


def to_grid(dispatch, slots, grid):
    """Dispatching: the slots ``(B, S, C)`` back onto the pixels by the
    weights ``dispatch`` ``(B, HW, S)``, as a map of ``grid``'s shape."""
    return (dispatch.to(grid.dtype) @ slots).transpose(-2, -1).reshape_as(
        grid)


class ResidualDWConv(nn.Conv2d):
    """Depth-wise 3x3 conv with an identity shortcut: ``x + dwconv(x)``."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__(channels, channels, kernel_size,
                         padding=kernel_size // 2, groups=channels)

    def forward(self, x):
        return residual(x, super().forward(x))


class SelfAttention(nn.MultiheadAttention):
    """Multi-head self-attention over tokens ``(B, N, C)``, computed with the
    fused ``F.scaled_dot_product_attention``.

    The parameters, and their names, are ``nn.MultiheadAttention``'s (one
    packed ``in_proj`` and ``out_proj``), so official checkpoints load as
    they are; the result is the same up to float rounding. The fused kernel
    never materialises the ``N x N`` attention matrix, which matters for
    token attention at detection sizes.

    Args:
        dim (int): Channels.
        num_heads (int): Attention heads.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__(dim, num_heads, batch_first=True)

    def forward(self, x, attn_mask=None):
        """``x`` ``(B, N, C)``; ``attn_mask``: boolean, broadcast to
        ``(B, heads, N, N)``, True where a query may attend to a key."""
        # only the channels are split and merged: a ``view`` naming the
        # symbolic B and N too took half of torch.export's time (proofs
        # that the sizes agree)
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.unflatten(-1, (3, self.num_heads, self.head_dim)
                                ).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out_proj(x.transpose(1, 2).flatten(2))


def window_attention(attn, tokens, size, window):
    """``attn`` within non-overlapping ``window`` x ``window`` windows of a
    token map (the dense-prediction opt-in of :class:`MHABlock`).

    Args:
        attn (SelfAttention): The attention, its weights as they are.
        tokens (Tensor): ``(B, H*W, C)``, row-major over the ``(H, W)`` map.
        size (tuple[int, int]): ``(H, W)``.
        window (int): Window side in tokens. The map is zero-padded at the
            bottom and right to whole windows; padded tokens are never
            attended to (masked keys) and are cropped from the result.

    Returns:
        Tensor: ``(B, H*W, C)``.
    """
    (H, W), (B, _, C) = size, tokens.shape
    ph, pw = -H % window, -W % window
    nh, nw = (H + ph) // window, (W + pw) // window
    x = F.pad(tokens.reshape(B, H, W, C), (0, 0, 0, pw, 0, ph))
    x = x.view(B, nh, window, nw, window, C).transpose(2, 3).reshape(
        B * nh * nw, window * window, C)
    mask = None
    if ph or pw:  # keys: the real tokens of each window
        rows = torch.arange(H + ph, device=x.device) < H
        cols = torch.arange(W + pw, device=x.device) < W
        mask = (rows[:, None] & cols).view(nh, window, nw, window).transpose(
            1, 2).reshape(1, nh * nw, 1, 1, window * window).expand(
                B, -1, -1, -1, -1).reshape(B * nh * nw, 1, 1, -1)
    x = attn(x, mask).view(B, nh, nw, window, window, C).transpose(2, 3)
    return x.reshape(B, H + ph, W + pw, C)[:, :H, :W].reshape(B, H * W, C)


def lean_backward(h):
    """Memory tricks: do :class:`ConvMLP` and
    :meth:`GLMixBlock.global_branch` keep less for backward on ``h``? In
    eager training (autograd recording ``h``), not while dynamo compiles
    (the compiler plans memory itself) nor while the forward is recorded
    (:func:`~glnet_mm.utils.compat.is_recording`: an export, or a JIT trace
    of a FLOP counter, which must see the convs as convs), nor in a block
    that :func:`checkpointed_block` runs plain."""
    return (torch.is_grad_enabled() and h.requires_grad
            and not is_compiling() and not is_recording()
            and not _PLAIN_BLOCK.get())


_PLAIN_BLOCK = contextvars.ContextVar('glnet_mm_plain_block', default=False)


def _run_plain(block, x):
    token = _PLAIN_BLOCK.set(True)
    try:
        return block(x)
    finally:
        _PLAIN_BLOCK.reset(token)


def checkpointed_block(block, x):
    """``block(x)`` under activation checkpointing (``with_cp``): only ``x``
    is kept, and backward recomputes the whole block. The memory tricks
    stay inside only in blocks whose MLP has the depth-wise conv (GLNet-4G,
    9G, 16G: three hidden maps kept while the block is recomputed, one with
    the tricks); in the others they only recompute their parts a second
    time, and raised the peak. Measured, GLNet-STL's Mask R-CNN training
    step with ``with_cp`` (1 thread): 2.71 GiB with the tricks inside,
    2.50-2.56 GiB without; GLNet-4G's 2.57 GiB with them, 2.62-2.89 GiB
    without (docs/speed.md)."""
    mlp = getattr(block, 'mlp', None)
    if isinstance(mlp, ConvMLP) and mlp.has_dw:
        return checkpoint(block, x, use_reentrant=False)
    return checkpoint(_run_plain, block, x, use_reentrant=False)


class _ConvMLPTail(torch.autograd.Function):
    """``fc2(gelu(dw(h)))`` that saves only ``h`` (and weights) for
    backward: ``gelu(dw(h))`` is recomputed there, and ``fc2``'s gradients
    come from the same ``aten.convolution_backward`` call autograd makes, so
    the gradients are those of the plain graph, which keeps two (with the
    depth-wise conv three) hidden maps of 3-4x the block's channels."""

    @staticmethod
    def forward(ctx, h, middle, weight, bias, *middle_params):
        ctx.middle, ctx.autocast = middle, autocast_state(h.device.type)
        ctx.save_for_backward(h, weight, bias, *middle_params)
        return F.conv2d(middle(h), weight, bias)

    @staticmethod
    def backward(ctx, grad):
        h, weight, bias, *params = ctx.saved_tensors
        enabled, dtype = ctx.autocast
        need = ctx.needs_input_grad
        with torch.enable_grad(), torch.autocast(h.device.type, dtype,
                                                 enabled=enabled):
            h_ = h.detach().requires_grad_(need[0])
            y = ctx.middle(h_)
        # the conv's own dtype: autocast's, else its input's
        dtype = dtype if enabled else y.dtype
        g_y, g_w, g_b = torch.ops.aten.convolution_backward(
            grad.to(dtype), y.detach().to(dtype), weight.to(dtype),
            [weight.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
            [True, need[2], need[3]])
        wanted = [t for t, n in zip([h_, *params], need[:1] + need[4:]) if n]
        found = iter(torch.autograd.grad(y, wanted, g_y.to(y.dtype))
                     if wanted else [])
        return (next(found) if need[0] else None, None,
                g_w.to(weight.dtype) if need[2] else None,
                g_b.to(bias.dtype) if need[3] else None,
                *[next(found) if n else None for n in need[4:]])


class ConvMLP(nn.Sequential):
    """The conv MLP of every block: 1x1 conv (``fc1``), optional residual
    3x3 depth-wise conv, GELU, 1x1 conv (``fc2``); children ``0`` to ``3``
    as in the official checkpoints.

    Memory trick (module docstring): in training, only ``fc1``'s output is
    kept for backward; the depth-wise conv and GELU are recomputed in
    backward (a few percent of the MLP's FLOPs) instead of keeping their
    outputs, the widest maps of the block (:class:`_ConvMLPTail`).

    Args:
        channels (int): Input and output channels.
        ratio (float): Hidden channels relative to ``channels``.
        dw (bool): The residual depth-wise conv after ``fc1``.
    """

    def __init__(self, channels: int, ratio: float, dw: bool):
        hidden = int(channels * ratio)
        super().__init__(
            nn.Conv2d(channels, hidden, 1),
            ResidualDWConv(hidden) if dw else nn.Identity(),
            GELU(),
            nn.Conv2d(hidden, channels, 1))
        self.has_dw = dw  # checkpointed_block

    def middle(self, h):
        """``gelu(dw(h))`` out of place (``h`` is kept for backward)."""
        return F.gelu(self[1](h), approximate=self[2].approximate)

    def forward(self, x):
        h = self[0](x)
        if lean_backward(h):
            return _ConvMLPTail.apply(h, self.middle, self[3].weight,
                                      self[3].bias, *self[1].parameters())
        return self[3](self[2](self[1](h)))


def local_convs(channels: int, kernel_size: int) -> nn.Sequential:
    """GLMix's local branch: 1x1 conv, k x k depth-wise conv, 1x1 conv."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 1),
        nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                  groups=channels),
        nn.Conv2d(channels, channels, 1))


class _Block(nn.Module):
    """Shared parts of every block: position embedding, MLP, layer scales.

    Args:
        dim (int): Channels.
        mlp_ratio (float): Hidden width of the MLP relative to ``dim``.
            Defaults to 4.
        cpe_ks (int): Kernel of the residual depth-wise conv position
            embedding applied first; 0 disables it. Defaults to 0.
        mlp_dw (bool): Residual depth-wise 3x3 conv inside the conv MLP.
            Defaults to False.
        layerscale (float): Initial layer-scale value; <= 0 disables it.
            Defaults to -1.
        drop_path (float): Stochastic depth rate of both residual branches.
            Defaults to 0.
        ls1_shape (tuple[int], optional): Shape of the first layer scale
            (the mixing branch). Defaults to ``(1, dim, 1, 1)``.
    """

    def __init__(self, dim, mlp_ratio=4., cpe_ks=0, mlp_dw=False,
                 layerscale=-1., drop_path=0., ls1_shape=None):
        super().__init__()
        self.pos_conv = nn.Conv2d(dim, dim, cpe_ks, padding=cpe_ks // 2,
                                  groups=dim) if cpe_ks > 0 else None
        self.norm2 = LayerNorm2d(dim, eps=1e-6)
        self.mlp = ConvMLP(dim, mlp_ratio, mlp_dw)
        if layerscale > 0:
            self.ls1 = LayerScale(ls1_shape or (1, dim, 1, 1), layerscale)
            self.ls2 = LayerScale((1, dim, 1, 1), layerscale)
        else:
            self.ls1 = self.ls2 = nn.Identity()
        self.drop_path = DropPath(drop_path)

    def pos_embed(self, x):
        return x if self.pos_conv is None else residual(x, self.pos_conv(x))

    def mixer_branch(self, x, mixed):
        """The residual sum of the token mixer's output ``mixed``."""
        return residual(x, self.drop_path(self.ls1(mixed)))

    def mlp_branch(self, x):
        return residual(x, self.drop_path(self.ls2(self.mlp(self.norm2(x)))))


class GLMixBlock(_Block):
    """The GLMix block of the released models: a global slot branch and a
    local conv branch in parallel, summed, then a conv MLP.

    The paper's ablations (other branches, W-MHSA, hashing and k-means,
    learned slots) are subclasses in :mod:`.glmix_ablations`.

    Args:
        dim (int): Channels.
        num_heads (int): Heads of the attention among slots.
        num_slots (int): Slots ``S``, a square: each image's block input is
            pooled to ``sqrt(S) x sqrt(S)`` initial slots. Defaults to 64.
        local_dw_ks (int): Kernel of the local depth-wise conv (odd).
            Defaults to 5.
        **kwargs: See :class:`_Block` (``mlp_ratio``, ``cpe_ks``,
            ``mlp_dw``, ``layerscale``, ``drop_path``).
    """

    def __init__(self, dim, num_heads, num_slots=64, local_dw_ks=5,
                 **kwargs):
        super().__init__(dim, **kwargs)
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        # global branch: pooled slots, soft clustering, MHSA among the slots
        self.pool_size = math.isqrt(num_slots)
        self.slot_scale = nn.Parameter(torch.tensor(dim**-0.5))
        self.relation_mha = SelfAttention(dim, num_heads)
        # the clustering weights (B, S, H*W) flow through this hook point
        self.cluster_weights = HookPoint()
        # local branch: 1x1, k x k depth-wise, 1x1 convs
        self.feature_conv = local_convs(dim, local_dw_ks)

    def forward(self, x):
        slots = self.initial_slots(x)  # S slots pooled from the block input
        x = self.pos_embed(x)
        grid = self.norm1(x)
        # clustering, MHSA among the slots, dispatching back onto the grid
        dispatched = self.global_branch(slots, grid)
        local = self.local_branch(grid)  # light depth-wise convs
        x = self.mixer_branch(x, local + dispatched)  # the mix, residual
        return self.mlp_branch(x)  # the MLP, residual

    def global_branch(self, slots, grid):
        """The global branch: soft clustering of the ``grid`` into the
        ``slots`` (grid -> set), MHSA among the slots, dispatching (set ->
        grid); a map of ``grid``'s shape. In training only its inputs are
        kept for backward, which recomputes the rest (memory trick: the
        clustering and dispatching weights are ``S x HW`` each, in float32),
        about 5% of the block's FLOPs."""
        if lean_backward(grid):
            return checkpoint(self._global_branch, slots, grid,
                              use_reentrant=False, context_fn=lambda: (
                                  contextlib.nullcontext(),
                                  self.cluster_weights.silenced()))
        return self._global_branch(slots, grid)

    def _global_branch(self, slots, grid):
        # B, HW, C: a view of a channels-last map
        pixels = grid.flatten(2).transpose(-2, -1)
        slots, dispatch = self.cluster(slots, pixels)
        return to_grid(dispatch, self.relation_mha(slots), grid)

    def initial_slots(self, x):
        """Slots before clustering, ``(B, S, C)``: the block input ``x``
        average-pooled to ``sqrt(S) x sqrt(S)`` (pooling.py: valid at any
        input size once exported to ONNX)."""
        return adaptive_avg_pool2d(x, self.pool_size).flatten(2).transpose(
            -2, -1)

    def assignment_logits(self, slots, pixels):
        """Scaled cosine similarity between slots and pixels, ``(B, S, HW)``.

        Always float32, autocast or not (mixed precision): the logits are a
        learnable scale times a cosine and feed two softmaxes; in fp16/bf16
        the scale's gradient, a sum over B x S x HW terms, drowns in rounding
        and large scales round the logits coarsely.
        """
        with torch.autocast(slots.device.type, enabled=False):
            # the scale goes on the S slots, not on the S x HW logits
            slots = F.normalize(slots.float(), dim=-1)
            slots = self.slot_scale.float() * slots
            pixels = F.normalize(pixels.float(), dim=-1)
            return slots @ pixels.transpose(-2, -1)

    def cluster(self, slots, pixels):
        """Soft clustering of the grid's ``pixels`` ``(B, HW, C)`` into
        ``slots`` ``(B, S, C)``.

        Returns:
            tuple[Tensor, Tensor]: The slots, each the mean of the pixels
            weighted by its softmax over pixels, ``(B, S, C)``, and the
            dispatching weights, per pixel a softmax over slots,
            ``(B, HW, S)``; both softmaxes in float32
            (:meth:`assignment_logits`).
        """
        logits = self.assignment_logits(slots, pixels)
        weights = self.cluster_weights(logits.softmax(dim=-1))
        slots = weights.to(pixels.dtype) @ pixels
        return slots, logits.softmax(dim=1).transpose(-2, -1)

    def local_branch(self, grid):
        """Light convs on the fine grid. In training only ``grid`` is kept
        for backward (the global branch keeps it too), which recomputes the
        first 1x1 and the depth-wise conv (memory trick: their two maps)."""
        if lean_backward(grid):
            return checkpoint(self.feature_conv, grid, use_reentrant=False)
        return self.feature_conv(grid)


class MHABlock(_Block):
    """Token multi-head self-attention over all pixels, then a conv MLP.

    The official ``mha_nchw`` block of GLNet-4G/9G/16G.

    Args:
        dim (int): Channels.
        num_heads (int): Attention heads.
        window (int, optional): Not the paper's block: attention within
            ``window`` x ``window`` windows of the map
            (:func:`window_attention`) wherever it is larger than one window;
            its cost then grows linearly with the pixels instead of with
            their square. The weights are the same. Defaults to None:
            attention over all pixels, as released.
        **kwargs: See :class:`_Block`.
    """

    def __init__(self, dim, num_heads, window=None, **kwargs):
        super().__init__(dim, ls1_shape=(dim, ), **kwargs)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mha_op = SelfAttention(dim, num_heads)
        self.window = window

    def forward(self, x):
        x = self.pos_embed(x)
        B, C, H, W = x.shape
        tokens = x.flatten(2).transpose(-2, -1)
        y = self.norm1(tokens)
        if self.window and (H > self.window or W > self.window):
            y = window_attention(self.mha_op, y, (H, W), self.window)
        else:
            y = self.mha_op(y)
        tokens = self.mixer_branch(tokens, y)
        x = tokens.transpose(-2, -1).reshape(B, C, H, W)
        return self.mlp_branch(x)


class TransformerBlock(nn.Module):
    """Plain pre-norm transformer block on tokens with a linear MLP.

    The official ``mha`` block, the last stage of GLNet-STL.

    Args:
        dim (int): Channels.
        num_heads (int): Attention heads.
        mlp_ratio (float): Hidden width of the MLP relative to ``dim``.
        drop_path (float): Stochastic depth rate of both residual branches.
    """

    def __init__(self, dim, num_heads, mlp_ratio=4., drop_path=0.):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mha_op = SelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(-2, -1)
        y = self.norm1(x)
        x = residual(x, self.drop_path(self.mha_op(y)))
        x = residual(x, self.drop_path(self.mlp(self.norm2(x))))
        return x.transpose(-2, -1).reshape(B, C, H, W)
