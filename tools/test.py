"""Evaluate a checkpoint of any glnet_mm config (detection, segmentation,
classification) with mmengine's Runner, on one process or many.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl]
        [--show-dir DIR] [--cfg-options k=v ...] [--launcher none|pytorch|slurm]

`tools/dist_test.sh CONFIG CHECKPOINT N` runs it under torchrun and
`tools/slurm_test.sh` under srun, with the arguments of the toolboxes' own
scripts. The metrics are the config's `test_evaluator` (CocoMetric, IoUMetric,
Accuracy); with N processes each evaluates its shard and rank 0 reports the
metric of the whole set. `--out` also saves the raw predictions (a pickle),
`--show-dir` the drawn predictions of every test image.
"""
import argparse
import os.path as osp

from glnet_mm.apis import runner as glnet_runner

# What --out and --show-dir set in a config, per toolbox (as their own
# tools/test.py do).
DUMP_METRIC = {'mmdet': 'DumpDetResults', 'mmseg': 'DumpResults',
               'mmpretrain': 'DumpResults'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Evaluate a checkpoint of a glnet_mm config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file (path or URL)')
    parser.add_argument('--out', help='also save the predictions to this '
                        '.pkl file')
    parser.add_argument('--show-dir', help='save the drawn predictions '
                        'there (relative paths: inside the run\'s folder '
                        'of the work dir)')
    return glnet_runner.parse_args(parser, argv)


def show_predictions(cfg, toolbox, show_dir):
    """Turn the config's visualization hook on, writing to ``show_dir``."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise ValueError(
            f'{cfg.filename} has no default_hooks.visualization; --show-dir '
            'needs one (the toolboxes\' default_runtime configs have it)')
    if toolbox == 'mmpretrain':
        hook.update(enable=True, out_dir=show_dir)
    elif toolbox == 'mmseg':
        hook['draw'] = True
        cfg.visualizer['save_dir'] = show_dir
    else:
        hook.update(draw=True, test_out_dir=show_dir)


def build_cfg(args):
    cfg = glnet_runner.runner_config(args.config, args.cfg_options,
                               args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    toolbox = cfg.default_scope  # checked by runner_config
    if args.show_dir:
        show_predictions(cfg, toolbox, args.show_dir)
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {args.out}: the predictions are saved '
                             'as a pickle; give a .pkl file name')
        if osp.exists(args.out):
            raise FileExistsError(f'--out {args.out} exists; not '
                                  'overwriting it')
        dump = dict(type=DUMP_METRIC[toolbox], out_file_path=args.out)
        evaluator = cfg.test_evaluator
        cfg.test_evaluator = (list(evaluator) if isinstance(
            evaluator, (list, tuple)) else [evaluator]) + [dump]
    return cfg


def main(argv=None):
    args = parse_args(argv)
    runner = glnet_runner.build_runner(build_cfg(args))
    metrics = runner.test()
    return runner, metrics


if __name__ == '__main__':
    main()
