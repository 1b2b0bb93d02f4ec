"""GLMix's semantic slots as pictures: the soft-clustering weights of chosen
blocks, pseudo-coloured, with representative slots picked by k-medoids.

The one implementation behind ``tools/visualization/visualize_slots.py`` (a figure of one
image from a config and a checkpoint) and ``SlotVisualizationHook``
(``SlotVisualizationHook``: the same figure for fixed validation images after
every validation of a run). Blocks are numbered 1, 2, ... over the whole
network, as in the paper.

Needs torch, numpy, OpenCV and mmengine (no OpenMMLab toolbox).
"""
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.visualization import Visualizer

PAPER_BLOCKS = (2, 5, 10)
# Frame colours (RGB) of the representative slots.
COLOURS = ((255, 255, 255), (0, 255, 0), (255, 0, 255), (0, 255, 255),
           (255, 128, 0), (128, 128, 255))

def _assign(dist, medoids):
    """Each point's nearest medoid (its index in ``medoids``); a medoid is
    in its own cluster even when tied with another (equal slot maps: a flat
    image, a barely trained model), so that no cluster is empty."""
    labels = dist[:, medoids].argmin(1)
    labels[medoids] = np.arange(len(medoids))
    return labels


def kmedoids(dist, k, max_iter=100):
    """k-medoids (PAM's greedy BUILD start, then alternating updates).

    Args:
        dist (np.ndarray): ``(N, N)`` symmetric distances.
        k (int): Number of medoids, ``1 <= k <= N``.
        max_iter (int): Most update rounds. Defaults to 100.

    Returns:
        tuple[np.ndarray, np.ndarray]: Medoid indices ``(k, )`` (in order of
        cluster size, largest first) and each point's cluster ``(N, )``
        (index into the medoids).
    """
    dist = np.asarray(dist, dtype=np.float64)
    n = len(dist)
    if dist.shape != (n, n):
        raise ValueError(f'dist must be square, got {dist.shape}')
    if not 1 <= k <= n:
        raise ValueError(f'k must be in [1, {n}], got {k}')
    medoids = [int(dist.sum(1).argmin())]
    for _ in range(1, k):  # BUILD: add the point that lowers the cost most
        nearest = dist[:, medoids].min(1)
        gain = np.maximum(nearest[None] - dist, 0).sum(1)
        gain[medoids] = -1
        medoids.append(int(gain.argmax()))
    medoids = np.array(medoids)
    for _ in range(max_iter):
        labels = _assign(dist, medoids)
        new = medoids.copy()
        for c in range(k):
            members = np.flatnonzero(labels == c)
            new[c] = members[dist[np.ix_(members, members)].sum(1).argmin()]
        if np.array_equal(new, medoids):
            break
        medoids = new
    labels = _assign(dist, medoids)
    order = np.argsort(-np.bincount(labels, minlength=k), kind='stable')
    return medoids[order], np.argsort(order)[labels]


def slot_distances(maps):
    """``1 - cosine similarity`` between flattened slot maps ``(S, H, W)``."""
    flat = F.normalize(maps.flatten(1).double(), dim=1)
    return (1 - flat @ flat.T).clamp(min=0).numpy()


def slot_blocks(net):
    """``{block number (1-based, over all blocks): block}`` of the blocks
    with soft/hard clustering, and the total number of blocks."""
    blocks = [b for stage in net.stages for b in stage.blocks]
    found = {i + 1: b for i, b in enumerate(blocks)
             if getattr(b, 'cluster_weights', None) is not None}
    return found, len(blocks)


def default_blocks(net):
    """Those of the paper's blocks 2, 5, 10 that have slots, or every block
    with slots when fewer than two of them do (small models)."""
    found = slot_blocks(net)[0]
    blocks = [b for b in PAPER_BLOCKS if b in found]
    return blocks if len(blocks) >= 2 else sorted(found)


