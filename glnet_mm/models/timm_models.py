"""GLNet in timm: the released ImageNet models as timm models.

Importing this module (``import glnet_mm`` does, when timm is installed)
registers in timm one model per released checkpoint of the model index
(:func:`glnet_mm.utils.model_index.official_checkpoints`): ``glnet_stl``,
``glnet_stl_paramslot``, ``glnet_4g``, ``glnet_9g``, ``glnet_16g``,
``glnet_4g_tklb`` and ``glnet_9g_tklb`` (pretrained tag ``in1k``). Each is a
:class:`GLNetTimm`, a subclass of the backbone :class:`GLNet` with the
official classifier's modules: its state dict has the official keys, its
feature maps are :meth:`GLNet.forward_stage`'s (the backbone's own code),
and the authors' files are read safely and converted by the same
:func:`checkpoint_filter_fn` as on the OpenMMLab path
(``pretrained_cfg_overlay=dict(file=PATH)``: the weights are on OneDrive
pages, not downloadable by timm). docs/timm.md has the usage.
"""
import logging
import os
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, register_model
from timm.models._builder import resolve_pretrained_cfg
from timm.models._features import feature_take_indices
from timm.models._registry import generate_default_cfgs

from ..utils.model_index import official_checkpoints
from ..checkpoint import CheckpointError, read_checkpoint
from .backbones import GLNet, checkpoint_filter_fn, resolve_arch
from .backbones.checkpoint_filter import HEADS
from .backbones.glnet import build_norm
from .utils.token_labeling import token_labeling_logits

__all__ = ['GLNetTimm', 'checkpoint_filter_timm']

NUM_STAGES = 4
HEAD_PREFIXES = tuple(HEADS)  # the official heads: head., tklb_aux_head.
_logger = logging.getLogger(__name__)


