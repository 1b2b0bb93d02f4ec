"""Safe checkpoint loading and conversion of the official GLNet weights.

Reading: every checkpoint is read through the restricted unpickler of
:mod:`glnet_mm.safe_unpickler`, on every supported torch (2.1 included,
whose ``weights_only=True`` has no allow-list): no pickled code runs, the
globals a file names are looked up in an allow-list (torch's tensor
rebuilders, plain data such as numpy arrays, ``argparse.Namespace`` and
mmengine's ``HistoryBuffer``), and the training configuration of the
official release (``omegaconf``) is rebuilt as inert
:class:`~glnet_mm.safe_unpickler.OpaqueObject` stand-ins, so omegaconf need
not be installed. Any other global is refused, by name.

* :func:`load_checkpoint` reads any path or URL that mmengine's
  ``CheckpointLoader`` knows (local files, ``http(s)://``,
  ``torchvision://``, ``open-mmlab://``, file backends such as ``s3://``)
  through mmengine itself, inside :func:`safe_loading`. GLNet's
  ``init_cfg=dict(type='Pretrained')`` uses it.
* :func:`enable_safe_loading` turns the same rules on for the whole process,
  so that mmengine's own loading (``load_from``, ``resume``) is safe too
  (and, under torch >= 2.6, can read what mmengine itself saved). It is
  explicit: a call, or the config line
  ``custom_imports = dict(imports=['glnet_mm', 'glnet_mm.safe_loading'])``
  that every shipped config carries. Importing :mod:`glnet_mm` does not.

Both work by replacing ``torch.load`` (for the block, or for the process)
with :func:`~glnet_mm.safe_unpickler.restricted_load`, the one mechanism
that reaches every ``torch.load`` call of mmengine and ``torch.hub`` on
every torch version.

Converting: :func:`convert_official` is a pure state-dict filter from the
official (or an OpenMMLab) layout to :class:`~glnet_mm.models.GLNet`'s, and
:func:`load_pretrained` loads the result with clear errors.
"""
import contextlib
import io
import os
import os.path as osp
import pickle
import re
import threading
from collections import OrderedDict

import torch

