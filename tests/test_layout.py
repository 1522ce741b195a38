"""The package's import graph: no cycle, and each layer imports only the layers below it.

Every ``import`` counts, also those inside functions: a cycle through a lazy import is
still a cycle, it just fails later.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'label_studio_pachyderm'
# Bottom up. A module may import its own layer and those before it, never one after it.
SHARED = ('protowire', 'pachd', 'localpfs', 'uri', 'errors', 'connection', 'access', 'tables', 'inserts', 'leases', 'jobs',
          'settings')
FLOWS = ('imports', 'exports', 'media')  # side by side: none imports another


def _modules() -> dict:
    found = {}
    for path in PACKAGE.rglob('*.py'):
        parts = path.relative_to(PACKAGE).with_suffix('').parts
        if parts[0] != 'migrations':
            found['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return found


def _imports(name: str, path: pathlib.Path, modules: dict) -> set:
    """The package's modules that ``name`` imports (``''`` is the package itself)."""
    here = name.split('.') if path.name == '__init__.py' else name.split('.')[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = '.'.join(p for p in here[:len(here) - node.level + 1] + [node.module or ''] if p)
            elif (node.module or '').startswith('label_studio_pachyderm'):
                base = node.module.partition('.')[2]
            else:
                continue
            for alias in node.names:  # `from . import x` may name a module or something the package defines
                sub = f'{base}.{alias.name}' if base else alias.name
                found.add(sub if sub in modules else base)
        elif isinstance(node, ast.Import):
            found.update(a.name.partition('.')[2] for a in node.names if a.name.startswith('label_studio_pachyderm.'))
    return {m for m in found if m in modules and m != name}


@pytest.fixture(scope='module')
def graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_package_has_no_import_cycle(graph):
    state, cycles = {}, []

    def visit(module, trail):
        state[module] = 'open'
        for dep in sorted(graph[module]):
            if state.get(dep) == 'open':
                cycles.append(' -> '.join(trail[trail.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, trail + [dep])
        state[module] = 'done'

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, 'import cycles:\n' + '\n'.join(cycles)


def _layer(module: str) -> tuple:
    top = module.split('.')[0]
    if top in SHARED:
        return 0, top
    if top in FLOWS:
        return 1, top
    return 2, top  # Label Studio's provider roles (models, api, ...), the CLI and the demo


def test_each_layer_imports_only_the_layers_below(graph):
    wrong = []
    for module, deps in graph.items():
        level, group = _layer(module)
        for dep in deps:
            dep_level, dep_group = _layer(dep)
            if dep_level > level or (dep_level == level == 1 and dep_group != group):
                wrong.append(f'{module} imports {dep}')
            elif level == 0 and dep_level == 0 and SHARED.index(dep_group) > SHARED.index(group):
                wrong.append(f'{module} imports {dep}, listed above it in SHARED')
    assert not wrong, '\n'.join(sorted(wrong))


def test_the_graph_sees_relative_lazy_and_absolute_imports(graph):
    # What the two tests above rely on: a module-level relative import, one inside a function,
    # and a package import naming a submodule all show up as edges.
    assert 'exports.outbox' in graph['exports.jobs']
    assert 'imports.jobs' in graph['models']  # inside PachydermImportStorage.sync
    assert 'pachd.client' in graph['pachd']
