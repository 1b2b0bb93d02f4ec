_base_ = './glnet-stl_16xb128_in1k.py'
model = dict(
    backbone=dict(arch='9g', drop_path_rate=0.3), head=dict(in_channels=768))
