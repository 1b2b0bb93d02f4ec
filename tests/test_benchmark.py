"""tools/analysis_tools/benchmark.py, the one benchmark harness, in its smoke mode: every
task runs, compares against a baseline and writes its rows, FLOP and GEMM-rate
columns and a Pareto plot; no timing is asserted."""
import csv
import importlib
import json
import os.path as osp
import sys

import pytest
import torch
import yaml
from conftest import REPO, needs


SEG_TOY = osp.join(REPO, 'configs', 'segmentation',
                   'upernet_glnet-toy_1xb8-600iter_toy-ade-128x128.py')
DET_TOY = osp.join(REPO, 'configs', 'detection',
                   'mask-rcnn_glnet-toy_fpn_1xb4-12e_toy-coco.py')


@pytest.fixture(scope='module')
def bench():
    # importable by name: the spawned memory processes import it too
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
    try:
        yield importlib.import_module('benchmark')
    finally:
        sys.path.remove(osp.join(REPO, 'tools', 'analysis_tools'))


def test_backbone_smoke_with_memory_json_and_pareto(bench, tmp_path, capsys):
    out, png = tmp_path / 'rows.json', tmp_path / 'pareto.png'
    rows = bench.main(['backbone', '--models', 'glnet-stl',
                       'glnet-stl-local-only', '--baseline', 'glnet-stl',
                       '--size', '64', '--batch', '2', '--smoke', '--memory',
                       '--threads', '1', '--out', str(out), '--pareto',
                       str(png)])
    assert [r['model'] for r in rows] == ['glnet-stl', 'glnet-stl-local-only']
    for row in rows:
        assert row['images_per_s'] > 0 and row['train_mem_gib'] > 0
        assert 0 < row['step_mem_gib'] < row['train_mem_gib']
        assert row['images_per_s_vs_baseline'] == pytest.approx(
            row['images_per_s'] / rows[0]['images_per_s'])
    # the local-only ablation has fewer parameters than GLNet-STL
    assert rows[1]['params_m'] < rows[0]['params_m']
    saved = json.loads(out.read_text())
    assert saved['rows'] == json.loads(json.dumps(rows))
    assert saved['meta']['threads'] == 1 and saved['meta']['machine']
    # GEMM rate in the meta; each row's FLOPs, achieved rate and fraction
    gemm = saved['meta']['gemm_gflop_s']
    assert gemm > 0 and saved['meta']['gemm'] == '2048^3 matmul, fp32'
    for row in rows:
        assert row['gflops_per_image'] > 0
        assert row['gflop_s'] == pytest.approx(row['gflops_per_image'] *
                                               row['images_per_s'])
        assert row['gemm_fraction'] == pytest.approx(row['gflop_s'] / gemm)
    assert rows[1]['gflops_per_image'] < rows[0]['gflops_per_image']
    table = capsys.readouterr().out
    assert '| glnet-stl-local-only |' in table and 'x)' in table
    assert 'GFLOP/s' in table and f'{gemm:.1f} GFLOP/s' in table
    assert png.read_bytes().startswith(b'\x89PNG\r\n\x1a\n')
    assert png.stat().st_size > 1000
    for flag, path in (('--out', out), ('--pareto', png)):
        with pytest.raises(SystemExit):  # never overwrites
            bench.main(['backbone', '--smoke', flag, str(path)])
        assert 'exists' in capsys.readouterr().err
    with pytest.raises(FileExistsError):
        bench.pareto_plot(str(png), {}, (), 'x', 'title')


