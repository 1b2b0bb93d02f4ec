"""GLNet weights from official and OpenMMLab checkpoints: one filter.

:func:`checkpoint_filter_fn` maps a checkpoint onto a GLNet, or onto
mmpretrain's ``ImageClassifier`` around it, by these rules:

* **where the weights are**: ``model_ema`` (unless ``prefer_ema=False``:
  GLNet-16G's reported weights are its EMA), else ``model`` (the official
  files), else ``state_dict`` (OpenMMLab files), else the dict itself;
* **DDP**: a leading ``module.`` is stripped;
* **OpenMMLab checkpoints** (a detector's, a segmentor's, a classifier's)
  keep their ``backbone.`` part;
* **backbone keys** keep their names: GLNet's module layout is the official
  one;
* **the official final norm** ``norm.*``, a BatchNorm, is the last output
  norm ``norm3.*`` where that is a BatchNorm (``out_indices=(3, )``,
  ``out_norm_cfg=dict(type='BN')``: the official classifier layout);
  elsewhere it has no place (its affine weights would fit a LayerNorm
  silently);
* **the heads** ``head.*`` and ``tklb_aux_head.*`` (token labeling) are the
  classifier's ``head.fc.*`` and ``head.tklb_aux_head.*``
  (``LinearClsHead``, :class:`~glnet_mm.models.heads.TokenLabelingClsHead`);
  a backbone drops them;
* **the timm models** (:mod:`glnet_mm.models.timm_models`, a GLNet subclass
  with the official classifier's modules) keep the official names
  (``layout='official'``): the file's keys as they are.

Then one fit check: every weight of the GLNet comes from the file with its
shape, and every backbone weight of the file has a place in the GLNet, or
:class:`~glnet_mm.checkpoint.loading.CheckpointError` names the keys and nothing
is loaded. A backbone lets the output norms (``norm0``-``norm3``, the
official ``norm``) be absent on either side, since a classifier file has no
``norm0``-``norm2`` and a detector's LayerNorm outputs take no BatchNorm:
they keep their init and are reported. A classifier takes its backbone
exactly.

Only torch is needed here (mmengine's ``CheckpointLoader`` to read a path).
"""
import os
import re
from collections import OrderedDict

import torch
import torch.nn as nn

from ...checkpoint import CheckpointError, read_checkpoint

OFFICIAL_PREFIXES = ('downsample_layers.', 'stages.')
# The official classifier heads and their keys in mmpretrain's classifier.
HEADS = {'head.': 'head.fc.', 'tklb_aux_head.': 'head.tklb_aux_head.'}
OUTPUT_NORM = re.compile(r'norm\d?\.')  # norm0-norm3 and the official norm


def pick_weights(checkpoint, prefer_ema=True):
    """The weights in a loaded checkpoint (module docstring), and the key
    they were found under (``'<root>'``: the dict itself)."""
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


def strip_ddp(weights):
    """The weights without DDP's ``module.`` prefix."""
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k,
                        v) for k, v in weights.items())


def is_official(weights):
    """Whether ``weights`` have the official layout (GLNet keys at the root,
    not under an OpenMMLab ``backbone.``)."""
    keys = list(strip_ddp(weights))
    return (any(k.startswith(OFFICIAL_PREFIXES) for k in keys)
            and not any(k.startswith('backbone.') for k in keys))


def split_weights(weights, bn_norm3=True, prefix=None):
    """The key map of the module docstring.

    Args:
        weights (dict): Official or OpenMMLab weights.
        bn_norm3 (bool): The GLNet's ``norm3`` is a BatchNorm, the place of
            the official final norm. Defaults to True.
        prefix (str, optional): Keep only the keys under this prefix,
            stripped. Defaults to ``'backbone.'`` where any key has it.

    Returns:
        tuple[OrderedDict, OrderedDict]: The backbone weights in GLNet's
        layout and the head weights in the classifier's.
    """
    weights = strip_ddp(weights)
    if prefix is None and any(k.startswith('backbone.') for k in weights):
        prefix = 'backbone.'
    if prefix:
        weights = OrderedDict((k[len(prefix):], v)
                              for k, v in weights.items()
                              if k.startswith(prefix))
    backbone, heads = OrderedDict(), OrderedDict()
    for key, value in weights.items():
        head = next((h for h in HEADS if key.startswith(h)), None)
        if head is not None:
            heads[HEADS[head] + key[len(head):]] = value
            continue
        if bn_norm3 and key.startswith('norm.'):
            key = 'norm3.' + key[len('norm.'):]
        backbone[key] = value
    return backbone, heads


