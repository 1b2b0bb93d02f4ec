# GLNet-STL with static (learned) slot initialisation instead of pooling.
_base_ = './glnet-stl_16xb128_in1k.py'
model = dict(backbone=dict(arch='stl_paramslot'))