def test_pareto_top1_from_metafiles(bench, tmp_path):
    mmpretrain = needs('mmpretrain')  # its metafiles: Swin, ConvNeXt
    with open(osp.join(REPO, 'configs', 'classification',
                       'metafile.yml')) as f:
        glnet = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    assert bench.top1('glnet-stl') == 82.5 == glnet[
        'glnet-stl_3rdparty_in1k']['Results'][0]['Metrics']['Top 1 Accuracy']
    # an ablation, never trained here: the authors' figure, labelled so
    with open(osp.join(REPO, 'configs', 'classification', 'ablations',
                       'metafile.yml')) as f:
        local, = [m for m in yaml.safe_load(f)['Models']
                  if m['Name'] == 'glnet-stl-local-only_16xb128_in1k']
    assert 'Results' not in local
    assert bench.top1('glnet-stl-local-only') == 81.8 == local['Metadata'][
        bench.REPORTED_TOP1]
    with open(osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs',
                       'swin_transformer', 'metafile.yml')) as f:
        swin = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    assert bench.top1('swin-t') == swin['swin-tiny_16xb64_in1k'][
        'Results'][0]['Metrics']['Top 1 Accuracy']
    assert 80 < bench.top1('swin-t') < bench.top1('convnext-t') < 83
    # a model without a top-1 is left off the plot, with a note
    args = bench.parse_args(['backbone', '--smoke'])
    png = tmp_path / 'p.png'
    notes = bench.pareto(str(png), [dict(model='glnet-stl', images_per_s=2.),
                                    dict(model='mine', images_per_s=3.)],
                         args, 'machine')
    assert len(notes) == 1 and notes[0].startswith('mine: left off')
    assert png.stat().st_size > 0


# mmpretrain's Swin/ConvNeXt call torch's checkpoint without use_reentrant
@pytest.mark.filterwarnings('ignore:torch.utils.checkpoint. the use_reentrant')
def test_with_cp_training_step_smoke(bench):
    needs('mmpretrain')  # Swin-T
    rows = bench.main(['backbone', '--models', 'swin-t', 'glnet-stl',
                       '--with-cp', '--mode', 'train', '--size', '64',
                       '--batch', '1', '--smoke', '--threads', '1'])
    assert all(r['with_cp'] and r['mode'] == 'train' for r in rows)
    assert all(r['gflops_per_image'] > 0 for r in rows)  # counted without cp
    # the first model is the baseline
    assert rows[1]['images_per_s_vs_baseline'] == pytest.approx(
        rows[1]['images_per_s'] / rows[0]['images_per_s'])


def test_without_runs_each_trick_off_in_the_same_rounds(bench, monkeypatch):
    """``--without``: a GLNet model also runs with each speed trick turned
    off (its plain version called) while that row runs, and only then."""
    from glnet_mm.models.backbones import glmix
    called, fast = [], glmix.can_add_in_place

    def plain(x, branch):
        called.append(glmix.can_add_in_place is plain)
        return False
    monkeypatch.setitem(bench.SPEED_TRICKS, 'inplace-residual',
                        (glmix, 'can_add_in_place', plain))
    rows = bench.main(['backbone', '--models', 'swin-t', 'glnet-stl',
                       '--size', '64', '--batch', '1', '--smoke',
                       '--threads', '1', '--without', 'inplace-residual',
                       'inplace-gelu', 'lean-backward'])
    assert [r['model'] for r in rows] == [
        'swin-t', 'glnet-stl', 'glnet-stl without inplace-residual',
        'glnet-stl without inplace-gelu', 'glnet-stl without lean-backward']
    assert called and all(called)  # 1 round: one call of the plain row
    assert glmix.can_add_in_place is fast  # restored after each call
    assert glmix.GELU.forward is not torch.nn.GELU.forward
    assert rows[2]['gflops_per_image'] == rows[1]['gflops_per_image']
    assert rows[2]['images_per_s_vs_baseline'] > 0  # ratios to swin-t too


def test_classifier_training_step_bf16_csv(bench, tmp_path):
    needs('mmpretrain')
    out = tmp_path / 'rows.csv'
    rows = bench.main(['classifier', '--models', 'convnext-t', 'glnet-4g',
                       '--baseline', 'convnext-t', '--size', '64',
                       '--batch', '2', '--mode', 'train', '--precision',
                       'bf16', '--channels-last', '--smoke', '--out',
                       str(out)])
    assert all(r['mode'] == 'train' and r['precision'] == 'bf16'
               for r in rows)
    lines = out.read_text().splitlines()
    assert lines[0].startswith('# machine:')
    table = list(csv.DictReader(line for line in lines
                                if not line.startswith('#')))
    assert [r['model'] for r in table] == ['convnext-t', 'glnet-4g']
    assert '# gemm: 2048^3 matmul, bf16' in lines
    assert float(table[1]['gemm_fraction']) > 0


