"""The configs' training parts, registered in mmengine's registries on
import (``custom_imports=dict(imports=[..., 'glnet_mm.engine'])``); only
mmengine is imported."""
from .hooks import RNGStateHook, SlotVisualizationHook
from .optimizers import ModuleLrMultConstructor

__all__ = ['ModuleLrMultConstructor', 'RNGStateHook', 'SlotVisualizationHook']
