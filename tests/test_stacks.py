"""The supported stacks (.dev_scripts/stacks.py): their recipes agree with
pyproject.toml and the README's table; every check they select exists; and
a test needing a package that is not installed skips (or fails under CI on
the development stack: tests/conftest.py)."""
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import conftest
import pytest

ROOT = Path(conftest.REPO)


def load_stacks():
    spec = importlib.util.spec_from_file_location(
        'stacks', ROOT / '.dev_scripts' / 'stacks.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stacks = load_stacks()


def readme_table():
    """The README's table of supported stacks: {stack: {column: cell}}."""
    text = (ROOT / 'README.md').read_text()
    lines = text[text.index('| stack | Python |'):].splitlines()
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    rows = {}
    for line in lines[2:]:
        if not line.startswith('|'):
            break
        cells = [c.strip() for c in line.strip('|').split('|')]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def pins(requirements):
    """{name: version} of the ``name==version`` lines of ``requirements``."""
    return dict(re.match(r'([\w.-]+)==([\w.+]+)$', r).groups()
                for r in requirements if '==' in r)


def test_table_recipes_and_pyproject_agree():
    # Python >= 3.11 (the development stack); `pytest tests` on an older
    # Python skips this one test instead of failing to collect the file
    tomllib = pytest.importorskip('tomllib')
    table = readme_table()
    assert set(table) == {'classic', 'current', 'newest'}
    with open(ROOT / 'pyproject.toml', 'rb') as f:
        project = tomllib.load(f)['project']
    # requires-python and torch's lower bound are the classic stack's
    lowest = min(table.values(),
                 key=lambda row: tuple(map(int, row['Python'].split('.'))))
    assert lowest['stack'] == 'classic'
    assert project['requires-python'] == f">={lowest['Python']}"
    classic = pins(stacks.STACKS['classic']['base'])
    torch_min = re.match(r'torch>=([\d.]+)$', next(
        d for d in project['dependencies'] if d.startswith('torch')))
    assert classic['torch'].startswith(torch_min.group(1) + '.')
    for name in ('classic', 'newest'):
        recipe, row = stacks.STACKS[name], table[name]
        assert row['Python'] == recipe['python'], name
        versions = pins(recipe['base'])
        if 'torch' in versions:
            assert row['torch / torchvision'].startswith(
                f"{versions['torch']} / {versions['torchvision']}"), name
            assert row['numpy'].startswith(versions['numpy']), name
        else:  # unpinned: the newest on the index
            assert row['torch / torchvision'].startswith('newest'), name
            assert row['numpy'].startswith('newest'), name
        if recipe['mmcv']:
            assert row['mmcv'].startswith(recipe['mmcv'][0]), name
        else:
            assert row['mmcv'].startswith('mmcv-lite'), name
    # the development stack: requirements/build.txt
    build = pins((ROOT / 'requirements' / 'build.txt').read_text().split())
    current = table['current']
    assert current['torch / torchvision'].startswith(
        f"{build['torch']} / {build['torchvision']}")
    assert current['numpy'].startswith(build['numpy'])
    assert current['Python'] == '3.11'


def test_every_selected_check_exists():
    """A renamed or removed test must not silently leave a stack's checks."""
    for name, checks in stacks.CHECKS.items():
        assert checks, name
        for check in checks + stacks.DESELECT[name]:
            path, _, test = check.partition('::')
            source = (ROOT / path).read_text()
            if test:
                function = test.split('[')[0]
                assert f'def {function}(' in source, check
    assert set(stacks.CHECKS) == set(stacks.STACKS) == set(stacks.DESELECT)


def test_find_python_names_what_to_install():
    found = stacks.find_python('%d.%d' % sys.version_info[:2])
    version = subprocess.run([found, '-c', 'import sys; print(sys.version_info'
                              '[:2])'], capture_output=True, text=True)
    assert version.stdout.strip() == str(tuple(sys.version_info[:2]))
    with pytest.raises(stacks.StackError, match='pyenv install 2.5'):
        stacks.find_python('2.5')


def test_stamp_follows_the_recipe(monkeypatch):
    """A changed recipe (a new pin) changes the stamp: the cached venv is
    built anew; the same recipe keeps it."""
    python = sys.executable
    before = stacks.stamp_of('classic', python)
    assert stacks.stamp_of('classic', python) == before
    changed = dict(stacks.STACKS['classic'],
                   base=['torch==2.1.1'] + stacks.STACKS['classic']['base'][1:])
    monkeypatch.setitem(stacks.STACKS, 'classic', changed)
    assert stacks.stamp_of('classic', python) != before


# Test files whose imports of mmdet and pycocotools fail as where they are
# not installed (a finder ahead of the others says so).
BLOCK = '''
import sys


class Block:

    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmdet', 'pycocotools'):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)


sys.meta_path.insert(0, Block())
'''
MISSING_TESTS = {
    'test_needs.py': '''
        import block  # noqa: F401

        def test_needs_mmdet():
            import mmdet  # noqa: F401

        def test_a_bug():
            import glnet_mm.no_such_module  # noqa: F401
    ''',
    'test_file_needs.py': '''
        import block  # noqa: F401
        import pycocotools  # noqa: F401

        def test_never_collected():
            pass
    ''',
}


@pytest.mark.parametrize('env, allowed', [
    (dict(), True), (dict(CI=''), True),
    (dict(CI='true', GLNET_MM_STACK='newest'), True),  # a stack's checks
    (dict(CI='true'), False), (dict(CI='true', GLNET_MM_STACK=''), False),
])
def test_skips_allowed_except_under_ci_on_the_development_stack(
        monkeypatch, env, allowed):
    for name in ('CI', 'GLNET_MM_STACK'):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert conftest._skips_allowed() is allowed


@pytest.mark.parametrize('env, outcome', [
    (dict(CI=''), 'needs skip'),
    (dict(CI='true', GLNET_MM_STACK=''), 'needs fail'),
])
def test_a_missing_toolbox_skips_except_under_ci(tmp_path, env, outcome):
    """tests/conftest.py: a test or test file importing an optional package
    that is missing is skipped, naming it, where skips are allowed (above);
    under CI on the development stack it fails. A missing module of
    glnet_mm itself always fails."""
    (tmp_path / 'conftest.py').write_text(
        (ROOT / 'tests' / 'conftest.py').read_text())
    (tmp_path / 'block.py').write_text(BLOCK)
    for name, source in MISSING_TESTS.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    out = subprocess.run(
        [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-rsfE',
         '-q', '--continue-on-collection-errors', str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
        env=dict(os.environ, **env, PYTHONPATH=conftest.REPO))
    log = out.stdout
    assert out.returncode == 1, log
    assert re.search(r'FAILED .*test_a_bug', log), log
    if outcome == 'needs skip':
        assert 'needs mmdet, not installed' in log, log
        assert 'needs pycocotools, not installed' in log, log
        assert '1 failed, 2 skipped' in log, log
    else:
        assert re.search(r'FAILED .*test_needs_mmdet', log), log
        assert re.search(r'ERROR .*test_file_needs', log), log
        assert '2 failed' in log and '1 error' in log, log