def test_detector_and_segmentor_smoke(bench):
    needs('mmdet')
    needs('mmseg')
    det = bench.main(['detector', '--models', f'toy={DET_TOY}', '--size',
                      '128', '160', '--smoke', '--threads', '1'])
    seg = bench.main(['segmentor', '--models', f'toy={SEG_TOY}',
                      f'again={SEG_TOY}', '--baseline', 'toy', '--size',
                      '128', '--smoke', '--mode', 'train', '--batch', '2',
                      '--threads', '1'])
    assert det[0]['images_per_s'] > 0 and det[0]['task'] == 'detector'
    assert seg[0]['params_m'] == seg[1]['params_m']
    assert seg[1]['images_per_s_vs_baseline'] == pytest.approx(
        seg[1]['images_per_s'] / seg[0]['images_per_s'])


def test_onnxruntime_rows_beside_pytorch(bench, capsys, monkeypatch):
    """``--backend onnxruntime``: each model also exported (the dynamo
    exporter of tools/deployment/export_onnx.py) and timed in ONNX Runtime
    in the same rounds, on the same input and threads: its row, its images/s
    over the PyTorch row's, and its outputs equal to PyTorch's (1e-4
    relative). The whole detector/segmentor through mmdeploy:
    tests/test_deploy.py (the classic stack)."""
    pytest.importorskip('onnxruntime')
    needs('onnxscript')  # torch's dynamo exporter writes ONNX with it
    # the toy preset of the arch table (not a model of the harness: its
    # export takes seconds, GLNet-STL's 15 s)
    monkeypatch.setitem(bench.GLNET, 'glnet-toy', 'toy')
    rows = bench.main(['backbone', '--models', 'glnet-toy', '--size', '64',
                       '--batch', '1', '--smoke', '--threads', '1',
                       '--backend', 'onnxruntime'])
    assert [(r['model'], r['backend']) for r in rows] == [
        ('glnet-toy', 'pytorch'), ('glnet-toy (onnxruntime)', 'onnxruntime')]
    torch_row, ort_row = rows
    assert ort_row['ort_max_rel_err'] < 1e-4
    assert ort_row['ort_vs_pytorch'] == pytest.approx(
        ort_row['images_per_s'] / torch_row['images_per_s'])
    assert ort_row['params_m'] == torch_row['params_m']
    out = capsys.readouterr().out
    assert '| glnet-toy (onnxruntime) |' in out and 'vs PyTorch' in out
    assert 'onnxruntime 1.' in out  # its version in the header


def test_heads_resolve_to_configs(bench):
    """Each head: the shipped GLNet config, and the Swin-T config of the same
    head (DINO: mmdet's DINO-4scale with Swin-T swapped in)."""
    needs('mmdet')
    det = bench.CONFIGS['detector']
    assert list(det) == ['mask-rcnn', 'dino', 'mask2former']
    assert bench.resolve('detector', 'glnet-4g', 'dino') == (
        'glnet-4g', 'configs/detection/dino-4scale_glnet-4g_8xb2-12e_coco.py')
    name, (path, changes) = bench.resolve('detector', 'swin-t', 'dino')
    assert path == 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
    for _ in range(2):  # the changes are not consumed by a build
        cfg = bench._config('detector', (path, changes))
    assert cfg.model.backbone.type == 'SwinTransformer'
    assert cfg.model.backbone.out_indices == (1, 2, 3)
    assert 'depth' not in cfg.model.backbone  # ResNet's settings are gone
    for task, heads in bench.CONFIGS.items():
        for head, (_, pattern) in heads.items():
            for size in ('stl', '4g'):
                assert osp.isfile(osp.join(REPO, pattern.format(size)))


