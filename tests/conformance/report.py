"""The conformance report: each guarantee with its checks, the commands each
check ran on the nodes and what they answered, the truth tables as coloured
grids and a picture of the cluster, in one self-contained HTML file (no
script, no file or address it loads) beside pytest's JUnit XML.

The suite's hooks (conftest.py) feed a Report while it runs; write() renders
it. A guarantee's statement is its test module's docstring, so the report
says what the suite checks in the suite's own words."""
import html
import json
import re
import threading
import time
from dataclasses import dataclass, field

from ansible.module_utils.podnet.explain.reachability import POD_IN_REASON

OUTPUT_CHARS = 1200  # of one command's answer kept as evidence
COMMANDS_KEPT = 40  # per check: the first ones; the rest are counted
MESSAGE_CHARS = 4000  # of a failure's traceback, its end
GUARANTEE = re.compile(r'^(G\d+):\s*')
CELL = {True: ('allowed', '.'), False: ('denied', 'X'), None: ('undecided', '?')}


@dataclass
class Command:
    host: str
    command: str
    rc: int
    output: str


@dataclass
class Grid:
    """A truth table: allowed[from][to] is True, False or None; why[from][to]
    explains a cell; a cell that differs from expected[from][to] is flagged."""
    title: str
    pods: list
    allowed: dict
    why: dict = field(default_factory=dict)
    expected: dict = None

    def cell(self, source, target):
        return self.allowed.get(source, {}).get(target)

    def wrong(self, source, target):
        if self.expected is None:
            return False
        return self.expected.get(source, {}).get(target) != self.cell(source, target)

    def reasons(self):
        """[(why, [cells])] of the cells not allowed, grouped by their reason
        with the pod left out, as probe.yml prints them."""
        groups = {}
        for source in self.pods:
            for target in self.pods:
                why = self.why.get(source, {}).get(target)
                if why:
                    groups.setdefault(POD_IN_REASON.sub(':', why), []).append('%s\u2192%s' % (source, target))
        return sorted(groups.items())


@dataclass
class Check:
    nodeid: str
    name: str
    doc: str
    outcome: str = 'not run'
    duration: float = 0.0
    message: str = ''
    commands: list = field(default_factory=list)
    commands_dropped: int = 0
    grids: list = field(default_factory=list)


@dataclass
class Section:
    """The checks of one test module: a guarantee (G1...) or ground they stand on."""
    ident: str
    title: str
    statement: str
    checks: list = field(default_factory=list)

    @property
    def outcome(self):
        outcomes = {c.outcome for c in self.checks}
        for worst in ('failed', 'error', 'passed', 'skipped'):
            if worst in outcomes:
                return worst
        return 'not run'


