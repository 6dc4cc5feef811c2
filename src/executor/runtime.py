# The teex executor's Python runtime. Trusted code compiled into the teex
# binary (runtime_py.inc is generated from this file by gen_runtime.py):
# the in-memory importer, the `teex` and `mutex` modules, and the task
# runner. It runs in the executor (setup) and in each task child (run).
import sys
import json
import types
import builtins
import collections
import importlib.machinery

import _teex

PREFIX = 'service:'
FUNCTION, SCRIPT = 0, 1
ST_OK, ST_ERROR, ST_MEMORY, ST_OUTPUT = 0, 1, 4, 5

_cfg = {}
_state = {}


class ImageImporter:
    """Finds and loads the service's modules from the image in memory."""

    def __init__(self, files):
        self._files = files
        # Folders without __init__.py are namespace packages.
        self._dirs = set()
        for p in files:
            parts = p.split('/')[:-1]
            for i in range(1, len(parts) + 1):
                self._dirs.add('/'.join(parts[:i]))

    def locate(self, fullname):
        base = fullname.replace('.', '/')
        for p, pkg in ((base + '/__init__.py', True), (base + '.py', False)):
            if p in self._files:
                return p, pkg
        if base in self._dirs:
            return base + '/', True
        return None, False

    def find_spec(self, fullname, path=None, target=None):
        p, pkg = self.locate(fullname)
        if p is None:
            return None
        return importlib.machinery.ModuleSpec(
            fullname, self, origin=PREFIX + p, is_package=pkg)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        p, pkg = self.locate(module.__spec__.name)
        if p.endswith('/'):
            return  # a namespace package: nothing to run
        module.__file__ = PREFIX + p
        code = compile(self._files[p], PREFIX + p, 'exec', dont_inherit=True)
        exec(code, module.__dict__)

    def get_source(self, fullname):
        p, pkg = self.locate(fullname)
        if p is None or p.endswith('/'):
            return None
        return self._files[p].decode('utf-8', 'replace')


class _Out:
    """Bounded log buffer: what a task prints or logs goes to its caller."""

    def __init__(self, cap):
        self.parts = []
        self.size = 0
        self.cap = cap
        self.cut = False

    def add(self, text):
        b = text.encode('utf-8', 'replace')
        room = self.cap - self.size
        if len(b) > room:
            b = b[:max(room, 0)]
            self.cut = True
        if b:
            self.parts.append(b)
            self.size += len(b)

    def value(self, limit=None):
        """The logs, at most `limit` bytes with the cut marker."""
        v = b''.join(self.parts)
        limit = self.cap if limit is None else limit
        if self.cut or len(v) > limit:
            mark = b'\n[teex: logs cut at %d bytes]\n' % limit
            v = v[:max(limit - len(mark), 0)] + mark
            v = v[:limit]
        return v


class _Stream:
    """sys.stdout and sys.stderr of a task: print() goes to the logs."""
    encoding = 'utf-8'
    errors = 'replace'

    def __init__(self, out):
        self._out = out

    def write(self, s):
        s = str(s)
        self._out.add(s)
        return len(s)

    def writelines(self, lines):
        for s in lines:
            self.write(s)

    def flush(self):
        pass

    def isatty(self):
        return False


class NotAvailable(RuntimeError):
    """A teex feature this executor does not provide yet."""


class KVError(RuntimeError):
    """A teex.kv call that TEE-DS could not carry out (unreachable group,
    timeout, refused namespace); the message says why."""


# enum teex_ds_op, the flags and error codes of include/teex/ds.h, error.h
_GET, _SET, _DEL, _CAS, _INCR, _SCAN = 1, 2, 3, 4, 5, 7
_IF_ABSENT, _IF_PRESENT, _EXPECT_ABSENT = 0x01, 0x02, 0x08
_E_TOOBIG, _E_FORMAT, _E_NOTFOUND, _E_EXIST, _E_PERM, _E_STATE = (
    -4, -6, -13, -14, -20, -21)
_E_INVAL, _E_UNSUPPORTED = -1, -30
KV_KEY_MAX = 447          # TEEX_EXEC_KV_KEY_MAX
KV_VALUE_MAX = 64 * 1024  # TEEX_EXEC_KV_VALUE_MAX
_KV_PAGE = 16             # TEEX_EXEC_KV_SCAN_MAX


def _kv_bytes(what, v, limit):
    if isinstance(v, str):
        v = v.encode('utf-8', 'surrogateescape')
    elif isinstance(v, (bytes, bytearray, memoryview)):
        v = bytes(v)
    else:
        raise TypeError('teex.kv: %s must be bytes or str, not %s' %
                        (what, _type_name(type(v))))
    if len(v) > limit:
        raise ValueError('teex.kv: %s of %d bytes is over the limit of %d '
                         'bytes' % (what, len(v), limit))
    return v


