"""The language model behind the assistant: OpenAI chat completions, or any server speaking
them (vLLM, Ollama, llama.cpp, our offline stand-in), with structured output.

Failures that may pass (429, 5xx, timeouts, connection errors) are retried a bounded number
of times, waiting what the server asks (Retry-After, retry-after-ms, x-ratelimit-reset-*),
and never past the caller's deadline; then ProviderUnavailable. The API key is never logged
nor put in an error.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import openai
from pydantic import BaseModel, ValidationError

from shared.assistant.prompts import REPLY_SCHEMA

T = TypeVar("T")
MILLION = Decimal(1_000_000)
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


class ProviderUnavailable(Exception):
    """No usable answer within the deadline; the message names the last failure, never secrets."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens."""

    prompt: Decimal
    completion: Decimal

    @staticmethod
    def table(overrides_json: str | None = None) -> dict[str, ModelPrice]:
        prices = dict(DEFAULT_PRICES)
        for model, price in (json.loads(overrides_json) if overrides_json else {}).items():
            prices[model] = ModelPrice(Decimal(str(price["prompt"])), Decimal(str(price["completion"])))
        return prices


DEFAULT_PRICES = {
    "gpt-4o-mini": ModelPrice(Decimal("0.15"), Decimal("0.60")),
    "gpt-4o": ModelPrice(Decimal("2.50"), Decimal("10.00")),
}


class _Reply(BaseModel):
    reply: str
    answered_from_context: bool
    wants_human: bool


@dataclass(frozen=True, slots=True)
class Completion:
    reply: str
    answered_from_context: bool
    wants_human: bool
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal


def _seconds(value: str | None) -> float | None:
    """'20', '1.5', '6m0s', '20ms' as seconds."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    match = _DURATION.match(value.strip())
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _wait_asked(error: openai.APIStatusError) -> float | None:
    headers = error.response.headers
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    waits = [
        _seconds(headers.get(name))
        for name in ("retry-after", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
    ]
    known = [wait for wait in waits if wait is not None]
    return max(known) if known else None


class ChatProvider:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        model: str = "gpt-4o-mini",
        prices: Mapping[str, ModelPrice] | None = None,
        max_attempts: int = 3,
        request_timeout: float = 20.0,
    ) -> None:
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0)
        self.model = model
        self._prices = dict(prices or DEFAULT_PRICES)
        self._attempts = max_attempts
        self._timeout = request_timeout

    def _request(self, messages: list[dict[str, str]], deadline: float, stream: bool) -> dict[str, object]:
        return {
            "model": self.model,
            "messages": messages,
            "temperature": 0.2,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "reply", "strict": True, "schema": REPLY_SCHEMA},
            },
            "timeout": max(0.1, min(self._timeout, deadline - time.monotonic())),
            **({"stream": True, "stream_options": {"include_usage": True}} if stream else {}),
        }

    def _cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
        price = self._prices.get(model) or self._prices.get(self.model)
        if price is None:
            return Decimal(0)
        return (price.prompt * prompt_tokens + price.completion * completion_tokens) / MILLION

    def _completion(self, content: str, model: str, prompt_tokens: int, completion_tokens: int) -> Completion:
        reply = _Reply.model_validate_json(content)
        return Completion(
            reply=reply.reply,
            answered_from_context=reply.answered_from_context,
            wants_human=reply.wants_human,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=self._cost(model, prompt_tokens, completion_tokens),
        )

    def complete(self, messages: list[dict[str, str]], *, deadline: float) -> Completion:
        def ask() -> Completion:
            response = self._client.chat.completions.create(**self._request(messages, deadline, False))  # type: ignore[call-overload]
            usage = response.usage
            return self._completion(
                response.choices[0].message.content or "",
                response.model or self.model,
                usage.prompt_tokens if usage else 0,
                usage.completion_tokens if usage else 0,
            )

        return self._retrying(ask, deadline)

    def stream(self, messages: list[dict[str, str]], *, deadline: float) -> Iterator[str | Completion]:
        """The reply's text as it arrives, then the Completion: the usage comes in the last
        chunk, before [DONE]. Failures before the first chunk are retried like `complete`."""

        def open_stream() -> tuple[Iterator[Any], Any]:
            chunks = iter(self._client.chat.completions.create(**self._request(messages, deadline, True)))  # type: ignore[call-overload]
            return chunks, next(chunks, None)

        chunks, first = self._retrying(open_stream, deadline)
        content, model, usage = [], self.model, None
        reply = _ReplyText()
        try:
            for chunk in itertools.chain([first] if first is not None else [], chunks):
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        content.append(choice.delta.content)
                        if piece := reply.feed(choice.delta.content):
                            yield piece
        except (openai.APIError, httpx.HTTPError) as error:
            raise ProviderUnavailable(f"the stream from {self.model} broke off: {type(error).__name__}") from None
        try:
            yield self._completion(
                "".join(content),
                model,
                usage.prompt_tokens if usage else 0,
                usage.completion_tokens if usage else 0,
            )
        except ValidationError:
            raise ProviderUnavailable("the model's answer did not follow the reply schema") from None

    def _retrying(self, call: Callable[[], T], deadline: float) -> T:
        last = "no attempt"
        for number in range(1, self._attempts + 1):
            if time.monotonic() >= deadline:
                break
            try:
                return call()
            except ValidationError:
                last = "the model's answer did not follow the reply schema"
                if number >= 2:
                    break
            except openai.APIStatusError as error:
                last = f"HTTP {error.status_code}"
                if error.status_code not in RETRYABLE_STATUSES:
                    break
                if not self._pause(_wait_asked(error), number, deadline):
                    break
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                last = type(error).__name__
                if not self._pause(None, number, deadline):
                    break
        raise ProviderUnavailable(f"no answer from {self.model}: {last}")

    def _pause(self, asked: float | None, attempt: int, deadline: float) -> bool:
        """Wait before the next attempt; False when it would pass the deadline or none is left."""
        if attempt >= self._attempts:
            return False
        wait = asked if asked is not None else min(0.5 * 2 ** (attempt - 1), 8.0)
        if time.monotonic() + wait >= deadline:
            return False
        time.sleep(wait)
        return True


class _ReplyText:
    """The text of the "reply" field of a JSON answer arriving in pieces, decoded as far as it
    is complete, so "suggest a reply" shows words and not JSON."""

    _START = re.compile(r'"reply"\s*:\s*"')

    def __init__(self) -> None:
        self._raw = ""
        self._start: int | None = None
        self._sent = 0
        self._done = False

    def feed(self, piece: str) -> str:
        self._raw += piece
        if self._done:
            return ""
        if self._start is None:
            match = self._START.search(self._raw)
            if not match:
                return ""
            self._start = match.end()
        body, index = self._raw[self._start :], 0
        while index < len(body):
            if body[index] == "\\":
                if index + 1 >= len(body) or (body[index + 1] == "u" and index + 6 > len(body)):
                    break
                index += 6 if body[index + 1] == "u" else 2
            elif body[index] == '"':
                self._done = True
                break
            else:
                index += 1
        try:
            text = str(json.loads(f'"{body[:index]}"'))
        except ValueError:  # half of a surrogate pair: wait for the rest
            return ""
        new, self._sent = text[self._sent :], len(text)
        return new
