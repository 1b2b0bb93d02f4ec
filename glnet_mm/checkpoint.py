"""Safe checkpoint loading and conversion of the official GLNet weights.

Reading: every checkpoint is read with ``torch.load(weights_only=True)``, so
no pickled code runs. Checkpoints often carry more than tensors, so a short
allow-list of data-only globals is accepted (numpy scalars and arrays,
``argparse.Namespace``, mmengine's ``HistoryBuffer`` for resuming runs...).
Objects of the training configuration library of the official release
(``omegaconf``) are rebuilt as inert :class:`OpaqueObject` stand-ins: their
state is kept as plain data, their code is never imported or run, and
omegaconf need not be installed. Any other global is refused, by name.

* :func:`load_checkpoint` reads any path or URL that mmengine's
  ``CheckpointLoader`` knows (local files, ``http(s)://``,
  ``torchvision://``, ``open-mmlab://``, file backends such as ``s3://``)
  through mmengine itself, inside :func:`safe_loading`. GLNet's
  ``init_cfg=dict(type='Pretrained')`` uses it.
* :func:`enable_safe_loading` turns the same rules on for the whole process,
  so that mmengine's own loading (``load_from``, ``resume``) works under
  torch >= 2.6 and stays safe. It is explicit: a call, or the config line
  ``custom_imports = dict(imports=['glnet_mm', 'glnet_mm.safe_loading'])``
  that every shipped config carries. Importing :mod:`glnet_mm` does not.

Converting: :func:`convert_official` is a pure state-dict filter from the
official (or an OpenMMLab) layout to :class:`~glnet_mm.models.GLNet`'s, and
:func:`load_pretrained` loads the result with clear errors.
"""
import argparse
import codecs
import collections
import contextlib
import functools
import io
import os
import os.path as osp
import pickle
import re
import typing
from collections import OrderedDict

import torch

# Classes of the official release's training configuration, restored as
# inert stand-ins (omegaconf 2.x, what a hydra config pickles into).
OPAQUE_CLASSES = (
    'omegaconf.dictconfig.DictConfig', 'omegaconf.listconfig.ListConfig',
    'omegaconf.base.ContainerMetadata', 'omegaconf.base.Metadata',
    'omegaconf.nodes.AnyNode', 'omegaconf.nodes.StringNode',
    'omegaconf.nodes.IntegerNode', 'omegaconf.nodes.FloatNode',
    'omegaconf.nodes.BooleanNode', 'omegaconf.nodes.EnumNode',
    'omegaconf.nodes.BytesNode', 'omegaconf.nodes.PathNode')


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint for the model at hand."""


class OpaqueObject:
    """Inert stand-in for a pickled object whose class is not imported.

    Attributes:
        pickled_name (str): The class name recorded in the checkpoint.
        args (tuple): Positional arguments the pickle constructed it with.
        state: The state the pickle restored into it (plain data).
    """
    pickled_name = ''

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f'<opaque {self.pickled_name}>'


def _restricted_getattr(allowed):
    """A ``getattr`` for unpickling: mmengine's ``HistoryBuffer`` pickles its
    statistics methods as ``getattr(HistoryBuffer, 'mean')``. Only public
    attributes of the ``allowed`` classes resolve; anything else is refused."""

    def getattr_(obj, name):
        if not (isinstance(obj, type) and obj in allowed
                and isinstance(name, str) and not name.startswith('_')):
            raise pickle.UnpicklingError(
                f'refused getattr({obj!r}, {name!r}) in a checkpoint')
        return getattr(obj, name)

    return getattr_


@functools.lru_cache(maxsize=None)
def allowed_globals():
    """The allow-list, as ``(object, pickled name)`` pairs for
    :func:`torch.serialization.safe_globals`."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    try:  # numpy 2 moved numpy.core to numpy._core; pickles use both
        from numpy._core import multiarray
    except ImportError:  # numpy 1
        from numpy.core import multiarray
    allowed = [(t, f'builtins.{t.__name__}')
               for t in (dict, list, set, frozenset, tuple, int, float, complex,
                         str, bytes, bytearray, bool, slice)]
    allowed += [
        (argparse.Namespace, 'argparse.Namespace'),
        (codecs.encode, '_codecs.encode'),
        (collections.defaultdict, 'collections.defaultdict'),
        (typing.Any, 'typing.Any'),
        (np.dtype, 'numpy.dtype'), (np.ndarray, 'numpy.ndarray'),
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (_restricted_getattr({HistoryBuffer}), 'builtins.getattr')]
    for core in ('numpy.core', 'numpy._core'):
        allowed += [(multiarray.scalar, f'{core}.multiarray.scalar'),
                    (multiarray._reconstruct,
                     f'{core}.multiarray._reconstruct')]
    # numpy 2 pickles dtypes as instances of per-type classes (Float64DType)
    allowed += [(obj, f'{obj.__module__}.{obj.__qualname__}')
                for name, obj in vars(getattr(np, 'dtypes', object)).items()
                if name.endswith('DType') and isinstance(obj, type)]
    for name in OPAQUE_CLASSES:
        stand_in = type(name.rsplit('.', 1)[-1], (OpaqueObject, ),
                        dict(pickled_name=name, __module__=__name__))
        allowed.append((stand_in, name))
    return tuple(allowed)


