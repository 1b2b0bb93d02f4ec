from .glmix import GLMixBlock, MHABlock, TransformerBlock
from .glnet import GLNet, arch_zoo, resolve_arch

__all__ = ['GLNet', 'GLMixBlock', 'MHABlock', 'TransformerBlock', 'arch_zoo',
           'resolve_arch']
