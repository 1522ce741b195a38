"""The one table: rows per contender, ratios against the peers measured in the same run, targets.

Ratios are always of wall times measured in this run, on this machine, one after
the other. "0.21 of s3" = Pachyderm took 0.21 of the S3 provider's time (4.8x faster).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Row:
    key: str  # how checks refer to the row, e.g. 'media/pachyderm'
    scenario: str
    contender: str
    items: int
    unit: str
    seconds: Optional[float] = None
    rss_mb: Optional[float] = None
    rss_before_mb: Optional[float] = None
    load: Optional[float] = None
    note: str = ''
    error: Optional[str] = None
    extrapolated: bool = False
    metrics: dict = field(default_factory=dict)  # named figures an 'at_most' check reads

    @property
    def rate(self) -> Optional[float]:
        if self.seconds and self.items:
            return self.items / self.seconds
        return None


@dataclass
class Check:
    subject: str  # row key
    kind: str  # 'time' (subject/peer <= limit), 'speedup' (peer/subject >= limit), 'throughput', 'rss', 'info',
    # 'per_item' (subject's seconds per item / peer's <= limit: rows of different sizes)
    peer: Optional[str] = None
    limit: Optional[float] = None
    name: str = ''  # how the peer is called in the table
    metric: str = ''  # 'at_most': the subject's metric that must not exceed the limit
    unit: str = ''

    def evaluate(self, rows: dict) -> tuple[str, str, str]:
        """(ratio text, target text, PASS/MISS/ERROR/'')"""
        subject = rows.get(self.subject)
        peer = rows.get(self.peer) if self.peer else None
        if subject is None or subject.error or (self.peer and (peer is None or peer.error)):
            return '', self._target(), 'ERROR' if self.limit is not None else ''
        if self.kind == 'at_most':
            value = subject.metrics.get(self.metric)
            if value is None:
                return f'{self.name}: not measured', self._target(), 'ERROR'
            shown = f'{value:.1f}' if isinstance(value, float) else f'{value}'
            return (f'{self.name}: {shown} {self.unit}'.rstrip(), self._target(),
                    'PASS' if value <= self.limit else 'MISS')
        if self.kind == 'rss':
            ok = subject.rss_mb is not None and subject.rss_mb < self.limit
            return f'{subject.rss_mb:.0f} MB peak', self._target(), 'PASS' if ok else 'MISS'
        if self.kind == 'per_item':
            ratio = (subject.seconds / subject.items) / (peer.seconds / peer.items)
            text = (f'{subject.seconds / subject.items * 1000:.3g} ms per item, {ratio:.2f}x the '
                    f'{self.name}\'s ({peer.seconds / peer.items * 1000:.3g} ms)')
            return text, self._target(), _verdict(self.limit is None or ratio <= self.limit, self.limit)
        if self.kind == 'throughput':
            ratio = subject.rate / peer.rate
            text = f'{ratio:.2f} of {self.name} throughput'
            return text, self._target(), _verdict(ratio >= self.limit, self.limit)
        ratio = subject.seconds / peer.seconds
        speedup = peer.seconds / subject.seconds
        approx = '~' if peer.extrapolated or subject.extrapolated else ''
        text = f'{approx}{ratio:.2f} of {self.name} ({approx}{_times(speedup)} faster)' if speedup >= 1 else \
            f'{approx}{ratio:.2f} of {self.name} ({approx}{_times(1 / speedup)} slower)'
        if self.kind == 'time':
            return text, self._target(), _verdict(ratio <= self.limit, self.limit)
        if self.kind == 'speedup':
            return text, self._target(), _verdict(speedup >= self.limit, self.limit)
        return text, '', ''

    def _target(self) -> str:
        if self.limit is None:
            return ''
        return {
            'time': f'<= {self.limit:g} of {self.name}',
            'speedup': f'>= {self.limit:g}x vs {self.name}',
            'throughput': f'>= {self.limit:g} of {self.name}',
            'rss': f'< {self.limit:g} MB',
            'per_item': f'<= {self.limit:g}x the time per item of {self.name}',
            'at_most': f'<= {self.limit:g} {self.unit}'.rstrip(),
        }[self.kind]


def _times(factor: float) -> str:
    # Two decimals near 1x, where "1.0x slower" would hide the difference.
    return f'{factor:.2f}x' if factor < 2 else f'{factor:.1f}x'


def _verdict(ok: bool, limit) -> str:
    return 'PASS' if ok else 'MISS' if limit is not None else ''


@dataclass
class Table:
    rows: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    sections: list = field(default_factory=list)  # Markdown blocks a scenario adds below the table

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def lines(self) -> list:
        """[[cells...]] with the header first."""
        by_key = {row.key: row for row in self.rows}
        out = [['Scenario', 'Contender', 'Items', 'Time (s)', 'Items/s', 'Peak RSS (MB)', 'RSS at start (MB)', 'Load',
                'Ratio vs peer', 'Target', 'Result']]
        for row in self.rows:
            checks = [c for c in self.checks if c.subject == row.key]
            evaluated = [c.evaluate(by_key) for c in checks] or [('', '', '')]
            for n, (ratio, target, verdict) in enumerate(evaluated):
                first = n == 0
                out.append([
                    row.scenario if first else '',
                    row.contender if first else '',
                    f'{row.items:,} {row.unit}' if first else '',
                    _seconds(row) if first else '',
                    _rate(row) if first else '',
                    f'{row.rss_mb:.0f}' if first and row.rss_mb else '',
                    f'{row.rss_before_mb:.0f}' if first and row.rss_before_mb else '',
                    f'{row.load:.1f}' if first and row.load is not None else '',
                    ratio if not row.error else f'ERROR: {row.error}'[:80],
                    target,
                    verdict,
                ])
        return out

    def verdicts(self) -> list:
        by_key = {row.key: row for row in self.rows}
        return [c.evaluate(by_key)[2] for c in self.checks if c.limit is not None]

    def text(self) -> str:
        lines = self.lines()
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
        rendered = []
        for n, line in enumerate(lines):
            rendered.append('  '.join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
            if n == 0:
                rendered.append('  '.join('-' * w for w in widths))
        return '\n'.join(rendered + [f'\n{section}' for section in self.sections])

    def markdown(self) -> str:
        lines = self.lines()
        out = ['| ' + ' | '.join(lines[0]) + ' |', '|' + '|'.join('---' for _ in lines[0]) + '|']
        for line in lines[1:]:
            out.append('| ' + ' | '.join(cell.replace('|', '\\|') for cell in line) + ' |')
        return '\n'.join(out + [f'\n{section}' for section in self.sections])


def _seconds(row: Row) -> str:
    if row.error or row.seconds is None:
        return 'ERROR' if row.error else ''
    return f'{"~" if row.extrapolated else ""}{row.seconds:.2f}'


def _rate(row: Row) -> str:
    if row.rate is None or row.error:
        return ''
    if row.unit == 'MiB':
        return f'{row.rate:.0f} MiB/s'
    return f'{row.rate:,.0f}'