class Report:
    def __init__(self, name, inventory):
        self.name = name
        self.inventory = inventory
        self.started = time.time()
        self.sections = {}  # module path -> Section
        self.checks = {}  # nodeid -> Check
        self.current = None  # the Check now running
        self.deselected = ''  # why checks were not run, e.g. `-k not network_policy`
        self.scope = 'every pod and every pair'  # or the sample the checks visited
        self.pod_count = 0  # of the cluster, once a check has read its pods
        self.plugin = ''  # what wired the pods (podnet, or a CNI chain), once a check has read them
        self._commands_lock = threading.Lock()

    # -- fed by the suite's hooks -------------------------------------------

    def add(self, module_path, module_doc, nodeid, function_name, doc):
        if nodeid in self.checks:
            return self.checks[nodeid]
        section = self.sections.get(module_path)
        if section is None:
            section = self.sections[module_path] = _section(module_doc, module_path)
        check = self.checks[nodeid] = Check(nodeid, _check_name(function_name, nodeid),
                                            _tidy(doc))
        section.checks.append(check)
        return check

    def begin(self, nodeid):
        self.current = self.checks.get(nodeid)

    def end(self):
        self.current = None

    def phase(self, nodeid, when, outcome, duration, message):
        """One phase (setup, call, teardown) of a check's run."""
        check = self.checks.get(nodeid)
        if check is None:
            return
        check.duration += duration
        if outcome == 'failed':
            check.outcome = 'error' if when != 'call' and check.outcome != 'failed' else 'failed'
            joined = '%s\n\n[%s]\n%s' % (check.message, when, message) if check.message else message
            check.message = joined[-MESSAGE_CHARS:]
        elif outcome == 'skipped' and check.outcome not in ('failed', 'error'):
            check.outcome, check.message = 'skipped', message
        elif when == 'call' and check.outcome == 'not run':
            check.outcome = 'passed'

    def broken(self, module_path, message):
        """A test module that could not be collected: one check in error."""
        check = self.add(module_path, '', module_path + '::(collection)', 'collection', '')
        check.outcome, check.message = 'error', message[-MESSAGE_CHARS:]

    def command(self, host, command, rc, output):
        check = self.current
        if check is None:
            return
        if len(output) > OUTPUT_CHARS:
            output = output[:OUTPUT_CHARS] + '\n[%d more characters]' % (len(output) - OUTPUT_CHARS)
        with self._commands_lock:  # a check may run commands on several nodes at once
            if len(check.commands) >= COMMANDS_KEPT:
                check.commands_dropped += 1
                return
            check.commands.append(Command(host, command, rc, output))

    def grid(self, grid):
        if self.current is not None:
            self.current.grids.append(grid)

    # -- rendered ------------------------------------------------------------

    def ordered_sections(self):
        """Guarantees in their order (G1, G2...), then the other modules as collected."""
        sections = list(self.sections.values())
        return sorted(sections, key=lambda s: (not s.ident, _number(s.ident)))

    def counts(self):
        return tally(self.checks.values())

    def summary(self):
        return {'name': self.name, 'inventory': str(self.inventory), 'plugin': self.plugin,
                'finished': time.time(),
                'seconds': round(time.time() - self.started, 1), 'counts': self.counts(),
                'guarantees': {s.ident: s.outcome for s in self.ordered_sections() if s.ident}}

    def write(self, folder, picture=None, picture_note=''):
        """folder/conformance.html and folder/summary.json; picture is an SVG's text."""
        folder.mkdir(parents=True, exist_ok=True)
        page = folder / 'conformance.html'
        page.write_text(render(self, picture, picture_note))
        (folder / 'summary.json').write_text(json.dumps(self.summary(), indent=2) + '\n')
        return page


def tally(checks):
    """{outcome: how many checks had it}."""
    counts = {}
    for check in checks:
        counts[check.outcome] = counts.get(check.outcome, 0) + 1
    return counts


def _section(module_doc, module_path):
    doc = _tidy(module_doc) or module_path
    title, _, statement = doc.partition('\n\n')
    found = GUARANTEE.match(title)
    return Section(found.group(1) if found else '', title.replace('\n', ' '),
                   statement.replace('\n', ' '))


def _check_name(function_name, nodeid):
    name = function_name[len('test_'):] if function_name.startswith('test_') else function_name
    params = nodeid[nodeid.index('['):] if '[' in nodeid else ''
    return name.replace('_', ' ') + (' ' + params if params else '')


def _tidy(doc):
    """A docstring as paragraphs: lines of one paragraph joined."""
    paragraphs = re.split(r'\n\s*\n', (doc or '').strip())
    return '\n\n'.join(' '.join(line.strip() for line in p.splitlines()) for p in paragraphs if p)


def _number(ident):
    return int(ident[1:]) if ident else 0