def _kv_ttl(ttl):
    if ttl is None:
        return 0
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError('teex.kv: ttl is a number of seconds')
    ms = int(ttl * 1000)
    if ms <= 0 or ms > 10 * 365 * 24 * 3600 * 1000:
        raise ValueError('teex.kv: ttl must be between 1 ms and 10 years')
    return ms


class _KV:
    """teex.kv: the service's own namespace in TEE-DS. Each call is a
    request over the task's channel, answered before it returns; its time
    counts against the task's deadline. Keys are str or bytes (at most
    KV_KEY_MAX bytes), values bytes or str (at most KV_VALUE_MAX bytes),
    read back as bytes. A stateless service, or a task holding a data
    lease, may read but never write."""

    KEY_MAX = KV_KEY_MAX
    VALUE_MAX = KV_VALUE_MAX

    def _call(self, op, key, flags=0, value=None, expect=None, delta=0,
              ttl_ms=0, after=b'', limit=0):
        if op in (_SET, _DEL, _CAS, _INCR):
            if _cfg.get('teex') is not None and _cfg['teex'].stateless:
                raise PermissionError('teex.kv: a stateless service cannot '
                                      'write to teex.kv')
            if _state.get('datasets'):
                raise PermissionError('teex.kv: a task that reads datasets '
                                      'cannot write to teex.kv')
        rc, text, status, found, val, num, more, items = _teex.kv_call(
            op, flags, key, value, expect, delta, ttl_ms, after, limit)
        if rc == _E_PERM:
            raise PermissionError('teex.kv: ' + text)
        if rc == _E_UNSUPPORTED:
            raise NotAvailable('teex.kv: ' + text)
        if rc in (_E_TOOBIG, _E_INVAL):
            raise ValueError('teex.kv: ' + text)
        if rc != 0:
            raise KVError('teex.kv: ' + (text or 'error %d' % rc))
        if status == _E_PERM:
            raise PermissionError('teex.kv: the namespace refused the call')
        if op == _INCR and status in (_E_FORMAT, _E_INVAL):
            name = key.decode('utf-8', 'backslashreplace')
            if status == _E_FORMAT:
                raise ValueError('teex.kv.incr(%r): the value is not a '
                                 'decimal integer' % name)
            raise OverflowError('teex.kv.incr(%r): out of the 64-bit range' %
                                name)
        if status not in (0, _E_NOTFOUND, _E_EXIST, _E_STATE):
            raise KVError('teex.kv: the store refused the call (error %d)' %
                          status)
        return status, found, val, num, more, items

    def get(self, key, default=None):
        """The value of key as bytes, or default when there is none."""
        k = _kv_bytes('key', key, KV_KEY_MAX)
        status, _, val, _, _, _ = self._call(_GET, k)
        return default if status == _E_NOTFOUND or val is None else val

    def set(self, key, value, ttl=None):
        """Stores value (bytes or str) under key, expiring after ttl
        seconds when given."""
        k = _kv_bytes('key', key, KV_KEY_MAX)
        v = _kv_bytes('value', value, KV_VALUE_MAX)
        self._call(_SET, k, value=v, ttl_ms=_kv_ttl(ttl))

    def delete(self, key):
        """Removes key; True when it existed."""
        k = _kv_bytes('key', key, KV_KEY_MAX)
        status, found, _, num, _, _ = self._call(_DEL, k)
        return status == 0 and bool(num or found)

    def incr(self, key, delta=1, ttl=None):
        """Adds delta to the decimal integer stored under key (absent: 0)
        and returns the new value, atomically."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError('teex.kv.incr: delta must be an int')
        if not -2**63 <= delta < 2**63:
            raise OverflowError('teex.kv.incr: delta out of the 64-bit range')
        k = _kv_bytes('key', key, KV_KEY_MAX)
        _, _, _, num, _, _ = self._call(_INCR, k, delta=delta,
                                        ttl_ms=_kv_ttl(ttl))
        return num

    def cas(self, key, expected, new, ttl=None):
        """Sets key to new only if its value is expected (None: only if
        absent), atomically; True when it did."""
        k = _kv_bytes('key', key, KV_KEY_MAX)
        v = _kv_bytes('value', new, KV_VALUE_MAX)
        if expected is None:
            status, *_ = self._call(_CAS, k, flags=_EXPECT_ABSENT, value=v,
                                    expect=b'', ttl_ms=_kv_ttl(ttl))
        else:
            e = _kv_bytes('expected value', expected, KV_VALUE_MAX)
            status, *_ = self._call(_CAS, k, value=v, expect=e,
                                    ttl_ms=_kv_ttl(ttl))
        return status == 0

    def scan(self, prefix=''):
        """Yields (key, value) pairs -- both bytes -- of the keys starting
        with prefix, in byte order, a page at a time."""
        p = _kv_bytes('prefix', prefix, KV_KEY_MAX)
        after = b''
        while True:
            _, _, _, _, more, items = self._call(_SCAN, p, after=after,
                                                 limit=_KV_PAGE)
            for item in items:
                yield item
            if not more or not items:
                return
            after = items[-1][0]

    def __getitem__(self, key):
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __setitem__(self, key, value):
        self.set(key, value)

    def __delitem__(self, key):
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key):
        return self.get(key) is not None


def _log(*args, sep=' '):
    _state['logs'].add(sep.join(str(a) for a in args) + '\n')


def _data(i):
    """The task's dataset i (0-based: service data first, then task data)
    or the one named i, as bytes."""
    ds = _state.get('datasets') or []
    if isinstance(i, bool) or not isinstance(i, (int, str)):
        raise TypeError('teex.data() takes an index or a dataset name, not '
                        'a %s' % _type_name(type(i)))
    if isinstance(i, int):
        if not -len(ds) <= i < len(ds):
            raise IndexError('teex.data(%d): this task has %d dataset(s)' %
                             (i, len(ds)))
        return ds[i][1]
    for name, value in ds:
        if name == i:
            return value
    raise KeyError('teex.data(%r): no dataset of that name in this task '
                   '(it has: %s)' % (i, ', '.join(n for n, _ in ds) or
                                     'none'))


def _data_names():
    return tuple(n for n, _ in (_state.get('datasets') or []))


def _getinput():
    return _state['input']


def TEEX_getinput():
    return _state['input'].decode('utf-8', 'surrogateescape')


def TEEX_return(value):
    if not _state['returned']:
        _state['returned'] = True
        _state['result'] = value


def TEEX_getdata(i):
    """The TEEX script style: dataset i (0-based; service data first, then
    task data) as text, like TEEX_getinput."""
    return _data(i).decode('utf-8', 'surrogateescape')


def _make_teex():
    m = types.ModuleType('teex', 'The task context and services of teex.')
    m.task_id = m.service_id = m.caller = ''
    m.stateless = False
    m.log = _log
    m.data = _data
    m.datasets = _data_names
    m.kv = _KV()
    m.input = _getinput
    m.NotAvailable = NotAvailable
    m.KVError = KVError
    m.TEEX_getinput = TEEX_getinput
    m.TEEX_return = TEEX_return
    m.TEEX_getdata = TEEX_getdata
    m.__all__ = ['TEEX_getinput', 'TEEX_return', 'TEEX_getdata']
    return m


class mutex:
    """Python 2's mutex module (removed in Python 3), for TEEX services."""

    def __init__(self):
        self.locked = False
        self.queue = collections.deque()

    def test(self):
        return self.locked

    def testandset(self):
        if not self.locked:
            self.locked = True
            return True
        return False

    def lock(self, function, argument):
        if self.testandset():
            function(argument)
        else:
            self.queue.append((function, argument))

    def unlock(self):
        if self.queue:
            function, argument = self.queue.popleft()
            function(argument)
        else:
            self.locked = False


