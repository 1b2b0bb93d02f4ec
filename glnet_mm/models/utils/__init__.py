from .pooling import adaptive_avg_pool2d

__all__ = ['adaptive_avg_pool2d']
