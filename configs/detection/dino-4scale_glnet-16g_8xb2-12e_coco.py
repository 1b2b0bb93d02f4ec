_base_ = './_base_/dino-4scale_glnet_8xb2-12e_coco.py'
model = dict(
    backbone=dict(arch='16g', out_indices=(1, 2, 3), drop_path_rate=0.4,
                  init_cfg=dict(checkpoint={{_base_.glnet_16g_checkpoint}})),
    neck=dict(in_channels=[256, 512, 1024]))
