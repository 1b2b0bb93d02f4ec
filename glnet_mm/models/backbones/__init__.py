from .checkpoint_filter import checkpoint_filter_fn, load_pretrained
from .glmix import GLMixBlock, MHABlock, TransformerBlock
from .glnet import GLNet, arch_zoo, resolve_arch

__all__ = ['GLNet', 'GLMixBlock', 'MHABlock', 'TransformerBlock', 'arch_zoo',
           'checkpoint_filter_fn', 'load_pretrained', 'resolve_arch']