def _make_mutex():
    m = types.ModuleType('mutex', "Python 2's mutex module.")
    m.mutex = mutex
    return m


def _imports_of(src, name):
    import ast
    try:
        tree = ast.parse(src, name)
    except (SyntaxError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module)
    return names


def _module_name(path):
    name = path[:-3] if path.endswith('.py') else path
    if name.endswith('/__init__'):
        name = name[:-len('/__init__')]
    return name.replace('/', '.')


def setup(files, entry, style, full_tb, stateless):
    """In the executor, after its walls: import what the service imports."""
    _cfg.update(entry=entry, style=style, full_tb=bool(full_tb))
    imp = ImageImporter(files)
    _cfg['importer'] = imp
    sys.meta_path.insert(0, imp)
    teex = _make_teex()
    teex.stateless = bool(stateless)
    _cfg['teex'] = teex
    sys.modules['teex'] = teex
    sys.modules['mutex'] = _make_mutex()
    wanted = set()
    for p, src in files.items():
        if p.endswith('.py'):
            wanted |= _imports_of(src, PREFIX + p)
    own = set()
    for name in sorted(wanted):
        if imp.locate(name.split('.')[0])[0] is not None:
            own.add(name)
        elif name not in sys.modules:
            try:
                __import__(name)
            except BaseException:
                pass  # fails again, with its message, when a task imports it
    if style == FUNCTION:
        mod = __import__(_module_name(entry))
        for part in _module_name(entry).split('.')[1:]:
            mod = getattr(mod, part)
        fn = getattr(mod, 'main', None)
        if not callable(fn):
            raise TypeError('entry module %s defines no main(input)' % entry)
        _cfg['main'] = fn
    else:
        _cfg['code'] = compile(files[entry], PREFIX + entry, 'exec',
                               dont_inherit=True)
        for name in sorted(own):
            try:
                __import__(name)
            except BaseException:
                pass
    # Everything alive now is shared with every task child: keep the
    # collector from touching (and so copying) those pages in the children.
    import gc
    gc.collect()
    gc.freeze()