def classifier_state_dict(backbone, heads):
    """The weights of :func:`split_weights` in the keys of mmpretrain's
    ``ImageClassifier``."""
    return OrderedDict([('backbone.' + k, v) for k, v in backbone.items()]
                       + list(heads.items()))


def check_fit(model, weights, source='checkpoint', exact=False):
    """Raise :class:`CheckpointError`, naming the keys, unless ``weights``
    (GLNet layout) fit the GLNet ``model`` (module docstring).

    Args:
        model (GLNet): The backbone to load into.
        weights (dict): Its weights, from :func:`split_weights`.
        source (str): The file, for the message.
        exact (bool): The output norms must fit too (a classifier).
    """
    # a GLNet with the official heads (the timm model): only its backbone
    own = {k: v for k, v in model.state_dict().items()
           if not k.startswith(tuple(HEADS))}
    arch = getattr(model, 'arch', None) or {}
    name = f"depths {arch.get('depths')}, channels {arch.get('channels')}"
    if not any(k in own for k in weights):
        raise CheckpointError(
            f'{source} holds no GLNet weights: none of its keys '
            f'(e.g. {list(weights)[:3]}) belongs to the model')
    if exact and 'norm.running_mean' in weights and \
            'norm.running_mean' not in own:
        raise CheckpointError(
            f'{source} is an official GLNet classifier: its final BatchNorm '
            'needs a backbone with out_indices=(3, ) and '
            "out_norm_cfg=dict(type='BN') (the official classifier layout)")

    def required(key):
        return exact or not OUTPUT_NORM.match(key)

    bad = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
           for k, v in weights.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in weights and required(k)]
    unused = [k for k in weights if k not in own and required(k)]
    problems = []
    if bad:
        problems.append(f'{len(bad)} shape mismatches, e.g. {bad[:3]}')
    if missing:
        problems.append(f'{len(missing)} backbone weights are missing from '
                        f'the file, e.g. {missing[:5]}')
    if unused:
        problems.append(f'{len(unused)} backbone weights of the file have '
                        f'no place in the model, e.g. {unused[:5]}')
    if problems:
        raise CheckpointError(f'{source} does not fit this GLNet ({name}): '
                              + '; '.join(problems) + '. Nothing was loaded.')


def official_state_dict(backbone, heads):
    """The weights of :func:`split_weights` (with ``bn_norm3=False``) in the
    official keys: the heads back at ``head.*`` and ``tklb_aux_head.*``."""
    back = {v: k for k, v in HEADS.items()}
    out = OrderedDict(backbone)
    for key, value in heads.items():
        head = next(h for h in back if key.startswith(h))
        out[back[head] + key[len(head):]] = value
    return out


