"""Building blocks, one file per idea; each docstring cites the equation it implements."""
from .common import DIV2K_RGB_MEAN, MeanShift, ResBlock, Upsampler, conv, conv3x3, count_parameters

__all__ = ["DIV2K_RGB_MEAN", "MeanShift", "ResBlock", "Upsampler", "conv", "conv3x3", "count_parameters"]
