_base_ = './_base_/mask2former_glnet.py'
model = dict(
    backbone=dict(arch='16g', drop_path_rate=0.4,
                  init_cfg=dict(checkpoint={{_base_.glnet_16g_checkpoint}})),
    decode_head=dict(in_channels=[128, 256, 512, 1024]))
