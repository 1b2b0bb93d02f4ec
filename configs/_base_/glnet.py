# GLNet settings shared by every detection, segmentation and classification
# config of this project: each task's configs inherit this file (through their
# folder's _base_), so each setting lives here once.

# Register GLNet (import glnet_mm: torch + mmengine only), turn on safe
# checkpoint loading for the run (weights_only with the project's allow-list,
# for load_from, resume and Pretrained init alike; glnet_mm/checkpoint/), and
# register RNGStateHook, SlotVisualizationHook and ModuleLrMultConstructor
# (glnet_mm.engine); all mmengine only.
# Each task's base sets `custom_imports = {{_base_.glnet_custom_imports}}`
# (an upstream base may have its own custom_imports, and mmengine refuses the
# same key in two bases).
glnet_custom_imports = dict(
    imports=['glnet_mm', 'glnet_mm.checkpoint.process_wide', 'glnet_mm.engine'],
    allow_failed_imports=False)

# Exact resume (`--resume` continues as if never stopped): every checkpoint
# also holds each process's random generator states (glnet_mm/engine/hooks).
custom_hooks = [dict(type='RNGStateHook')]

# The official ImageNet-1k checkpoints of the GLNet release (the files as
# released; they are converted on load). Set the paths here, once.
glnet_stl_checkpoint = 'checkpoints/glnet_stl.pth'
glnet_4g_checkpoint = 'checkpoints/glnet_4g.pth'
glnet_9g_checkpoint = 'checkpoints/glnet_9g.pth'
glnet_16g_checkpoint = 'checkpoints/glnet_16g.pth'

# The backbone of the dense-prediction configs, in place of the upstream one
# (the per-size configs set arch, drop path and checkpoint): all four stages,
# SyncBN in the stem and the downsampling layers (a 1-process run turns it
# back into BN).
glnet_backbone = dict(
    _delete_=True,
    type='GLNet',
    out_indices=(0, 1, 2, 3),
    norm_cfg=dict(type='SyncBN'),
    init_cfg=dict(type='Pretrained'))

# Weight decay, in every task: the rule of the authors' ImageNet optimiser.
# No decay on 1-d parameters (norms, conv and linear biases, 1-d layer
# scales), on biases, and on parameters named *.gamma / *.beta (the layer
# scales, whatever their shape). Everything else is decayed, the 0-d GLMix
# clustering scale `slot_scale`, the learned slots `init_slots` and the conv
# position embeddings included. tests/test_param_groups.py checks the groups
# that every shipped recipe builds. (The ImageNet recipe merges this into the
# Swin schedule's rules, whose extra keys, relative position bias tables and
# absolute position embeddings, match only the W-MHSA ablation.)
glnet_paramwise_cfg = dict(
    norm_decay_mult=0.,
    bias_decay_mult=0.,
    flat_decay_mult=0.,
    custom_keys={
        '.gamma': dict(decay_mult=0.),
        '.beta': dict(decay_mult=0.),
    })

# The query-based heads (DINO, Mask2Former), as their upstream Swin configs:
# the backbone learns at 0.1x the head's rate; mixed precision, as every
# GLNet detection and segmentation config. Their bases merge
# `optim_wrapper = {{_base_.glnet_query_head_optim_wrapper}}` (or the
# Mask2Former one) into the upstream optimiser (AdamW, its lr, weight decay
# and gradient clipping stay). An upstream-style custom key
# 'backbone' would replace the decay rule above for the whole backbone
# (mmengine applies one custom key and skips every other rule), so the
# multiplier is applied on top of the rule by ModuleLrMultConstructor
# (glnet_mm/engine/optimizers/module_lr_mult_constructor.py). `_delete_`: replaces the upstream paramwise_cfg.
glnet_query_head_paramwise_cfg = dict(
    _delete_=True, module_lr_mult=dict(backbone=0.1), **glnet_paramwise_cfg)
# Mask2Former's upstream configs (mmdet and mmseg) also keep its learned
# query features / positions and level embeddings free of decay.
glnet_mask2former_paramwise_cfg = dict(
    glnet_query_head_paramwise_cfg,
    custom_keys=dict(
        glnet_paramwise_cfg['custom_keys'],
        query_embed=dict(decay_mult=0.),
        query_feat=dict(decay_mult=0.),
        level_embed=dict(decay_mult=0.)))
glnet_query_head_optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='ModuleLrMultConstructor',
    paramwise_cfg=glnet_query_head_paramwise_cfg)
glnet_mask2former_optim_wrapper = dict(
    glnet_query_head_optim_wrapper,
    paramwise_cfg=glnet_mask2former_paramwise_cfg)
