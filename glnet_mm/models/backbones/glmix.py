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

Only ``torch`` is needed here; the layout of parameter names follows the
official release so its checkpoints load without renaming.

**In-place fast paths.** Three operations write their result into a tensor
instead of allocating a new one: :func:`residual` sums, :class:`GELU`
without autograd, and the dispatch GEMM of :meth:`GLMixBlock.global_branch`
(``baddbmm_`` into the local branch's map). They are correct under one rule:
*the tensor written into is a fresh result that nothing else reads* (a
layer's output just computed: not the block input, not a tensor autograd
saved, not a view of either). Every call site follows it; with
:data:`IN_PLACE` off they all compute out of place, which is how
``tests/test_fast_paths.py`` checks each call site.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...utils.compat import is_compiling
from .glmix_ablations import LSHBuckets, WindowMHSA, bucket_means, kmeans
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


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)


# The in-place fast paths (module docstring); tests turn them off to check
# that each call site follows the rule.
IN_PLACE = True


def residual(x, branch):
    """``x + branch``, summed into ``branch`` (the in-place rule of the module
    docstring) where that gives the same tensor: ``branch`` of the sum's
    dtype and shape. Autograd is unaffected: no layer here saves its own
    output. Compiled graphs sum out of place: the compiler plans their memory
    itself, and torch 2.1's dynamo cannot trace the identity test without a
    graph break."""
    if (IN_PLACE and not is_compiling() and branch is not x
            and branch.shape == x.shape
            and branch.dtype == torch.promote_types(x.dtype, branch.dtype)):
        return branch.add_(x)
    return x + branch


class ResidualDWConv(nn.Conv2d):
    """Depth-wise 3x3 conv with an identity shortcut: ``x + dwconv(x)``."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__(channels, channels, kernel_size,
                         padding=kernel_size // 2, groups=channels)

    def forward(self, x):
        return residual(x, super().forward(x))


class GELU(nn.GELU):
    """``nn.GELU`` that writes over its input when no gradient is recorded
    (the in-place rule of the module docstring: its input is the hidden map
    of an MLP, the widest tensor of the block). With autograd it is
    ``nn.GELU``."""

    def forward(self, x):
        if not IN_PLACE or (torch.is_grad_enabled() and x.requires_grad):
            return super().forward(x)
        return torch.ops.aten.gelu_(x, approximate=self.approximate)


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

    def forward(self, x):
        B, N, C = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(B, N, 3, self.num_heads, C // self.num_heads
                           ).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(x.transpose(1, 2).reshape(B, N, C))


def conv_mlp(channels: int, ratio: float, dw: bool) -> nn.Sequential:
    """1x1 conv, optional residual 3x3 depth-wise conv, GELU, 1x1 conv."""
    hidden = int(channels * ratio)
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 1),
        ResidualDWConv(hidden) if dw else nn.Identity(),
        GELU(),
        nn.Conv2d(hidden, channels, 1))


def local_convs(channels: int, kernel_size: int) -> nn.Sequential:
    """GLMix's local branch: 1x1 conv, k x k depth-wise conv, 1x1 conv."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 1),
        nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                  groups=channels),
        nn.Conv2d(channels, channels, 1))


# The switches of a GLMix block and their defaults (the released models),
# declared once; the choices of the named ones. :func:`check_glmix_switches`
# is the one place where their rules live; GLNet's arch table is validated
# through it too.
GLMIX_SWITCHES = dict(num_slots=64, slot_init='ada_avgpool', local_dw_ks=5,
                      branches='parallel', local_op='dwconv', local_window=7,
                      clustering='soft', kmeans_iters=5)
SLOT_INITS = ('ada_avgpool', 'param', 'hashing')
BRANCHES = ('parallel', 'local', 'global', 'global->local', 'local->global')
LOCAL_OPS = ('dwconv', 'wmhsa')
CLUSTERINGS = ('soft', 'kmeans')


