# Evaluate the official GLNet-9G weights (model card: 84.5 top-1) with
# mmpretrain. Convert the released checkpoint once, then test:
#   python tools/model_converters/convert_official.py glnet_9g.pth \
#       checkpoints/glnet-9g_3rdparty_in1k.pth
#   mim test mmpretrain configs/classification/glnet-9g_3rdparty_in1k.py \
#       --checkpoint checkpoints/glnet-9g_3rdparty_in1k.pth
_base_ = './glnet-9g_16xb128_in1k.py'
load_from = 'checkpoints/glnet-9g_3rdparty_in1k.pth'
