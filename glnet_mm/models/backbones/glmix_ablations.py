"""The paper's ablations of the GLMix block, as subclasses of the released
:class:`~.glmix.GLMixBlock`.

Each ablation switch of an ``arch`` dict picks one mixin below, which
replaces one part of the block (its construction and its step of the
forward); :func:`glmix_block` builds the block of a set of switches, the
released class itself when none is set. The switches:

* ``branches`` (:data:`BRANCHES`): ``'local'`` (:class:`LocalOnly`) or
  ``'global'`` (:class:`GlobalOnly`) alone, or both in sequence,
  ``'global->local'`` / ``'local->global'`` (the second branch runs on the
  output of the first); the released ``'parallel'`` sums them;
* ``local_op='wmhsa'`` (:class:`WindowLocal`): window self-attention
  (Swin's W-MSA, :class:`WindowMHSA`) over ``local_window`` x
  ``local_window`` windows instead of the convs;
* ``slot_init='param'`` (:class:`ParamSlots`): ``S`` learned slots shared by
  all images instead of the pooled block input ('static slot
  initialization'; also the released GLNet-STL-ParamSlot);
* ``slot_init='hashing'`` (:class:`HashedSlots`): the initial slots are the
  mean normed pixel of each locality-sensitive-hashing bucket
  (:class:`LSHBuckets`: the signs of ``log2(S)`` fixed random projections
  of a pixel give its bucket);
* ``clustering='kmeans'`` (:class:`KMeansClustering`): ``kmeans_iters``
  hard Lloyd steps (:func:`kmeans`) instead of the soft clustering; every
  pixel gets back the slot it belongs to.

Other slot counts and depth-wise kernels are arguments of the released
block. The switches are validated once, with the rest of the ``arch``
dict, by :func:`~.glnet.resolve_arch`.
"""
import functools
import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .glmix import (GLMixBlock, HookPoint, LayerNorm2d, SelfAttention,
                    _Block, local_convs)


