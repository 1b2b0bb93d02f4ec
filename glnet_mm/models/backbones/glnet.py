"""GLNet backbone: GLMix blocks in a four-stage pyramid, every variant as data."""
import copy
import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from ...utils.compat import is_exporting
from .checkpoint_filter import convert_classifier_state_dict, load_pretrained
from .glmix import (LayerNorm2d, MHABlock, TransformerBlock,
                    checkpointed_block)
from .glmix_ablations import (BRANCHES, CLUSTERINGS, LOCAL_OPS, SLOT_INITS,
                              glmix_block)

# The arguments of the GLMix block (glmix.GLMixBlock), the paper's ablation
# switches included (glmix_ablations.glmix_block), and their released values.
GLMIX_ARGS = dict(num_slots=64, local_dw_ks=5, branches='parallel',
                  local_op='dwconv', local_window=7, slot_init='ada_avgpool',
                  clustering='soft', kmeans_iters=5)
# The switches of the official release, one entry per released model. An
# ``arch`` dict may name one of these as ``base`` and override any switch.
ARCH_DEFAULTS = dict(
    mixing_modes=('glmix', 'glmix', 'glmix', 'mha'),
    mlp_ratios=4,
    cpe_ks=0,
    mlp_dw=False,
    layerscale=-1,
    head_dim=32,
    downsample_style='non_ovlp',
    transition_layout='norm.proj',
    **GLMIX_ARGS,
)
PER_STAGE = ('depths', 'channels', 'mlp_ratios', 'mixing_modes')
CHOICES = dict(
    mixing_modes=('glmix', 'mha', 'mha_nchw', 'glmix.mha_nchw'),
    downsample_style=('non_ovlp', 'ovlp'),
    transition_layout=('norm.proj', 'proj.norm'),
    branches=tuple(BRANCHES), local_op=tuple(LOCAL_OPS),
    slot_init=tuple(SLOT_INITS), clustering=tuple(CLUSTERINGS))
POSITIVE_INTS = ('num_slots', 'local_dw_ks', 'local_window', 'kmeans_iters')
_ADVANCED = dict(  # GLNet-4G's additions over the Swin-Tiny layout
    mixing_modes=('glmix', 'glmix', 'glmix.mha_nchw', 'mha_nchw'),
    mlp_ratios=3, cpe_ks=3, mlp_dw=True, downsample_style='ovlp',
    transition_layout='proj.norm', depths=[4, 4, 18, 4])

arch_zoo = {
    'stl': dict(depths=[2, 2, 6, 2], channels=[96, 192, 384, 768]),
    'stl_paramslot': dict(base='stl', slot_init='param'),
    '4g': dict(_ADVANCED, channels=[64, 128, 256, 512]),
    '9g': dict(_ADVANCED, channels=[96, 192, 384, 768]),
    '16g': dict(_ADVANCED, channels=[128, 256, 512, 1024], layerscale=1e-4),
    # Not a paper model: GLNet-STL's switches, shrunk for the CPU toy runs.
    'toy': dict(base='stl', depths=[1, 1, 2, 1], channels=[32, 64, 128, 256]),
}

NORMS = {'BN': nn.BatchNorm2d, 'SyncBN': nn.SyncBatchNorm, 'LN2d': LayerNorm2d}


def _merge(arch) -> dict:
    """A preset name or an ``arch`` dict over its ``base`` presets, as one
    dict of switches (unchecked but for unknown names)."""
    if isinstance(arch, str):
        if arch not in arch_zoo:
            raise ValueError(f'Unknown GLNet arch {arch!r}; choose one of '
                             f'{sorted(arch_zoo)} or pass a dict')
        arch = arch_zoo[arch]
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a str or dict, got {type(arch)}')
    arch = copy.deepcopy(dict(arch))
    base = arch.pop('base', None)
    unknown = set(arch) - set(ARCH_DEFAULTS) - {'depths', 'channels'}
    if unknown:
        raise ValueError(f'Unknown GLNet arch switches: {sorted(unknown)}')
    spec = _merge(base) if base else dict(ARCH_DEFAULTS)
    spec.update(arch)
    return spec