@pytest.mark.parametrize('argv, message', [
    (['backbone', '--models', 'nope'], 'unknown model'),
    (['detector', '--models', 'convnext-t'], 'no detector config'),
    (['segmentor', '--models', 'x=/no/such.py'], 'does not exist'),
    (['backbone', '--models', 'x=/no/such.py'], 'detector/segmentor'),
    (['backbone', '--size', '8'], 'at least 32'),
    (['backbone', '--precision', 'fp16'], 'CUDA'),
    (['backbone', '--out', 'rows.txt'], '.json or .csv'),
    (['backbone', '--pareto', 'plot.txt'], '.png, .pdf or .svg'),
    (['backbone', '--with-cp'], '--mode train or --memory'),
    (['detector', '--head', 'yolo'], "no detector head 'yolo'"),
    (['backbone', '--head', 'dino'], '--head is for detector/segmentor'),
    (['backbone', '--backend', 'onnxruntime', '--mode', 'train'],
     'not with --mode train'),
    (['detector', '--backend', 'onnxruntime', '--precision', 'bf16',
      '--compile'], 'not with --precision bf16, --compile'),
    (['detector', '--head', 'mask2former', '--memory'],
     'Mask2Former (COCO) trains on 1024x1024 crops'),
])
def test_bad_arguments_are_named(bench, capsys, argv, message):
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert message in capsys.readouterr().err


def test_harness_interleaves_and_summarises(bench):
    order = []
    times = bench.time_interleaved(
        dict(a=lambda: order.append('a'), b=lambda: order.append('b')),
        rounds=3, warmup=1, device='cpu')
    assert order == ['a', 'b'] * 4
    assert [len(t) for t in times.values()] == [3, 3]
    summary = bench.summarise([2.0, 1.0, 4.0], images=8)
    assert summary == dict(images_per_s=4.0, best_images_per_s=8.0,
                           rounds=3)
    rows = bench.add_ratios(  # a row's own figures are no settings
        [dict(model='a', images_per_s=2.0, gflops_per_image=1.0),
         dict(model='b', images_per_s=3.0, gflops_per_image=2.0)],
        'a', ('images_per_s', ))
    assert rows[1]['images_per_s_vs_baseline'] == 1.5
    assert bench.gemm_gflop_s([1.0, 4.0, 2.0], n=10) == 2 * 10**3 / 2e9
    bench.gemm_call('cpu', 'bf16', n=8)()  # bf16 tensors, runs


def test_model_names_come_from_the_arch_table_and_the_model_index(bench):
    from glnet_mm.models import arch_zoo
    needs('mmpretrain')  # the ablation configs' base
    names = bench.glnet_models()
    assert {f'glnet-{k.replace("_", "-")}' for k in arch_zoo} - set(names) \
        == {'glnet-toy'}
    with open(osp.join(REPO, 'configs', 'classification', 'ablations',
                       'metafile.yml')) as f:
        ablations = [m['Name'].split('_')[0]
                     for m in yaml.safe_load(f)['Models']]
    assert len(ablations) > 10 and set(ablations) <= set(names)
    local = bench._backbone_cfg('glnet-stl-local-only', classifier=False)
    assert local['arch']['branches'] == 'local'


def test_memory_account_per_part(monkeypatch, capsys):
    """tools/analysis_tools/memory_account.py: what a training forward keeps
    for backward, per part of the blocks, as a Markdown table; less with the
    lean backward than without (``--without lean-backward``, the plain
    graph), the MLP's share above all, nothing in the local branch; a
    non-GLNet model is refused."""
    from conftest import load_tool
    from glnet_mm.models.backbones import glmix
    tool = load_tool('analysis_tools/memory_account')
    monkeypatch.setattr(glmix, 'lean_backward', glmix.lean_backward)
    lean = tool.main(['glnet-toy', '--size', '96', '80'])
    plain = tool.main(['glnet-toy', '--size', '96', '80', '--without',
                       'lean-backward'])  # the tool's own switch
    assert {'MLP', 'global branch', 'norms'} <= set(lean)
    assert sum(lean.values()) < 0.8 * sum(plain.values())
    assert lean['MLP'] < 0.7 * plain['MLP']
    # the local branch keeps only the grid, which the global branch keeps
    assert plain['local branch'] > 0 and 'local branch' not in lean
    table = capsys.readouterr().out
    assert '| MLP |' in table and 'without lean-backward' in table
    with pytest.raises(SystemExit):
        tool.main(['swin-t'])
    assert 'a GLNet preset' in capsys.readouterr().err
