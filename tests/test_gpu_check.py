"""tools/misc/gpu_check.py's ``trt`` step and step runner, what of them runs
on a CPU: the plan lists ``trt`` with its skip status, its arguments are
checked, and without a GPU, TensorRT or mmdeploy it still builds the
models, runs PyTorch fp32 and AMP (bf16 on a CPU) in interleaved rounds and
compares them with deploy.py's comparison, names what is missing and exits
with the skip status; ``run_step`` records skipped and failed steps (the
whole check's dry run: tests/test_environment.py). The engines themselves
need a GPU: not run here."""
import json
import sys

import numpy as np
import pytest
from conftest import load_tool, needs

tool = load_tool('misc/gpu_check')


def plan(*extra):
    """The check's steps as ``nox -s gpu_check`` reads them."""
    from contextlib import redirect_stdout
    from io import StringIO
    out = StringIO()
    with redirect_stdout(out):
        assert tool.main(['plan', '--python', 'PY', '--work', 'W',
                          *extra]) == 0
    return {s['step']: s for s in json.loads(out.getvalue())}


def test_plan_runs_the_trt_step_after_the_mmcv_build():
    for dry in (True, False):
        steps = plan(*(['--dry-run'] if dry else []))
        assert list(steps)[-1] == 'trt'
        trt = steps['trt']
        assert trt['needs'] == ['mmcv-build']
        assert trt['skip_status'] == tool.SKIPPED != 1  # not a failure
        command, = trt['commands']
        assert command[2:4] == ['trt', '--device']
        assert command[4] == ('cpu' if dry else 'cuda')
        assert ('--toy' in command) == dry
        assert trt['results'] == ['W/trt.json']


@pytest.mark.parametrize('argv, message', [
    (['trt', '--work', 'w', '--images', '0'], '--images and --rounds'),
    (['trt', '--work', 'w', '--warmup', '-1'], '--warmup >= 0'),
    (['trt'], '--work'),
])
def test_trt_arguments_are_checked(argv, message, capsys):
    with pytest.raises(SystemExit):
        tool.main(argv)
    assert message in capsys.readouterr().err


def test_agreement_limits():
    """The engine's limits on deploy.py's per-image comparison: labels on
    >= 99% of pixels for a segmentor, no detection >= 0.3 unmatched in ten
    for a detector; the segmentation mIoU taking PyTorch as ground truth."""
    deploy = load_tool('deployment/deploy')
    ref = np.array([[0, 0, 1, 1], [2, 2, 2, 2]])
    out = np.array([[0, 0, 1, 2], [2, 2, 2, 2]])
    # class 0: 2/2, class 1: 1/2, class 2: 4/5
    assert deploy.label_miou(ref, out) == pytest.approx((1 + .5 + .8) / 3)
    assert deploy.label_miou(ref, ref) == 1.0

    class Stub:  # compare_outputs(): the worst figures of the images
        @staticmethod
        def compare_outputs(refs, outs, min_score):
            return dict(refs[0], **outs[0])
    seg = tool.agreement(Stub, [dict(label_agreement=.995)], [{}])
    assert seg['within_limits']
    assert not tool.agreement(Stub, [dict(label_agreement=.98)],
                              [{}])['within_limits']
    assert tool.agreement(Stub, [dict(compared=10, unmatched=1)],
                          [{}])['within_limits']
    assert not tool.agreement(Stub, [dict(compared=3, unmatched=1)],
                              [{}])['within_limits']


def test_trt_on_a_cpu_compares_pytorch_and_says_what_is_missing(tmp_path):
    """The dry run's trt step, in this process: the toy Mask R-CNN and
    UPerNet built (seeded) and run on a random image in fp32 and bf16
    autocast (the UPerNet's labels compared; the Mask R-CNN's autocast
    error, if any, reported), timed in interleaved rounds; no engine (no
    CUDA device here), the reasons in the JSON, the skip status
    returned."""
    needs('mmdet')
    needs('mmseg')
    needs('mmcv._ext')  # Mask R-CNN's RoIAlign and NMS
    out = tmp_path / 'trt.json'
    status = tool.main(['trt', '--device', 'cpu', '--work',
                        str(tmp_path / 'work'), '--out', str(out), '--toy',
                        '--images', '1', '--rounds', '1', '--warmup', '0'])
    assert status == tool.SKIPPED
    result = json.loads(out.read_text())
    assert result['missing'][0].startswith('no CUDA device')
    assert result['failures'] == []
    det, seg = result['models'].values()
    for entry in (det, seg):
        assert entry['engine_error'].startswith('not run: no CUDA device')
        assert entry['engine'] == 'tensorrt (fp16)'
        assert entry['amp'] == 'bfloat16'
        assert entry['seconds_per_image']['pytorch_fp32'] > 0
        assert 'engine_speedup_vs_amp' not in entry
    # mmcv's CPU NMS takes fp32 only: the detector's AMP error is reported
    assert 'amp_vs_fp32' in det or 'BFloat16' in det['amp_error']
    assert set(seg['seconds_per_image']) == {'pytorch_fp32', 'pytorch_amp'}
    assert seg['amp_speedup_vs_fp32'] > 0
    assert 0.9 <= seg['amp_vs_fp32']['label_agreement'] <= 1
    assert 0 < seg['amp_vs_fp32']['label_miou'] <= 1


def test_steps_failed_skipped_and_not_run_here(tmp_path):
    """run_step (``nox -s gpu_check`` runs the plan with it): a command
    exiting with the step's skip status (``trt`` without TensorRT) is a
    skipped step whose note says why (its JSON's ``missing``), not a
    failure; any other non-zero exit, or the skip status of a step that has
    none, fails it; a step that needs a failed one is skipped without
    running."""
    steps, log, result = [], tmp_path / 'log', tmp_path / 'trt.json'

    def exits(code, missing=None):
        body = f'json.dump({{"missing": {missing!r}}}, open({str(result)!r}, ' \
            f'"w")); ' if missing else ''
        return [sys.executable, '-c', f'import json, sys; {body}sys.exit'
                f'({code})']
    ran = []
    for step, commands, extra in [
            ('ok', [lambda: ran.append('ok')], {}),
            ('trt', [exits(3, ['no CUDA device', 'no tensorrt'])],
             dict(needs=['ok'], results=[str(result)], skip_status=3)),
            ('plain', [exits(3)], {}),
            ('after', [lambda: ran.append('after')], dict(needs=['plain']))]:
        record = tool.run_step(steps, log, step, f'{step} note', commands,
                               **extra)
        assert record is steps[-1] and record['step'] == step
    status = {s['step']: s['status'] for s in steps}
    assert status == dict(ok='ok', trt='skipped', plain='failed',
                          after='skipped')
    notes = {s['step']: s['note'] for s in steps}
    assert notes['trt'] == ('trt note; not run here: no CUDA device; '
                            'no tensorrt')
    assert notes['after'] == 'plain did not succeed'
    assert ran == ['ok']
    assert '== step trt: trt note' in log.read_text()
