"""Which cells of each notebook make its review deck and which are exercises (the study-group kit).

``python tools/kit.py tag`` writes these as cell tags into ``notebooks/*.ipynb`` (the notebooks are the
source of truth once tagged; this file is how the tags were chosen, and re-applying it after a merge
that lost them is one command). Cells are named by their nbformat id, which the notebooks keep.

DECK: the cells of a paper's review deck, in notebook order: the claim, the architecture, the key
equations, the look-inside figures, our results beside the paper's, the discussion questions.

EXERCISES: per cell id, the functions (``name``) or methods (``Class.method``) that the student copy
turns into stubs, each with the hint the stub shows, or a block of top-level statements of a derivation
written inline (``"LABEL=first..last"``: from the assignment of ``first`` to that of ``last``). A student
copy keeps everything else.
"""

DECK = {
    "00_super_resolution_basics": [
        "c000", "c003", "c005", "c006", "c007", "c010", "c015", "c017", "c018", "c019", "c020", "c021",
        "c023", "c025", "c026", "c027", "c029", "c032", "c033", "c034"],
    "01_san_se_vs_soca": [
        "title", "idea", "se", "se-derive", "cov", "cov-look", "ns", "alpha-question", "ns-derive", "ns-question",
        "soca", "look", "look-compare", "look-exp", "look-permute", "look-answer", "train", "results",
        "results-table", "results-curves", "results-heat", "results-heatmap", "why", "why-b", "why-measure",
        "why-answer"],
    "02_san_nonlocal_ssrg": [
        "title", "nl", "rlnl", "look", "look-widget", "look-measure", "cost", "cost-plot", "cost-answer", "ssc",
        "ssc-look", "ssc-question", "e2e-params", "e2e-table", "ablation", "ablation-look", "schedule",
        "schedule-curves", "schedule-run", "schedule-train", "end"],
    "03_srdensenet_dense_vs_residual": [
        "c000", "c003", "c005", "c006", "c008", "c010", "c011", "c012", "c014", "c015", "c016", "c018",
        "c020", "c021", "c022", "c023", "c024", "c026", "c028", "c029", "c030", "c031", "c032", "c034",
        "c035", "c038", "c039", "c040"],
    "04_mirnet_skff_dau": [
        "c000", "c003", "c004", "c005", "c007", "c009", "c012", "c013", "c014", "c015", "c017", "c018",
        "c019", "c021", "c022", "c023", "c024", "c025", "c026", "c027", "c029", "c030", "c031", "c032",
        "c033", "c035", "c036", "c037"],
    "05_ssen_deformable_offsets": [
        "c000", "c003", "c004", "c005", "c006", "c010", "c012", "c013", "c014", "c015", "c023", "c024",
        "c025", "c027", "c029", "c030", "c031", "c033", "c035", "c036", "c037", "c038", "c040", "c041",
        "c042", "c044", "c045", "c046", "c050", "c051", "c052", "c053", "c054", "c055"],
}