from .safe_unpickler import (OPAQUE_CLASSES, OpaqueObject,  # noqa: F401
                             RefusedGlobal, add_safe_globals,
                             allowed_globals, restricted_load, torch_load)


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint for the model at hand."""


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
    'glnet_mm.safe_loading'])``; the processes a distributed run starts
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
            'glnet_mm.checkpoint.add_safe_globals.')
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


def load_checkpoint(filename, map_location='cpu', logger='current'):
    """Read a checkpoint through mmengine's ``CheckpointLoader``, safely.

    Args:
        filename (str): A local path or any URL scheme mmengine knows
            (``http(s)://``, ``torchvision://``, ``open-mmlab://``,
            ``s3://``...).
        map_location: As for :func:`torch.load`. Defaults to ``'cpu'``.
        logger: mmengine logger (or name) to report to.

    Returns:
        The loaded checkpoint.
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


def extract_state_dict(checkpoint, prefer_ema=True):
    """Pick the model weights out of a checkpoint dict.

    The official files hold ``model`` (and ``model_ema`` for GLNet-16G, whose
    EMA weights are the reported ones); mmengine files hold ``state_dict``.

    Args:
        checkpoint (dict): A loaded checkpoint.
        prefer_ema (bool): Take ``model_ema`` when present. Defaults to True.

    Returns:
        tuple[OrderedDict, str]: The weights and the key they came from.
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'Expected a checkpoint dict, got {type(checkpoint).__name__}')
    keys = (['model_ema'] if prefer_ema else []) + ['model', 'state_dict']
    for key in keys:
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key], key
    if checkpoint and all(isinstance(v, torch.Tensor)
                          for v in checkpoint.values()):
        return checkpoint, '<root>'
    raise CheckpointError(
        f'No weights found in the checkpoint (looked for {keys} or a plain '
        f'state dict); its keys are {sorted(checkpoint)[:10]}')


# The official classifiers' heads: the linear head, and the token-labeling
# models' auxiliary head on every token (glnet_4g_tklb, glnet_9g_tklb).
CLASSIFIER_HEADS = ('head.', 'tklb_aux_head.')


def convert_official(state_dict, prefix=None, final_norm='norm3'):
    """Map official GLNet (or OpenMMLab-saved) weights onto :class:`GLNet`:
    a pure filter of the state dict.

    Backbone keys keep their names (the module layout follows the release).
    The classifier heads (:data:`CLASSIFIER_HEADS`) are dropped and the final
    BatchNorm ``norm.*`` becomes the last output norm (``norm3.*``).
    ``module.`` (DDP) and, for checkpoints of OpenMMLab models, ``prefix``
    (e.g. ``'backbone.'``) are stripped.

    Args:
        state_dict (dict): Official or OpenMMLab weights.
        prefix (str, optional): Keep only keys under this prefix, stripped.
            Defaults to ``'backbone.'`` when any key starts with it.
        final_norm (str, optional): Where the official final BatchNorm goes;
            ``None`` keeps it as ``norm.*`` (unused by a model whose last
            output norm is not a BatchNorm). Defaults to ``'norm3'``.

    Returns:
        OrderedDict: Backbone weights in :class:`GLNet`'s layout.
    """
    state_dict = OrderedDict((k[7:] if k.startswith('module.') else k, v)
                             for k, v in state_dict.items())
    if prefix is None and any(k.startswith('backbone.') for k in state_dict):
        prefix = 'backbone.'
    if prefix:
        state_dict = OrderedDict((k[len(prefix):], v)
                                 for k, v in state_dict.items()
                                 if k.startswith(prefix))
    converted = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(CLASSIFIER_HEADS):
            continue
        if key.startswith('norm.') and final_norm:
            key = f'{final_norm}.' + key[len('norm.'):]
        converted[key] = value
    return converted


def load_pretrained(model, checkpoint, prefix=None, logger=None,
                    prefer_ema=True):
    """Load an official or OpenMMLab GLNet checkpoint into ``model``.

    Shapes must agree and the backbone must be fully covered: a checkpoint of
    another arch or of another model raises :class:`CheckpointError` naming
    the problem. Keys the checkpoint lacks that the model may legitimately
    add (output norms) and keys the model does not use are reported.

    Args:
        model (torch.nn.Module): A :class:`GLNet`.
        checkpoint (str | dict): A path or URL (any scheme of mmengine's
            ``CheckpointLoader``, read by :func:`load_checkpoint`) or a
            loaded checkpoint.
        prefix (str, optional): See :func:`convert_official`.
        logger (logging.Logger, optional): Where to report.
        prefer_ema (bool): See :func:`extract_state_dict`.

    Returns:
        tuple[list[str], list[str]]: Missing and unexpected keys.
    """
    source = '<dict>'
    if isinstance(checkpoint, (str, os.PathLike)):
        source = os.fspath(checkpoint)
        checkpoint = load_checkpoint(source, logger=logger or 'current')
    weights, key = extract_state_dict(checkpoint, prefer_ema)
    # The official final norm is a BatchNorm: it only fits a BatchNorm norm3
    # (its affine weights would load into a LayerNorm silently otherwise).
    bn_norm3 = isinstance(getattr(model, 'norm3', None),
                          torch.nn.modules.batchnorm._BatchNorm)
    heads = sorted({k.split('.')[0] for k in weights
                    if k.startswith(CLASSIFIER_HEADS)})
    weights = convert_official(weights, prefix,
                               final_norm='norm3' if bn_norm3 else None)
    own = model.state_dict()
    matched = [k for k in weights if k in own]
    if not matched:
        raise CheckpointError(
            f'{source} holds no GLNet weights: none of its keys '
            f'(e.g. {list(weights)[:3]}) belongs to the model')
    bad = [f'{k}: checkpoint {tuple(weights[k].shape)} vs model '
           f'{tuple(own[k].shape)}' for k in matched
           if weights[k].shape != own[k].shape]
    if bad:
        raise CheckpointError(
            f'{source} does not fit this GLNet (arch '
            f'{getattr(model, "arch", "?")}): {len(bad)} shape mismatches, '
            f'e.g. {bad[:3]}')
    missing = [k for k in own if k not in weights]
    backbone_missing = [k for k in missing if not re.match(r'norm\d\.', k)]
    if backbone_missing:
        raise CheckpointError(
            f'{source} does not cover this GLNet: {len(backbone_missing)} '
            f'backbone weights are missing, e.g. {backbone_missing[:5]}')
    unexpected = [k for k in weights if k not in own]
    model.load_state_dict({k: weights[k] for k in matched}, strict=False)
    if logger is not None:
        logger.info(f'Loaded GLNet weights from {source} [{key}]: '
                    f'{len(matched)} tensors')
        if heads:
            logger.info(f'Dropped the ImageNet classifier heads {heads} '
                        '(tklb_aux_head: the token-labeling auxiliary head); '
                        'a backbone does not use them')
        if missing:
            logger.warning(f'Not in the checkpoint (kept their init): '
                           f'{missing}')
        if unexpected:
            logger.warning(f'Unused checkpoint weights: {unexpected}')
    return missing, unexpected


def arch_from_official(config):
    """Translate the official GLNet constructor switches into a GLNet arch.

    Args:
        config (dict): Official keyword arguments (``depth``, ``embed_dim``,
            ``mixing_modes``, ...), as recorded in the reference data.

    Returns:
        dict: An ``arch`` dict for :class:`GLNet`.
    """
    config = dict(config)
    norm = config.pop('norm_layer', 'BatchNorm2d')
    if norm != 'BatchNorm2d':
        raise CheckpointError(f'Unsupported official norm_layer {norm!r}')
    renames = dict(depth='depths', embed_dim='channels')
    return {renames.get(k, k): v for k, v in config.items()}


def convert_to_mmpretrain(state_dict):
    """Official classifier weights -> an mmpretrain ``ImageClassifier`` with
    a ``GLNet`` backbone (``out_indices=(3, )``, ``out_norm_cfg=BN``), a
    ``GlobalAveragePooling`` neck and a ``LinearClsHead``."""
    out = OrderedDict(('backbone.' + k, v)
                      for k, v in convert_official(state_dict).items())
    for name in ('weight', 'bias'):
        if f'head.{name}' in state_dict:
            out[f'head.fc.{name}'] = state_dict[f'head.{name}']
    return out