def check_glmix_switches(**switches):
    """Every GLMix switch, checked: a ValueError names the first impossible
    one.

    Args:
        **switches: Any of :data:`GLMIX_SWITCHES`; missing ones take their
            default.

    Returns:
        dict: All the switches.
    """
    unknown = set(switches) - set(GLMIX_SWITCHES)
    if unknown:
        raise ValueError(f'Unknown GLMix switches: {sorted(unknown)}')
    s = dict(GLMIX_SWITCHES, **switches)
    for key, choices in (('slot_init', SLOT_INITS), ('branches', BRANCHES),
                         ('local_op', LOCAL_OPS),
                         ('clustering', CLUSTERINGS)):
        if s[key] not in choices:
            raise ValueError(f'GLMix {key}={s[key]!r} is not one of '
                             f'{choices}')
    for key in ('num_slots', 'local_dw_ks', 'local_window', 'kmeans_iters'):
        if type(s[key]) is not int or s[key] < 1:
            raise ValueError(f'GLMix {key} must be a positive int, got '
                             f'{s[key]!r}')
    slots = s['num_slots']
    if s['slot_init'] == 'ada_avgpool' and math.isqrt(slots)**2 != slots:
        raise ValueError(f"GLMix slot_init='ada_avgpool' pools to a square "
                         f'grid: num_slots must be a square, got {slots}')
    if s['slot_init'] == 'hashing' and slots & (slots - 1):
        raise ValueError(f"GLMix slot_init='hashing' uses log2(S) hash bits: "
                         f'num_slots must be a power of two, got {slots}')
    if s['slot_init'] == 'param' and s['clustering'] == 'kmeans':
        raise ValueError("GLMix slot_init='param' cannot be learned with "
                         "clustering='kmeans' (hard assignments pass no "
                         "gradient to the initial slots); use 'hashing' or "
                         "'ada_avgpool'")
    if s['local_dw_ks'] % 2 == 0:
        raise ValueError(f'GLMix local_dw_ks must be odd, got '
                         f'{s["local_dw_ks"]}')
    return s


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
        self.mlp = conv_mlp(dim, mlp_ratio, mlp_dw)
        if layerscale > 0:
            self.ls1 = LayerScale(ls1_shape or (1, dim, 1, 1), layerscale)
            self.ls2 = LayerScale((1, dim, 1, 1), layerscale)
        else:
            self.ls1 = self.ls2 = nn.Identity()
        self.drop_path = DropPath(drop_path)

    def pos_embed(self, x):
        return x if self.pos_conv is None else residual(x, self.pos_conv(x))

    def mlp_branch(self, x):
        return residual(x, self.drop_path(self.ls2(self.mlp(self.norm2(x)))))


