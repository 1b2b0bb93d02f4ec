"""``TokenLabelingClsHead``: the classifier of the released token-labeling
GLNet models (``glnet_4g_tklb``, ``glnet_9g_tklb``), in mmpretrain's
``MODELS``.

Importing this module needs mmpretrain (``custom_imports=dict(imports=[...,
'glnet_mm.models.heads'])``); ``import glnet_mm`` never imports it.
"""
from typing import Sequence

import torch
import torch.nn as nn
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS

from ..utils.token_labeling import token_labeling_logits


@MODELS.register_module()
class TokenLabelingClsHead(ClsHead):
    """Classifier of the token-labeling GLNet models (evaluation).

    With ``f`` the last feature map ``(B, C, H, W)`` (GLNet's last stage after
    its final BatchNorm) as ``HW`` tokens, the logits are::

        fc(mean over tokens of f) + aux_weight * max over tokens of
        tklb_aux_head(f)

    (the max is taken per class), the official evaluation output. Use it
    without a neck: it pools the tokens itself.

    Training with token labeling needs a per-token teacher label map for
    every ImageNet image, which was not released; :meth:`loss` therefore
    refuses instead of training a different objective.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the last feature map.
        aux_weight (float): Weight of the token head. Defaults to 0.5.
        init_cfg (dict, optional): Initialization of both linear layers.
            Defaults to ``dict(type='Normal', layer='Linear', std=0.01)``.
        **kwargs: Passed to ``ClsHead`` (``topk``, ``cal_acc``).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 aux_weight: float = 0.5,
                 init_cfg=dict(type='Normal', layer='Linear', std=0.01),
                 **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        if num_classes <= 0:
            raise ValueError(f'num_classes={num_classes} must be a positive '
                             'integer')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.aux_weight = aux_weight
        self.fc = nn.Linear(in_channels, num_classes)
        self.tklb_aux_head = nn.Linear(in_channels, num_classes)

    def pre_logits(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """The last feature map as tokens, ``(B, HW, C)``."""
        x = feats[-1]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'TokenLabelingClsHead needs the last feature map '
                f'(B, {self.in_channels}, H, W) from the backbone (no neck); '
                f'got shape {tuple(x.shape)}')
        return x.flatten(2).transpose(-2, -1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return token_labeling_logits(self.pre_logits(feats), self.fc,
                                     self.tklb_aux_head, self.aux_weight)

    def loss(self, feats, data_samples, **kwargs):
        raise NotImplementedError(
            'TokenLabelingClsHead only evaluates the released token-labeling '
            'models: token-labeling training needs per-token teacher labels '
            'for every training image, which are not public. To fine-tune, '
            'use the backbone with a LinearClsHead (configs/classification/'
            'glnet-4g_16xb128_in1k.py).')
