from .pooling import adaptive_avg_pool2d
from .token_labeling import token_labeling_logits

__all__ = ['adaptive_avg_pool2d', 'token_labeling_logits']
