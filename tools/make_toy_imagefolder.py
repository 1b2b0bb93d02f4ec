"""Generate the toy shapes image-folder dataset used by the CPU toy
classification config.

Example:
    python tools/make_toy_imagefolder.py data/toy_shapes
"""
import argparse
import sys

from glnet_mm.datasets.toy_imagefolder import make_toy_imagefolder


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/toy_shapes',
                        help='output root (default: data/toy_shapes)')
    parser.add_argument('--num-train', type=int, default=500,
                        help='training images per class (default: 500)')
    parser.add_argument('--num-val', type=int, default=50,
                        help='validation images per class (default: 50)')
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty output folder')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        counts = make_toy_imagefolder(args.out_dir, args.num_train,
                                      args.num_val, args.size, args.seed,
                                      args.force)
    except (FileExistsError, ValueError) as err:
        sys.exit(f'error: {err}')
    print(f'toy shapes written to {args.out_dir}: {counts["train"]} '
          f'training and {counts["val"]} validation images')


if __name__ == '__main__':
    main()
