# Ablation "local branch w/ W-MHSA" of GLNet-STL (paper, ablation table):
# window attention (7x7 windows) replaces the local convs.
_base_ = '../glnet-stl_16xb128_in1k.py'
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, base='stl', local_op='wmhsa',
                  local_window=7)))
