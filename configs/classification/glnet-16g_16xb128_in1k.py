_base_ = './glnet-stl_16xb128_in1k.py'
model = dict(
    backbone=dict(arch='16g', drop_path_rate=0.4), head=dict(in_channels=1024))
# The reported GLNet-16G is its EMA model (timm's decay 0.99996 per step):
# validation and checkpoints use the averaged weights.
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')
]
