#!/usr/bin/env python3
"""A hostile Kubo RPC API for teex's tests.

Usage: fake_kubo.py MODE PORTFILE [UPSTREAM]

Listens on 127.0.0.1 (a free port, written to PORTFILE) and answers POSTs:
  corrupt-leaves  proxies to UPSTREAM (a real node) but flips one byte of
                  every raw block (CIDs "bafkrei...") that block/get returns
  wrong-add       answers add with a valid CID of other content
  huge            answers block/get with 3 MiB of bytes
  not-json        answers add with text that is not JSON
"""
import http.server
import sys
import urllib.request

MODE = sys.argv[1]
PORTFILE = sys.argv[2]
UPSTREAM = sys.argv[3] if len(sys.argv) > 3 else None
OTHER_CID = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline()
                size = int(line.strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n)

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.read_body()
        path = self.path
        if MODE == "corrupt-leaves":
            req = urllib.request.Request(
                UPSTREAM + path, data=body, method="POST",
                headers={"Content-Type": self.headers.get(
                    "Content-Type", "application/octet-stream")})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    status, data = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, data = e.code, e.read()
            if path.startswith("/api/v0/block/get?arg=bafkrei") and data:
                data = bytes([data[0] ^ 1]) + data[1:]
            self.reply(status, data, "application/octet-stream")
        elif MODE == "wrong-add" and path.startswith("/api/v0/add"):
            self.reply(200, ('{"Name":"file","Hash":"%s","Size":"6"}\n'
                             % OTHER_CID).encode())
        elif MODE == "not-json" and path.startswith("/api/v0/add"):
            self.reply(200, b"<html>surprise</html>\n", "text/html")
        elif MODE == "huge" and path.startswith("/api/v0/block/get"):
            self.reply(200, b"\0" * (3 << 20), "application/octet-stream")
        else:
            self.reply(500, b'{"Message":"fake node: no such call","Code":0,'
                            b'"Type":"error"}')


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # teex hangs up on purpose (an answer over its limit)


server = Server(("127.0.0.1", 0), Handler)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402
os.rename(PORTFILE + ".tmp", PORTFILE)
server.serve_forever()