def _type_name(t):
    if t.__module__ in ('builtins', '__main__'):
        return t.__qualname__
    return '%s.%s' % (t.__module__, t.__qualname__)


def format_error(e):
    """The caller sees type, message and the service's frames (file, line,
    function) -- never its source lines, unless the manifest opts in."""
    if _cfg.get('full_tb'):
        import traceback
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if f.filename.startswith(PREFIX)]
        for f in frames:
            f.filename = f.filename[len(PREFIX):]
        return ('Traceback (most recent call last):\n' +
                ''.join(traceback.format_list(frames)) +
                ''.join(traceback.format_exception_only(type(e), e)))
    lines = []
    tb = e.__traceback__
    while tb is not None:
        co = tb.tb_frame.f_code
        if co.co_filename.startswith(PREFIX):
            lines.append('  File "%s", line %d, in %s' % (
                co.co_filename[len(PREFIX):], tb.tb_lineno, co.co_name))
        tb = tb.tb_next
    try:
        msg = str(e)
    except BaseException:
        msg = '<unprintable message>'
    head = _type_name(type(e)) + (': ' + msg if msg else '')
    if not lines:
        return head
    return ('Traceback (service frames; source lines hidden):\n' +
            '\n'.join(lines) + '\n' + head)


def _encode(value):
    if value is None:
        return b''
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode('utf-8', 'surrogateescape')
    try:
        return json.dumps(value, separators=(',', ':'),
                          sort_keys=True).encode('ascii')
    except (TypeError, ValueError) as e:
        raise TypeError('the service returned a %s, which is not bytes, str '
                        'or JSON-serialisable (%s)' %
                        (_type_name(type(value)), e)) from None


def prepare():
    """In a spare child, inside its walls, before its task arrives: touch
    the runtime's own paths so their copy-on-write faults are paid ahead
    (no service code runs here)."""
    out = _Out(64)
    out.add('x')
    out.value()
    _encode({'a': [1, 'b']})
    _encode('x')
    _state.update(input=b'', logs=out, returned=False, result=None)


def run(task_id, service_id, caller, data, cap, datasets=()):
    """In a task child, inside every wall: run the service once. Returns
    (status, output, logs, error); cap bounds the three together."""
    logs = _Out(cap)
    _state.update(input=bytes(data), logs=logs, returned=False, result=None,
                  datasets=list(datasets))
    teex = _cfg['teex']
    teex.task_id, teex.service_id, teex.caller = task_id, service_id, caller
    sys.stdout = sys.stderr = _Stream(logs)
    try:
        if _cfg['style'] == FUNCTION:
            value = _cfg['main'](_state['input'])
        else:
            g = {'__name__': '__main__', '__builtins__': builtins,
                 '__file__': PREFIX + _cfg['entry'],
                 '__loader__': _cfg['importer']}
            try:
                exec(_cfg['code'], g)
            except SystemExit as e:
                if e.code not in (None, 0):
                    raise
            value = _state['result']
        out = _encode(value)
    except MemoryError:
        return (ST_MEMORY, b'', logs.value(cap // 2),
                'MemoryError: the task ran out of memory')
    except BaseException as e:
        text = format_error(e).encode('utf-8', 'replace')[:cap // 2]
        return (ST_ERROR, b'', logs.value(cap // 2),
                text.decode('utf-8', 'ignore'))
    if len(out) > cap:
        return (ST_OUTPUT, b'', logs.value(cap // 16),
                'OutputLimit: the task returned %d bytes, more than the limit '
                'of %d bytes' % (len(out), cap))
    # Logs give way to the result within the task's output bound.
    return ST_OK, out, logs.value(cap - len(out)), ''
