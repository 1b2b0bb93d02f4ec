# Ablation "local w/ 7x7 DWConv" of GLNet-STL (paper, ablation table).
_base_ = '../glnet-stl_16xb128_in1k.py'
model = dict(
    backbone=dict(arch=dict(_delete_=True, base='stl', local_dw_ks=7)))
