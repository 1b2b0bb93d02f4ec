from .module_lr_mult_constructor import ModuleLrMultConstructor

__all__ = ['ModuleLrMultConstructor']
