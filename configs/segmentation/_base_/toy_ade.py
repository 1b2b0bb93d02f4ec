# The generated toy ADE (python -m glnet_mm.datasets.toy_ade: 6 classes and
# "other", 160x128 images, ADE20K's layout and label convention) for the CPU
# toy configs. Everything is a `toy_ade_*` variable that a toy config assigns,
# e.g. `train_dataloader = {{_base_.toy_ade_train_dataloader}}`: the values
# are merged into the upstream settings (samplers, IoUMetric stay mmseg's).
toy_ade_custom_imports = dict(
    imports=[
        'glnet_mm', 'glnet_mm.checkpoint.process_wide', 'glnet_mm.engine', 'glnet_mm.datasets.toy_ade_dataset'
    ],
    allow_failed_imports=False)
toy_ade_root = 'data/toy_ade'
toy_ade_num_classes = 6
toy_ade_crop_size = (128, 128)
toy_ade_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(160, 128),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=toy_ade_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
toy_ade_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
toy_ade_train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        type='ToyADEDataset', data_root=toy_ade_root,
        pipeline=toy_ade_train_pipeline))
toy_ade_val_dataloader = dict(
    num_workers=2,
    dataset=dict(
        type='ToyADEDataset', data_root=toy_ade_root,
        pipeline=toy_ade_test_pipeline))
# The toy schedule: 600 iterations, validated and saved at 300 and 600.
toy_ade_max_iters = 600
toy_ade_train_cfg = dict(max_iters=toy_ade_max_iters, val_interval=300)
toy_ade_default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=300),
    visualization=dict(interval=10))  # `--show-dir`: 6 of the 60 val images