class GLMixBlock(_Block):
    """The GLMix block: a global slot branch and a local conv branch in
    parallel, followed by a conv MLP.

    With the default switches it is the block of the released models. The
    other values are the paper's ablations; each part a switch removes is
    never built (its attribute is ``None``):

    * ``branches``: ``'parallel'`` (GLMix), ``'local'`` or ``'global'`` alone,
      or both in sequence, ``'global->local'`` / ``'local->global'`` (the
      second branch runs on the output of the first);
    * ``local_op='wmhsa'``: window self-attention (Swin's W-MSA) over
      ``local_window`` x ``local_window`` windows instead of the convs;
    * ``slot_init='hashing'``: the initial slots are the mean normed pixel of
      each locality-sensitive-hashing bucket;
    * ``clustering='kmeans'``: ``kmeans_iters`` hard Lloyd steps instead of
      the soft clustering; every pixel gets back the slot it belongs to.

    Args:
        dim (int): Channels.
        num_heads (int): Heads of the slot (and window) self-attention.
        switches (dict, optional): GLMix switches, any of
            :data:`GLMIX_SWITCHES` (missing ones take their default, the
            released block): ``num_slots`` ``S`` (a square with
            ``'ada_avgpool'``, a power of two with ``'hashing'``);
            ``slot_init`` (``'ada_avgpool'`` pools each image's block input to
            ``sqrt(S) x sqrt(S)`` slots, ``'param'`` learns ``S`` shared
            slots, ``'hashing'`` hashes the normed pixels); ``local_dw_ks``,
            the kernel of the local depth-wise conv; ``branches`` (one of
            :data:`BRANCHES`); ``local_op`` (``'dwconv'`` or ``'wmhsa'``) and
            ``local_window``, the window side of ``'wmhsa'``; ``clustering``
            (``'soft'`` or ``'kmeans'``) and ``kmeans_iters``, its Lloyd
            steps.
        **kwargs: See :class:`_Block` (``mlp_ratio``, ``cpe_ks``, ...).
    """

    def __init__(self, dim, num_heads, switches=None, **kwargs):
        s = check_glmix_switches(**(switches or {}))
        super().__init__(dim, **kwargs)
        self.slot_init, self.num_slots = s['slot_init'], s['num_slots']
        self.branches, self.clustering = s['branches'], s['clustering']
        self.kmeans_iters = s['kmeans_iters']
        self.pool_size = math.isqrt(self.num_slots)
        has_global = self.branches != 'local'
        has_local = self.branches != 'global'
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)

        # Global branch: initial slots, clustering, slot attention.
        self.init_slots = None
        if has_global and self.slot_init == 'param':
            self.init_slots = nn.Parameter(torch.empty(1, self.num_slots, dim))
            nn.init.normal_(self.init_slots, std=.02)
        self.slot_hash = (LSHBuckets(dim, self.num_slots) if has_global
                          and self.slot_init == 'hashing' else None)
        self.slot_scale = (nn.Parameter(torch.tensor(dim**-0.5))
                           if has_global and self.clustering == 'soft'
                           else None)
        self.relation_mha = (SelfAttention(dim, num_heads)
                             if has_global else None)
        # Parameter-free hook point: the clustering weights (B, S, H*W) flow
        # through it, so forward hooks can read them (visualize_slots.py).
        self.cluster_weights = nn.Identity() if has_global else None

        # Local branch: 1x1, k x k depth-wise, 1x1 convs (or window MHSA).
        self.feature_conv = (local_convs(dim, s['local_dw_ks'])
                             if has_local and s['local_op'] == 'dwconv'
                             else None)
        self.local_attn = (WindowMHSA(dim, num_heads, s['local_window'])
                           if has_local and s['local_op'] == 'wmhsa'
                           else None)

    def initial_slots(self, x):
        """Slots before clustering, ``(B, S, C)``, from the block input
        (``None`` where they come later, from the normed grid, or where
        there is no global branch)."""
        if self.init_slots is not None:
            return self.init_slots.expand(x.shape[0], -1, -1)
        if self.slot_init == 'ada_avgpool' and self.relation_mha is not None:
            # pooling.py: valid at any input size once exported to ONNX
            return adaptive_avg_pool2d(x, self.pool_size).flatten(2).mT
        return None

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
            return slots @ F.normalize(pixels.float(), dim=-1).mT

    def global_branch(self, slots, x, out=None):
        """Cluster the grid ``x`` (B, C, H, W) into ``slots``, let the slots
        attend to each other, and dispatch them back onto the grid.

        The dispatched grid is returned, or ``out +`` it, given ``out`` (a
        map of ``x``'s shape, such as the local branch's output). A
        channels-last ``out`` is summed into by the dispatching GEMM itself
        (the in-place rule of the module docstring); any other layout, out
        of place."""
        grid = x.flatten(2).mT  # B, HW, C (a view of a channels-last map)
        if self.slot_hash is not None:
            slots = bucket_means(self.slot_hash(grid), grid)
        if self.clustering == 'kmeans':
            assign, slots = kmeans(slots, grid, self.kmeans_iters,
                                   self.cluster_weights)
            dispatch = assign.mT  # each pixel gets its own slot back
        else:
            # float32 logits and softmaxes (see assignment_logits); the
            # matmuls below take the grid's dtype (a no-op in float32)
            logits = self.assignment_logits(slots, grid)
            weights = self.cluster_weights(logits.softmax(dim=-1))
            slots = weights.to(grid.dtype) @ grid  # cluster: grid -> set
            dispatch = logits.softmax(dim=1).mT
        slots = self.relation_mha(slots)
        # dispatch: set -> grid
        if IN_PLACE and out is not None and out.is_contiguous(
                memory_format=torch.channels_last):
            B, C, H, W = out.shape  # the GEMM writes into ``out`` (a view)
            tokens = out.permute(0, 2, 3, 1).view(B, H * W, C)
            dispatch, slots = dispatch.to(out.dtype), slots.to(out.dtype)
            if torch.jit.is_tracing():
                # FLOP counters (fvcore, mmengine's FlopAnalyzer behind
                # the toolboxes' get_flops) trace the model and count
                # matmul, not baddbmm: the same sum, visible to them.
                tokens.add_(dispatch @ slots)
            else:
                tokens.baddbmm_(dispatch, slots)
            return out
        dispatched = (dispatch.to(grid.dtype) @ slots).mT.reshape_as(x)
        return dispatched if out is None else out + dispatched

    def local_branch(self, x):
        """Light convs (or window attention) on the fine grid ``x``."""
        if self.local_attn is not None:
            return self.local_attn(x)
        return self.feature_conv(x)

    def mix(self, x):
        """The token mixer on the block input ``x``: returns the input after
        the position embedding and the mixed (global and/or local) map."""
        slots = self.initial_slots(x)
        x = self.pos_embed(x)
        normed = self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.branches == 'parallel':  # global added into local's map
            out = self.global_branch(slots, normed,
                                     out=self.local_branch(normed))
        elif self.branches == 'local':
            out = self.local_branch(normed)
        elif self.branches == 'global':
            out = self.global_branch(slots, normed)
        elif self.branches == 'global->local':
            out = self.local_branch(self.global_branch(slots, normed))
        else:  # 'local->global'
            out = self.global_branch(slots, self.local_branch(normed))
        return x, out

    def forward(self, x):
        x, mixed = self.mix(x)
        x = residual(x, self.drop_path(self.ls1(mixed)))
        return self.mlp_branch(x)


class MHABlock(_Block):
    """Token multi-head self-attention over all pixels, then a conv MLP.

    The official ``mha_nchw`` block of GLNet-4G/9G/16G.

    Args:
        dim (int): Channels.
        num_heads (int): Attention heads.
        **kwargs: See :class:`_Block`.
    """

    def __init__(self, dim, num_heads, **kwargs):
        super().__init__(dim, ls1_shape=(dim, ), **kwargs)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mha_op = SelfAttention(dim, num_heads)

    def forward(self, x):
        x = self.pos_embed(x)
        B, C, H, W = x.shape
        tokens = x.flatten(2).mT
        y = self.norm1(tokens)
        y = self.mha_op(y)
        tokens = residual(tokens, self.drop_path(self.ls1(y)))
        x = tokens.mT.reshape(B, C, H, W)
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
        x = x.flatten(2).mT
        y = self.norm1(x)
        x = residual(x, self.drop_path(self.mha_op(y)))
        x = residual(x, self.drop_path(self.mlp(self.norm2(x))))
        return x.mT.reshape(B, C, H, W)
