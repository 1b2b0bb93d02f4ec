"""The evaluation output of the released token-labeling GLNet classifiers,
the one place of its formula: mmpretrain's
:class:`~glnet_mm.models.heads.TokenLabelingClsHead` and the timm models
(:mod:`glnet_mm.models.timm_models`) both call it."""
import torch
import torch.nn as nn


def token_labeling_logits(tokens: torch.Tensor, fc: nn.Module,
                          aux_head: nn.Module,
                          aux_weight: float) -> torch.Tensor:
    """``fc(mean over tokens) + aux_weight * max over tokens of
    aux_head(tokens)`` (the max per class), for ``tokens`` of shape
    ``(B, HW, C)``: the last stage after the final BatchNorm, as tokens."""
    return fc(tokens.mean(dim=1)) + aux_weight * aux_head(tokens).amax(dim=1)
