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
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pooling import adaptive_avg_pool2d


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


class ResidualDWConv(nn.Conv2d):
    """Depth-wise 3x3 conv with an identity shortcut: ``x + dwconv(x)``."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__(channels, channels, kernel_size,
                         padding=kernel_size // 2, groups=channels)

    def forward(self, x):
        return x + super().forward(x)


def conv_mlp(channels: int, ratio: float, dw: bool) -> nn.Sequential:
    """1x1 conv, optional residual 3x3 depth-wise conv, GELU, 1x1 conv."""
    hidden = int(channels * ratio)
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 1),
        ResidualDWConv(hidden) if dw else nn.Identity(),
        nn.GELU(),
        nn.Conv2d(hidden, channels, 1))


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
        cpe_ks (int): Kernel of the residual depth-wise conv position
            embedding applied first; 0 disables it.
        mlp_dw (bool): Residual depth-wise 3x3 conv inside the conv MLP.
        layerscale (float): Initial layer-scale value; <= 0 disables it.
        drop_path (float): Stochastic depth rate of both residual branches.
        ls1_shape (tuple[int], optional): Shape of the first layer scale
            (the mixing branch). Defaults to ``(1, dim, 1, 1)``.
    """

    def __init__(self, dim, mlp_ratio, cpe_ks, mlp_dw, layerscale, drop_path,
                 ls1_shape=None):
        super().__init__()
        if cpe_ks > 0:
            self.pos_conv = nn.Conv2d(dim, dim, cpe_ks, padding=cpe_ks // 2,
                                      groups=dim)
        self.norm2 = LayerNorm2d(dim, eps=1e-6)
        self.mlp = conv_mlp(dim, mlp_ratio, mlp_dw)
        if layerscale > 0:
            self.ls1 = LayerScale(ls1_shape or (1, dim, 1, 1), layerscale)
            self.ls2 = LayerScale((1, dim, 1, 1), layerscale)
        else:
            self.ls1 = self.ls2 = nn.Identity()
        self.drop_path = DropPath(drop_path)

    def pos_embed(self, x):
        return x + self.pos_conv(x) if hasattr(self, 'pos_conv') else x

    def mlp_branch(self, x):
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class GLMixBlock(_Block):
    """The GLMix block: a global slot branch and a local conv branch in
    parallel, followed by a conv MLP.

    Args:
        dim (int): Channels.
        num_heads (int): Heads of the slot self-attention.
        num_slots (int): Number of semantic slots ``S``. With
            ``slot_init='ada_avgpool'`` it must be a perfect square.
        slot_init (str): ``'ada_avgpool'`` pools each image's block input to
            ``sqrt(S) x sqrt(S)`` slots; ``'param'`` learns ``S`` shared slots.
        local_dw_ks (int): Kernel of the local branch's depth-wise conv.
        **kwargs: See :class:`_Block`.
    """

    def __init__(self, dim, num_heads, num_slots=64, slot_init='ada_avgpool',
                 local_dw_ks=5, **kwargs):
        super().__init__(dim, **kwargs)
        if slot_init == 'ada_avgpool':
            self.pool_size = math.isqrt(num_slots)
            if self.pool_size**2 != num_slots:
                raise ValueError(
                    f"slot_init='ada_avgpool' needs a square num_slots, got "
                    f'{num_slots}')
        elif slot_init == 'param':
            self.init_slots = nn.Parameter(torch.empty(1, num_slots, dim))
            nn.init.normal_(self.init_slots, std=.02)
        else:
            raise ValueError(f"slot_init must be 'ada_avgpool' or 'param', "
                             f'got {slot_init!r}')
        self.slot_init = slot_init
        self.slot_scale = nn.Parameter(torch.tensor(dim**-0.5))
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.relation_mha = nn.MultiheadAttention(dim, num_heads,
                                                  batch_first=True)
        self.feature_conv = local_convs(dim, local_dw_ks)
        # Parameter-free hook point: the clustering weights (B, S, H*W) flow
        # through it, so forward hooks can read them (visualize_slots.py).
        self.cluster_weights = nn.Identity()

    def initial_slots(self, x):
        """Slots before clustering, ``(B, S, C)``, from the block input."""
        if self.slot_init == 'param':
            return self.init_slots.expand(x.shape[0], -1, -1)
        # not F.adaptive_avg_pool2d: its windows would be frozen in ONNX
        return adaptive_avg_pool2d(x, self.pool_size).flatten(2).mT

    def assignment_logits(self, slots, pixels):
        """Scaled cosine similarity between slots and pixels, ``(B, S, HW)``."""
        return self.slot_scale * (F.normalize(slots, dim=-1)
                                  @ F.normalize(pixels, dim=-1).mT)

    def global_branch(self, slots, x):
        """Cluster the grid ``x`` (B, C, H, W) into ``slots``, let the slots
        attend to each other, and dispatch them back onto the grid."""
        grid = x.flatten(2).mT  # B, HW, C
        logits = self.assignment_logits(slots, grid)
        weights = self.cluster_weights(logits.softmax(dim=-1))
        slots = weights @ grid  # cluster: grid -> set
        slots = self.relation_mha(slots, slots, slots, need_weights=False)[0]
        glob = logits.softmax(dim=1).mT @ slots  # dispatch: set -> grid
        return glob.mT.reshape_as(x)

    def local_branch(self, x):
        """Light convs on the fine grid ``x`` (B, C, H, W)."""
        return self.feature_conv(x)

    def mix(self, x):
        """The token mixer: global (slots) + local (convs) on normed ``x``."""
        slots = self.initial_slots(x)
        x = self.pos_embed(x)
        normed = self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x, self.global_branch(slots, normed) + self.local_branch(normed)

    def forward(self, x):
        x, mixed = self.mix(x)
        x = x + self.drop_path(self.ls1(mixed))
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
        self.mha_op = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def forward(self, x):
        x = self.pos_embed(x)
        B, C, H, W = x.shape
        tokens = x.flatten(2).mT
        y = self.norm1(tokens)
        y = self.mha_op(y, y, y, need_weights=False)[0]
        tokens = tokens + self.drop_path(self.ls1(y))
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
        self.mha_op = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        B, C, H, W = x.shape
        x = x.flatten(2).mT
        y = self.norm1(x)
        x = x + self.drop_path(self.mha_op(y, y, y, need_weights=False)[0])
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.mT.reshape(B, C, H, W)
