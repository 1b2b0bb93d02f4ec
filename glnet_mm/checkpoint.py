"""Safe checkpoint loading and conversion of the official GLNet weights.

Every checkpoint is read with ``torch.load(weights_only=True)``: no pickled code
runs. Checkpoints often carry more than tensors, so a short allow-list of
data-only globals is accepted (numpy scalars and arrays, ``argparse.Namespace``,
mmengine's ``HistoryBuffer`` for resuming runs...). Objects of the training
configuration library of the official release (``omegaconf``) are rebuilt as
inert :class:`OpaqueObject` stand-ins: their state is kept as plain data, their
code is never imported or run, and omegaconf need not be installed. Any other
global is refused with an error naming it.
"""
import importlib
import os
import os.path as osp
import pickle
import re
from collections import OrderedDict

import torch

# Data-only classes and functions allowed in a checkpoint, by pickled name.
SAFE_GLOBALS = (
    'argparse.Namespace',
    'builtins.dict', 'builtins.list', 'builtins.set', 'builtins.tuple',
    'builtins.int', 'builtins.float', 'builtins.str', 'builtins.bool',
    'builtins.slice', 'builtins.frozenset', 'builtins.complex',
    'builtins.bytes', 'builtins.bytearray', '_codecs.encode',
    'collections.defaultdict', 'collections.OrderedDict',
    'typing.Any',
    'numpy.dtype', 'numpy.ndarray',
    'numpy.core.multiarray.scalar', 'numpy.core.multiarray._reconstruct',
    'numpy._core.multiarray.scalar', 'numpy._core.multiarray._reconstruct',
    'mmengine.logging.history_buffer.HistoryBuffer',
)
# Namespaces whose objects are restored as inert stand-ins.
OPAQUE_NAMESPACES = ('omegaconf', )


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


def _opaque_class(name):
    return type(name.rsplit('.', 1)[-1], (OpaqueObject, ),
                dict(pickled_name=name, __module__=__name__))


def _import(name):
    module, _, attr = name.rpartition('.')
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def _numpy_dtype_classes():
    """numpy 2 rebuilds ``numpy.dtype(...)`` as instances of per-type classes
    (``Float64DType``...) that the pickle never names; allow them all."""
    try:
        import numpy.dtypes
    except ImportError:
        return []
    return [obj for name, obj in vars(numpy.dtypes).items()
            if name.endswith('DType') and isinstance(obj, type)]


def _restricted_getattr(allowed):
    """A ``getattr`` for unpickling: mmengine's ``HistoryBuffer`` pickles its
    statistics methods as ``getattr(HistoryBuffer, 'mean')``. Only public
    attributes of allow-listed classes resolve; anything else is refused."""

    def getattr_(obj, name):
        if not (isinstance(obj, type) and obj in allowed
                and isinstance(name, str) and not name.startswith('_')):
            raise pickle.UnpicklingError(
                f'refused getattr({obj!r}, {name!r}) in a checkpoint')
        return getattr(obj, name)

    return getattr_


def safe_load(path, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` and the allow-list above.

    Args:
        path (str | os.PathLike): A local checkpoint file.
        map_location: As for :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The unpickled object.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: The file is not a PyTorch checkpoint, or it needs
            globals outside the allow-list (they are named).
    """
    path = osp.expanduser(os.fspath(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first_error = error
    except Exception as error:  # truncated zip, not a torch file, ...
        raise CheckpointError(
            f'{path} is not a readable PyTorch checkpoint: {error}') from error
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as error:
        raise CheckpointError(f'{path} is not a readable PyTorch checkpoint: '
                              f'{first_error}') from error
    allowed, refused = [], []
    for name in names:
        obj = None
        if name in SAFE_GLOBALS:
            obj = _import(name)
        elif name.split('.')[0] in OPAQUE_NAMESPACES:
            obj = _opaque_class(name)
        if obj is None and name != 'builtins.getattr':
            refused.append(name)
        elif obj is not None:
            allowed.append((obj, name))
    if 'builtins.getattr' in names:
        classes = {obj for obj, _ in allowed if isinstance(obj, type)}
        allowed.append((_restricted_getattr(classes), 'builtins.getattr'))
    if 'numpy.dtype' in names:
        allowed += _numpy_dtype_classes()
    if refused:
        raise CheckpointError(
            f'{path} needs globals that are not on the safe-load allow-list '
            f'(refused, nothing was executed): {refused}. If you trust the '
            'file, add the classes with torch.serialization.add_safe_globals.')
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location=map_location, weights_only=True)


def register_mmengine_loader():
    """Route mmengine's local checkpoint loading (``load_from``, ``resume``,
    ``Pretrained`` init) through :func:`safe_load`."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename, map_location):
        return safe_load(filename, map_location)

    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local,
                                     force=True)
    # mmengine's own http(s) loader unpickles with weights_only=False.
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'),
                                     loader=load_from_url, force=True)


def load_from_url(url, map_location=None, model_dir=None):
    """Download ``url`` once into torch's hub cache (``$TORCH_HOME``, as
    mmengine does; rank 0 first when distributed) and read it with
    :func:`safe_load`."""
    from urllib.parse import urlparse

    import torch.distributed as dist
    from mmengine.dist import get_dist_info
    from torch.hub import download_url_to_file, get_dir

    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(urlparse(url).path))
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.exists(cached):
        os.makedirs(model_dir, exist_ok=True)
        download_url_to_file(url, cached, progress=False)
    if world_size > 1:
        dist.barrier()
    return safe_load(cached, map_location)


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


def convert_official(state_dict, prefix=None, final_norm='norm3'):
    """Map official GLNet (or OpenMMLab-saved) weights onto :class:`GLNet`.

    Backbone keys keep their names (the module layout follows the release).
    The classifier's ``head.*`` is dropped and its final BatchNorm ``norm.*``
    becomes the last output norm (``norm3.*``). ``module.`` (DDP) and, for
    checkpoints of OpenMMLab models, ``prefix`` (e.g. ``'backbone.'``) are
    stripped.

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
        if key.startswith('head.'):
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
        checkpoint (str | dict): A file path or a loaded checkpoint.
        prefix (str, optional): See :func:`convert_official`.
        logger (logging.Logger, optional): Where to report.
        prefer_ema (bool): See :func:`extract_state_dict`.

    Returns:
        tuple[list[str], list[str]]: Missing and unexpected keys.
    """
    source = checkpoint if isinstance(checkpoint, str) else '<dict>'
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = safe_load(checkpoint)
    weights, key = extract_state_dict(checkpoint, prefer_ema)
    # The official final norm is a BatchNorm: it only fits a BatchNorm norm3
    # (its affine weights would load into a LayerNorm silently otherwise).
    bn_norm3 = isinstance(getattr(model, 'norm3', None),
                          torch.nn.modules.batchnorm._BatchNorm)
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
            f'{source} does not fit this GLNet (arch {getattr(model, "arch", "?")}'
            f'): {len(bad)} shape mismatches, e.g. {bad[:3]}')
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
