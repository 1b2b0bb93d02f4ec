"""The toy ADE dataset class for mmseg (imported by the toy segmentation
config through ``custom_imports``; the generator is :mod:`.toy_ade`)."""
from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS

from .toy_ade import TOY_ADE_CLASSES, TOY_ADE_PALETTE


@DATASETS.register_module()
class ToyADEDataset(ADE20KDataset):
    """The toy ADE dataset: ADE20K's layout and ``reduce_zero_label``
    semantics with the six classes of :data:`TOY_ADE_CLASSES`.

    Args:
        **kwargs: See :class:`mmseg.datasets.ADE20KDataset`.
    """
    METAINFO = dict(classes=TOY_ADE_CLASSES, palette=TOY_ADE_PALETTE)
