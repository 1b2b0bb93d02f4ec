# Ablation "sequential (global -> local)" of GLNet-STL (paper, ablation table):
# the global branch runs first, the local branch on its output.
_base_ = '../glnet-stl_16xb128_in1k.py'
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, base='stl', branches='global->local')))