class WindowMHSA(nn.Module):
    """Multi-head self-attention inside non-overlapping windows of an NCHW
    map, with a learned relative position bias (Swin's W-MSA).

    The map is zero-padded bottom/right to a multiple of the window.

    Args:
        dim (int): Channels.
        num_heads (int): Attention heads.
        window (int): Window side. Defaults to 7.
    """

    def __init__(self, dim, num_heads, window=7):
        super().__init__()
        self.num_heads, self.window = num_heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1)**2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)
        pos = torch.stack(torch.meshgrid(torch.arange(window),
                                         torch.arange(window),
                                         indexing='ij')).flatten(1)
        rel = pos[:, :, None] - pos[:, None, :] + window - 1  # 2, N, N
        self.register_buffer('relative_position_index',
                             rel[0] * (2 * window - 1) + rel[1],
                             persistent=False)

    def forward(self, x):
        B, C, H, W = x.shape
        w = self.window
        x = F.pad(x, (0, -W % w, 0, -H % w))
        nh, nw = x.shape[2] // w, x.shape[3] // w
        windows = x.reshape(B, C, nh, w, nw, w).permute(0, 2, 4, 3, 5, 1)
        windows = windows.reshape(B * nh * nw, w * w, C)
        q, k, v = self.qkv(windows).unflatten(
            -1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[
            self.relative_position_index].permute(2, 0, 1)
        # in q's dtype: torch 2.1 refuses a float32 mask beside bf16 queries
        out = F.scaled_dot_product_attention(q, k, v,
                                             attn_mask=bias.to(q.dtype))
        out = self.proj(out.transpose(1, 2).flatten(2))
        out = out.reshape(B, nh, nw, w, w, C).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(B, C, nh * w, nw * w)[:, :, :H, :W]


def _mean_of_members(assign):
    """Clustering weights that average each slot's member pixels, from the
    one-hot ``assign`` (B, S, HW)."""
    return assign / assign.sum(-1, keepdim=True).clamp(min=1)


class LSHBuckets(nn.Module):
    """Locality-sensitive hashing of pixels into ``num_slots`` buckets.

    The bucket of a pixel is the binary number formed by the signs of its
    projections on ``log2(num_slots)`` fixed random directions (a buffer, so
    the hashing is saved with the model).

    Args:
        dim (int): Channels of a pixel.
        num_slots (int): Number of buckets, a power of two.
    """

    def __init__(self, dim, num_slots):
        super().__init__()
        self.num_slots = num_slots
        bits = num_slots.bit_length() - 1
        self.register_buffer('hash_planes', torch.randn(dim, bits))

    def forward(self, grid):
        """One-hot bucket of every pixel of ``grid`` (B, HW, C): (B, S, HW)."""
        bits = (grid @ self.hash_planes > 0).long()
        bucket = (bits << torch.arange(bits.shape[-1],
                                       device=grid.device)).sum(-1)
        return F.one_hot(bucket, self.num_slots).mT.to(grid.dtype)


def bucket_means(assign, grid):
    """Mean pixel of each bucket of the one-hot ``assign`` (B, S, HW) over
    ``grid`` (B, HW, C): (B, S, C); empty buckets are zero."""
    return _mean_of_members(assign) @ grid


def kmeans(slots, grid, iters, weights_hook=None):
    """Hard k-means of the pixels ``grid`` (B, HW, C) from ``slots``
    (B, S, C), by cosine similarity.

    Args:
        slots (Tensor): Initial centres.
        grid (Tensor): Pixels.
        iters (int): Lloyd steps.
        weights_hook (callable, optional): Applied to each step's clustering
            weights (the hook point of :class:`~.glmix.GLMixBlock`).

    Returns:
        tuple[Tensor, Tensor]: The one-hot assignment (B, S, HW) of the last
        step and the slots, mean of their member pixels.
    """
    pixels = F.normalize(grid, dim=-1)
    for _ in range(iters):
        nearest = (F.normalize(slots, dim=-1) @ pixels.mT).argmax(1)
        assign = F.one_hot(nearest, slots.shape[1]).mT.to(grid.dtype)
        weights = _mean_of_members(assign)
        if weights_hook is not None:
            weights = weights_hook(weights)
        slots = weights @ grid
    return assign, slots


class GLMixAblation(GLMixBlock):
    """Base of the ablation blocks: the released block, built from parts
    that the mixins replace (in the released order, so that the parameter
    names and the random initialisation stay the released block's).

    Args:
        dim (int): Channels.
        num_heads (int): Heads of the slot (and window) self-attention.
        num_slots (int): Slots ``S``. Defaults to 64.
        local_dw_ks (int): Kernel of the local depth-wise conv.
            Defaults to 5.
        local_window (int): Window side of :class:`WindowLocal`.
            Defaults to 7.
        kmeans_iters (int): Lloyd steps of :class:`KMeansClustering`.
            Defaults to 5.
        **kwargs: See :class:`~.glmix._Block`.
    """

    def __init__(self, dim, num_heads, num_slots=64, local_dw_ks=5,
                 local_window=7, kmeans_iters=5, **kwargs):
        _Block.__init__(self, dim, **kwargs)
        self.num_slots, self.local_dw_ks = num_slots, local_dw_ks
        self.local_window, self.kmeans_iters = local_window, kmeans_iters
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.build_global(dim, num_heads)
        self.build_local(dim, num_heads)

    def build_global(self, dim, num_heads):
        self.build_slots(dim)
        self.build_clustering(dim)
        self.relation_mha = SelfAttention(dim, num_heads)
        self.cluster_weights = HookPoint()

    def build_slots(self, dim):
        self.pool_size = math.isqrt(self.num_slots)

    def build_clustering(self, dim):
        self.slot_scale = nn.Parameter(torch.tensor(dim**-0.5))

    def build_local(self, dim, num_heads):
        self.feature_conv = local_convs(dim, self.local_dw_ks)


class LocalOnly:
    """``branches='local'``: the local branch alone (no slots)."""

    def build_global(self, dim, num_heads):
        pass

    def forward(self, x):
        x = self.pos_embed(x)
        x = self.mixer_branch(x, self.local_branch(self.norm1(x)))
        return self.mlp_branch(x)


class _BranchOrder:
    """The two branches combined by :meth:`mix_branches` instead of the
    parallel sum."""

    def forward(self, x):
        slots = self.initial_slots(x)
        x = self.pos_embed(x)
        x = self.mixer_branch(x, self.mix_branches(slots, self.norm1(x)))
        return self.mlp_branch(x)


class GlobalOnly(_BranchOrder):
    """``branches='global'``: the global branch alone (no local convs)."""

    def build_local(self, dim, num_heads):
        pass

    def mix_branches(self, slots, grid):
        return self.global_branch(slots, grid)


class GlobalThenLocal(_BranchOrder):
    """``branches='global->local'``: the local branch on the global one's
    output."""

    def mix_branches(self, slots, grid):
        return self.local_branch(self.global_branch(slots, grid))


class LocalThenGlobal(_BranchOrder):
    """``branches='local->global'``: the global branch on the local one's
    output."""

    def mix_branches(self, slots, grid):
        return self.global_branch(slots, self.local_branch(grid))


class WindowLocal:
    """``local_op='wmhsa'``: window self-attention as the local branch."""

    def build_local(self, dim, num_heads):
        self.local_attn = WindowMHSA(dim, num_heads, self.local_window)

    def local_branch(self, grid):
        return self.local_attn(grid)


class ParamSlots:
    """``slot_init='param'``: ``S`` learned initial slots, shared by all
    images (any ``S``)."""

    def build_slots(self, dim):
        self.init_slots = nn.Parameter(torch.empty(1, self.num_slots, dim))
        nn.init.normal_(self.init_slots, std=.02)

    def initial_slots(self, x):
        return self.init_slots.expand(x.shape[0], -1, -1)


class HashedSlots:
    """``slot_init='hashing'``: the initial slots are the bucket means of the
    normed pixels (``S`` a power of two)."""

    def build_slots(self, dim):
        self.slot_hash = LSHBuckets(dim, self.num_slots)

    def initial_slots(self, x):
        return None  # they come from the normed grid, in cluster()

    def cluster(self, slots, pixels):
        return super().cluster(bucket_means(self.slot_hash(pixels), pixels),
                               pixels)


class KMeansClustering:
    """``clustering='kmeans'``: hard k-means (no learnable scale); each pixel
    is dispatched the slot it belongs to."""

    def build_clustering(self, dim):
        pass

    def cluster(self, slots, pixels):
        assign, slots = kmeans(slots, pixels, self.kmeans_iters,
                               self.cluster_weights)
        return slots, assign.mT


# The choices of each ablation switch: the mixin of each value (None: the
# released block's own part). resolve_arch checks values against these.
BRANCHES = {'parallel': None, 'local': LocalOnly, 'global': GlobalOnly,
            'global->local': GlobalThenLocal,
            'local->global': LocalThenGlobal}
LOCAL_OPS = {'dwconv': None, 'wmhsa': WindowLocal}
SLOT_INITS = {'ada_avgpool': None, 'param': ParamSlots,
              'hashing': HashedSlots}
CLUSTERINGS = {'soft': None, 'kmeans': KMeansClustering}


def class_name(mixins):
    return 'GLMix' + ''.join(m.__name__ for m in mixins)


@functools.lru_cache(maxsize=None)
def ablation_class(mixins):
    """The block class of a tuple of mixins, ``GLMixAblation`` under them
    (one class per combination, registered in this module by its name)."""
    name = class_name(mixins)
    cls = type(name, mixins + (GLMixAblation, ), {'__module__': __name__})
    globals()[name] = cls
    return cls


def __getattr__(name):
    """An ablation class by its name, built on first use (so that a pickled
    model loads in a fresh process)."""
    for combo in itertools.product(BRANCHES.values(), LOCAL_OPS.values(),
                                   SLOT_INITS.values(), CLUSTERINGS.values()):
        mixins = tuple(m for m in combo if m is not None)
        if mixins and name == class_name(mixins):
            return ablation_class(mixins)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def glmix_block(dim, num_heads, branches='parallel', local_op='dwconv',
                slot_init='ada_avgpool', clustering='soft', num_slots=64,
                local_dw_ks=5, local_window=7, kmeans_iters=5, **kwargs):
    """The GLMix block of a set of switches (see the module docstring):
    :class:`~.glmix.GLMixBlock` itself for the released ones.

    Args:
        dim (int): Channels.
        num_heads (int): Heads of the slot (and window) self-attention.
        branches, local_op, slot_init, clustering (str): Keys of
            :data:`BRANCHES`, :data:`LOCAL_OPS`, :data:`SLOT_INITS`,
            :data:`CLUSTERINGS`.
        num_slots, local_dw_ks, local_window, kmeans_iters (int): See
            :class:`GLMixAblation`.
        **kwargs: See :class:`~.glmix._Block`.
    """
    mixins = tuple(m for m in (BRANCHES[branches], LOCAL_OPS[local_op],
                               SLOT_INITS[slot_init],
                               CLUSTERINGS[clustering]) if m is not None)
    if not mixins:
        return GLMixBlock(dim, num_heads, num_slots, local_dw_ks, **kwargs)
    return ablation_class(mixins)(
        dim, num_heads, num_slots=num_slots, local_dw_ks=local_dw_ks,
        local_window=local_window, kmeans_iters=kmeans_iters, **kwargs)
