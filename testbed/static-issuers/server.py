#!/usr/bin/env python3
"""Serves the conformance test's static issuers over HTTPS: every file under ROOT, as JSON.

    server.py ROOT PORT CERT KEY

Discovery documents and key sets are written by render.py; the test signs tokens with the
private keys beside them in the test bed's PKI directory.
"""
import http.server
import os
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    root = "."

    def do_GET(self):
        path = os.path.normpath(os.path.join(self.root, self.path.split("?", 1)[0].lstrip("/")))
        if not path.startswith(os.path.abspath(self.root) + os.sep) or not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))


def main() -> None:
    root, port, cert, key = sys.argv[1:5]
    Handler.root = os.path.abspath(root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
