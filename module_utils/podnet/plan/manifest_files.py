"""Manifest files and directories read into documents, within bounds.

Manifests are input from anyone, so reading them is bounded before anything
else looks at them: a file of at most MAX_BYTES, documents of at most
MAX_NODES nodes (YAML aliases counted as their full expansion, so a
"billion laughs" is refused in the time its few composed nodes take) and at
most MAX_DEPTH levels. A path that holds no object is refused too: an empty
manifest would silently stop every pod; no workloads is said with an
explicit empty list of manifests.
"""
import json
import os
from pathlib import Path

import yaml
from ansible.module_utils.podnet.core.errors import SpecError

SUFFIXES = ('.yaml', '.yml', '.json')
# libyaml's parser when PyYAML was built with it: five times faster on 1,000
# pods' manifests; the same nodes, the same errors with their marks.
SAFE_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
MAX_BYTES = 4 * 1024 * 1024
MAX_NODES = 1000000
MAX_DEPTH = 64
EMPTY = ('holds no Kubernetes objects, and planning from it would stop every pod; to run '
         'no workloads on purpose, give an explicit empty list (podnet_manifests: [])')


def _found(given):
    """The manifest files a given path stands for; a directory gives its
    own *.yaml, *.yml and *.json (not recursive), sorted by name."""
    path = Path(given)
    if path.is_dir():
        return sorted((p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()),
                      key=lambda p: p.name)
    if path.is_file():
        return [path]
    raise SpecError(str(given), 'no such manifest file or directory')


def _text(path):
    try:
        with open(path, 'rb') as stream:
            data = stream.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise SpecError(str(path), 'larger than the %d bytes (4 MiB) a manifest file may '
                            'hold' % MAX_BYTES)
        return data.decode('utf-8')
    except (OSError, UnicodeError) as exc:
        raise SpecError(str(path), 'cannot read: %s' % exc) from None


def _yaml_children(node):
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else ()


def _json_children(value):
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else ()


def _measure(node, children, where, depth=0, seen=None):
    """(nodes, height) of a tree whose shared subtrees (YAML aliases) count
    once per use; `seen` memoises by identity so nothing is expanded, and a
    cyclic alias runs into MAX_DEPTH."""
    seen = {} if seen is None else seen
    if id(node) not in seen:
        if depth >= MAX_DEPTH:
            raise SpecError(where, 'nested deeper than %d levels' % MAX_DEPTH)
        below = [_measure(c, children, where, depth + 1, seen) for c in children(node)]
        seen[id(node)] = (1 + sum(n for n, _ in below), 1 + max((h for _, h in below), default=0))
    size, height = seen[id(node)]
    if depth + height > MAX_DEPTH:
        raise SpecError(where, 'nested deeper than %d levels' % MAX_DEPTH)
    if size > MAX_NODES:
        raise SpecError(where, 'expands to more than %d nodes (YAML aliases counted in full): '
                        'refused as an alias bomb' % MAX_NODES)
    return size, height


def _yaml_error(where, exc):
    if 'maximum nesting depth' in str(getattr(exc, 'problem', '')):  # libyaml's own limit, above ours
        return SpecError(where, 'nested deeper than %d levels' % MAX_DEPTH)
    mark = getattr(exc, 'problem_mark', None)
    at = ' at line %d, column %d' % (mark.line + 1, mark.column + 1) if mark else ''
    return SpecError(where, 'invalid YAML%s: %s' % (at, getattr(exc, 'problem', None) or exc))


def _yaml(path, text):
    """[(document number, object)], each document composed and measured
    before it is constructed."""
    loader, docs, total = SAFE_LOADER(text), [], 0
    try:
        while loader.check_node():
            where = '%s document %d' % (path, len(docs) + 1)
            node = loader.get_node()
            total += _measure(node, _yaml_children, where)[0]
            if total > MAX_NODES:
                raise SpecError(str(path), 'holds more than %d nodes' % MAX_NODES)
            docs.append((len(docs) + 1, loader.construct_document(node)))
    except yaml.YAMLError as exc:
        raise _yaml_error('%s document %d' % (path, len(docs) + 1), exc) from None
    except RecursionError:
        raise SpecError(str(path), 'nested too deeply to read') from None
    finally:
        loader.dispose()
    return docs


def _parse(path):
    """[(document number, object)] of one file; JSON is one document."""
    text = _text(path)
    if path.suffix != '.json':
        return _yaml(path, text)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise SpecError(str(path), 'invalid JSON: %s' % exc) from None
    except RecursionError:
        raise SpecError(str(path), 'nested too deeply to read') from None
    _measure(doc, _json_children, str(path))
    return [(1, doc)]


def _objects(path):
    """(file, location, object) of every non-empty document, List items
    expanded; location reads `a.yaml document 2` (1-based) or `... items[0]`."""
    for number, doc in _parse(path):
        where = '%s document %d' % (path, number)
        if isinstance(doc, dict) and doc.get('kind') == 'List':
            items = doc.get('items') or []
            if not isinstance(items, list):
                raise SpecError(where, 'items: must be a list')
            for index, item in enumerate(items):
                yield str(path), '%s items[%d]' % (where, index), item
        elif doc is not None:
            yield str(path), where, doc


def documents(paths):
    """(file, location, object) of every object under paths, in order; a
    file met twice is read once; a path with no object is refused."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    counts = {}  # resolved file -> objects it holds
    for given in paths:
        found = _found(given)
        for path in found:
            if path.resolve() not in counts:
                counts[path.resolve()] = 0
                for obj in _objects(path):
                    counts[path.resolve()] += 1
                    yield obj
        if not sum(counts[p.resolve()] for p in found):
            raise SpecError(str(given), EMPTY)
