"""Heads for mmpretrain (importing this package imports mmpretrain)."""
from .tklb_cls_head import TokenLabelingClsHead

__all__ = ['TokenLabelingClsHead']
