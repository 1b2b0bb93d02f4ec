# CPU toy: the GLNet-STL UPerNet config on the generated toy ADE
# (python -m glnet_mm.datasets.toy_ade), with the reduced GLNet arch 'toy'
# (STL switches, depths [1, 1, 2, 1], channels [32, 64, 128, 256]) trained
# from scratch, lighter decode/auxiliary heads, 128x128 crops and a
# 600-iteration schedule.
# The model, the data format and the evaluation are the real ones.
_base_ = [
    './upernet_glnet-stl_8xb2-160k_ade20k-512x512.py',
    './_base_/toy_ade.py',
]
custom_imports = {{_base_.toy_ade_custom_imports}}

crop_size = {{_base_.toy_ade_crop_size}}
num_classes = {{_base_.toy_ade_num_classes}}
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch='toy', norm_cfg=dict(type='BN'), drop_path_rate=0.,
        init_cfg=None),
    decode_head=dict(
        in_channels=[32, 64, 128, 256], channels=64,
        num_classes=num_classes),
    auxiliary_head=dict(
        in_channels=128, channels=32, num_classes=num_classes))

train_dataloader = {{_base_.toy_ade_train_dataloader}}
val_dataloader = {{_base_.toy_ade_val_dataloader}}
test_dataloader = val_dataloader
test_pipeline = {{_base_.toy_ade_test_pipeline}}  # mmseg's inference API

# From scratch on a CPU: a larger learning rate, no AMP, a short schedule.
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=50),
    dict(type='PolyLR', eta_min=0., power=1.0, begin=50,
         end={{_base_.toy_ade_max_iters}}, by_epoch=False),
]
train_cfg = {{_base_.toy_ade_train_cfg}}
default_hooks = {{_base_.toy_ade_default_hooks}}
randomness = dict(seed=0)
