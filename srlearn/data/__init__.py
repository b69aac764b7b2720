"""Data: MATLAB-exact bicubic degradation, images (offline samples and textures), paired training patches.

The lowest floor: nothing here imports ``srlearn.nn``, ``srlearn.models`` or anything above them.
"""
from .images import (TEXTURE_KINDS, get_image, list_images, load_image, modcrop, save_image, texture,
                     to_tensor, to_uint8)
from .patches import PairedPatchDataset, dihedral, dihedral_inverse, make_lr, paired_crop, validation_pairs
from .resize import cubic, fast_bicubic_down, imresize, imresize_torch, output_size, resize_weights
from .refpairs import (LEVEL_NAMES, LEVELS, RefPairDataset, cufed5_pairs, fit_reference, make_reference,
                       pil_bicubic_down, reference_pairs)
from .noise import NoisyPatchDataset, add_gaussian_noise, noisy_validation_pairs
from .field import (BENCHMARK_SETS, HRPatchDataset, benchmark_dir, benchmark_pairs, benchmark_sets,
                    div2k_train_dir, div2k_train_images)
from . import registry  # noqa: E402,F401  (datasets: fetch with checksums, safe extraction, layouts)
