"""GLNet (GLMix) vision backbone for OpenMMLab: mmdet, mmseg and mmpretrain.

Importing this package needs only torch and mmengine. It registers ``GLNet``
once, in mmengine's root ``MODELS`` registry, where the ``MODELS`` registries
of mmdet, mmseg and mmpretrain (its children) find it; nothing else happens
on import. Safe checkpoint loading for the whole process is a separate,
explicit switch: :func:`enable_safe_loading`, or ``'glnet_mm.safe_loading'``
in a config's ``custom_imports``.
"""
from .builder import build_backbone
from .checkpoint_io import enable_safe_loading, read_checkpoint, safe_load
from .models import GLNet, arch_zoo, checkpoint_filter_fn, load_pretrained

__version__ = '0.2.0'

__all__ = ['GLNet', 'arch_zoo', 'build_backbone', 'checkpoint_filter_fn',
           'enable_safe_loading', 'load_pretrained', 'read_checkpoint',
           'safe_load', '__version__']
