_base_ = './_base_/cascade-mask-rcnn_glnet_fpn_4conv1fc-giou_ms-crop-3x_coco.py'  # noqa: E501
model = dict(
    backbone=dict(
        arch='stl',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint={{_base_.glnet_stl_checkpoint}})),
    neck=dict(in_channels=[96, 192, 384, 768]))
