_base_ = './_base_/mask-rcnn_glnet_fpn_ms-crop-3x_coco.py'
model = dict(
    backbone=dict(
        arch='16g',
        drop_path_rate=0.4,
        init_cfg=dict(checkpoint={{_base_.glnet_16g_checkpoint}})),
    neck=dict(in_channels=[128, 256, 512, 1024]))
