# Ablation "sequential (local -> global)" of GLNet-STL (paper, ablation table):
# the local branch runs first, the global branch on its output.
_base_ = '../glnet-stl_16xb128_in1k.py'
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, base='stl', branches='local->global')))
