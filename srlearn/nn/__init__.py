"""Building blocks, one file per idea; each docstring cites the equation it implements.

- ``common``: conv helpers, the input mean shift (a buffer), EDSR's residual block, the sub-pixel up-sampler.
- ``attention``: first-order (SE, RCAN's CA) and second-order (SAN's SOCA) channel attention, side by side,
  in the ``ATTENTION`` registry (``@ATTENTION.register("my-gate")`` adds a kind SAN and RCAN can build),
  and MIRNet's spatial attention and dual attention unit (DAU).
- ``non_local``: the embedded-Gaussian non-local block and SAN's region-level version.
- ``dense``: dense layers and blocks (concatenation) beside the residual block (addition); SRDenseNet.
- ``upsample``: transposed-convolution up-sampling, its padding and overlap (checkerboard) rules.
- ``fusion``: MIRNet's SKFF (and the sum / concat baselines) in the ``FUSION`` registry.
- ``groups``: the residual groups the papers' equations are written in: RCAN's RCAB and residual group,
  SAN's LSRAG, MIRNet's MRB and RRG.
- ``resize``: MIRNet's residual resizing modules and the anti-aliased (blur-then-stride) down-sampling.
- ``deform``: modulated deformable convolution (DCNv2) in pure PyTorch, torchvision's semantics; SSEN.
"""
from .attention import (ATTENTION, DAU, SE, SOCA, ChannelAttention, NoAttention, SpatialAttention, channel_attention,
                        covariance_pool, sqrtm_newton_schulz)
from .common import DIV2K_RGB_MEAN, MeanShift, ResBlock, Upsampler, conv, conv3x3, count_parameters
from .non_local import NonLocalBlock2d, RegionNonLocal, region_bounds
from .dense import DenseBlock, DenseLayer, concat_sources, mean_abs_by_source
from .upsample import DeconvUpsampler, bilinear_subpixel_weight, deconv_padding, init_deconv_, overlap_counts
from .fusion import FUSION, SKFF, ConcatFusion, SumFusion, fusion_layer
from .groups import LSRAG, MRB, RCAB, RRG, ResidualGroup
from .resize import BlurDownsample, ResidualDownsample, ResidualUpsample, binomial_kernel, resize_down, resize_up
from .deform import ModulatedDeformConv2d, OffsetMaskHead, deform_conv2d, sampling_positions

__all__ = ["DIV2K_RGB_MEAN", "MeanShift", "ResBlock", "Upsampler", "conv", "conv3x3", "count_parameters",
           "SE", "SOCA", "NoAttention", "ATTENTION", "channel_attention", "covariance_pool", "sqrtm_newton_schulz",
           "NonLocalBlock2d", "RegionNonLocal", "region_bounds",
           "DenseLayer", "DenseBlock", "concat_sources", "mean_abs_by_source",
           "DeconvUpsampler", "deconv_padding", "init_deconv_", "overlap_counts", "bilinear_subpixel_weight",
           "SKFF", "SumFusion", "ConcatFusion", "FUSION", "fusion_layer", "SpatialAttention", "ChannelAttention",
           "DAU", "MRB", "RRG", "RCAB", "ResidualGroup", "LSRAG", "BlurDownsample", "ResidualDownsample",
           "ResidualUpsample", "binomial_kernel",
           "resize_down", "resize_up"]
__all__ += ["deform_conv2d", "sampling_positions", "ModulatedDeformConv2d", "OffsetMaskHead"]
