"""Reading checkpoints safely: the restricted unpickler (:mod:`.unpickler`),
the loaders built on it (:mod:`.loading`), and the process-wide switch
(importing :mod:`.process_wide`)."""
from .loading import (CheckpointError, enable_safe_loading, read_checkpoint,
                      safe_load, safe_loading, safe_loading_enabled)
from .unpickler import RefusedGlobal, add_safe_globals, restricted_load

__all__ = ['CheckpointError', 'RefusedGlobal', 'add_safe_globals',
           'enable_safe_loading', 'read_checkpoint', 'restricted_load',
           'safe_load', 'safe_loading', 'safe_loading_enabled']
