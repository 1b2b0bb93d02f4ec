# Ablation "global w/ 49 slots" of GLNet-STL (paper, ablation table).
_base_ = '../glnet-stl_16xb128_in1k.py'
model = dict(
    backbone=dict(arch=dict(_delete_=True, base='stl', num_slots=49)))
