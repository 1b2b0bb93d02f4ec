"""Import this module to turn on safe checkpoint loading for the process.

It is the config form of :func:`glnet_mm.checkpoint.loading.enable_safe_loading`::

    custom_imports = dict(imports=['glnet_mm', 'glnet_mm.checkpoint.process_wide'],
                          allow_failed_imports=False)

Every ``torch.load`` of the run (mmengine's ``load_from``, ``resume`` and
``Pretrained`` init included) then reads through the restricted unpickler
of :mod:`glnet_mm.checkpoint.unpickler`, on every supported torch; under
torch >= 2.6 that is also what lets mmengine resume its own checkpoints.
"""
from .loading import enable_safe_loading

enable_safe_loading()
