"""Adaptive average pooling whose windows follow the input size in a graph.

``F.adaptive_avg_pool2d`` picks its window sizes from the input size. Traced
for ONNX with a dynamic input size, torch's decomposition fixes the windows of
the example input (an ``AveragePool`` with a constant kernel), so the exported
graph is wrong, or fails, at every other size. While ``torch.export`` traces
(the ONNX path), the windows are therefore computed from the input shape
inside the graph; everywhere else (eager, ``torch.compile``, the FLOP
counter) it is PyTorch's own kernel. In the graph, output cell ``i`` of an
axis of length
``n`` averages positions ``floor(i n / s) <= p < ceil((i + 1) n / s)``, the
windows of ``F.adaptive_avg_pool2d``, as differences of running sums (one
``cumsum`` and two gathers per axis, O(n) work like the pooling itself).
Results equal PyTorch's up to float rounding (tests/test_fast_paths.py).
"""
import torch
import torch.nn.functional as F

from ...utils.compat import is_exporting


def pooling_windows(in_size, out_size: int, device=None):
    """Start and end (exclusive) of the ``out_size`` adaptive pooling
    windows over an axis of length ``in_size`` (an int or a traced size)."""
    cells = torch.arange(out_size, device=device)
    start = torch.div(cells * in_size, out_size, rounding_mode='floor')
    end = torch.div((cells + 1) * in_size + out_size - 1, out_size,
                    rounding_mode='floor')
    return start, end


def _pool_axis(x, out_size, dim):
    start, end = pooling_windows(x.shape[dim], out_size, x.device)
    # running sums with a leading 0: sum of [a, b) = cs[b] - cs[a]
    pad = (1, 0) if dim == -1 else (0, 0, 1, 0)
    cs = F.pad(x.cumsum(dim), pad)
    sums = cs.index_select(dim, end) - cs.index_select(dim, start)
    shape = [1] * x.dim()
    shape[dim] = out_size
    return sums / (end - start).to(x.dtype).view(shape)


def running_sum_pool2d(x: torch.Tensor, output_size: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, output_size)`` as running sums, for
    ``(..., H, W)`` inputs and a square output, valid for any ``H``, ``W``
    in a traced graph."""
    return _pool_axis(_pool_axis(x, output_size, -1), output_size, -2)


def adaptive_avg_pool2d(x: torch.Tensor, output_size: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, output_size)``, through running sums while
    ``torch.export`` traces (see the module docstring)."""
    if is_exporting():
        return running_sum_pool2d(x, output_size)
    return F.adaptive_avg_pool2d(x, output_size)
