"""GLNet (GLMix) vision backbone for OpenMMLab: mmdet, mmseg and mmpretrain.

Importing this package needs only torch and mmengine. It registers ``GLNet``
once, in mmengine's root ``MODELS`` registry, where the ``MODELS`` registries
of mmdet, mmseg and mmpretrain (its children) find it; nothing else happens
on import. The rest is imported where it is used:

* ``glnet_mm.models``: the backbone (``backbones/``: GLNet, GLMix, the
  ablations, the official checkpoint converter), the token-labeling head
  (``heads/``, needs mmpretrain), layers (``utils/``);
* ``glnet_mm.checkpoint``: reading checkpoints safely; importing
  ``glnet_mm.checkpoint.process_wide`` (a config's ``custom_imports``) turns
  it on for the whole process;
* ``glnet_mm.engine``: the configs' hooks and optimizer constructor;
* ``glnet_mm.apis``: a config's backbone, the models by name, the runner of
  ``tools/train.py`` and ``tools/test.py``;
* ``glnet_mm.utils``: torch-version compatibility, FLOP counting;
* ``glnet_mm.visualization``: the semantic-slot pictures;
* ``glnet_mm.datasets``: the generated toy datasets.
"""
from .apis.backbone import build_backbone
from .checkpoint import enable_safe_loading, read_checkpoint, safe_load
from .models import GLNet, arch_zoo, checkpoint_filter_fn, load_pretrained
from .version import __version__

__all__ = ['GLNet', 'arch_zoo', 'build_backbone', 'checkpoint_filter_fn',
           'enable_safe_loading', 'load_pretrained', 'read_checkpoint',
           'safe_load', '__version__']
