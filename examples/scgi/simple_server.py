#!/usr/bin/env python3
# The document's "Simple Python SCGI Server", as printed, except that the
# port comes from the command line (default 4000, the document's) and the
# "listening" line is flushed, so that whoever started it through a pipe
# sees it at once:
#
#     python3 simple_server.py [PORT]
import socket
import os
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 4000

def parse_scgi_request(data):
    """Parse SCGI netstring headers."""
    colon = data.index(b":")
    length = int(data[:colon])
    headers_data = data[colon + 1:colon + 1 + length]

    # Parse null-separated key-value pairs
    parts = headers_data.split(b"\x00")
    env = {}
    for i in range(0, len(parts) - 1, 2):
        key = parts[i].decode()
        value = parts[i + 1].decode() if i + 1 < len(parts) else ""
        env[key] = value

    return env

def handle_request(env):
    """Generate Gemini response."""
    path = env.get("PATH_INFO", "/")
    query = env.get("QUERY_STRING", "")

    body = f"# SCGI Response\n\nPath: {path}\nQuery: {query}\n"
    return f"20 text/gemini\r\n{body}"

def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", PORT))
    sock.listen(5)

    print(f"SCGI server listening on 127.0.0.1:{PORT}", flush=True)

    while True:
        conn, addr = sock.accept()
        try:
            data = conn.recv(65536)
            env = parse_scgi_request(data)
            response = handle_request(env)
            conn.sendall(response.encode())
        finally:
            conn.close()

if __name__ == "__main__":
    main()
