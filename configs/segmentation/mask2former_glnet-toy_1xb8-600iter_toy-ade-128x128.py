# CPU toy: the GLNet-STL Mask2Former (ADE20K semantic) config on the
# generated toy ADE (configs/segmentation/_base_/toy_ade.py), with the
# reduced GLNet arch 'toy' (STL switches, depths [1, 1, 2, 1], channels
# [32, 64, 128, 256]) trained from scratch, a 64-dim head (1 pixel-decoder
# encoder layer, 3 decoder layers, 20 queries, 1024 sampled mask points),
# 128x128 crops and a 600-iteration schedule. The model, its losses and
# matching, the data format and the evaluation (IoUMetric) are the real
# ones.
_base_ = [
    './mask2former_glnet-stl_8xb2-160k_ade20k-512x512.py',
    './_base_/toy_ade.py',
]
custom_imports = {{_base_.toy_ade_custom_imports}}

num_classes = 6  # the toy ADE's
dims = 64
layer = dict(
    self_attn_cfg=dict(embed_dims=dims),
    ffn_cfg=dict(embed_dims=dims, feedforward_channels=4 * dims))
data_preprocessor = dict(size={{_base_.toy_ade_crop_size}})
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch='toy', norm_cfg=dict(type='BN'), drop_path_rate=0.,
        init_cfg=None),
    decode_head=dict(
        in_channels=[32, 64, 128, 256],
        feat_channels=dims,
        out_channels=dims,
        num_classes=num_classes,
        num_queries=20,
        pixel_decoder=dict(
            encoder=dict(num_layers=1, layer_cfg=layer),
            positional_encoding=dict(num_feats=dims // 2)),
        positional_encoding=dict(num_feats=dims // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(layer, cross_attn_cfg=dict(embed_dims=dims))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
        train_cfg=dict(num_points=1024)))

train_dataloader = {{_base_.toy_ade_train_dataloader}}
val_dataloader = {{_base_.toy_ade_val_dataloader}}
test_dataloader = val_dataloader

# From scratch on a CPU: no AMP, the backbone at the head's lr (the 0.1x of
# the real config is for an ImageNet-trained backbone), a short warm-up.
max_iters = 600
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(module_lr_mult=dict(backbone=1.0)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=50),
    dict(type='PolyLR', eta_min=0., power=0.9, begin=50, end=max_iters,
         by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 2)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters // 2, save_best=None))
randomness = dict(seed=0)
