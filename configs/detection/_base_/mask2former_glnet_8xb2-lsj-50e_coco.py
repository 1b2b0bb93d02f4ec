# Mask2Former with a GLNet backbone, COCO instance segmentation, 50 epochs
# with large-scale jitter (1024x1024 crops), batch 16 (8 GPUs x 2): mmdet's
# Mask2Former recipe (its Swin-T config: AdamW lr 1e-4, weight decay 0.05,
# gradient clipping 0.01, lr x0.1 at 0.9 and 0.95 of the schedule). The
# pixel decoder takes all four GLNet stages (strides 4-32; deformable
# attention over the three coarsest, the stride-4 map for the mask features).
#
# Optimiser, mapped from mmdet's Swin-T Mask2Former: the backbone at 0.1x
# the lr, no decay on the query and level embeddings, and GLNet's no-decay
# rule (configs/_base_/glnet.py) in place of Swin's list of norms; mixed
# precision. The per-size configs set the arch, the drop-path rate, the
# checkpoint and the head input channels.
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py', './glnet.py']  # noqa: E501
custom_imports = {{_base_.glnet_custom_imports}}
model = dict(backbone={{_base_.glnet_backbone}})
optim_wrapper = {{_base_.glnet_mask2former_optim_wrapper}}
auto_scale_lr = dict(enable=True, base_batch_size=16)
