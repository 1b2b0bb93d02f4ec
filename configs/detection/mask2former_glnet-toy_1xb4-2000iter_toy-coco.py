# CPU toy: the GLNet-STL Mask2Former (COCO instance) config on the generated
# toy COCO (configs/detection/_base_/toy_coco.py), with the reduced GLNet
# arch 'toy' (STL switches, depths [1, 1, 2, 1], channels
# [32, 64, 128, 256]) trained from scratch, a 64-dim head (1 pixel-decoder
# encoder layer, 3 decoder layers, 20 queries, 1024 sampled mask points),
# 160x160 images without the large-scale jitter, batch 4 on one process.
# The model, its losses and matching, the data format and the evaluation
# (CocoMetric, bbox and segm) are the real ones.
_base_ = [
    './mask2former_glnet-stl_8xb2-lsj-50e_coco.py',
    './_base_/toy_coco.py',
]
num_classes = 4  # the toy COCO's
dims = 64
layer = dict(
    self_attn_cfg=dict(embed_dims=dims),
    ffn_cfg=dict(embed_dims=dims, feedforward_channels=4 * dims))
model = dict(
    data_preprocessor=dict(batch_augments=None),  # toy images: one size
    backbone=dict(
        arch='toy', norm_cfg=dict(type='BN'), drop_path_rate=0.,
        init_cfg=None),
    panoptic_head=dict(
        in_channels=[32, 64, 128, 256],
        feat_channels=dims,
        out_channels=dims,
        num_things_classes=num_classes,
        num_queries=20,
        pixel_decoder=dict(
            encoder=dict(num_layers=1, layer_cfg=layer),
            positional_encoding=dict(num_feats=dims // 2)),
        positional_encoding=dict(num_feats=dims // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(layer, cross_attn_cfg=dict(embed_dims=dims))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes),
    train_cfg=dict(num_points=1024),
    test_cfg=dict(max_per_image=20))

train_dataloader = {{_base_.toy_coco_train_dataloader}}
val_dataloader = {{_base_.toy_coco_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_coco_val_evaluator}}
test_evaluator = val_evaluator

# From scratch on a CPU: no AMP, the backbone at the head's lr (the 0.1x of
# the real config is for an ImageNet-trained backbone), a short warm-up,
# the upstream steps at 0.9 and 0.95 of the schedule.
max_iters = 2000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(module_lr_mult=dict(backbone=1.0)))
auto_scale_lr = dict(enable=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', by_epoch=False, end=max_iters,
         milestones=[int(max_iters * 0.9), int(max_iters * 0.95)]),
]
train_cfg = dict(
    max_iters=max_iters, val_interval=max_iters // 4, dynamic_intervals=None)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters // 4, max_keep_ckpts=2))
randomness = dict(seed=0)
