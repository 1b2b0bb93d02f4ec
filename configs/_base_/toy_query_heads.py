# The reduced query-based heads of the CPU toy configs (DINO-4scale and
# Mask2Former in mmdet, Mask2Former in mmseg), on the reduced GLNet arch
# 'toy' (STL switches, depths [1, 1, 2, 1], channels [32, 64, 128, 256])
# trained from scratch: smaller transformers with fewer layers and queries.
# The heads, their losses and matching are the real ones. Each toy config
# assigns these variables, e.g. `model = {{_base_.toy_dino_model}}`.
toy_dims = 64
toy_layer = dict(
    self_attn_cfg=dict(embed_dims=toy_dims),
    ffn_cfg=dict(embed_dims=toy_dims, feedforward_channels=4 * toy_dims))
toy_decoder_layer = dict(toy_layer, cross_attn_cfg=dict(embed_dims=toy_dims))
toy_backbone = dict(
    arch='toy', norm_cfg=dict(type='BN'), drop_path_rate=0., init_cfg=None)

# DINO-4scale on the toy COCO (4 classes): 2 encoder and 3 decoder layers
# with 512-channel FFNs, 100 queries, 20 denoising queries; stages 1-3 + 1
# level as the real one. Its width stays 256: mmdet's DINO decoder encodes
# each reference point with 128 sine features per coordinate, which fixes
# embed_dims to 256.
toy_dino_ffn = dict(ffn_cfg=dict(feedforward_channels=512))
toy_dino_model = dict(
    num_queries=100,
    backbone=toy_backbone,
    neck=dict(in_channels=[64, 128, 256]),
    encoder=dict(num_layers=2, layer_cfg=toy_dino_ffn),
    decoder=dict(num_layers=3, layer_cfg=toy_dino_ffn),
    bbox_head=dict(num_classes=4),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=20)),
    test_cfg=dict(max_per_img=20))

# Mask2Former: 1 pixel-decoder encoder layer, 3 decoder layers, 20 queries,
# 1024 sampled mask points; the classes of the toy COCO (mmdet's instance
# head, 4 classes) and the toy ADE (mmseg's head, 6 classes), with the
# "no object" class weighted 0.1 as upstream.
toy_mask2former_head = dict(
    in_channels=[32, 64, 128, 256],
    feat_channels=toy_dims,
    out_channels=toy_dims,
    num_queries=20,
    pixel_decoder=dict(
        encoder=dict(num_layers=1, layer_cfg=toy_layer),
        positional_encoding=dict(num_feats=toy_dims // 2)),
    positional_encoding=dict(num_feats=toy_dims // 2),
    transformer_decoder=dict(num_layers=3, layer_cfg=toy_decoder_layer))
toy_coco_mask2former_head = dict(
    toy_mask2former_head,
    num_things_classes=4,
    loss_cls=dict(class_weight=[1.0] * 4 + [0.1]))
toy_ade_mask2former_head = dict(
    toy_mask2former_head,
    num_classes=6,
    loss_cls=dict(class_weight=[1.0] * 6 + [0.1]),
    train_cfg=dict(num_points=1024))

# From scratch on a CPU: no AMP, the backbone at the head's lr (the 0.1x of
# the real configs is for an ImageNet-trained backbone), 50 iterations of
# warm-up before the toy config's own schedule.
toy_query_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(module_lr_mult=dict(backbone=1.0)))
toy_warmup = dict(
    type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50)