# -- HTML ---------------------------------------------------------------------

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 24px 48px;color:#1d2228}
h1{font-size:24px;margin:24px 0 4px}
h2{font-size:19px;margin:32px 0 6px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:0}.meta{color:#57606a;margin:0 0 12px}
.badge{display:inline-block;border-radius:10px;padding:0 9px;font-size:12px;font-weight:600;color:#fff;
vertical-align:2px}
.passed{background:#1a7f37}.failed,.error{background:#cf222e}.skipped{background:#9a6700}.not-run{background:#6e7781}
table.summary{border-collapse:collapse;margin:12px 0}
table.summary td,table.summary th{padding:4px 10px;border-bottom:1px solid #eaeef2;text-align:left}
.check{border:1px solid #d0d7de;border-left-width:5px;border-radius:6px;padding:10px 14px;margin:10px 0}
.check.passed-check{border-left-color:#1a7f37}
.check.failed-check,.check.error-check{border-left-color:#cf222e}.check.skipped-check{border-left-color:#9a6700}
.doc{margin:4px 0;color:#32383f}
pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px;white-space:pre-wrap;word-break:break-all}
pre.message{background:#fff5f5;border:1px solid #ffcecb}
table.grid{border-collapse:collapse;margin:8px 0;font:12px ui-monospace,monospace}
table.grid th{padding:2px 5px;font-weight:600;background:#f6f8fa}
table.grid td{width:24px;height:20px;text-align:center;border:1px solid #fff;color:#fff;font-weight:700}
td.allowed{background:#2da44e}td.denied{background:#cf222e}td.undecided{background:#8c959f}
td.wrong{outline:3px solid #fb8500;outline-offset:-3px}
.grids{display:flex;flex-wrap:wrap;gap:0 28px}.grids figure{margin:0}figcaption{font-weight:600}
ul.why{margin:2px 0 8px;padding-left:18px;font-size:12px}.picture{overflow:auto;border:1px solid #d0d7de;padding:8px}
.picture svg{max-width:100%;height:auto}
"""


def render(report, picture=None, picture_note=''):
    sections = report.ordered_sections()
    counts = report.counts()
    parts = ['<!doctype html><html lang="en"><head><meta charset="utf-8">',
             '<title>podnet conformance: %s</title><style>%s</style></head><body>'
             % (_e(report.name), STYLE),
             '<h1>podnet conformance: %s</h1>' % _e(report.name),
             '<p class="plugin">pods wired by <b>%s</b></p>' % _e(report.plugin or 'no pod read'),
             '<p class="meta">inventory %s &middot; %s &middot; checked: %s &middot; %s</p>' % (
                 _e(report.inventory), time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(report.started)),
                 _e(report.scope),
                 ', '.join('%d %s' % (n, o) for o, n in sorted(counts.items())) or 'no checks'),
             _summary_table(sections, report.deselected)]
    parts += [_section_html(s, report.deselected) for s in sections]
    parts.append('<h2 id="picture">The cluster as the nodes report it</h2>')
    if picture:
        parts.append('<div class="picture">%s</div>' % _inline_svg(picture))
    parts.append('<p class="meta">%s</p>' % _e(picture_note) if picture_note else '')
    parts.append('<p class="meta">JUnit XML of the same run: junit.xml, beside this file.</p>')
    parts.append('</body></html>\n')
    return '\n'.join(parts)


def _summary_table(sections, deselected):
    rows = ['<table class="summary" id="guarantees"><tr><th></th><th>what the suite checks</th>'
            '<th></th><th>checks</th></tr>']
    for s in sections:
        counts = tally(s.checks)
        if counts.get('not run'):
            counts['not run (%s)' % (deselected or 'deselected')] = counts.pop('not run')
        rows.append('<tr><td><b>%s</b></td><td><a href="#%s">%s</a></td><td>%s</td><td>%s</td></tr>' % (
            _e(s.ident), _anchor(s), _e(GUARANTEE.sub('', s.title)), _badge(s.outcome),
            _e(', '.join('%d %s' % (n, o) for o, n in sorted(counts.items())))))
    rows.append('</table>')
    return ''.join(rows)


def _section_html(section, deselected):
    parts = ['<h2 id="%s">%s %s</h2>' % (_anchor(section), _badge(section.outcome), _e(section.title))]
    if section.statement:
        parts.append('<p>%s</p>' % _e(section.statement))
    idle = [c for c in section.checks if c.outcome == 'not run']
    parts += [_check_html(c) for c in section.checks if c.outcome != 'not run']
    if idle:
        parts.append('<p class="meta">Not run here (%s): %s.</p>' % (
            _e(deselected or 'deselected'), _e('; '.join(c.name for c in idle))))
    return '\n'.join(parts)


def _check_html(check):
    parts = ['<div class="check %s-check" id="%s">' % (check.outcome, _e(check.nodeid)),
             '<h3>%s %s</h3>' % (_badge(check.outcome), _e(check.name))]
    if check.doc:
        parts.append('<p class="doc">%s</p>' % _e(check.doc))
    parts.append('<p class="meta">%s in %.1f s &middot; %s</p>' % (
        check.outcome, check.duration, _e(check.nodeid)))
    if check.message:
        parts.append('<pre class="message">%s</pre>' % _e(check.message))
    if check.grids:
        parts.append('<div class="grids">%s</div>' % ''.join(_grid_html(g) for g in check.grids))
    if check.commands:
        hosts = sorted({c.host for c in check.commands})
        more = ' (and %d more not kept)' % check.commands_dropped if check.commands_dropped else ''
        parts.append('<details><summary>evidence: %d commands on %s%s</summary><pre>%s</pre></details>' % (
            len(check.commands), _e(', '.join(hosts)), more,
            _e('\n'.join('%s# %s\n[rc %s] %s' % (c.host, c.command, c.rc, c.output.rstrip())
                         for c in check.commands))))
    parts.append('</div>')
    return '\n'.join(parts)


def _grid_html(grid):
    head = ''.join('<th title="%s">%s</th>' % (_e(p), _e(_short(p))) for p in grid.pods)
    rows = ['<table class="grid"><tr><th>from \\ to</th>%s</tr>' % head]
    for source in grid.pods:
        cells = []
        for target in grid.pods:
            value = grid.cell(source, target)
            kind, mark = CELL[value]
            wrong = grid.wrong(source, target)
            why = grid.why.get(source, {}).get(target)
            title = '%s \u2192 %s: %s%s%s' % (source, target, kind, ': %s' % why if why else '',
                                               ' (expected otherwise)' if wrong else '')
            cells.append('<td class="%s%s" title="%s">%s</td>' % (
                kind, ' wrong' if wrong else '', _e(title), '!' if wrong else mark))
        rows.append('<tr><th title="%s">%s</th>%s</tr>' % (_e(source), _e(_short(source)), ''.join(cells)))
    rows.append('</table>')
    reasons = ''.join('<li>%s: %s</li>' % (_e(why), _e(' '.join(cells))) for why, cells in grid.reasons())
    return '<figure><figcaption>%s</figcaption>%s%s</figure>' % (
        _e(grid.title), ''.join(rows), '<ul class="why">%s</ul>' % reasons if reasons else '')


def _short(pod):
    """A column head: the pod key, its namespace dropped past a short length."""
    return pod if len(pod) <= 8 else pod.rsplit('/', 1)[-1][:14]


def _inline_svg(text):
    """Graphviz's SVG without its XML prologue and doctype, to sit inside HTML."""
    start = text.find('<svg')
    return text[start:] if start >= 0 else ''


def _badge(outcome):
    return '<span class="badge %s">%s</span>' % (outcome.replace(' ', '-'), _e(outcome))


def _anchor(section):
    return section.ident or re.sub(r'[^a-z0-9]+', '-', section.title.lower())[:40].strip('-')


def _e(text):
    return html.escape(str(text), quote=True)


# -- the index of every report under one folder --------------------------------

def write_index(root):
    """root/index.html: a line per report folder under root (its summary.json)."""
    rows = []
    for summary_file in sorted(root.glob('*/summary.json')):
        summary = json.loads(summary_file.read_text())
        counts = ', '.join('%d %s' % (n, o) for o, n in sorted(summary['counts'].items()))
        guarantees = ' '.join('%s %s' % (g, _badge(o)) for g, o in summary['guarantees'].items())
        rows.append('<tr><td><a href="%s/conformance.html">%s</a></td><td>%s</td><td>%s</td><td>%s</td>'
                    '<td>%s</td></tr>' % (
            _e(summary_file.parent.name), _e(summary['name']), _e(summary.get('plugin') or ''),
            time.strftime('%Y-%m-%d %H:%M', time.localtime(summary['finished'])), _e(counts), guarantees))
    page = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>podnet conformance reports'
            '</title><style>%s</style></head><body><h1>podnet conformance reports</h1>'
            '<table class="summary"><tr><th>run</th><th>pods wired by</th><th>finished</th><th>checks</th>'
            '<th>guarantees</th></tr>'
            '%s</table></body></html>\n' % (STYLE, ''.join(rows)))
    (root / 'index.html').write_text(page)
