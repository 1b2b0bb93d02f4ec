# GLNet-STL on ImageNet-1k: the authors' recipe on mmpretrain's DeiT/Swin bases
# (RandAugment, Mixup 0.8, CutMix 1.0, label smoothing 0.1, random erasing,
# AdamW, cosine schedule with linear warmup, 300 epochs, 224x224).
_base_ = [
    'mmpretrain::_base_/models/swin_transformer/tiny_224.py',
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/glnet.py',
]
custom_imports = {{_base_.glnet_custom_imports}}

# The official classifier layout: last stage, BatchNorm, average pool, linear.
model = dict(
    backbone=dict(
        _delete_=True,
        type='GLNet',
        arch='stl',
        out_indices=(3, ),
        out_norm_cfg=dict(type='BN'),
        drop_path_rate=0.1),
    head=dict(in_channels=768))

# 16 GPUs x 128 images = 2048, AdamW lr 2e-3 at that batch size.
train_dataloader = dict(batch_size=128)
# The authors' weight-decay rule (configs/_base_/glnet.py).
optim_wrapper = dict(
    optimizer=dict(lr=2e-3, weight_decay=0.05),
    paramwise_cfg={{_base_.glnet_paramwise_cfg}},
    clip_grad=dict(max_norm=5.0))
auto_scale_lr = dict(base_batch_size=2048)
