"""``ModuleLrMultConstructor``: a learning-rate multiplier per module that
leaves the weight-decay rules alone.

The query-based heads (DINO, Mask2Former) fine-tune the backbone at a tenth
of the head's learning rate. Upstream configs write that as
``custom_keys={'backbone': dict(lr_mult=0.1)}``, but in mmengine's
``DefaultOptimWrapperConstructor`` a parameter that matches a custom key
skips every other rule: the backbone would then lose GLNet's no-decay rule
(``configs/_base_/glnet.py``: norms, biases, 1-d parameters, layer scales),
and the upstream Swin configs work around that by listing every norm of the
network by name. Here the multiplier is a separate setting applied on top of
whatever the other rules chose::

    optim_wrapper = dict(
        constructor='ModuleLrMultConstructor',
        paramwise_cfg=dict(
            module_lr_mult=dict(backbone=0.1),   # module name -> multiplier
            norm_decay_mult=0., ...))           # as mmengine's default

Keys of ``module_lr_mult`` are names of submodules of the model (as in
``model.named_modules()``, e.g. ``'backbone'`` or ``'backbone.stages.0'``);
multipliers of nested names multiply. A name the model does not have is an
error. Only mmengine is imported (``custom_imports`` of the configs).
"""
from numbers import Real

from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ModuleLrMultConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor plus ``paramwise_cfg.module_lr_mult``
    (see the module docstring)."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        mults = self.paramwise_cfg.get('module_lr_mult', {})
        if not isinstance(mults, dict) or not all(
                isinstance(k, str) and k and isinstance(v, Real)
                and not isinstance(v, bool) and v >= 0
                for k, v in mults.items()):
            raise ValueError(
                'paramwise_cfg.module_lr_mult must map module names to '
                f'multipliers >= 0, got {mults!r}')
        if mults and self.base_lr is None:
            raise ValueError('module_lr_mult needs optimizer.lr')
        self.module_lr_mult = dict(mults)

    def __call__(self, model):
        unwrapped = model.module if hasattr(model, 'module') else model
        names = {name for name, _ in unwrapped.named_modules()}
        missing = sorted(set(self.module_lr_mult) - names)
        if missing:
            raise ValueError(
                f'paramwise_cfg.module_lr_mult names modules the model does '
                f'not have: {missing}')
        return super().__call__(model)

    def add_params(self, params, module, prefix='', is_dcn_module=None):
        first = len(params)
        # the default rules, recursing into the children through this method
        super().add_params(params, module, prefix, is_dcn_module)
        mult = self.module_lr_mult.get(prefix)
        if mult is not None:
            for group in params[first:]:
                group['lr'] = group.get('lr', self.base_lr) * mult
