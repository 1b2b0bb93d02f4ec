_base_ = './_base_/mask2former_glnet_8xb2-lsj-50e_coco.py'
model = dict(
    backbone=dict(arch='9g', drop_path_rate=0.3,
                  init_cfg=dict(checkpoint={{_base_.glnet_9g_checkpoint}})),
    panoptic_head=dict(in_channels=[96, 192, 384, 768]))
