"""The `openai` policy: any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, llama.cpp server...).

Plain httpx, no SDK: POST {base_url}/chat/completions with the normalized conversation
(`teletype.engine.policy.render.normalize_for_template`, so servers whose templates demand strict alternation accept it),
temperature 0, `max_tokens`, streamed (server-sent events) or not.

Every failure is a `PolicyError` that says what happened and what to check:
- connection refused/reset, HTTP 5xx and 429: retried `retries` times with exponential backoff
  (0.5 s, 1 s, 2 s... or the server's Retry-After, at most 10 s);
- a connection dropped mid-stream is retried while nothing was streamed yet; after that it is an error
  (the console already showed part of an answer);
- no answer within `timeout` seconds: an error, not retried (a slow model would only be asked twice);
- other 4xx: an error carrying the server's own message (401/403 also name the API key variable);
- a reply with no choice or no message: "nothing usable". An empty *content* is a real answer, though:
  it types an empty line (teletype.engine.policy.typed), and the metrics see a model that did not operate.

The API key, if any, is read from the environment variable `api_key_env` at each request.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time

# httpx imports its command-line client, and with it rich, whenever rich and click are installed (they
# are: the console needs rich). engine stays headless, so that optional import is declined; it only
# disables `python -m httpx` in this process.
sys.modules.setdefault("httpx._main", None)
import httpx  # noqa: E402

from teletype.engine.policy.base import Message, PolicyError, Proposal, TokenCallback
from teletype.engine.policy.render import RenderError, normalize_for_template
from teletype.engine.policy.typed import to_command

BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0


class _Retry(Exception):
    """A failure worth another attempt."""


class _Dropped(Exception):
    """The stream ended before the answer did."""


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        text = response.text.strip()
        return text[:500] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body.get("message")))
        if isinstance(error, dict):
            error = error.get("message") or json.dumps(error)
        if error:
            return str(error)[:500]
    return json.dumps(body)[:500]


_TOKENIZERS: dict[str, object] = {}
_TOKENIZERS_LOCK = threading.Lock()


def _load_tokenizer(name: str):
    """One tokenizer per name for the process: `eval --jobs N` builds a policy per thread, and
    transformers' lazy imports are not safe to race (`cannot import name 'AutoTokenizer'`)."""
    with _TOKENIZERS_LOCK:
        if name not in _TOKENIZERS:
            from transformers import AutoTokenizer

            _TOKENIZERS[name] = AutoTokenizer.from_pretrained(name)
        return _TOKENIZERS[name]


