"""GLNet's modules. ``heads`` (mmpretrain) is imported only on demand;
``timm_models`` registers the GLNet models in timm, imported here only where
a timm that has the model contract it needs (>= 1.0.3) is installed."""
import importlib.metadata
import importlib.util
import re

from .backbones import (GLMixBlock, GLNet, MHABlock, TransformerBlock,
                        arch_zoo, checkpoint_filter_fn, load_pretrained,
                        resolve_arch)

__all__ = ['GLNet', 'GLMixBlock', 'MHABlock', 'TransformerBlock', 'arch_zoo',
           'checkpoint_filter_fn', 'load_pretrained', 'resolve_arch']

# timm's forward_intermediates, prune_intermediate_layers and
# feature_cls='getter' (FeatureGetterNet): timm 1.0.3, the oldest 1.x on the
# index (0.9.16 has none of them)
TIMM_MIN = (1, 0, 3)


def timm_supported() -> bool:
    """Whether timm is installed at a version >= :data:`TIMM_MIN`, found
    without importing it (an older timm is left alone: no registration)."""
    if importlib.util.find_spec('timm') is None:
        return False
    try:
        version = importlib.metadata.version('timm')
    except importlib.metadata.PackageNotFoundError:
        return False
    numbers = tuple(int(n) for n in re.findall(r'\d+', version)[:3])
    return numbers >= TIMM_MIN


if timm_supported():
    from . import timm_models  # noqa: F401,E402  (registers the models)
