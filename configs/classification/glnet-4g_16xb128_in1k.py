_base_ = './glnet-stl_16xb128_in1k.py'
model = dict(
    backbone=dict(arch='4g', drop_path_rate=0.15), head=dict(in_channels=512))
