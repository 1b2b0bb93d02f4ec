# UPerNet with a GLNet backbone on ADE20K, 512x512 crops, 160k iterations,
# batch 16 (8 GPUs x 2): mmseg's Swin UPerNet recipe (AdamW lr 6e-5, weight
# decay 0.01, linear warmup for 1500 iterations then poly decay, auxiliary
# FCN head on stage 3) with AMP. The per-size configs set the arch, the
# drop-path rate, the checkpoint and the head input channels.
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',  # noqa: E501
    '../../_base_/glnet.py',
]
custom_imports = {{_base_.glnet_custom_imports}}
model = dict(backbone={{_base_.glnet_backbone}})
# mmseg's Swin optimiser (AdamW, lr 6e-5, weight decay 0.01) with AMP and
# GLNet's weight-decay rule added to its keys.
optim_wrapper = dict(
    type='AmpOptimWrapper', paramwise_cfg={{_base_.glnet_paramwise_cfg}})
