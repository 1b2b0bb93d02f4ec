"""Parts of the paper's ablations of the GLMix block.

:class:`~.glmix.GLMixBlock` builds these only when one of its ablation
switches asks for them (the released models use none):

* :class:`WindowMHSA`, ``local_op='wmhsa'``: the local branch is window
  multi-head self-attention (Swin's W-MSA with a relative position bias);
* :class:`LSHBuckets` and :func:`bucket_means`, ``slot_init='hashing'``: the
  initial slots are the mean normed pixel of each locality-sensitive-hashing
  bucket (the signs of ``log2(S)`` fixed random projections of a pixel give
  its bucket);
* :func:`kmeans`, ``clustering='kmeans'``: hard clustering by Lloyd steps
  (assign every pixel to its most cosine-similar slot, average each slot's
  pixels).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


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
