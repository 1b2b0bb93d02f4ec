# The generated toy COCO (python -m glnet_mm.datasets.toy_coco: 4 shape
# classes, 160x160 images, COCO json with polygon and RLE masks) for the CPU
# toy configs. Everything is a `toy_coco_*` variable that a toy config
# assigns, e.g. `train_dataloader = {{_base_.toy_coco_train_dataloader}}`: the
# values are merged into the upstream settings, so the dataset class, the
# samplers and the metric (CocoMetric) stay mmdet's.
toy_coco_root = 'data/toy_coco/'
toy_coco_metainfo = dict(
    classes=('circle', 'square', 'triangle', 'ring'),
    palette=[(220, 20, 60), (0, 130, 200), (60, 180, 75), (245, 130, 48)])
toy_coco_num_classes = 4
toy_coco_size = (160, 160)
toy_coco_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=toy_coco_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
toy_coco_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=toy_coco_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
toy_coco_loader = dict(num_workers=0, persistent_workers=False)
toy_coco_dataset = dict(data_root=toy_coco_root, metainfo=toy_coco_metainfo)
toy_coco_train_dataloader = dict(
    toy_coco_loader, batch_size=4,
    dataset=dict(toy_coco_dataset, ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'),
                 pipeline=toy_coco_train_pipeline))
toy_coco_val_dataloader = dict(
    toy_coco_loader, batch_size=8,
    dataset=dict(toy_coco_dataset, ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'),
                 pipeline=toy_coco_test_pipeline))
toy_coco_val_evaluator = dict(
    ann_file=toy_coco_root + 'annotations/instances_val.json')
# The epoch-based toy schedule: 12 epochs of the 320 default images.
toy_coco_train_cfg = dict(max_epochs=12, val_interval=4)
toy_coco_default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=1, max_keep_ckpts=2))
