"""``label-studio-pachyderm promote`` and ``rounds``: labeling rounds from a terminal.

They call Label Studio's API (the plugin's promote and rounds endpoints) as the user whose API
token is given, so the same organization and permission checks apply as in the browser:

    label-studio-pachyderm promote 7 [--with-inputs [--inputs-branch labeled]] [--commit ROUND]
    label-studio-pachyderm rounds 7

Where: ``--url``, else ``$LABEL_STUDIO_URL``, else http://localhost:8080. Token: ``--token``, else
``$LABEL_STUDIO_API_KEY`` (Account & Settings in Label Studio: a legacy token, or a personal
access token, which is exchanged for an access token first).
"""
from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Optional

DEFAULT_URL = 'http://localhost:8080'


class RoundsError(Exception):
    """A failure to report as one ``error:`` line."""


def add_commands(commands) -> None:
    promote = commands.add_parser(
        'promote', help="promote a target storage's labeling round to its promote_to branch (or roll back)",
        description='Writes every annotation submitted so far to the working branch, makes the round commit '
                    'and moves promote_to to it in one pachd transaction. With --commit, moves promote_to back '
                    'to that earlier round.')
    promote.add_argument('storage', type=int, metavar='STORAGE_ID', help='id of the Pachyderm target storage')
    promote.add_argument('--with-inputs', action='store_true',
                         help="also move each source repo's --inputs-branch to the round's input commits")
    promote.add_argument('--inputs-branch', default='labeled', help='the source repos\' branch (default: labeled)')
    promote.add_argument('--commit', default=None, metavar='ROUND', help='roll back to this earlier round commit')
    listing = commands.add_parser('rounds', help="list a target storage's labeling rounds, newest first")
    listing.add_argument('storage', type=int, metavar='STORAGE_ID', help='id of the Pachyderm target storage')
    for parser in (promote, listing):
        parser.add_argument('--url', default=None, help=f'Label Studio (default: $LABEL_STUDIO_URL, then {DEFAULT_URL})')
        parser.add_argument('--token', default=None, help='API token (default: $LABEL_STUDIO_API_KEY)')
        parser.add_argument('--json', action='store_true', help='print the API answer as JSON')


def run(args: argparse.Namespace) -> int:
    api = _Api(args.url or os.environ.get('LABEL_STUDIO_URL') or DEFAULT_URL,
               args.token or os.environ.get('LABEL_STUDIO_API_KEY') or '')
    path = f'/api/storages/export/pachyderm/{args.storage}'
    if args.command == 'rounds':
        answer = api.call('GET', f'{path}/rounds')
        print(json.dumps(answer, indent=2) if args.json else _rounds_text(answer))
        return 0
    body = {'with_inputs': args.with_inputs, 'inputs_branch': args.inputs_branch}
    if args.commit:
        body['commit'] = args.commit
    answer = api.call('POST', f'{path}/promote', body)
    print(json.dumps(answer, indent=2) if args.json else _promote_text(answer))
    return 0


def _promote_text(answer: dict) -> str:
    card = answer.get('round') or {}
    verb = 'rolled back to' if answer.get('rollback') else 'promoted'
    lines = [f"round {card.get('round')} {verb}: commit {answer.get('commit')} "
             f"({card.get('annotations')} annotations)"]
    for move in answer.get('moved') or ():
        lines.append(f"  {move['branch']}: {move.get('from') or '(new branch)'} -> {move['to']}")
    return '\n'.join(lines)


def _rounds_text(answer: dict) -> str:
    found = answer.get('rounds') or []
    if not found:
        return 'no labeling rounds yet'
    lines = [f"{'ROUND':<6} {'COMMIT':<33} {'ANNOTATIONS':<12} PROMOTED BY"]
    for entry in found:
        card = entry.get('card') or {}
        mark = ' *' if entry.get('current') else ''
        lines.append(f"{card.get('round', '?')!s:<6} {entry['commit']:<33} {card.get('annotations', '?')!s:<12} "
                     f"{(card.get('promoted_by') or {}).get('email') or '?'}{mark}")
    lines.append(f"* = what {answer.get('promote_to')} holds now")
    return '\n'.join(lines)


class _Api:
    """Label Studio's REST API with an API token (legacy, or a personal access token's refresh)."""

    def __init__(self, url: str, token: str):
        if not token:
            raise RoundsError('an API token is needed: --token, or $LABEL_STUDIO_API_KEY (Label Studio: '
                              'Account & Settings)')
        self.url = url.rstrip('/')
        self.token = token
        self._authorization: Optional[str] = None

    def call(self, method: str, path: str, body: Optional[dict] = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            'Authorization': self._auth(), 'Content-Type': 'application/json', 'Accept': 'application/json'})
        return self._send(request)

    def _auth(self) -> str:
        if self._authorization is None:
            if self.token.count('.') == 2:  # a personal access token (a JWT refresh token)
                request = urllib.request.Request(self.url + '/api/token/refresh/', method='POST',
                                                 data=json.dumps({'refresh': self.token}).encode(),
                                                 headers={'Content-Type': 'application/json'})
                self._authorization = f"Bearer {self._send(request)['access']}"
            else:
                self._authorization = f'Token {self.token}'
        return self._authorization

    def _send(self, request) -> dict:
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return json.loads(response.read() or b'{}')
        except urllib.error.HTTPError as error:
            raise RoundsError(f'{error.code}: {_reason(error)}') from None
        except urllib.error.URLError as error:
            raise RoundsError(f'cannot reach Label Studio at {self.url}: {error.reason}') from None


def _reason(error) -> str:
    """What Label Studio's error answer says, field by field."""
    try:
        body = json.loads(error.read() or b'{}')
    except ValueError:
        return error.reason or 'no details'
    fields = body.get('validation_errors') if isinstance(body, dict) else None
    if isinstance(fields, dict) and fields:
        return '; '.join(f'{name}: {" ".join(map(str, v if isinstance(v, list) else [v]))}'
                         for name, v in fields.items())
    return str(body.get('detail') or body) if isinstance(body, dict) else str(body)