def resolve_arch(arch) -> dict:
    """Turn a preset name or an ``arch`` dict into the full set of switches,
    checking every rule: the one place where an ``arch`` is validated.

    Args:
        arch (str | dict): A key of :data:`arch_zoo`, or a dict with
            ``depths`` and ``channels`` (or a ``base`` preset) plus any of the
            switches in :data:`ARCH_DEFAULTS`.

    Returns:
        dict: Every switch, with per-stage values expanded to lists of four.
    """
    spec = _merge(arch)
    for key in ('depths', 'channels'):
        if key not in spec:
            raise ValueError(f'GLNet arch needs {key!r} (four values)')
    for key in PER_STAGE:
        value = spec[key]
        value = list(value) if isinstance(value, (list, tuple)) else [value] * 4
        if len(value) != 4:
            raise ValueError(f'GLNet arch {key!r} needs 4 values, got {value}')
        spec[key] = value
    for key, choices in CHOICES.items():
        for value in spec[key] if key in PER_STAGE else [spec[key]]:
            if value not in choices:
                raise ValueError(f'GLNet arch {key}: {value!r} is not one of '
                                 f'{choices}')
    for key in ('depths', 'channels'):
        if any(type(v) is not int or v < 0 for v in spec[key]):
            raise ValueError(f'GLNet arch {key} must be non-negative ints, '
                             f'got {spec[key]}')
    for c in spec['channels']:
        if c < 1 or c % spec['head_dim']:
            raise ValueError(f'channels {spec["channels"]} must be positive '
                             f'multiples of head_dim={spec["head_dim"]}')
    for key in POSITIVE_INTS:
        if type(spec[key]) is not int or spec[key] < 1:
            raise ValueError(f'GLMix {key} must be a positive int, got '
                             f'{spec[key]!r}')
    slots, slot_init = spec['num_slots'], spec['slot_init']
    if slot_init == 'ada_avgpool' and math.isqrt(slots)**2 != slots:
        raise ValueError(f"GLMix slot_init='ada_avgpool' pools to a square "
                         f'grid: num_slots must be a square, got {slots}')
    if slot_init == 'hashing' and slots & (slots - 1):
        raise ValueError(f"GLMix slot_init='hashing' uses log2(S) hash bits: "
                         f'num_slots must be a power of two, got {slots}')
    if slot_init == 'param' and spec['clustering'] == 'kmeans':
        raise ValueError("GLMix slot_init='param' cannot be learned with "
                         "clustering='kmeans' (hard assignments pass no "
                         "gradient to the initial slots); use 'hashing' or "
                         "'ada_avgpool'")
    if spec['local_dw_ks'] % 2 == 0:
        raise ValueError(f'GLMix local_dw_ks must be odd, got '
                         f'{spec["local_dw_ks"]}')
    return spec


def build_norm(cfg: dict, channels: int) -> nn.Module:
    """Build a 2D norm from ``dict(type='BN' | 'SyncBN' | 'LN2d', **kwargs)``.

    ``requires_grad=False`` (mmcv's convention) freezes its affine weights.
    """
    cfg = dict(cfg)
    norm_type = cfg.pop('type')
    if norm_type not in NORMS:
        raise ValueError(f'Unsupported norm type {norm_type!r}; choose from '
                         f'{sorted(NORMS)}')
    requires_grad = cfg.pop('requires_grad', True)
    norm = NORMS[norm_type](channels, **cfg)
    for param in norm.parameters():
        param.requires_grad = requires_grad
    return norm


