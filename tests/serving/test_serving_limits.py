"""Hostile clients on a real server over raw sockets: the key before the body, streamed-byte body limits with a
memory bound, bodies shorter than announced, slowloris heads; the API key from the environment or a file."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="pip install -e .[serving]")
pytest.importorskip("fastapi", reason="pip install -e .[serving]")

from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams  # noqa: E402
from easynlp_bp.serving.config import API_KEY_ENV, ServeConfig, redact_secrets  # noqa: E402
from easynlp_bp.serving.server import BackgroundServer  # noqa: E402

KEY = "k3y-for-tests"
SAFETY_TIMEOUT_S = 120  # only so that a broken server cannot hang the suite; no test asserts a duration


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(max_new_tokens=8, device="cpu"))


@pytest.fixture(scope="module")
def server(predictor):
    config = ServeConfig(port=0, api_key=KEY, max_prompts_per_request=2, max_input_chars=100,
                         body_timeout_s=0.5, header_timeout_s=0.5)
    with BackgroundServer(predictor, config) as running:
        yield running


@pytest.fixture(scope="module")
def patient_server(predictor):
    """A long body deadline, so that only the byte count can stop a fast chunked body."""
    config = ServeConfig(port=0, api_key=KEY, max_prompts_per_request=2, max_input_chars=100, body_timeout_s=600)
    with BackgroundServer(predictor, config) as running:
        yield running


def connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(SAFETY_TIMEOUT_S)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one response, reading until the server closes or the body is complete."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def head(path: str, *extra: str) -> bytes:
    return ("\r\n".join([f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json", *extra])
            + "\r\n\r\n").encode()


def test_keyless_requests_get_401_before_the_body_is_read(server):
    with httpx.Client(base_url=server.url, timeout=SAFETY_TIMEOUT_S, trust_env=False) as client:
        not_json = client.post("/v1/beautify", content=b"{not json", headers={"content-type": "application/json"})
        assert not_json.status_code == 401 and not_json.json()["error"]["type"] == "unauthorized"
        keyed = client.post("/v1/beautify", content=b"{not json",
                            headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"})
        assert keyed.status_code == 422 and keyed.json()["error"]["field"] == "body"
    # A keyless head announcing 10^12 bytes is answered at once, without a byte of body sent.
    with connect(server) as sock:
        sock.sendall(head("/v1/beautify", "Content-Length: 1000000000000"))
        status, headers, body = read_response(sock)
        assert status == 401 and headers["connection"] == "close" and json.loads(body)["error"]["type"] == "unauthorized"
        assert closed_by_server(sock)
    with connect(server) as sock:
        sock.sendall(head("/v1/beautify", "Content-Length: 1000000000000", f"Authorization: Bearer {KEY}"))
        status, _, body = read_response(sock)
        assert status == 413 and json.loads(body)["error"]["limit"] == "max_body_bytes"


@pytest.mark.parametrize("with_key", [True, False], ids=["keyed-413", "keyless-401"])
def test_a_chunked_body_is_cut_off_with_memory_far_below_its_size(patient_server, with_key):
    server = patient_server
    limit = server.app.state.config.max_body_bytes  # 2 * 100 * 4 + 65536 = 66336 bytes
    chunk, total = b"x" * (1 << 20), 96 << 20  # would be 96 MiB, no Content-Length
    before, sent, status = rss_bytes(), 0, None
    with connect(server) as sock:
        key = [f"X-API-Key: {KEY}"] if with_key else []
        sock.sendall(head("/v1/beautify", "Transfer-Encoding: chunked", *key))
        try:
            while sent < total:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")  # the end of the body (reached only if the server read it all)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        try:
            status, _, body = read_response(sock)
        except ConnectionResetError:
            status = None  # the reset overtook the answer; the cut-off and memory bound below still hold
    growth = rss_bytes() - before
    assert sent < total, "the server read the whole 96 MiB body instead of stopping at the limit"
    assert growth < 16 << 20, f"RSS grew by {growth / 2**20:.1f} MiB for a body cut off at {limit} bytes"
    if status is not None:
        assert status == (413 if with_key else 401)
    assert httpx.get(server.url + "/health", trust_env=False).json()["status"] == "ok"


def test_a_body_shorter_than_its_content_length_gets_408_and_the_connection_closed(server):
    with connect(server) as sock:
        sock.sendall(head("/v1/beautify", "Content-Length: 100", f"X-API-Key: {KEY}") + b'{"prompts": ')
        status, headers, body = read_response(sock)
        assert status == 408 and headers["connection"] == "close"
        assert json.loads(body)["error"]["limit"] == "body_timeout_s"
        assert closed_by_server(sock)


def test_slowloris_heads_are_closed(server):
    socks = [connect(server) for _ in range(8)]
    for sock in socks:
        sock.sendall(b"POST /v1/beautify HTTP/1.1\r\nHost: test\r\nX-Slow")  # the head never completes
    assert [closed_by_server(sock) for sock in socks] == [True] * 8
    for sock in socks:
        sock.close()
    # A connection that stalls after one complete request is closed too.
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_response(sock)[0] == 200
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")
        assert closed_by_server(sock)


def test_api_key_from_env_or_file_never_in_repr_or_run_config(monkeypatch, tmp_path, predictor):
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert ServeConfig().resolved_api_key() == "from-env"
    key_file = tmp_path / "key.txt"
    key_file.write_text("from-file\n", encoding="utf-8")
    assert ServeConfig(api_key_file=str(key_file)).resolved_api_key() == "from-file"  # the file over the env
    config = ServeConfig(api_key="given", api_key_file=str(key_file))
    assert config.resolved_api_key() == "given" and "given" not in repr(config)  # an explicit key wins
    with pytest.raises(FileNotFoundError, match="api_key_file=.*missing.txt does not exist"):
        ServeConfig(api_key_file=str(tmp_path / "missing.txt")).resolved_api_key()
    monkeypatch.setenv(API_KEY_ENV, " ")
    with pytest.raises(ValueError, match=f"API key from the env var {API_KEY_ENV} is empty"):
        ServeConfig().resolved_api_key()
    assert redact_secrets({"api_key": "s", "port": 1}) == {"api_key": "<redacted>", "port": 1}
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    with BackgroundServer(predictor, ServeConfig(port=0)) as running:
        assert httpx.get(running.url + "/metrics", trust_env=False).status_code == 401
        keyed = httpx.get(running.url + "/metrics", headers={"authorization": "Bearer from-env"}, trust_env=False)
        assert keyed.status_code == 200


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_timeouts_must_be_positive_and_finite(value):
    # NaN/inf are refused by the shared finite-number check, 0 and negatives by ServeConfig's own range check
    reason = "must be finite" if value in ("nan", "inf") else "must be a positive"
    with pytest.raises(ValueError, match=rf"body_timeout_s={value.replace('-', '-?')}.* {reason}"):
        ServeConfig(body_timeout_s=float(value))


def test_run_config_never_holds_the_api_key():
    import easynlp_bp.appzoo  # noqa: F401 - registers the apps
    from easynlp_bp.appzoo.base import APPS
    from easynlp_bp.arguments import EasyNLPArgs

    args = EasyNLPArgs(app_name="beautiful_prompt", mode="serve", user_defined_parameters="api_key=t0psecret port=0")
    written = json.dumps(APPS.get("beautiful_prompt")(args).run_config(), default=str)
    assert "t0psecret" not in written and written.count("<redacted>") == 2  # the parsed key and the raw flag


def test_a_large_body_with_content_length_gets_a_readable_413(patient_server):
    """50 MB announced and sent at once: the server reads and drops it, then answers (closing a socket with unread
    bytes resets it, and the client would never see the 413)."""
    size = 50 << 20
    with connect(patient_server) as sock:
        sock.sendall(head("/v1/beautify", f"Content-Length: {size}", f"X-API-Key: {KEY}"))
        sock.sendall(b"x" * size)
        status, headers, body = read_response(sock)
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body)["error"]["limit"] == "max_body_bytes"


@pytest.mark.parametrize("body,message", [
    (b'{"prompts": ["a \xff\xfe cat"]}', "the body is not valid UTF-8 (byte 16"),
    (b"[" * 20000 + b"]" * 20000, "the JSON body nests 20000 levels deep; the limit is 32"),  # RecursionError
    (b'{"prompts": ["' + b"[" * 50000 + b'"]}', None),  # brackets inside a string do not nest: a 413 for its length
])
@pytest.mark.parametrize("path", ["/v1/beautify", "/v1/chat/completions"])
def test_bodies_python_cannot_parse_get_the_api_error_shape(patient_server, body, message, path):
    with httpx.Client(base_url=patient_server.url, timeout=SAFETY_TIMEOUT_S, trust_env=False) as client:
        response = client.post(path, content=body, headers={"content-type": "application/json", "x-api-key": KEY})
    error = response.json()["error"]
    assert "detail" not in response.json()
    if message is None:
        assert response.status_code in (413, 422)
        return
    assert response.status_code == 400 and message in error["message"]
    assert (error["field"] if path == "/v1/beautify" else error["param"]) == "body"


def test_unknown_paths_and_methods_get_the_api_error_shape(patient_server):
    with httpx.Client(base_url=patient_server.url, timeout=SAFETY_TIMEOUT_S, trust_env=False) as client:
        missing = client.get("/v1/nothing-here", headers={"x-api-key": KEY})
        wrong_method = client.get("/v1/beautify", headers={"x-api-key": KEY})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "method_not_allowed"
