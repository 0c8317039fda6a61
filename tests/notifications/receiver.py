"""A local HTTP receiver for outgoing webhooks: records every request, and answers what it is
told (fail N times, a status, a delay, a redirect), like a customer's system would."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived
    answered: int

    def header(self, name: str) -> str:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), "")


@dataclass
class Plan:
    fail_first: int = 0  # answer the first N requests with `fail_status`
    fail_status: int = 500
    status: int = 200
    delay: float = 0.0
    redirect_to: str = ""
    answer_body: bytes | None = None  # instead of the usual short JSON
    content_type: str = "application/json"
    failed: int = 0


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    plan: Plan = field(default_factory=Plan)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    scheme: str = "http"
    host: str = "127.0.0.1"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/hooks") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def answer(self) -> int:
        with self.lock:
            if self.plan.failed < self.plan.fail_first:
                self.plan.failed += 1
                return self.plan.fail_status
            return self.plan.status

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"the receiver got {len(self.received)} requests, not {count}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_receiver(*, tls_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"):
    holder: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            receiver: Receiver = holder["receiver"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if receiver.plan.delay:
                time.sleep(receiver.plan.delay)
            status = 302 if receiver.plan.redirect_to else receiver.answer()
            with receiver.lock:
                receiver.received.append(
                    Received(self.path, dict(self.headers.items()), body, time.time(), status)
                )
            self.send_response(status)
            if receiver.plan.redirect_to:
                self.send_header("Location", receiver.plan.redirect_to)
            answer = b'{"ok": true}' if status < 300 else b"receiver failed on purpose"
            if receiver.plan.answer_body is not None:
                answer = receiver.plan.answer_body
            self.send_header("Content-Type", receiver.plan.content_type)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # a client that gave up (a refused TLS handshake) is not the test's business

    server = Server((host, 0), Handler)
    server.daemon_threads = True
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    receiver = Receiver(server, scheme="https" if tls_context else "http", host=host)
    holder["receiver"] = receiver
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
