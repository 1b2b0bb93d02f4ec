"""What the toy-data generators share: the output-folder guard and the
command line (``python -m glnet_mm.datasets.<toy> OUT_DIR ...``)."""
import argparse
import os
import os.path as osp


def prepare_out_dir(out_dir, force=False):
    """Create ``out_dir``, refusing to write into a user's non-empty folder.

    Args:
        out_dir (str): The dataset root.
        force (bool): Write into a non-empty folder anyway: the generator's
            files are rewritten, other files are left alone.

    Raises:
        FileExistsError: ``out_dir`` is a file, or a non-empty folder and
            ``force`` is False.
    """
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise FileExistsError(f'{out_dir} exists and is not a folder')
    if osp.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise FileExistsError(
            f'{out_dir} exists and is not empty; choose another folder or '
            'pass force=True (--force) to write the toy dataset into it')
    os.makedirs(out_dir, exist_ok=True)


def check_counts(num_train, num_val):
    """Both split sizes must be positive ints."""
    for name, n in (('num_train', num_train), ('num_val', num_val)):
        if type(n) is not int or n < 1:
            raise ValueError(f'{name} must be a positive int, got {n!r}')


def as_size(size, minimum):
    """``size`` (an int or ``(height, width)``) as a checked pair."""
    size = (size, ) if isinstance(size, int) else tuple(size)
    size = tuple(int(s) for s in (size * 2 if len(size) == 1 else size))
    if len(size) != 2 or min(size) < minimum:
        raise ValueError(f'size must be (height, width), both >= {minimum}; '
                         f'got {size}')
    return size


def generator_main(make, description, out_dir, num_train, num_val, size,
                   argv=None):
    """The command line of every toy-data generator.

    ``make(out_dir, num_train, num_val, size, seed, force)`` writes the data
    and returns the number of images per split.

    Args:
        make (callable): The generator.
        description (str): What it writes.
        out_dir, num_train, num_val, size: The defaults of the arguments.
        argv (list[str], optional): Arguments; ``sys.argv`` by default.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('out_dir', nargs='?', default=out_dir,
                        help=f'output folder (default: {out_dir})')
    parser.add_argument('--num-train', type=int, default=num_train,
                        help=f'training images (default: {num_train})')
    parser.add_argument('--num-val', type=int, default=num_val,
                        help=f'validation images (default: {num_val})')
    parser.add_argument('--size', type=int, nargs='+', default=size,
                        metavar='PX', help='image height [and width] '
                        f'(default: {" ".join(map(str, size))})')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty output folder (the '
                        'toy files are rewritten, others are left alone)')
    args = parser.parse_args(argv)
    if len(args.size) > 2:
        parser.error('--size takes H or H W')
    try:
        counts = make(args.out_dir, args.num_train, args.num_val,
                      tuple(args.size), args.seed, args.force)
    except (FileExistsError, ValueError) as error:
        parser.error(str(error))
    print(f'{description[:1].lower()}{description[1:].rstrip(".")} in '
          f'{args.out_dir}: ' + ', '.join(f'{n} {split} images'
                                          for split, n in counts.items()))