def checkpoint_filter_fn(checkpoint, model, classifier=False, prefix=None,
                         prefer_ema=True, source='checkpoint', logger=None,
                         layout='mmpretrain'):
    """Map ``checkpoint`` onto ``model`` (module docstring), checking the fit.

    Args:
        checkpoint (dict): A loaded checkpoint or state dict, official or
            OpenMMLab.
        model (GLNet): The GLNet to load into.
        classifier (bool): Give the keys of a classifier, heads included,
            in ``layout``, instead of the GLNet backbone's own. Defaults to
            False.
        layout (str): A classifier's keys: ``'mmpretrain'``, those of
            mmpretrain's ``ImageClassifier`` around ``model``
            (``backbone.*``, ``head.fc.*``); ``'official'``, those of the
            official classifier, which the timm models
            (:mod:`glnet_mm.models.timm_models`) have. Defaults to
            ``'mmpretrain'``.
        prefix (str, optional): See :func:`split_weights`.
        prefer_ema (bool): See :func:`pick_weights`. Defaults to True.
        source (str): The file, for messages.
        logger (logging.Logger, optional): Where to say what was mapped.

    Returns:
        OrderedDict: The state dict. For a backbone it may hold an output
        norm the model lacks, and lack one the model has:
        ``load_state_dict(..., strict=False)`` reports them.
    """
    if layout not in ('mmpretrain', 'official'):
        raise ValueError(f"layout must be 'mmpretrain' or 'official', got "
                         f'{layout!r}')
    weights, where = pick_weights(checkpoint, prefer_ema)
    source = f'{source} [{where}]'
    bn_norm3 = isinstance(getattr(model, 'norm3', None),
                          nn.modules.batchnorm._BatchNorm)
    backbone, heads = split_weights(weights, bn_norm3, prefix)
    check_fit(model, backbone, source, exact=classifier)
    if logger is not None:
        head_names = sorted({k.split('.')[1] for k in heads})
        what = ("the classifier's" if classifier else
                'dropped: a backbone does not use them')
        logger.info(f'{source}: {len(backbone)} GLNet backbone tensors'
                    + (f', heads {head_names} ({what})' if heads else ''))
        if classifier and 'tklb_aux_head' in head_names:
            logger.info('A token-labeling file: its token head '
                        '(head.tklb_aux_head) is used only by '
                        'TokenLabelingClsHead (the glnet-*-tklb configs); '
                        'another head reports it as unexpected and gives '
                        'the pooled logits alone')
    if not classifier:
        return backbone
    if layout == 'official':
        return official_state_dict(backbone, heads)
    return classifier_state_dict(backbone, heads)


def load_pretrained(model, checkpoint, prefix=None, logger=None,
                    prefer_ema=True):
    """Load an official or OpenMMLab GLNet checkpoint into ``model``, through
    :func:`checkpoint_filter_fn` (a file that does not fit raises
    :class:`CheckpointError` naming the keys; nothing is loaded).

    Args:
        model (GLNet): The backbone.
        checkpoint (str | dict): A path or URL (any scheme of mmengine's
            ``CheckpointLoader``, read by
            :func:`~glnet_mm.checkpoint.loading.read_checkpoint`) or a loaded
            checkpoint.
        prefix, prefer_ema: See :func:`checkpoint_filter_fn`.
        logger (logging.Logger, optional): Where to report.

    Returns:
        tuple[list[str], list[str]]: The output norms the file lacks (they
        keep their init) and the file's output norms the model lacks.
    """
    source = '<dict>'
    if isinstance(checkpoint, (str, os.PathLike)):
        source = os.fspath(checkpoint)
        checkpoint = read_checkpoint(source, logger=logger or 'current')
    weights = checkpoint_filter_fn(checkpoint, model, prefix=prefix,
                                   prefer_ema=prefer_ema, source=source,
                                   logger=logger)
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    model.load_state_dict({k: v for k, v in weights.items() if k in own},
                          strict=False)
    if logger is not None:
        if missing:
            logger.warning(f'Not in the checkpoint (kept their init): '
                           f'{missing}')
        if unexpected:
            logger.warning(f'Unused checkpoint weights: {unexpected}')
    return missing, unexpected


def convert_classifier_state_dict(backbone, state_dict, prefix='',
                                  logger=None):
    """Rewrite ``state_dict`` in place when it holds an official GLNet
    classifier file; leave any other state dict alone.

    The body of ``GLNet._checkpoint_filter``, the pre-hook that mmpretrain's
    ``ImageClassifier`` runs before loading (so ``get_model(...,
    pretrained=FILE)``, ``load_from``, ``mim test --checkpoint`` and
    mmengine's ``load_checkpoint`` take the released files as they are).

    Args:
        backbone (GLNet): The classifier's backbone.
        state_dict (dict): What is being loaded into the classifier.
        prefix (str): The classifier's prefix in ``state_dict``.
        logger (logging.Logger, optional): Where to say what was converted.

    Returns:
        bool: Whether the state dict was converted.
    """
    local = {k[len(prefix):]: v for k, v in state_dict.items()
             if k.startswith(prefix)}
    try:
        weights, _ = pick_weights(local)
    except CheckpointError:
        return False  # no weights here: mmengine reports what is missing
    if not is_official(weights):
        return False  # an mmpretrain checkpoint: loads as it is
    converted = checkpoint_filter_fn(local, backbone, classifier=True,
                                     source='The official GLNet checkpoint',
                                     logger=logger)
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]
    state_dict.update((prefix + k, v) for k, v in converted.items())
    return True
