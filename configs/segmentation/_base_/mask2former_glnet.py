# Mask2Former with a GLNet backbone on ADE20K, 512x512 crops, 160k
# iterations, batch 16 (8 GPUs x 2): mmseg's Mask2Former recipe (its Swin-T
# config: AdamW lr 1e-4, weight decay 0.05, gradient clipping 0.01, poly
# decay with power 0.9). The pixel decoder takes all four GLNet stages.
#
# Optimiser, mapped from mmseg's Swin-T Mask2Former: the backbone at 0.1x
# the lr, no decay on the query and level embeddings, and GLNet's no-decay
# rule (configs/_base_/glnet.py) in place of Swin's list of norms; mixed
# precision. The per-size configs set the arch, the drop-path rate, the
# checkpoint and the head input channels.
_base_ = ['mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py', '../../_base_/glnet.py']  # noqa: E501
custom_imports = {{_base_.glnet_custom_imports}}
model = dict(backbone={{_base_.glnet_backbone}})
optim_wrapper = {{_base_.glnet_mask2former_optim_wrapper}}