EXERCISES = {
    "00_super_resolution_basics": {
        "c006": {"keys_kernel": "Keys' cubic is piecewise: one cubic for |x| <= 1, another for 1 < |x| <= 2, "
                                "zero beyond. The formula is in the markdown cell above; np.where picks a branch "
                                "per element."},
        "c008": {"my_resize_matrix": "One row per output pixel i: its input coordinate u = i/scale + 0.5(1 - 1/scale) "
                                     "(1-based); weights ks*k(ks*(u - tap)) with ks = min(scale, 1), normalised to "
                                     "sum 1; taps outside the image mirror back with the edge repeated."},
        "c016": {"my_y": "Scale R, G, B to [0, 1] (divide by 255), then BT.601 studio swing: Y = 16 + 65.481 R + 128.553 G + 24.966 B.",
                 "my_psnr": "Shave `crop` pixels on every side of both Y images, then 10 log10(255^2 / MSE)."},
        "c022": {"MyResBlock.forward": "x + res_scale * body(x): the skip adds the input back, no batch norm.",
                 "my_pixel_shuffle": "einops.rearrange with pattern 'n (c i j) h w -> n c (h i) (w j)'."},
    },
    "01_san_se_vs_soca": {
        "se-derive": {"my_se": "Squeeze: the mean of each channel over H and W -> (B, C). Excite: excite(z, *params). "
                               "Scale: x * w[:, :, None, None]. Return (output, z, w)."},
        "ns-derive": {"my_newton_schulz": "Divide by the trace, iterate T = (3I - ZY)/2, Y <- YT, Z <- TZ for n - 1 "
                                          "steps, a last step for Y alone, then multiply by sqrt(trace)."},
        "soca-derive": {"my_covariance": "Flatten to (B, C, M), centre each channel, then Xc Xc^T / M.",
                        "my_soca": "my_newton_schulz(my_covariance(x), n), the mean over rows -> z (B, C), then the "
                                   "same excite and scale as my_se."},
    },
    "02_san_nonlocal_ssrg": {
        "nl-derive": {"my_non_local": "Queries theta(x) as (B, N, C'); keys phi(x) and values g(x), max-pooled by 2 "
                                      "when subsample; softmax over keys of q @ k; y = attn @ v back to (B, C', H, W); "
                                      "return (x + block.W(y), attn)."},
        "rlnl-derive": {"my_region_non_local": "Split H and W at i*H//k; run my_non_local on each region with the "
                                               "same block; write each result into its place in a copy of x."},
        "e2e-derive": {"my_san": "head(sub_mean(x)) -> non_local -> F_0; each group: f = group(f) + gamma * F_0; "
                                 "then the same non_local plus the shallow features; tail; add_mean."},
    },
    "03_srdensenet_dense_vs_residual": {
        "c009": {"MyDenseLayer.forward": "ReLU of the convolution.",
                 "MyDenseBlock.forward": "Layer 1 sees x; layer l sees torch.cat of all earlier outputs (dim 1); "
                                         "return the concatenation of every layer's output (not x)."},
        "c017": {"my_srdensenet_all": "F_0 = relu(head conv); each block sees cat(F_0..F_{b-1}); the bottleneck "
                                      "sees cat of every level; then net.upsample's modules, then net.reconstruction."},
        "c019": {"my_conv_transpose": "Every input pixel stamps the k x k kernel into the output at stride `stride`; "
                                      "sum the overlaps, then crop `padding` from the start and keep the output size."},
    },
    "04_mirnet_skff_dau": {
        "c005": {"my_binomial": "A row of Pascal's triangle (math.comb(n - 1, k)), its outer product, divided by the sum.",
                 "my_blur_down": "One binomial filter per channel (groups=c), reflect padding, stride 2."},
        "c010": {"my_spatial_attention": "Pool over channels: [max ; mean] -> (B, 2, H, W); sigmoid of the 5x5 conv; "
                                         "return (m * gate, pooled, gate).",
                 "my_channel_attention": "Mean over H, W; 1x1 conv w1, ReLU, 1x1 conv w2, sigmoid, no biases; "
                                         "return (m * w, w)."},
        "c011": {"MyDAU.forward": "m = body(x); spatial and channel attention of m; concatenate the two, the 1x1 "
                                  "merge, and add x."},
        "c013": {"my SKFF=U..V": "Fuse: U = the sum of the three streams; s = U averaged over H and W; z = PReLU of "
                                 "conv_du[0] applied to s. Select: v = one 1x1 conv per stream (pkg_skff.fcs) on z, "
                                 "stacked on dim 1; a = softmax over the streams (dim 1); V = sum over streams of a * L."},
        "c016": {"my_mrb": "First column: DAU of each stream after down-sampling the previous one; each later "
                           "column: resample all streams to each stream's size, fuse with SKFF, DAU; finally bring "
                           "every stream back to full resolution, fuse, conv_out, add x."},
    },
    "05_ssen_deformable_offsets": {
        "c007": {"bilinear": "The four integer neighbours floor(y) + {0, 1}, floor(x) + {0, 1}, each weighted by "
                             "(1 - |y - yy|)(1 - |x - xx|); a neighbour outside the image counts as zero."},
        "c011": {"my_deform_conv2d": "For each tap k = 3i + j: read x with bilinear() at (row + i - 1 + offset[2k], "
                                     "col + j - 1 + offset[2k + 1]), multiply by mask[:, k] if given, and add "
                                     "weight[:, :, i, j] applied to the samples (einsum 'oc,bchw->bohw')."},
    },
}

# Each paper's notebook gained (issue 14) a "What the reviews asked" section answered by experiment, a table
# of the paper's own numbers beside ours, and takeaways: they belong in the deck too.
for _stem, _ids in {
    "00_super_resolution_basics": ["c2eeb29d"],
    "01_san_se_vs_soca": ["082f5395", "1ae5e144", "17981559", "f95bcd58", "9f03fb43", "6f8d3e10", "ff49b4b3",
                          "7cf6a769", "c4f3839c", "e39a51d0", "04a5e291"],
    "02_san_nonlocal_ssrg": ["44e1a90f", "c060242a", "2a275310"],
    "03_srdensenet_dense_vs_residual": ["744719a5", "45e796b5", "bef0e9c5", "69d33e60", "61f792cc", "1d7f2ad2"],
    "04_mirnet_skff_dau": ["a350411e", "ab8d61a5", "3e78bf77", "c894d989", "2df5e540", "739918e2"],
    "05_ssen_deformable_offsets": ["55a69df1", "0034b314", "3656217f", "acd53772", "037a46ee", "90adcf77"],
}.items():
    DECK[_stem] += [i for i in _ids if i not in DECK[_stem]]

# The shipped weights and "try your own image" (issues 13 and 16) added cells to notebooks 00 and 02.
DECK["00_super_resolution_basics"] += [i for i in ("nbA00-tables", "nbA00-own-md", "nbA00-official", "nbA00-questions")
                                       if i not in DECK["00_super_resolution_basics"]]
DECK["02_san_nonlocal_ssrg"] += [i for i in ("nbA02-nl-trained-md", "nbA02-nl-trained", "nbA02-nl-answer")
                                 if i not in DECK["02_san_nonlocal_ssrg"]]

# Issue 13: the shipped weights' results tables (and their introductions) sit beside the live run's in the deck.
for _stem, _ids in {
    "03_srdensenet_dense_vs_residual": ["e3a1c0d1"],
    "04_mirnet_skff_dau": ["f4b2d1e0", "f4b2d1e1"],
    "05_ssen_deformable_offsets": ["a5c3e2f0", "a5c3e2f1"],
}.items():
    DECK[_stem] += [i for i in _ids if i not in DECK[_stem]]
