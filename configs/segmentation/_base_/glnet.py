# GLNet settings shared by every segmentation config in this folder.
custom_imports = dict(imports=['glnet_mm'], allow_failed_imports=False)

# The official ImageNet-1k checkpoints of the GLNet release (the files as
# released; they are converted on load). Set the paths here, once.
glnet_stl_checkpoint = 'checkpoints/glnet_stl.pth'
glnet_4g_checkpoint = 'checkpoints/glnet_4g.pth'
glnet_9g_checkpoint = 'checkpoints/glnet_9g.pth'
glnet_16g_checkpoint = 'checkpoints/glnet_16g.pth'

# No weight decay on norms (stem/downsampling BN, block LNs, output norms,
# decode-head BN), GLMix slot scales and learned slots, conv position
# embeddings and layer scales.
glnet_paramwise_cfg = dict(
    norm_decay_mult=0.,
    custom_keys={
        '.slot_scale': dict(decay_mult=0.),
        '.init_slots': dict(decay_mult=0.),
        '.pos_conv.': dict(decay_mult=0.),
        '.gamma': dict(decay_mult=0.),
    })
