# GLNet settings shared by every detection config in this folder.

# The official ImageNet-1k checkpoints of the GLNet release (the files as
# released; they are converted on load). Set the paths here, once.
glnet_stl_checkpoint = 'checkpoints/glnet_stl.pth'
glnet_4g_checkpoint = 'checkpoints/glnet_4g.pth'
glnet_9g_checkpoint = 'checkpoints/glnet_9g.pth'
glnet_16g_checkpoint = 'checkpoints/glnet_16g.pth'

# The GLNet backbone in place of the upstream one (the per-size configs set
# arch, drop path and checkpoint): all four stages, SyncBN stem/downsampling.
glnet_backbone = dict(
    _delete_=True,
    type='GLNet',
    out_indices=(0, 1, 2, 3),
    norm_cfg=dict(type='SyncBN'),
    init_cfg=dict(type='Pretrained'))

# The optimiser of hierarchical vision transformers on COCO (Swin): AdamW,
# lr 1e-4 for a batch of 16, weight decay 0.05 except on norms (stem and
# downsampling BN, block LNs, output norms, head norms), GLMix slot scales and
# learned slots, conv position embeddings and layer scales; mixed precision.
glnet_optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            '.slot_scale': dict(decay_mult=0.),
            '.init_slots': dict(decay_mult=0.),
            '.pos_conv.': dict(decay_mult=0.),
            '.gamma': dict(decay_mult=0.),
        }))
