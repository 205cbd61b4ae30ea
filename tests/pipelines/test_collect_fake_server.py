"""A small fake OpenAI chat-completions server on 127.0.0.1 for the collection tests, and its own checks.

Behaviour is chosen by markers in the user message: ``#429xN`` / ``#500xN`` fail the first N asks of
that message, ``#slow`` sleeps past the client timeout on the first ask, ``#malformed`` answers with
broken JSON, ``#nocontent`` with JSON lacking ``choices``. Normal replies are a deterministic function
of the message: a short summary or an expansion, so runs can be compared byte for byte.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


def fake_reply(system: str, user: str) -> str:
    text = user.split(":", 1)[1].strip() if ":" in user else user
    text = re.sub(r"#[a-z0-9]+", "", text).strip()
    if "10 words" in system:  # the summarize instruction
        return "Summary: " + " ".join(text.split(",")[0].split()[:6])
    return f"{text}, intricate details, volumetric lighting, concept art, trending on artstation"


class FakeChatServer:
    """Threaded HTTP server; ``asks`` counts requests per user message, ``log`` keeps them in order."""

    def __init__(self, slow_s: float = 1.0, delay_s: float = 0.0):
        self.asks: Counter = Counter()
        self.log: list[str] = []
        self.slow_s, self.delay_s = slow_s, delay_s
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
                user = body["messages"][-1]["content"]
                with server._lock:
                    server.asks[user] += 1
                    server.log.append(user)
                    count = server.asks[user]
                status, payload = server.respond(system, user, count)
                if server.delay_s:
                    time.sleep(server.delay_s)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def respond(self, system: str, user: str, count: int) -> tuple[int, bytes]:
        for code in (429, 500):
            match = re.search(rf"#{code}x(\d+)", user)
            if match and count <= int(match.group(1)):
                return code, json.dumps({"error": {"message": f"fake {code}"}}).encode()
        if "#slow" in user and count == 1:
            time.sleep(self.slow_s)
        if "#malformed" in user:
            return 200, b'{"choices": [{"message": {"content": "cut off'
        if "#nocontent" in user:
            return 200, json.dumps({"id": "x", "object": "chat.completion"}).encode()
        reply = fake_reply(system, user)
        return 200, json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                             "finish_reason": "stop"}]}).encode()

    def __enter__(self) -> "FakeChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_fake_server_speaks_chat_completions():
    with FakeChatServer() as server:
        response = httpx.post(f"{server.base_url}/chat/completions", json={
            "model": "m", "messages": [{"role": "system", "content": "say it in 10 words"},
                                       {"role": "user", "content": "Prompt: a red fox, 8k, artstation"}]})
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "Summary: a red fox"
        first = httpx.post(f"{server.base_url}/chat/completions",
                           json={"model": "m", "messages": [{"role": "user", "content": "x #429x1"}]})
        second = httpx.post(f"{server.base_url}/chat/completions",
                            json={"model": "m", "messages": [{"role": "user", "content": "x #429x1"}]})
        assert (first.status_code, second.status_code) == (429, 200)
        assert server.asks["x #429x1"] == 2
