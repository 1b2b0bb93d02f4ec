# Evaluate the official GLNet-4G weights (model card: 83.7 top-1) with
# mmpretrain. Convert the released checkpoint once, then test:
#   python tools/model_converters/convert_official.py glnet_4g.pth \
#       checkpoints/glnet-4g_3rdparty_in1k.pth
#   mim test mmpretrain configs/classification/glnet-4g_3rdparty_in1k.py \
#       --checkpoint checkpoints/glnet-4g_3rdparty_in1k.pth
_base_ = './glnet-4g_16xb128_in1k.py'
load_from = 'checkpoints/glnet-4g_3rdparty_in1k.pth'
