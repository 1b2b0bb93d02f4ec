# CPU toy: the GLNet-STL UPerNet config on the generated toy ADE
# (tools/make_toy_ade.py), with the reduced GLNet arch 'toy' (STL switches,
# depths [1, 1, 2, 1], channels [32, 64, 128, 256]) trained from scratch,
# lighter decode/auxiliary heads, 128x128 crops and a 600-iteration schedule.
# The model, the data format and the evaluation are the real ones.
_base_ = './upernet_glnet-stl_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(
    imports=[
        'glnet_mm', 'glnet_mm.safe_loading', 'glnet_mm.hooks',
        'glnet_mm.datasets.toy_ade_dataset'
    ],
    allow_failed_imports=False)

crop_size = (128, 128)
num_classes = 6
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

data_root = 'data/toy_ade'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(160, 128),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        type='ToyADEDataset', data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=2,
    dataset=dict(
        type='ToyADEDataset', data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch on a CPU: a larger learning rate, no AMP, a short schedule.
max_iters = 600
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=50),
    dict(type='PolyLR', eta_min=0., power=1.0, begin=50, end=max_iters,
         by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 2)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters // 2),
    visualization=dict(interval=10))  # `--show-dir`: 6 of the 60 val images
randomness = dict(seed=0)
