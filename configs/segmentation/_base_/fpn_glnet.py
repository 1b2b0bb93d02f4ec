# Semantic FPN with a GLNet backbone on ADE20K, 512x512 crops, 80k
# iterations, batch 16 (8 GPUs x 2): the PVT/UniFormer recipe (AdamW lr 2e-4,
# weight decay 1e-4, poly decay with power 0.9) with AMP. The per-size configs
# set the arch, the drop-path rate, the checkpoint and the neck input channels.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../../_base_/glnet.py',
]
custom_imports = {{_base_.glnet_custom_imports}}
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone={{_base_.glnet_backbone}},
    decode_head=dict(num_classes=150))
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    paramwise_cfg={{_base_.glnet_paramwise_cfg}})
param_scheduler = [
    dict(
        type='PolyLR',
        power=0.9,
        eta_min=0.,
        begin=0,
        end=80000,
        by_epoch=False)
]
train_dataloader = dict(batch_size=2)