@contextlib.contextmanager
def safe_loading():
    """Within this context every ``torch.load`` of the process, mmengine's
    included, runs with ``weights_only=True`` (even where the caller passed
    ``False``, as ``torch.hub`` does for downloads) and the allow-list."""
    names = ('TORCH_FORCE_WEIGHTS_ONLY_LOAD', 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')
    saved = {name: os.environ.get(name) for name in names}
    os.environ[names[0]] = '1'
    os.environ.pop(names[1], None)
    # only what is not allowed yet: leaving the context removes what it added
    # (and must keep what enable_safe_loading added for the whole process)
    present = set(torch.serialization.get_safe_globals())
    missing = [g for g in allowed_globals() if g not in present]
    try:
        with torch.serialization.safe_globals(missing):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def enable_safe_loading():
    """Turn safe loading on for the rest of the process: every ``torch.load``
    (mmengine's ``load_from``, ``resume`` and ``Pretrained`` init included)
    reads with ``weights_only=True`` and the allow-list. Idempotent.

    Configs turn it on with ``custom_imports = dict(imports=['glnet_mm',
    'glnet_mm.safe_loading'])``; the environment variable it sets is
    inherited by the processes the run starts.
    """
    torch.serialization.add_safe_globals(list(allowed_globals()))
    os.environ.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = '1'


def _refused_globals(source, error):
    """Names that ``source`` (a path or bytes) needs beyond the allow-list;
    from the file when it can be listed, else from torch's message."""
    allowed = {name for _, name in allowed_globals() if isinstance(name, str)}
    try:
        f = io.BytesIO(source) if isinstance(source, bytes) else source
        names = torch.serialization.get_unsafe_globals_in_checkpoint(f)
    except Exception:  # a URL, or not a zip checkpoint
        names = re.findall(r'GLOBAL ([\w.]+)', str(error))
    return [n for n in names if n not in allowed]


def _load_error(source, error):
    """A :class:`CheckpointError` that says why ``torch.load`` failed."""
    if 'refused getattr' in str(error):
        return CheckpointError(f'{_describe(source)}: {error}')
    refused = (_refused_globals(source, error)
               if isinstance(error, pickle.UnpicklingError) else [])
    if refused:
        return CheckpointError(
            f'{_describe(source)} needs globals that are not on the safe-load '
            f'allow-list (refused, nothing was executed): {refused}. If you '
            'trust the file, add the classes with '
            'torch.serialization.add_safe_globals.')
    first_line = str(error).strip().split('\n')[0]
    return CheckpointError(f'{_describe(source)} is not a readable PyTorch '
                           f'checkpoint: {first_line}')


def _describe(source):
    return '<bytes>' if isinstance(source, bytes) else str(source)


def safe_load(source, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` and the allow-list.

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
        with safe_loading():
            return torch.load(f, map_location=map_location, weights_only=True)
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
