# Evaluate the official GLNet-9G token-labeling weights (model card: 85.3
# top-1) with mmpretrain: the GLNet-4G token-labeling config with the 9G
# backbone. The released file loads as it is (converted on load):
#   mim test mmpretrain configs/classification/glnet-9g-tklb_3rdparty_in1k.py \
#       --checkpoint checkpoints/glnet_9g_tklb.pth
_base_ = './glnet-4g-tklb_3rdparty_in1k.py'
model = dict(backbone=dict(arch='9g'), head=dict(in_channels=768))
load_from = 'checkpoints/glnet_9g_tklb.pth'
