# CPU toy: the GLNet-STL Mask R-CNN config on the generated toy COCO
# (python -m glnet_mm.datasets.toy_coco: 4 shape classes, 160x160 images),
# with the reduced GLNet arch 'toy' (STL switches, depths [1, 1, 2, 1],
# channels [32, 64, 128, 256]) trained from scratch, 64-channel FPN/RPN/RoI
# heads, fewer proposals and RoI samples, a 2-conv mask head, batch 4 on one
# process and a 12-epoch schedule. The detector, the data format and the
# evaluation (CocoMetric, bbox and segm) are the real ones.
_base_ = [
    './mask-rcnn_glnet-stl_fpn_1x_coco.py',
    './_base_/toy_coco.py',
]
num_classes = {{_base_.toy_coco_num_classes}}
channels = 64

model = dict(
    backbone=dict(
        arch='toy', norm_cfg=dict(type='BN'), drop_path_rate=0.,
        init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(
            in_channels=channels, fc_out_channels=256,
            num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(
            num_convs=2, in_channels=channels, conv_out_channels=channels,
            num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(max_per_img=20)))

train_dataloader = {{_base_.toy_coco_train_dataloader}}
val_dataloader = {{_base_.toy_coco_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_coco_val_evaluator}}
test_evaluator = val_evaluator

# From scratch on a CPU: a larger learning rate for the batch of 4, no AMP.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(lr=1e-3),
    clip_grad=dict(max_norm=10.))
auto_scale_lr = dict(enable=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=200),
    dict(type='CosineAnnealingLR', eta_min=1e-5, begin=0, end=12,
         by_epoch=True, convert_to_iter_based=True),
]
train_cfg = {{_base_.toy_coco_train_cfg}}
default_hooks = {{_base_.toy_coco_default_hooks}}
randomness = dict(seed=0)
