"""A config's backbone (:func:`build_backbone`), GLNet's ImageNet models by
name in mmpretrain (:func:`register_models`, which imports mmpretrain when
called), and the runner of ``tools/train.py`` and ``tools/test.py``
(:mod:`.runner`)."""
from .backbone import backbone_config, build_backbone, load_config
from .model_hub import register_models

__all__ = ['backbone_config', 'build_backbone', 'load_config',
           'register_models']
