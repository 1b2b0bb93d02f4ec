"""Train any glnet_mm config (detection, segmentation, classification) with
mmengine's Runner, on one process or many (torch DDP).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher none|pytorch|slurm]

`tools/dist_train.sh CONFIG N` runs it under torchrun and `tools/slurm_train.sh`
under srun. The toolbox (mmdet, mmseg or mmpretrain) is the config's
`default_scope`; it is checked here and imported by mmengine's registries as
in the toolboxes' own `tools/train.py`, whose steps this file follows.

The CPU path of a multi-process run (gloo, DDP without device ids, SyncBN
turned into BN) is `glnet_mm.apis.runner`'s, shared with `tools/test.py`.
"""
import argparse

from glnet_mm.apis import runner as glnet_runner

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a glnet_mm config')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CKPT, or (no value) from the latest checkpoint '
        'of the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (AmpOptimWrapper)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr with the total batch size '
                        '(the config\'s auto_scale_lr.base_batch_size)')
    return glnet_runner.parse_args(parser, argv)


def build_cfg(args):
    cfg = glnet_runner.runner_config(args.config, args.cfg_options,
                               args.work_dir, args.launcher)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(f'{args.config} has no auto_scale_lr.'
                             'base_batch_size; --auto-scale-lr needs it')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    runner = glnet_runner.build_runner(build_cfg(args))
    runner.train()
    return runner


if __name__ == '__main__':
    main()
