"""GLNet's modules. ``heads`` (mmpretrain) is imported only on demand;
``timm_models`` registers the GLNet models in timm: where a timm that has
the model contract it needs (>= 1.0.3) is installed, as soon as timm is
imported (at once if it already is), so that ``import glnet_mm`` itself
never imports timm (which takes seconds: torchvision and every timm model)."""
import importlib.abc
import importlib.metadata
import importlib.util
import re
import sys
import warnings

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


def register_timm_models():
    """Register the GLNet models in timm (imports timm); idempotent."""
    from . import timm_models  # noqa: F401


class _RegisterAfterTimm(importlib.abc.MetaPathFinder):
    """An import hook that waits for the first ``import timm`` of the
    process: it lets timm's own import run, then registers the GLNet models,
    and removes itself. A registration error is a warning, never a failed
    ``import timm``."""

    def find_spec(self, name, path=None, target=None):
        if name != 'timm':
            return None
        sys.meta_path.remove(self)  # one shot; the real finders go on
        spec = importlib.util.find_spec('timm')
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            try:
                register_timm_models()
            except Exception as error:  # noqa: B902
                warnings.warn(f'glnet_mm could not register its models in '
                              f'timm: {type(error).__name__}: {error}')
        spec.loader.exec_module = exec_then_register
        return spec


if timm_supported():
    if 'timm' in sys.modules:
        register_timm_models()
    elif not any(isinstance(f, _RegisterAfterTimm) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterTimm())