class GLNetTimm(GLNet):
    """A GLNet with the official ImageNet classifier, in timm's model
    contract.

    The backbone is :class:`GLNet` itself with all four stages and no output
    norms (``out_norm_cfg=None``): its maps are the raw stage outputs, those
    of the official models (strides 4, 8, 16, 32). On top, the official
    classifier: the final BatchNorm ``norm``, global average pooling and the
    linear ``head``; the token-labeling models add ``tklb_aux_head``
    (:func:`token_labeling_logits`).

    Args:
        arch (str | dict): A GLNet arch (:data:`arch_zoo` key or dict).
        num_classes (int): Classes of the head; 0: no head (the pooled
            features). Defaults to 1000.
        in_chans (int): Input channels. Defaults to 3.
        global_pool (str): ``'avg'``, or ``''`` for the unpooled last map
            (only with ``num_classes=0``). Defaults to ``'avg'``.
        drop_rate (float): Dropout before the head. Defaults to 0.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        token_labeling (bool): The token-labeling classifier. Defaults to
            False.
        aux_weight (float): Its token head's weight. Defaults to 0.5.
        **kwargs: Other :class:`GLNet` arguments (``norm_cfg``,
            ``frozen_stages``, ``norm_eval``, ``with_cp``).
    """

    def __init__(self,
                 arch='stl',
                 num_classes: int = 1000,
                 in_chans: int = 3,
                 global_pool: str = 'avg',
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 token_labeling: bool = False,
                 aux_weight: float = 0.5,
                 **kwargs):
        fixed = {'out_indices', 'out_norm_cfg', 'in_channels', 'init_cfg'}
        if fixed & set(kwargs):
            raise ValueError(
                f'GLNetTimm sets {sorted(fixed & set(kwargs))} itself: the '
                'feature maps are chosen with features_only=True, '
                'out_indices=... (or forward_intermediates(indices=...)), '
                'the input channels with in_chans, the weights with '
                'pretrained=True and pretrained_cfg_overlay=dict(file=...)')
        super().__init__(arch, in_channels=in_chans,
                         out_indices=tuple(range(NUM_STAGES)),
                         out_norm_cfg=None, drop_path_rate=drop_path_rate,
                         **kwargs)
        channels = self.channels
        self.num_features = self.head_hidden_size = channels[-1]
        self.feature_info = [
            dict(num_chs=c, reduction=2**(i + 2), module=f'stages.{i}')
            for i, c in enumerate(channels)
        ]
        self.token_labeling = token_labeling
        self.aux_weight = aux_weight
        self.drop_rate = drop_rate
        # the official classifier's final norm: a BatchNorm on the last stage
        self.norm = build_norm(dict(type='BN'), channels[-1])
        self.head_drop = nn.Dropout(drop_rate)
        self.reset_classifier(num_classes, global_pool)
        self.init_linear_layers(self)

    # ---------------------------------------------------------- classifier
    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int,
                         global_pool: Optional[str] = None):
        """A new head (and token head) of ``num_classes`` (0: none) and,
        if given, a new pooling (``'avg'`` or ``''``: unpooled map)."""
        if global_pool is not None:
            if global_pool not in ('avg', ''):
                raise ValueError(f"GLNet's global_pool is 'avg' or '' (no "
                                 f'pooling), got {global_pool!r}')
            self.global_pool = global_pool
        if self.global_pool == '' and num_classes:
            raise ValueError("global_pool='' returns the unpooled last map "
                             'and needs num_classes=0')
        self.num_classes = num_classes
        dim = self.num_features

        def linear():
            return nn.Linear(dim, num_classes) if num_classes > 0 \
                else nn.Identity()
        self.head = linear()
        if self.token_labeling:
            self.tklb_aux_head = linear()
        self.init_linear_layers(self.head)
        if self.token_labeling:
            self.init_linear_layers(self.tklb_aux_head)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        """Activation checkpointing of every block (GLNet's ``with_cp``)."""
        self.with_cp = enable

    # ------------------------------------------------------------- forward
    def _take_indices(self, indices) -> Tuple[List[int], int]:
        """timm's ``feature_take_indices`` over the stages, after a check
        that says what is wrong (timm 1.0.3 checks nothing, later ones
        assert)."""
        num = len(self.stages)
        if isinstance(indices, int):
            ok = 0 < indices <= num
        else:
            ok = indices is None or (
                len(indices) > 0
                and all(type(i) is int and -num <= i < num for i in indices))
        if not ok:
            raise ValueError(
                f'GLNet has {num} feature maps (stages 0-{num - 1}, strides '
                f'4-{2**(num + 1)}): indices (out_indices) must be stage '
                f'numbers in [-{num}, {num}) or a count of last stages in '
                f'[1, {num}]; got {indices!r}')
        take_indices, _ = feature_take_indices(num, indices)
        # a sorted list (timm < 1.0.8 gives a set, whose max torch 2.1's
        # dynamo cannot keep constant)
        take_indices = sorted(take_indices)
        return take_indices, take_indices[-1]

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The stage maps of ``indices`` (timm's convention: None all, an
        int the last n, a list the stages named), GLNet's raw stage
        outputs; ``norm``: the last stage's through the final BatchNorm
        (the only map it fits); ``stop_early``: stop after the last one
        taken. Returns the maps, or the final features
        (:meth:`forward_features`; stopped early: the last map run) and the
        maps."""
        if output_fmt != 'NCHW':
            raise ValueError(f"GLNet's maps are NCHW, got output_fmt="
                             f'{output_fmt!r}')
        take_indices, max_index = self._take_indices(indices)
        last_stage = len(self.stages) - 1
        if stop_early or intermediates_only:
            last_stage = max_index
        self._check_input(x)
        x = x.contiguous(memory_format=torch.channels_last)
        intermediates = []
        for i in range(len(self.stages)):  # constant indices for dynamo
            if i > last_stage:
                break
            x = self.forward_stage(x, i)
            if i in take_indices:
                out = self.norm(x) if norm and i == NUM_STAGES - 1 else x
                intermediates.append(out.contiguous())
        if intermediates_only:
            return intermediates
        if last_stage == len(self.stages) - 1:
            x = self.norm(x)  # it fits the last stage only: stopped early,
        return x, intermediates  # the last map run, as it is

    def prune_intermediate_layers(self,
                                  indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop the stages after the last of ``indices`` (and the final norm
        with ``prune_norm`` or when the last stage goes, the heads with
        ``prune_head``); returns the stage numbers taken."""
        take_indices, max_index = self._take_indices(indices)
        self.stages = self.stages[:max_index + 1]
        self.downsample_layers = self.downsample_layers[:max_index + 1]
        if prune_norm or max_index < NUM_STAGES - 1:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map after the final BatchNorm, ``(B, C, H, W)``."""
        self._check_input(x)
        x = x.contiguous(memory_format=torch.channels_last)
        for i in range(len(self.stages)):
            x = self.forward_stage(x, i)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor,
                     pre_logits: bool = False) -> torch.Tensor:
        """Pool and classify the map of :meth:`forward_features`
        (``pre_logits``: the pooled features)."""
        if self.token_labeling and self.num_classes and not pre_logits:
            tokens = self.head_drop(x.flatten(2).transpose(1, 2))
            return token_labeling_logits(tokens, self.head,
                                         self.tklb_aux_head, self.aux_weight)
        if self.global_pool == 'avg':
            x = x.mean((2, 3))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------- weights
    def load_pretrained(self, checkpoint):
        """Load an official GLNet ImageNet file (or a state dict of this
        model): read safely (:func:`read_checkpoint`) and converted by
        :func:`checkpoint_filter_fn`; timm calls this for
        ``pretrained_cfg_overlay=dict(file=PATH)``. A head of another class
        count than this model's is left out (as timm does; logged), any
        other mismatch is a :class:`CheckpointError`."""
        source = '<dict>'
        if isinstance(checkpoint, (str, os.PathLike)):
            source = os.fspath(checkpoint)
            checkpoint = read_checkpoint(source)
        weights = checkpoint_filter_timm(checkpoint, self, source=source)
        own = self.state_dict()
        heads = [k for k in weights if k.startswith(HEAD_PREFIXES)]
        if any(k not in own or own[k].shape != weights[k].shape
               for k in heads):
            _logger.info(f'{source}: its classifier heads do not fit '
                         f'num_classes={self.num_classes}; they keep their '
                         'init (the backbone and final norm are loaded)')
            for k in heads:
                del weights[k]
        missing, unexpected = self.load_state_dict(weights, strict=False)
        missing = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
        if missing or unexpected:
            raise CheckpointError(
                f'{source} does not fit {type(self).__name__}: missing '
                f'{missing[:5]}, unexpected {unexpected[:5]}')


def checkpoint_filter_timm(state_dict, model, source='checkpoint'):
    """timm's ``pretrained_filter_fn``: :func:`checkpoint_filter_fn` with the
    official keys (the timm model's own)."""
    return checkpoint_filter_fn(state_dict, model, classifier=True,
                                layout='official', source=source)


# ------------------------------------------------------------ registration
# The authors' evaluation (mmpretrain's ImageNet test pipeline of the
# configs: short side 256 bicubic, centre crop 224; ImageNet mean and std).
EVAL = dict(input_size=(3, 224, 224), pool_size=(7, 7), crop_pct=0.875,
            interpolation='bicubic', mean=IMAGENET_DEFAULT_MEAN,
            std=IMAGENET_DEFAULT_STD, num_classes=1000)


def timm_names():
    """The timm names of the model index's released checkpoints, with the
    ``(arch, token_labeling)`` of each and its download page:
    ``glnet-stl-paramslot_3rdparty_in1k`` is ``glnet_stl_paramslot``
    (arch ``stl_paramslot``), ``glnet-4g-tklb_3rdparty_in1k``
    ``glnet_4g_tklb`` (arch ``4g``, token labeling)."""
    names = {}
    for name, page in official_checkpoints().items():
        size = name[len('glnet-'):-len('_3rdparty_in1k')].replace('-', '_')
        tklb = size.endswith('_tklb')
        arch = size[:-len('_tklb')] if tklb else size
        names[f'glnet_{size}'] = (arch, tklb, page)
    return names


MODELS = timm_names()


def _cfg(arch, page):
    # the stem's first conv (index 0 of the overlapping stem is a no-op)
    first = 'downsample_layers.0.' + (
        '0' if resolve_arch(arch)['downsample_style'] == 'non_ovlp' else '1')
    return dict(EVAL, first_conv=first, origin_url=page,
                paper_ids='arXiv:2411.14429',
                paper_name='Revisiting the Integration of Convolution and '
                'Attention for Vision Backbone', custom_load=True)


default_cfgs = generate_default_cfgs({
    f'{name}.in1k': dict(
        _cfg(arch, page),
        classifier=('head', 'tklb_aux_head') if tklb else 'head')
    for name, (arch, tklb, page) in MODELS.items()
})


def _create(variant, pretrained=False, **kwargs):
    arch, tklb, page = MODELS[variant]
    overlay = dict(kwargs.pop('pretrained_cfg_overlay', None) or {})
    if overlay.get('file') or overlay.get('url'):
        # a file or URL is read by GLNetTimm.load_pretrained (glnet_mm's safe
        # reader: the official files hold a pickled DictConfig), unless the
        # caller says otherwise; newer timm resets custom_load for a source
        # given by an overlay
        overlay.setdefault('custom_load', True)
    kwargs['pretrained_cfg_overlay'] = overlay
    if pretrained:
        cfg = resolve_pretrained_cfg(
            variant, pretrained_cfg=kwargs.get('pretrained_cfg'),
            pretrained_cfg_overlay=overlay)
        if not (cfg.file or cfg.url or cfg.state_dict or cfg.hf_hub_id):
            raise ValueError(
                f"{variant}: the authors' weights are on a OneDrive page "
                f'({page}) that timm cannot download; download the file and '
                f"pass pretrained_cfg_overlay=dict(file='PATH/glnet_"
                f"{variant[len('glnet_'):]}.pth')")
    model_args = dict(arch=arch, token_labeling=tklb)
    return build_model_with_cfg(
        GLNetTimm, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_timm,
        feature_cfg=dict(out_indices=tuple(range(NUM_STAGES)),
                         feature_cls='getter'),
        **dict(model_args, **kwargs))


def _entrypoint(variant):
    def create(pretrained=False, **kwargs):
        return _create(variant, pretrained=pretrained, **kwargs)
    create.__name__ = create.__qualname__ = variant
    create.__module__ = __name__
    create.__doc__ = (f'GLNet ``{variant}``: the arch {MODELS[variant][0]!r}'
                      + (', token labeling' if MODELS[variant][1] else '')
                      + ' (:class:`GLNetTimm`).')
    return create


for _variant in MODELS:
    globals()[_variant] = register_model(_entrypoint(_variant))
