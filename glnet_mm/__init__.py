"""GLNet (GLMix) vision backbone for OpenMMLab: mmdet, mmseg and mmpretrain."""
from .checkpoint import load_pretrained, safe_load
from .models import GLNet, arch_zoo
from .registry import register_all

__version__ = '0.1.0'
REGISTERED_IN = register_all()

__all__ = ['GLNet', 'arch_zoo', 'load_pretrained', 'safe_load',
           'REGISTERED_IN', '__version__']
