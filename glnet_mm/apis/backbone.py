"""The GLNet backbone of an OpenMMLab config, built through mmengine's
registry: the one way the tools (``get_flops``, ``export_onnx``,
``visualize_slots``, ``benchmark``) build it."""
import copy

from mmengine.registry import MODELS

from ..models import GLNet, load_pretrained


def load_config(config, cfg_options=None):
    """An mmengine ``Config`` from a path or a ``Config``, with
    ``cfg_options`` (``key=value`` overrides) merged in."""
    from mmengine.config import Config
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def backbone_config(config):
    """The GLNet backbone dict of ``config`` (a path, a ``Config`` or a
    backbone dict), with the name of where it came from.

    Raises:
        ValueError: The config's ``model.backbone`` is not a GLNet.
    """
    if isinstance(config, dict) and 'type' in config and 'model' not in config:
        return copy.deepcopy(dict(config)), 'the backbone config'
    cfg = load_config(config)
    backbone = dict((cfg.get('model') or {}).get('backbone') or {})
    name = cfg.filename or 'the config'
    kind = backbone.get('type')
    if not isinstance(kind, str) or kind.rpartition('.')[2] != 'GLNet':
        raise ValueError(f'{name}: model.backbone is not a GLNet '
                         f'(type={kind!r})')
    return copy.deepcopy(backbone), name


def build_backbone(config, checkpoint=None, **changes):
    """The GLNet backbone of an OpenMMLab config.

    Args:
        config (str | Config | dict): A config whose ``model.backbone`` is a
            GLNet (a path or an mmengine ``Config``), or a backbone dict
            (``dict(type='GLNet', arch=...)``).
        checkpoint (str | dict, optional): Its weights: an official GLNet
            file or an OpenMMLab checkpoint holding ``backbone.*`` (read
            safely; a file that does not fit is an error naming the keys).
            Without it the config's ``init_cfg`` is dropped and the weights
            are the constructor's (random).
        **changes: Backbone settings to override, e.g. ``with_cp=True``.

    Returns:
        GLNet: The backbone, in training mode as any built model.
    """
    backbone, name = backbone_config(config)
    backbone.pop('init_cfg', None)
    backbone.update(changes)
    model = MODELS.build(backbone)
    if not isinstance(model, GLNet):
        raise ValueError(f'{name}: model.backbone built a '
                         f'{type(model).__name__}, not a GLNet')
    if checkpoint is not None:
        from mmengine.logging import MMLogger
        load_pretrained(model, checkpoint,
                        logger=MMLogger.get_current_instance())
    return model
