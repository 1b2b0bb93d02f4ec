"""Generate the toy ADE dataset (ADE20K layout) used by the CPU toy config.

Example:
    python tools/make_toy_ade.py data/toy_ade
"""
import argparse
import sys

from glnet_mm.datasets.toy_ade import make_toy_ade


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/toy_ade',
                        help='output root (default: data/toy_ade)')
    parser.add_argument('--num-train', type=int, default=240)
    parser.add_argument('--num-val', type=int, default=60)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=160)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty output folder')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        counts = make_toy_ade(args.out_dir, args.num_train, args.num_val,
                              args.height, args.width, args.seed, args.force)
    except (FileExistsError, ValueError) as err:
        sys.exit(f'error: {err}')
    print(f'toy ADE written to {args.out_dir}: {counts["train"]} training '
          f'and {counts["val"]} validation images')


if __name__ == '__main__':
    main()
