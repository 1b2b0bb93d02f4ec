"""Reading checkpoints safely.

Every checkpoint is read through the restricted unpickler of
:mod:`glnet_mm.checkpoint.unpickler`, on every supported torch (2.1 included, whose
``weights_only=True`` has no allow-list): no pickled code runs, and any
global outside the allow-list is refused by name.

* :func:`safe_load` reads a local file or bytes.
* :func:`read_checkpoint` reads any path or URL that mmengine's
  ``CheckpointLoader`` knows (local files, ``http(s)://``,
  ``torchvision://``, ``open-mmlab://``, file backends such as ``s3://``)
  through mmengine itself, inside :func:`safe_loading`, and returns the
  checkpoint dict (mmengine's ``load_checkpoint``, by contrast, loads into a
  model). GLNet's ``init_cfg=dict(type='Pretrained')`` uses it.
* :func:`enable_safe_loading` turns the same rules on for the whole process,
  so that mmengine's own loading (``load_from``, ``resume``) is safe too
  (and, under torch >= 2.6, can read what mmengine itself saved). It is
  explicit: a call, or the config line
  ``custom_imports = dict(imports=['glnet_mm', 'glnet_mm.checkpoint.process_wide'])``
  that every shipped config carries. Importing :mod:`glnet_mm` does not.

Both switches replace ``torch.load`` (for a block, or for the process) with
:func:`~glnet_mm.checkpoint.unpickler.restricted_load`: the one mechanism that
reaches every ``torch.load`` call of mmengine and ``torch.hub`` on every
torch version.

Turning weights into a GLNet's is :mod:`glnet_mm.models.backbones.checkpoint_filter`.
"""
import contextlib
import io
import os
import os.path as osp
import pickle
import threading

import torch

from .unpickler import RefusedGlobal, restricted_load, torch_load


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint for the model at hand (not
    readable, not allowed, or not fitting: the message names what)."""


_switch_lock = threading.Lock()
_open_blocks = 0  # safe_loading() blocks now open
_process_wide = False  # enable_safe_loading() was called


def _set_torch_load(restricted):
    torch.load = restricted_load if restricted else torch_load


def safe_loading_enabled():
    """Whether ``torch.load`` is now the restricted loader (inside a
    :func:`safe_loading` block, or after :func:`enable_safe_loading`)."""
    return torch.load is restricted_load


@contextlib.contextmanager
def safe_loading():
    """Within this context every ``torch.load`` of the process, mmengine's
    and ``torch.hub``'s included, reads through the restricted unpickler
    (even where the caller passed ``weights_only=False``, as ``torch.hub``
    does for downloads). Leaving it keeps what :func:`enable_safe_loading`
    turned on for the process."""
    global _open_blocks
    with _switch_lock:
        _open_blocks += 1
        _set_torch_load(True)
    try:
        yield
    finally:
        with _switch_lock:
            _open_blocks -= 1
            _set_torch_load(_process_wide or _open_blocks > 0)


def enable_safe_loading():
    """Turn safe loading on for the rest of the process: every ``torch.load``
    (mmengine's ``load_from``, ``resume`` and ``Pretrained`` init included)
    reads through the restricted unpickler. Idempotent.

    Configs turn it on with ``custom_imports = dict(imports=['glnet_mm',
    'glnet_mm.checkpoint.process_wide'])``; the processes a distributed run starts
    import the config, and so turn it on too.
    """
    global _process_wide
    with _switch_lock:
        _process_wide = True
        _set_torch_load(True)


def _find_cause(error, kind):
    """``error`` or the first exception of type ``kind`` it was raised
    from, else ``None``."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _load_error(source, error):
    """A :class:`CheckpointError` that says why ``torch.load`` failed."""
    refused = _find_cause(error, RefusedGlobal)
    if refused is not None:
        return CheckpointError(
            f'{_describe(source)} needs a global that is not on the '
            f'safe-load allow-list (refused, nothing was executed): '
            f'{refused.name}. If you trust the file, allow the class with '
            'glnet_mm.checkpoint.unpickler.add_safe_globals.')
    if 'refused' in str(error):
        return CheckpointError(f'{_describe(source)}: {error}')
    first_line = str(error).strip().split('\n')[0]
    return CheckpointError(f'{_describe(source)} is not a readable PyTorch '
                           f'checkpoint: {first_line}')


def _describe(source):
    return '<bytes>' if isinstance(source, bytes) else str(source)


def safe_load(source, map_location='cpu'):
    """``torch.load`` through the restricted unpickler (module docstring).

    Args:
        source (str | os.PathLike | bytes): A local checkpoint file, or the
            bytes of one.
        map_location: As for :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The unpickled object.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: The file is not a PyTorch checkpoint, or it needs
            globals outside the allow-list (they are named).
    """
    if not isinstance(source, bytes):
        source = osp.expanduser(os.fspath(source))
        if not osp.isfile(source):
            raise FileNotFoundError(f'Checkpoint file not found: {source}')
    f = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        return restricted_load(f, map_location=map_location)
    except Exception as error:
        raise _load_error(source, error) from error


def read_checkpoint(filename, map_location='cpu', logger='current'):
    """Read a checkpoint through mmengine's ``CheckpointLoader``, safely
    (the checkpoint is returned, not loaded into a model).

    Args:
        filename (str): A local path or any URL scheme mmengine knows
            (``http(s)://``, ``torchvision://``, ``open-mmlab://``,
            ``s3://``...).
        map_location: As for :func:`torch.load`. Defaults to ``'cpu'``.
        logger: mmengine logger (or name) to report to.

    Returns:
        dict: The checkpoint.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    filename = os.fspath(filename)
    try:
        with safe_loading():
            return CheckpointLoader.load_checkpoint(
                filename, map_location=map_location, logger=logger)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        local = osp.expanduser(filename)
        raise _load_error(local if osp.isfile(local) else filename,
                          error) from error
