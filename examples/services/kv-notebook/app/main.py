"""kv-notebook: input {"note": "..."} adds a note; {} only reads. Returns
{"count": N, "notes": [...]} -- the notes live in teex.kv, so they outlast
the task, the worker and its restarts."""
import json

import teex


def main(data):
    req = json.loads(data or b'{}')
    note = req.get('note')
    if note is not None:
        if not isinstance(note, str) or not 0 < len(note) <= 200:
            raise ValueError('a note is a string of 1 to 200 characters')
        n = teex.kv.incr('count')
        teex.kv.set('note/%08d' % n, note)
    notes = [v.decode() for _, v in teex.kv.scan('note/')]
    return {'count': len(notes), 'notes': notes}
