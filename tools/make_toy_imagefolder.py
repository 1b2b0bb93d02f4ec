"""Generate the toy imagefolder dataset (glnet_mm/datasets/toy_imagefolder.py).

    python tools/make_toy_imagefolder.py [OUT_DIR] [--num-train N] [--num-val N]
        [--size H [W]] [--seed S] [--force]
"""
from glnet_mm.datasets.toy_imagefolder import main

if __name__ == '__main__':
    main()
