# CPU toy: the GLNet-STL DINO-4scale config on the generated toy COCO
# (configs/detection/_base_/toy_coco.py), with the reduced GLNet arch 'toy'
# (STL switches, depths [1, 1, 2, 1], channels [32, 64, 128, 256]) trained
# from scratch, a 64-dim transformer (2 encoder and 3 decoder layers, 100
# queries, 20 denoising queries), batch 4 on one process, 12 epochs. The
# detector, its losses and matching, the data format and the evaluation
# (CocoMetric, bbox) are the real ones.
_base_ = [
    './dino-4scale_glnet-stl_8xb2-12e_coco.py',
    './_base_/toy_coco.py',
]
dims = 64
layer = dict(
    self_attn_cfg=dict(embed_dims=dims),
    ffn_cfg=dict(embed_dims=dims, feedforward_channels=4 * dims))
model = dict(
    num_queries=100,
    backbone=dict(
        arch='toy', norm_cfg=dict(type='BN'), drop_path_rate=0.,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256], out_channels=dims),
    encoder=dict(num_layers=2, layer_cfg=layer),
    decoder=dict(
        num_layers=3,
        layer_cfg=dict(layer, cross_attn_cfg=dict(embed_dims=dims))),
    positional_encoding=dict(num_feats=dims // 2),
    bbox_head=dict(
        num_classes={{_base_.toy_coco_num_classes}}, embed_dims=dims),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=20)),
    test_cfg=dict(max_per_img=20))

train_dataloader = {{_base_.toy_coco_train_dataloader}}
val_dataloader = {{_base_.toy_coco_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_coco_val_evaluator}}
test_evaluator = val_evaluator

# From scratch on a CPU: no AMP, the backbone at the head's lr (the 0.1x of
# the real config is for an ImageNet-trained backbone), a short warm-up.
max_epochs = 12
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(module_lr_mult=dict(backbone=1.0)))
auto_scale_lr = dict(enable=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', end=max_epochs, milestones=[max_epochs - 1]),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=1, max_keep_ckpts=2))
randomness = dict(seed=0)
