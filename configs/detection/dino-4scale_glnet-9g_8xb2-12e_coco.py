_base_ = './_base_/dino-4scale_glnet_8xb2-12e_coco.py'
model = dict(
    backbone=dict(arch='9g', out_indices=(1, 2, 3), drop_path_rate=0.3,
                  init_cfg=dict(checkpoint={{_base_.glnet_9g_checkpoint}})),
    neck=dict(in_channels=[192, 384, 768]))