@torch.no_grad()
def capture_assignments(net, x, blocks):
    """Run ``net`` on ``x`` and return each block's clustering weights.

    Forward hooks on the parameter-free ``cluster_weights`` submodule read the
    weights; the model itself is unchanged and the hooks are removed after.

    Returns:
        dict[int, torch.Tensor]: ``(S, h, w)`` weight maps per block number.
    """
    found, total = slot_blocks(net)
    for b in blocks:
        if b not in found:
            raise ValueError(
                f'block {b} has no slot clustering; this model has {total} '
                f'blocks and clustering in blocks {sorted(found)}')
    sizes, weights, handles = {}, {}, []
    for b in blocks:
        block = found[b]
        handles.append(block.register_forward_pre_hook(
            lambda m, args, b=b: sizes.__setitem__(b, args[0].shape[-2:])))
        handles.append(block.cluster_weights.register_forward_hook(
            lambda m, args, out, b=b: weights.__setitem__(b, out[0])))
    try:
        net(x)
    finally:
        for h in handles:
            h.remove()
    return {b: weights[b].reshape(-1, *sizes[b]).float() for b in blocks}


def _overlay(maps, image, alpha=0.5):
    """Jet pseudo-colour of one map ``(h, w)`` over ``image`` (RGB)."""
    up = F.interpolate(maps[None, None], image.shape[:2], mode='bilinear',
                       align_corners=False)[0]
    return Visualizer.draw_featmap(up, image, channel_reduction=None, topk=0,
                                   alpha=alpha)


def _frame(tile, colour, width=3):
    tile = tile.copy()
    tile[:width], tile[-width:] = colour, colour
    tile[:, :width], tile[:, -width:] = colour, colour
    return tile


def _label(tile, text):
    tile = tile.copy()
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _mosaic(maps, medoids, size):
    """Every slot's map, small, in a square grid; medoids framed."""
    n = maps.shape[0]
    cols = int(np.ceil(np.sqrt(n)))
    tile = max(min(size) // cols, 4)  # the grid fits portrait images too
    small = F.interpolate(maps[:, None], (tile, tile), mode='area')[:, 0]
    low = small.flatten(1).amin(1)[:, None, None]
    high = small.flatten(1).amax(1)[:, None, None]
    small = (small - low) / (high - low).clamp(min=1e-12)  # as the overlays
    jet = cv2.applyColorMap((small.numpy() * 255).astype(np.uint8).reshape(
        -1, tile), cv2.COLORMAP_JET)[..., ::-1].reshape(n, tile, tile, 3)
    canvas = np.zeros((size[0], size[1], 3), np.uint8)
    for s in range(n):
        r, c = divmod(s, cols)
        cell = jet[s]
        if s in medoids:
            cell = _frame(cell, COLOURS[list(medoids).index(s) % len(COLOURS)],
                          width=max(tile // 8, 1))
        canvas[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = cell
    return canvas


def render_row(image, maps, medoids, block):
    """One block's row: image, slot mosaic, representative slots."""
    h, w = image.shape[:2]
    tiles = [_label(image, f'block {block}'),
             _label(_mosaic(maps, medoids, (h, w)), f'{len(maps)} slots')]
    for i, s in enumerate(medoids):
        tile = _overlay(maps[s], image)
        tiles.append(_frame(_label(tile, f'slot {s}'),
                            COLOURS[i % len(COLOURS)]))
    return np.concatenate(tiles, axis=1)



def slot_figure(image, assignments, num_medoids=4):
    """The figure of one image: one row per block (:func:`render_row`).

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB picture of the input.
        assignments (dict[int, torch.Tensor]): ``(S, h, w)`` weight maps per
            block number (:func:`capture_assignments`).
        num_medoids (int): Representative slots per block. Defaults to 4.

    Returns:
        tuple[np.ndarray, dict[int, dict]]: The RGB figure, and per block:
        ``medoids`` (slot indices), ``labels`` (each slot's group) and
        ``maps``.
    """
    if num_medoids < 1:
        raise ValueError(f'num_medoids must be >= 1, got {num_medoids}')
    results, rows = {}, []
    for b, maps in assignments.items():
        k = min(num_medoids, len(maps))
        medoids, labels = kmedoids(slot_distances(maps), k)
        results[b] = dict(medoids=medoids.tolist(), labels=labels,
                          maps=maps)
        rows.append(render_row(image, maps, medoids, b))
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate(
        [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    return grid, results
