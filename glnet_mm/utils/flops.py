"""FLOP counting with mmengine's (fvcore-derived) jit tracer.

FLOPs are multiply-adds, the convention of the paper. Besides what the
counter knows as shipped (convs, linears, matmuls, norms), the attention
core of ``scaled_dot_product_attention`` (QK^T and AV) is counted unless
asked not to. Without it, the counter as shipped gives what it gives for the
official model (tests/test_official_parity.py).
"""
import math

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape


ATTENTION_CORE = 'scaled_dot_product_attention'


def sdpa_flop_jit(inputs, outputs):
    """Multiply-adds of QK^T and AV in ``aten::scaled_dot_product_attention``."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def flop_analyzer(model, inputs):
    """An mmengine :class:`FlopAnalyzer` that knows the attention core.

    Args:
        model (torch.nn.Module): Model in the mode to count (eval).
        inputs (torch.Tensor | tuple): Forward inputs.

    Returns:
        FlopAnalyzer: Quiet about unsupported (FLOP-free) element-wise ops.
    """
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(f'aten::{ATTENTION_CORE}', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def flop_counts(model, input_shape=(1, 3, 224, 224)):
    """Multiply-adds per operator of ``model`` on one zero input.

    Traced with autograd enabled: under ``no_grad`` a plain
    ``nn.MultiheadAttention`` (in other models) takes a fused fast path
    whose projections the tracer cannot see.

    Returns:
        Counter: FLOPs by operator name; the attention core is under
        ``'scaled_dot_product_attention'``.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            return flop_analyzer(model,
                                 torch.zeros(input_shape)).by_operator()
    finally:
        model.train(was_training)


def count_flops(model, input_shape=(1, 3, 224, 224), attention_core=True):
    """Total multiply-adds of ``model`` on one input of ``input_shape``,
    with or without the attention core (QK^T and AV)."""
    counts = flop_counts(model, input_shape)
    if not attention_core:
        counts.pop(ATTENTION_CORE, None)
    return sum(counts.values())


def count_params(model):
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
