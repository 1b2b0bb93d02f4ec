_base_ = './_base_/retinanet_glnet_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='stl',
        out_indices=(1, 2, 3),
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint={{_base_.glnet_stl_checkpoint}})),
    neck=dict(in_channels=[192, 384, 768]))
