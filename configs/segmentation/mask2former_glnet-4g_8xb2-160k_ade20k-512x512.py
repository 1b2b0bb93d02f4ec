_base_ = './_base_/mask2former_glnet.py'
model = dict(
    backbone=dict(arch='4g', drop_path_rate=0.2,
                  init_cfg=dict(checkpoint={{_base_.glnet_4g_checkpoint}})),
    decode_head=dict(in_channels=[64, 128, 256, 512]))
