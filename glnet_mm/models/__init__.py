"""GLNet's modules. ``heads`` (mmpretrain) is imported only on demand."""
from .backbones import (GLMixBlock, GLNet, MHABlock, TransformerBlock,
                        arch_zoo, checkpoint_filter_fn, load_pretrained,
                        resolve_arch)

__all__ = ['GLNet', 'GLMixBlock', 'MHABlock', 'TransformerBlock', 'arch_zoo',
           'checkpoint_filter_fn', 'load_pretrained', 'resolve_arch']
