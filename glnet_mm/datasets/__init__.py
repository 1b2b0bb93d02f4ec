"""Small synthetic datasets, in the real formats, that let the toy configs
train on a CPU.

Each generator module (:mod:`.toy_coco`, :mod:`.toy_ade`,
:mod:`.toy_imagefolder`) needs only numpy and Pillow (pycocotools for the
COCO masks) and shares the command line and the output-folder guard of
:mod:`.common`. The toy ADE dataset class for mmseg is
:mod:`.toy_ade_dataset`, imported by the toy segmentation config.
"""
