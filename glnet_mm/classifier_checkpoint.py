"""Official GLNet classifier files, loaded into an mmpretrain classifier.

mmpretrain's ``ImageClassifier`` lets its backbone rewrite a checkpoint before
it is loaded (``backbone._checkpoint_filter``, a load-state-dict pre-hook of
the whole classifier). :class:`~glnet_mm.GLNet` uses it to take the released
ImageNet files as they are, wherever mmpretrain loads a checkpoint:
``mmpretrain.get_model(..., pretrained=FILE)``, ``load_from``,
``mim test --checkpoint``, ``mmengine.runner.load_checkpoint``.

A released file holds the official model under ``model`` (and its EMA under
``model_ema``, preferred when present: GLNet-16G's reported weights). Its keys
map onto the classifier as:

* backbone keys (``downsample_layers.*``, ``stages.*``) -> ``backbone.*``;
* ``norm.*``, the final BatchNorm -> ``backbone.norm3.*`` (the classifier's
  GLNet has ``out_indices=(3, )``, ``out_norm_cfg=dict(type='BN')``);
* ``head.*`` -> ``head.fc.*`` (``LinearClsHead`` and
  ``TokenLabelingClsHead``);
* ``tklb_aux_head.*`` (token-labeling models) -> ``head.tklb_aux_head.*``
  (``TokenLabelingClsHead``; any other head reports it as unexpected).

The backbone part must fit exactly: a file of another arch, or a classifier
whose GLNet lacks the BatchNorm output norm, raises :class:`CheckpointError`
naming the keys, instead of loading some weights and leaving the rest random.
Only torch is needed here.
"""
from collections import OrderedDict

import torch

from .checkpoint import CheckpointError

OFFICIAL_BACKBONE_PREFIXES = ('downsample_layers.', 'stages.')


def _strip_ddp(weights):
    return OrderedDict((k[7:] if k.startswith('module.') else k, v)
                       for k, v in weights.items())


def is_official_state_dict(weights) -> bool:
    """Whether ``weights`` has the official GLNet key layout."""
    if not isinstance(weights, dict):
        return False
    keys = list(_strip_ddp(weights))
    return (any(k.startswith(OFFICIAL_BACKBONE_PREFIXES) for k in keys)
            and not any(k.startswith('backbone.') for k in keys))


def find_official_weights(checkpoint):
    """The official weights in ``checkpoint``, or ``None``.

    Args:
        checkpoint (dict): A loaded file (``model`` / ``model_ema`` entries)
            or a plain official state dict.

    Returns:
        tuple[dict, str] | None: The weights and where they were found
        (``'model_ema'``, ``'model'`` or ``'<root>'``).
    """
    for key in ('model_ema', 'model'):
        if is_official_state_dict(checkpoint.get(key)):
            return checkpoint[key], key
    if is_official_state_dict(checkpoint):
        return checkpoint, '<root>'
    return None


def official_to_classifier(weights) -> OrderedDict:
    """Official classifier keys -> mmpretrain ``ImageClassifier`` keys
    (module docstring)."""
    out = OrderedDict()
    for key, value in _strip_ddp(weights).items():
        if key.startswith('head.'):
            key = 'head.fc.' + key[len('head.'):]
        elif key.startswith('tklb_aux_head.'):
            key = 'head.' + key
        elif key.startswith('norm.'):
            key = 'backbone.norm3.' + key[len('norm.'):]
        else:
            key = 'backbone.' + key
        out[key] = value
    return out


def check_backbone_fits(backbone, converted, source='checkpoint'):
    """Raise :class:`CheckpointError` unless the ``backbone.*`` part of
    ``converted`` covers ``backbone`` exactly, with the same shapes."""
    ckpt = {k[len('backbone.'):]: v for k, v in converted.items()
            if k.startswith('backbone.')}
    own = backbone.state_dict()
    arch = getattr(backbone, 'arch', {})
    name = (f"depths {arch.get('depths')}, channels {arch.get('channels')}"
            if isinstance(arch, dict) else '?')
    if 'norm3.running_mean' in ckpt and not isinstance(
            getattr(backbone, 'norm3', None),
            torch.nn.modules.batchnorm._BatchNorm):
        raise CheckpointError(
            f'{source} is an official GLNet classifier: its final BatchNorm '
            'needs a backbone with out_indices=(3, ) and '
            "out_norm_cfg=dict(type='BN') (the official classifier layout)")
    bad = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
           for k, v in ckpt.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in ckpt]
    unused = [k for k in ckpt if k not in own]
    if bad or missing or unused:
        problems = []
        if bad:
            problems.append(f'{len(bad)} shape mismatches, e.g. {bad[:3]}')
        if missing:
            problems.append(f'{len(missing)} model weights missing from the '
                            f'file, e.g. {missing[:3]}')
        if unused:
            problems.append(f'{len(unused)} file weights the model lacks, '
                            f'e.g. {unused[:3]}')
        raise CheckpointError(
            f'{source} does not fit this GLNet classifier ({name}): '
            + '; '.join(problems) + '. Nothing was loaded.')


def convert_classifier_state_dict(backbone, state_dict, prefix='',
                                  logger=None):
    """Rewrite ``state_dict`` in place when it holds an official GLNet
    classifier file; leave any other state dict alone.

    The body of ``GLNet._checkpoint_filter``, the pre-hook that mmpretrain's
    ``ImageClassifier`` runs before loading.

    Args:
        backbone (GLNet): The classifier's backbone, to check the file
            against.
        state_dict (dict): What is being loaded into the classifier.
        prefix (str): The classifier's prefix in ``state_dict``.
        logger (logging.Logger, optional): Where to say what was converted.

    Returns:
        bool: Whether the state dict was converted.
    """
    local = {k[len(prefix):]: v for k, v in state_dict.items()
             if k.startswith(prefix)}
    found = find_official_weights(local)
    if found is None:
        return False
    weights, source = found
    converted = official_to_classifier(weights)
    check_backbone_fits(backbone, converted,
                        f'The official GLNet checkpoint [{source}]')
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]
    state_dict.update((prefix + k, v) for k, v in converted.items())
    if logger is not None:
        heads = sorted({k.split('.')[1] for k in converted
                        if k.startswith('head.')})
        logger.info(f'Converted an official GLNet classifier checkpoint '
                    f'[{source}] to the mmpretrain layout: '
                    f'{len(converted)} tensors (backbone, head parts {heads})')
        if 'tklb_aux_head' in heads:
            logger.info('A token-labeling file: its token head '
                        '(head.tklb_aux_head) is used only by '
                        'TokenLabelingClsHead (the glnet-*-tklb configs); '
                        'another head reports it as unexpected and gives '
                        'the pooled logits alone')
    return True
