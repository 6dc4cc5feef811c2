"""Runs an example service with plain CPython, outside any sandbox.

    python3.11 run_plain.py SERVICE_DIR INPUT_FILE [--data FILE ...]

e.g. run_plain.py risk-score/service risk-score/input.json

Writes the service's output bytes to stdout. Function style: imports the
entry module and calls main(input bytes). Script style: provides a stand-in
`teex` module (TEEX_getinput, TEEX_return -- first call counts --,
TEEX_getdata) and runs the entry module's top level. A return value that is
bytes is written as is, a str as UTF-8, anything else as compact JSON with
sorted keys. This is the reference the sandboxed executor's output is
compared with; it gives no isolation at all.
"""
import importlib
import json
import runpy
import sys
import tomllib
import types


def encode(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if value is None:
        raise SystemExit("run_plain: the service returned nothing")
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    service, input_path = argv[1], argv[2]
    data_paths = []
    rest = argv[3:]
    while rest:
        if rest[0] != "--data" or len(rest) < 2:
            raise SystemExit(__doc__)
        data_paths.append(rest[1])
        rest = rest[2:]
    with open(service + "/teex.toml", "rb") as f:
        manifest = tomllib.load(f)["service"]
    with open(input_path, "rb") as f:
        data = f.read()
    sys.path.insert(0, service)
    sys.dont_write_bytecode = True
    entry = manifest["entry"]
    if manifest.get("style", "function") == "function":
        module = importlib.import_module(entry[:-3].replace("/", "."))
        out = encode(module.main(data))
    else:
        result = []
        teex = types.ModuleType("teex")

        def TEEX_getinput():
            return data.decode("utf-8")

        def TEEX_return(value):
            if not result:
                result.append(value)

        def TEEX_getdata(i):
            with open(data_paths[i], "rb") as f:
                return f.read().decode("utf-8")

        teex.TEEX_getinput = TEEX_getinput
        teex.TEEX_return = TEEX_return
        teex.TEEX_getdata = TEEX_getdata
        teex.__all__ = ["TEEX_getinput", "TEEX_return", "TEEX_getdata"]
        sys.modules["teex"] = teex
        runpy.run_path(service + "/" + entry, run_name="__main__")
        if not result:
            raise SystemExit("run_plain: the script never called TEEX_return")
        out = encode(result[0])
    sys.stdout.buffer.write(out)


if __name__ == "__main__":
    main(sys.argv)