@MODELS.register_module()
class GLNet(BaseModule):
    """GLNet: the GLMix vision backbone.

    A four-stage pyramid (strides 4, 8, 16, 32) of GLMix blocks, from
    "Revisiting the Integration of Convolution and Attention for Vision
    Backbone" (NeurIPS 2024). Each GLMix block runs light depth-wise convs on
    the fine feature grid and multi-head self-attention on a coarse set of
    semantic slots, linked by soft clustering and dispatching.

    Args:
        arch (str | dict): ``'stl'``, ``'stl_paramslot'``, ``'4g'``, ``'9g'``,
            ``'16g'`` or a dict of switches (see :data:`ARCH_DEFAULTS`):
            ``depths`` and ``channels`` per stage; ``mixing_modes`` per stage
            (``'glmix'``, ``'mha'`` plain transformer, ``'mha_nchw'`` token
            attention with a conv MLP, ``'glmix.mha_nchw'`` alternating);
            ``slot_init`` (``'ada_avgpool'`` per-image pooled slots or
            ``'param'`` learned slots); ``num_slots``; ``local_dw_ks`` kernel
            of the local depth-wise conv; ``cpe_ks`` conv position embedding
            kernel (0 = none); ``mlp_dw`` depth-wise conv in the MLP;
            ``layerscale`` init value (<= 0 = none); ``head_dim``;
            ``mlp_ratios``; ``downsample_style`` (``'non_ovlp'`` patchify or
            ``'ovlp'`` strided 3x3 convs) and ``transition_layout``
            (``'norm.proj'`` or ``'proj.norm'``). The paper's ablations
            (:mod:`.glmix_ablations`): ``branches`` (``'parallel'``,
            ``'local'``, ``'global'``, ``'global->local'``,
            ``'local->global'``), ``local_op`` (``'dwconv'`` or ``'wmhsa'``
            window attention of side ``local_window``), ``slot_init=
            'hashing'`` and ``clustering`` (``'soft'`` or ``'kmeans'`` with
            ``kmeans_iters`` steps). A dict may start from a preset with
            ``base='stl'``. Defaults to ``'stl'``.
        in_channels (int): Channels of the input image. Defaults to 3.
        out_indices (Sequence[int]): Stages whose outputs are returned.
            Defaults to ``(0, 1, 2, 3)``.
        out_norm_cfg (dict, optional): Norm applied to each returned stage
            (``norm{i}``); ``None`` returns the raw stage outputs. Use
            ``dict(type='BN')`` on stage 3 to receive the official
            classifier's final norm from ImageNet checkpoints.
            Defaults to ``dict(type='LN2d', eps=1e-6)``.
        norm_cfg (dict): Norm of the stem and the downsampling layers;
            ``requires_grad=False`` freezes its affine weights (with
            ``norm_eval=True``, the statistics too).
            Defaults to ``dict(type='BN')``.
        drop_path_rate (float): Stochastic depth rate, linear over blocks.
            Defaults to 0.
        frozen_stages (int): Freeze the stem and the first ``frozen_stages``
            stages (and their output norms); they stay in eval mode through
            ``train()``. ``-1`` (mmdet's Swin convention) and ``0``
            (mmpretrain's ConvNeXt convention) both freeze nothing; note that
            Swin's ``0`` would freeze its patch embedding alone, which GLNet
            has no separate setting for. Defaults to 0.
        norm_eval (bool): Keep every BatchNorm in eval mode during training.
            Defaults to False.
        with_cp (bool): Activation checkpointing of each block, trading
            compute for memory. Defaults to False.
        mha_window (int, optional): **Not the paper's model**: an opt-in for
            dense prediction at high resolution. The token-attention blocks
            (``'mha_nchw'``: GLNet-4G/9G/16G, stages 3 and 4) attend within
            windows of ``mha_window`` x ``mha_window`` tokens wherever their
            map is larger, instead of over the whole map, whose cost grows
            with the square of the pixels (at 800x1344, 57% of GLNet-4G's
            FLOPs). The GLMix blocks between them still mix the whole map
            through their slots. Same weights, so pretrained checkpoints
            load as they are; outputs differ from the released model's
            wherever a map is larger than a window (docs/speed.md).
            Defaults to None: the released model.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH)`` loads an official GLNet ImageNet checkpoint or
            a GLNet checkpoint saved by OpenMMLab (converted on load, see
            :mod:`.checkpoint_filter`). Defaults to None.
    """
    arch_zoo = arch_zoo

    def __init__(self,
                 arch='stl',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_norm_cfg=dict(type='LN2d', eps=1e-6),
                 norm_cfg=dict(type='BN'),
                 drop_path_rate: float = 0.,
                 frozen_stages: int = 0,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 mha_window: Optional[int] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.arch = spec = resolve_arch(arch)
        channels, depths = spec['channels'], spec['depths']
        self.channels = channels
        self.in_channels = in_channels
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not out_indices or any(not -4 <= i < 4 for i in out_indices):
            raise ValueError(f'out_indices must lie in [-4, 4), got '
                             f'{out_indices}')
        self.out_indices = sorted({i % 4 for i in out_indices})
        if type(frozen_stages) is not int or not -1 <= frozen_stages <= 4:
            raise ValueError(f'frozen_stages must be an int in [-1, 4], got '
                             f'{frozen_stages!r}')
        self.frozen_stages = max(frozen_stages, 0)
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        if mha_window is not None and (type(mha_window) is not int
                                       or mha_window < 1):
            raise ValueError(f'mha_window must be a positive int or None, '
                             f'got {mha_window!r}')

        self.downsample_layers = nn.ModuleList(
            [self._stem(in_channels, channels[0], norm_cfg, spec)])
        for i in range(1, 4):
            self.downsample_layers.append(
                self._transition(channels[i - 1], channels[i], norm_cfg,
                                 spec))
        # Non-overlapping patchify needs sizes divisible by its stride:
        # inputs are padded bottom/right, so stage i is ceil(H / 2**(i+2)).
        self._pad_to = ([4, 2, 2, 2] if spec['downsample_style'] == 'non_ovlp'
                        else [1, 1, 1, 1])

        # float32 steps, as the official rates; on the CPU also under
        # `with torch.device('meta')` (a build without weights)
        rates = torch.linspace(0, drop_path_rate, sum(depths),
                               device='cpu').tolist()
        self.stages = nn.ModuleList()
        for i in range(4):
            stage = nn.Module()
            stage.blocks = nn.ModuleList([
                self._block(spec, i, j, rates.pop(0), mha_window)
                for j in range(depths[i])
            ])
            self.stages.append(stage)

        if out_norm_cfg is not None:
            for i in self.out_indices:
                self.add_module(f'norm{i}', build_norm(out_norm_cfg,
                                                       channels[i]))
        self._freeze_stages()

    @staticmethod
    def _stem(in_channels, dim, norm_cfg, spec):
        if spec['downsample_style'] == 'non_ovlp':
            return nn.Sequential(
                nn.Conv2d(in_channels, dim, 4, stride=4),
                build_norm(norm_cfg, dim))
        # index 0 is parameter-free in the official layout; keeping it lets
        # released checkpoints load with their own key names.
        return nn.Sequential(
            nn.Identity(),
            nn.Conv2d(in_channels, dim // 2, 3, stride=2, padding=1),
            build_norm(norm_cfg, dim // 2), nn.GELU(),
            nn.Conv2d(dim // 2, dim, 3, stride=2, padding=1),
            build_norm(norm_cfg, dim))

    @staticmethod
    def _transition(in_dim, out_dim, norm_cfg, spec):
        if spec['downsample_style'] == 'non_ovlp':
            proj = nn.Conv2d(in_dim, out_dim, 2, stride=2)
        else:
            proj = nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1)
        if spec['transition_layout'] == 'norm.proj':
            return nn.Sequential(build_norm(norm_cfg, in_dim), proj)
        return nn.Sequential(proj, build_norm(norm_cfg, out_dim))

    @staticmethod
    def _block(spec, stage, index, drop_path, mha_window=None):
        dim = spec['channels'][stage]
        mode = spec['mixing_modes'][stage]
        if mode == 'glmix.mha_nchw':
            mode = 'glmix' if index % 2 == 0 else 'mha_nchw'
        common = dict(dim=dim, num_heads=dim // spec['head_dim'],
                      mlp_ratio=spec['mlp_ratios'][stage], drop_path=drop_path)
        if mode == 'mha':
            return TransformerBlock(**common)
        conv = dict(cpe_ks=spec['cpe_ks'], mlp_dw=spec['mlp_dw'],
                    layerscale=spec['layerscale'])
        if mode == 'mha_nchw':
            return MHABlock(**common, **conv, window=mha_window)
        return glmix_block(**common, **conv,
                           **{k: spec[k] for k in GLMIX_ARGS})

    def init_weights(self):
        """Load a pretrained checkpoint (``init_cfg=dict(type='Pretrained',
        checkpoint=...)``: any path or URL of mmengine's ``CheckpointLoader``,
        read safely and converted by :mod:`.checkpoint_filter`) or
        initialise from scratch: truncated-normal linear layers, zero
        biases."""
        if self.init_cfg is not None and self.init_cfg.get(
                'type') == 'Pretrained':
            load_pretrained(self, self.init_cfg['checkpoint'],
                            prefix=self.init_cfg.get('prefix'),
                            logger=MMLogger.get_current_instance())
            return
        super().init_weights()
        if self.init_cfg is None:
            self.init_linear_layers(self)

    @staticmethod
    def init_linear_layers(module):
        """The official initialisation: truncated-normal (std 0.02) linear
        weights, zero biases, in every linear layer of ``module``."""
        for m in module.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _checkpoint_filter(self, state_dict, prefix, *args, **kwargs):
        """Pre-hook that mmpretrain's ``ImageClassifier`` registers for its
        backbone: an official GLNet classifier file is converted to the
        classifier's layout before it loads, or refused if it does not fit
        (:mod:`.checkpoint_filter`)."""
        convert_classifier_state_dict(self, state_dict, prefix,
                                      MMLogger.get_current_instance())

    def _check_input(self, x):
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)
            raise ValueError(f'GLNet expects an (N, C, H, W) tensor, got '
                             f'{shape}')
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'GLNet was built with in_channels={self.in_channels} but the '
                f'input has {x.shape[1]} channels (shape {tuple(x.shape)})')
        if x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f'GLNet needs an image of at least 1x1 pixels, '
                             f'got shape {tuple(x.shape)}')
        if not x.is_floating_point():
            raise ValueError(f'GLNet expects a floating-point image (convert '
                             f'and normalise it first), got {x.dtype}')
        # NaN/inf values are not checked (that would cost a sync per
        # forward): they propagate to the outputs, see the README.

    def forward(self, x):
        self._check_input(x)
        # The grid lives channels-last (NHWC in memory, NCHW in shape): the
        # 1x1 convs run as plain GEMMs, and the LayerNorms over channels and
        # the grid <-> token views of the blocks need no copies.
        x = x.contiguous(memory_format=torch.channels_last)
        outs = []
        for i in range(4):
            x = self.forward_stage(x, i)
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}', None)
                out = norm(x) if norm is not None else x
                # NCHW memory: mmcv's ops (RoIAlign...) read raw NCHW strides.
                outs.append(out.contiguous())
        return tuple(outs)

    def forward_stage(self, x, i: int):
        """Stage ``i`` (its downsampling layer, then its blocks) on the map
        of stage ``i - 1`` (the checked, channels-last image for ``i = 0``):
        its raw output, before any output norm. :meth:`forward` and the timm
        model (:mod:`glnet_mm.models.timm_models`) both run this, so their
        maps are the same computation."""
        x = self._pad(x, self._pad_to[i])
        x = self.downsample_layers[i](x)
        for block in self.stages[i].blocks:
            if self.with_cp and x.requires_grad:
                x = checkpointed_block(block, x)
            else:
                x = block(x)
        return x

    @staticmethod
    def _pad(x, multiple):
        h, w = x.shape[-2:]
        if multiple == 1 or (not is_exporting()
                             and h % multiple == 0 and w % multiple == 0):
            return x  # F.pad would copy the map even to pad nothing
        # An exported (ONNX) graph always pads: it must take any size. The
        # padded size is written as multiple * ceil(n / multiple), not as
        # n + (-n % multiple): traced with symbolic sizes, the latter nests
        # a Mod in every later stage's sizes, which torch.export's symbolic
        # shape reasoning simplifies slowly (docs/deploy.md).
        def padded(n):
            return (n + multiple - 1) // multiple * multiple

        return F.pad(x, (0, padded(w) - w, 0, padded(h) - h))

    def _freeze_stages(self):
        for i in range(self.frozen_stages):
            modules = [self.downsample_layers[i], self.stages[i]]
            if getattr(self, f'norm{i}', None) is not None:
                modules.append(getattr(self, f'norm{i}'))
            for m in modules:
                m.eval()
                for param in m.parameters():
                    param.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
