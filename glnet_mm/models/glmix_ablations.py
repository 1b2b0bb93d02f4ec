"""The paper's ablations of the GLMix block, as switches of one block class.

:class:`GLMixAblationBlock` starts from :class:`~.glmix.GLMixBlock` and
removes or replaces one part per switch (the GLNet ``arch`` switches of the
same names, see :data:`~.glnet.ARCH_DEFAULTS`):

* ``branches``: ``'parallel'`` (GLMix), ``'local'`` or ``'global'`` alone, or
  both in sequence, ``'global->local'`` / ``'local->global'``: the second
  branch runs on the output of the first instead of beside it;
* ``local_op='wmhsa'``: the local branch is window multi-head self-attention
  (Swin's W-MHSA with a relative position bias) over ``local_window`` x
  ``local_window`` windows instead of the convs;
* ``slot_init='hashing'``: the initial slots are the mean normed pixel of
  each locality-sensitive-hashing bucket (the signs of ``log2(S)`` fixed
  random projections of a pixel give its bucket);
* ``clustering='kmeans'``: hard clustering, ``kmeans_iters`` Lloyd steps
  (assign every pixel to its most cosine-similar slot, average each slot's
  pixels); every pixel gets back the slot it belongs to.

GLNet builds this block only when one of these switches is turned; the
released models are plain :class:`~.glmix.GLMixBlock` s.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .glmix import GLMixBlock

BRANCHES = ('parallel', 'local', 'global', 'global->local', 'local->global')
LOCAL_OPS = ('dwconv', 'wmhsa')
CLUSTERINGS = ('soft', 'kmeans')


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
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = self.proj(out.transpose(1, 2).flatten(2))
        out = out.reshape(B, nh, nw, w, w, C).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(B, C, nh * w, nw * w)[:, :, :H, :W]


def _mean_of_members(assign):
    """Clustering weights that average each slot's member pixels, from the
    one-hot ``assign`` (B, S, HW)."""
    return assign / assign.sum(-1, keepdim=True).clamp(min=1)


class GLMixAblationBlock(GLMixBlock):
    """A GLMix block with the paper's ablation switches (module docstring).

    Args:
        dim (int): Channels.
        num_heads (int): Heads of the slot (and window) self-attention.
        num_slots (int): Number of slots ``S``; a power of two with
            ``slot_init='hashing'``.
        slot_init (str): ``'ada_avgpool'``, ``'param'`` or ``'hashing'``.
        branches (str): One of :data:`BRANCHES`. Defaults to ``'parallel'``.
        local_op (str): ``'dwconv'`` or ``'wmhsa'``. Defaults to ``'dwconv'``.
        local_window (int): Window of ``'wmhsa'``. Defaults to 7.
        clustering (str): ``'soft'`` or ``'kmeans'``. Defaults to ``'soft'``.
        kmeans_iters (int): Lloyd steps of ``'kmeans'``. Defaults to 5.
        **kwargs: See :class:`~.glmix.GLMixBlock` (``local_dw_ks``, ...).
    """

    def __init__(self, dim, num_heads, num_slots=64, slot_init='ada_avgpool',
                 branches='parallel', local_op='dwconv', local_window=7,
                 clustering='soft', kmeans_iters=5, **kwargs):
        for name, value, choices in (('branches', branches, BRANCHES),
                                     ('local_op', local_op, LOCAL_OPS),
                                     ('clustering', clustering, CLUSTERINGS)):
            if value not in choices:
                raise ValueError(f'{name} must be one of {choices}, got '
                                 f'{value!r}')
        hashing = slot_init == 'hashing'
        # 'hashing' has no parameters: build as 'param', then drop them.
        super().__init__(dim, num_heads, num_slots=num_slots,
                         slot_init='param' if hashing else slot_init,
                         **kwargs)
        self.branches, self.clustering = branches, clustering
        if int(kmeans_iters) != kmeans_iters or kmeans_iters < 1:
            raise ValueError(f'kmeans_iters must be an int >= 1, got '
                             f'{kmeans_iters}')
        self.kmeans_iters = kmeans_iters
        if hashing:
            bits = num_slots.bit_length() - 1
            if num_slots != 2**bits:
                raise ValueError(f"slot_init='hashing' needs a power-of-two "
                                 f'num_slots, got {num_slots}')
            del self.init_slots
            self.slot_init = 'hashing'
            self.num_slots = num_slots
            self.register_buffer('hash_planes', torch.randn(dim, bits))
        if branches == 'local':
            del self.relation_mha, self.slot_scale, self.cluster_weights
            if slot_init == 'param':
                del self.init_slots
        elif clustering == 'kmeans':
            del self.slot_scale
        if branches == 'global' or local_op == 'wmhsa':
            del self.feature_conv
        if branches != 'global' and local_op == 'wmhsa':
            self.local_attn = WindowMHSA(dim, num_heads, local_window)

    def initial_slots(self, x):
        if self.branches == 'local' or self.slot_init == 'hashing':
            return None  # no slots, or hashed from the normed grid
        return super().initial_slots(x)

    def hashed_slots(self, grid):
        """Mean pixel of each hashing bucket, ``(B, S, C)``."""
        bits = (grid @ self.hash_planes > 0).long()
        bucket = (bits << torch.arange(bits.shape[-1],
                                       device=grid.device)).sum(-1)
        assign = F.one_hot(bucket, self.num_slots).mT.to(grid.dtype)
        return _mean_of_members(assign) @ grid

    def global_branch(self, slots, x):
        grid = x.flatten(2).mT  # B, HW, C
        if self.slot_init == 'hashing':
            slots = self.hashed_slots(grid)
        if self.clustering == 'soft':
            return super().global_branch(slots, x)
        pixels = F.normalize(grid, dim=-1)
        for _ in range(self.kmeans_iters):
            nearest = (F.normalize(slots, dim=-1) @ pixels.mT).argmax(1)
            assign = F.one_hot(nearest, slots.shape[1]).mT.to(grid.dtype)
            slots = self.cluster_weights(_mean_of_members(assign)) @ grid
        slots = self.relation_mha(slots, slots, slots, need_weights=False)[0]
        return (assign.mT @ slots).mT.reshape_as(x)  # each pixel its slot

    def local_branch(self, x):
        if hasattr(self, 'local_attn'):
            return self.local_attn(x)
        return super().local_branch(x)

    def mix(self, x):
        slots = self.initial_slots(x)
        x = self.pos_embed(x)
        normed = self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.branches == 'parallel':
            out = self.global_branch(slots, normed) + self.local_branch(normed)
        elif self.branches == 'local':
            out = self.local_branch(normed)
        elif self.branches == 'global':
            out = self.global_branch(slots, normed)
        elif self.branches == 'global->local':
            out = self.local_branch(self.global_branch(slots, normed))
        else:  # 'local->global'
            out = self.global_branch(slots, self.local_branch(normed))
        return x, out
