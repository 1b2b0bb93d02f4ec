# CPU toy run: GLNet-STL's ImageNet recipe on the tiny 'toy' GLNet and the
# generated six-class toy-shapes image folder. Make the data, then train:
#   python -m glnet_mm.datasets.toy_imagefolder data/toy_shapes
#   mim train mmpretrain \
#       configs/classification/glnet-toy_1xb64-20e_toy-shapes.py
# (`bash tools/misc/toy_run.sh classification` does both, then tests and draws the
# slots).
_base_ = './glnet-stl_16xb128_in1k.py'

# No Mixup/CutMix: on a few thousand 32x32 images they slow learning down far
# more than they regularise (label smoothing and the rest of the recipe stay).
model = dict(
    backbone=dict(arch='toy', drop_path_rate=0.),
    head=dict(num_classes=6, in_channels=256),
    train_cfg=None)
data_preprocessor = dict(num_classes=6)

data_root = 'data/toy_shapes'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=[0.25, 0.25],
         direction=['horizontal', 'vertical']),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
toy_dataset = dict(type='CustomDataset', data_root=data_root)
train_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True,
    dataset=dict(toy_dataset, _delete_=True, data_prefix='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100, num_workers=1, persistent_workers=True,
    dataset=dict(toy_dataset, _delete_=True, data_prefix='val',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# 20 short epochs: 2 of warmup, then cosine.
train_cfg = dict(max_epochs=20, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=2),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=10, max_keep_ckpts=1))
randomness = dict(seed=0)
