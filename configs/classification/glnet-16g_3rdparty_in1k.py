# Evaluate the official GLNet-16G weights (model card: 85.0 top-1) with
# mmpretrain. Convert the released checkpoint once, then test:
#   python tools/model_converters/convert_official.py glnet_16g.pth \
#       checkpoints/glnet-16g_3rdparty_in1k.pth
#   mim test mmpretrain configs/classification/glnet-16g_3rdparty_in1k.py \
#       --checkpoint checkpoints/glnet-16g_3rdparty_in1k.pth
_base_ = './glnet-16g_16xb128_in1k.py'
load_from = 'checkpoints/glnet-16g_3rdparty_in1k.pth'
# The converted file already holds the EMA weights: no averaging on top.
custom_hooks = [dict(type='RNGStateHook')]