class OpenAIPolicy:
    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60,
                 retries: int = 2, max_tokens: int = 256, stream: bool = True, tokenizer=None,
                 budget: int | None = None):
        """`tokenizer` (a transformers tokenizer, or a directory to load one from): when given, the
        conversation is bounded to `budget` tokens with the same window as the hf policy's (the
        orientation stays, the oldest turns leave first, an oversized output keeps its tail), so a
        long session fits the server's context; without one it is sent whole."""
        if not base_url:
            raise PolicyError("the openai policy needs a base URL, e.g. http://127.0.0.1:8000/v1")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.name = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.max_tokens = max_tokens
        self.stream = stream
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = _load_tokenizer(str(tokenizer))
        self.tokenizer = tokenizer
        self.budget = budget
        self._client = httpx.Client(timeout=httpx.Timeout(timeout))

    # -- the Policy API ------------------------------------------------------------------------------------
    def propose(self, messages: list[Message], on_token: TokenCallback | None = None) -> Proposal:
        try:
            if self.tokenizer is not None and self.budget:
                from teletype.engine.policy.render import prompt_window

                conversation = prompt_window(self.tokenizer, messages, self.budget).messages
            else:
                conversation = normalize_for_template(messages)
        except RenderError as e:
            raise PolicyError(f"{self.name}: {e}") from e
        body = {"model": self.model, "messages": conversation, "temperature": 0,
                "max_tokens": self.max_tokens, "stream": self.stream}
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        t0 = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            state = {"streamed": False, "first_token_s": None}
            try:
                raw, finish, usage = self._request(body, headers, on_token, state, t0)
                break
            except _Retry as e:
                if attempt > self.retries or state["streamed"]:
                    raise PolicyError(f"{self.url}: {e} (after {attempt} attempt{'s' if attempt > 1 else ''})"
                                      ) from None
                delay = getattr(e, "delay", None)
                time.sleep(min(MAX_BACKOFF_S, delay if delay is not None else BACKOFF_S * 2 ** (attempt - 1)))
        command, note = to_command(raw)
        stats = {"latency_s": round(time.perf_counter() - t0, 6), "attempts": attempt,
                 "finish_reason": finish, "max_tokens": self.max_tokens}
        if state["first_token_s"] is not None:
            stats["first_token_s"] = round(state["first_token_s"], 6)
        if isinstance(usage, dict):
            if "prompt_tokens" in usage:
                stats["prompt_tokens"] = usage["prompt_tokens"]
            if "completion_tokens" in usage:
                stats["new_tokens"] = usage["completion_tokens"]
        if finish == "length":
            bound = f"no end of turn within {self.max_tokens} tokens"
            note = f"{bound}; {note}" if note else bound
        if note:
            stats["note"] = note
        return Proposal(command=command, raw=raw, source="model", stats=stats)

    def close(self) -> None:
        self._client.close()

    # -- one attempt ---------------------------------------------------------------------------------------
    def _request(self, body, headers, on_token, state, t0) -> tuple[str, str | None, dict | None]:
        try:
            with self._client.stream("POST", self.url, json=body, headers=headers) as response:
                self._check_status(response)
                if self.stream and response.headers.get("content-type", "").startswith("text/event-stream"):
                    return self._read_stream(response, on_token, state, t0)
                response.read()
                return self._read_whole(response, on_token, state, t0)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            raise _Retry(f"cannot connect ({type(e).__name__}: {e}); is the server running?") from None
        except httpx.TimeoutException:
            raise PolicyError(f"{self.url}: no answer within {self.timeout:g} s (timeout)") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, _Dropped) as e:
            what = str(e) or type(e).__name__
            if state["streamed"]:
                raise PolicyError(f"{self.url}: the connection dropped in the middle of the answer ({what})"
                                  ) from None
            raise _Retry(f"the connection dropped ({what})") from None

    def _check_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        response.read()
        message = _server_message(response)
        if status == 429 or status >= 500:
            retry = _Retry(f"HTTP {status}: {message}")
            after = response.headers.get("retry-after")
            if after and after.strip().isdigit():
                retry.delay = float(after)
            raise retry
        hint = ""
        if status in (401, 403):
            hint = (f"; check the API key in ${self.api_key_env}"
                    f" ({'set' if os.environ.get(self.api_key_env) else 'not set'})")
        elif status == 404:
            hint = f"; check the base URL {self.base_url!r} (usually ends in /v1) and the model name"
        raise PolicyError(f"{self.url}: the endpoint refused the request (HTTP {status}): {message}{hint}")

    def _nothing_usable(self, what: str) -> PolicyError:
        return PolicyError(f"{self.url}: the endpoint answered with nothing usable ({what})")

    def _read_whole(self, response, on_token, state, t0):
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            raise self._nothing_usable(f"not JSON: {response.text[:200]!r}") from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise self._nothing_usable(f"no choices in {json.dumps(data)[:200]}")
        message = choices[0].get("message")
        if not isinstance(message, dict) or "content" not in message:
            raise self._nothing_usable(f"no message in {json.dumps(choices[0])[:200]}")
        text = message.get("content") or ""
        state["first_token_s"] = time.perf_counter() - t0
        if on_token is not None and text:
            on_token(text)
        return text, choices[0].get("finish_reason"), data.get("usage")

    def _read_stream(self, response, on_token, state, t0):
        parts: list[str] = []
        finish, usage, done, chunks = None, None, False, 0
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments (": ping"), event names
            payload = line[5:].strip()
            if payload == "[DONE]":
                done = True
                break
            try:
                data = json.loads(payload)
            except ValueError:
                raise self._nothing_usable(f"a stream event that is not JSON: {payload[:200]!r}") from None
            if isinstance(data, dict) and data.get("error"):
                err = data["error"]
                raise PolicyError(f"{self.url}: the endpoint failed mid-answer: "
                                  f"{err.get('message', err) if isinstance(err, dict) else err}")
            chunks += 1
            if isinstance(data, dict) and data.get("usage"):
                usage = data["usage"]
            choices = data.get("choices") if isinstance(data, dict) else None
            if not choices:
                continue  # e.g. a usage-only chunk
            choice = choices[0]
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if state["first_token_s"] is None:
                    state["first_token_s"] = time.perf_counter() - t0
                parts.append(text)
                state["streamed"] = True
                if on_token is not None:
                    on_token(text)
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
        if not done and finish is None:
            raise _Dropped("the stream ended before the answer finished")
        if chunks == 0:
            raise self._nothing_usable("an empty stream")
        return "".join(parts), finish, usage
