"""The thin layer: make ``GLNet`` a backbone of mmdet, mmseg and mmpretrain.

Importing :mod:`glnet_mm` calls :func:`register_all`, so
``custom_imports = dict(imports=['glnet_mm'])`` is all a config needs. Toolboxes
that are not installed (or a machine without mmcv) are skipped: the model
itself needs only torch and mmengine.
"""
import importlib

from .checkpoint import register_mmengine_loader
from .models import GLNet

TOOLBOXES = ('mmdet', 'mmseg', 'mmpretrain')


def register_all():
    """Register :class:`GLNet` in every installed toolbox's ``MODELS``.

    Returns:
        list[str]: The toolboxes it is registered in.
    """
    registered = []
    for name in TOOLBOXES:
        try:
            registry = importlib.import_module(f'{name}.registry')
        except ImportError:
            continue
        registry.MODELS.register_module('GLNet', module=GLNet, force=True)
        registered.append(name)
    register_mmengine_loader()
    return registered
