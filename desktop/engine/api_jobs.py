"""Another app's request as a job of the worker's main thread (the one that owns the model).

The HTTP server (:mod:`desktop.engine.api_server`, in a thread of the worker) turns each
``/v1/chat/completions`` or ``/v1/completions`` request into an :class:`ApiJob` and puts it
on the same queue the worker's main thread serves the app's own requests from, so the chat
in the window and the other apps share one model and take turns. :func:`run_api_job` runs
one job on the main thread: it streams the answer through llama-cpp-python (which applies
the model's own chat template), hands each piece to the server through ``job.deliver``
(thread-safe) and tells the app about it with protocol events (:class:`~p.ApiStarted`,
:class:`~p.Token` with the job's id, :class:`~p.ApiFinished`), so the live monitor plots
it like a chat.

``job.stop`` is checked at every token: the server sets it when the client disconnects, so
generation stops within one token.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from desktop.engine import protocol as p
from desktop.engine.streaming import follow_stream

_CONTEXT_RE = re.compile(r"Requested tokens \((?P<asked>\d+)\) exceed context window of (?P<n>\d+)")


@dataclass(frozen=True)
class Piece:
    """A piece of the answer's text (usually one token)."""

    text: str
    t: float  # time.monotonic() when it was ready


@dataclass(frozen=True)
class Finished:
    """The answer ended; the figures are the worker's own."""

    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int  # tokens sampled for the answer (an end-of-generation token not)
    ttft_s: float  # from the request's arrival to its first token, waiting included
    gen_tokens_per_s: float


@dataclass(frozen=True)
class Failed:
    """The job could not be answered: an OpenAI-shaped error with its HTTP status."""

    status: int
    message: str
    code: str | None = None
    param: str | None = None
    kind: str = "invalid_request_error"  # the OpenAI error "type"


Outcome = Piece | Finished | Failed


@dataclass(frozen=True)
class ServedModel:
    """What the server says about the loaded model (plain values, safe from any thread)."""

    id: str  # the file's name without ".gguf": what another app puts in "model"
    n_ctx: int  # tokens
    created: int  # Unix time of the file (OpenAI's "created")


def served_model(llama: Any) -> ServedModel | None:
    """The loaded model's name and context, read from plain attributes (no llama.cpp call:
    the server thread asks while the main thread may be freeing the model)."""
    if llama is None:
        return None
    path = Path(str(getattr(llama, "model_path", "model")))
    try:
        created = int(path.stat().st_mtime)
    except OSError:
        created = 0
    return ServedModel(id=path.stem, n_ctx=int(getattr(llama, "_n_ctx", 0)), created=created)


def model_matches(asked: str, model: ServedModel) -> bool:
    """Whether a request's "model" names the served one (its id, with or without .gguf)."""
    name = asked.strip().removesuffix(".gguf").casefold()
    return name == model.id.casefold()


@dataclass(eq=False)  # identity: the server keeps a set of its jobs
class ApiJob:
    """One request of another app, waiting for (or running on) the model."""

    id: str  # "chatcmpl-..." / "cmpl-...": the answer's id, and the protocol id of its events
    kind: Literal["chat", "completion"]
    model: str  # the model the request named
    arguments: dict[str, Any]  # messages or prompt, and the sampling settings
    client: str  # "host:port" of the other app
    endpoint: str
    received_t: float  # time.monotonic() at arrival
    deliver: Callable[[Outcome], None]  # thread-safe hand-over to the server
    stop: threading.Event = field(default_factory=threading.Event)


def run_api_job(
    job: ApiJob,
    llama: Any,
    llama_cpp: Any,
    prompt_length: Callable[[], int],
    send: Callable[[p.Event], None],
    unavailable: str,
) -> None:
    """Answer ``job`` with the loaded model (the worker's main thread only).

    ``prompt_length()`` is the token count of the last prompt llama-cpp-python tokenized;
    ``unavailable`` is the sentence a 503 says when there is no model.
    """
    if job.stop.is_set():  # the client left, or the server stopped, while it waited
        _finished(send, job, 499, stop_reason="disconnected")
        return
    model = served_model(llama)
    if model is None:
        _fail(send, job, Failed(503, unavailable, code="model_not_loaded", kind="server_error"))
        return
    if not model_matches(job.model, model):
        _fail(send, job, unknown_model(job.model, model))
        return
    send(p.ApiStarted(t=time.monotonic(), id=job.id))
    counter = _SampledTokens(llama.generate)
    llama.generate = counter  # counts what was sampled, for "usage" (see _SampledTokens)
    try:
        outcome = _generate(job, llama, llama_cpp, prompt_length, counter, send)
    finally:
        del llama.generate  # the class's own method again
    if isinstance(outcome, Failed):
        _fail(send, job, outcome)


def _generate(
    job: ApiJob,
    llama: Any,
    llama_cpp: Any,
    prompt_length: Callable[[], int],
    counter: _SampledTokens,
    send: Callable[[p.Event], None],
) -> Failed | None:
    arguments = dict(job.arguments)
    prompt_tokens = 0
    try:
        if job.kind == "chat":
            stream = llama.create_chat_completion(**arguments, stream=True)
        else:
            # Tokenized here, as llama-cpp-python would (its BOS included), so the count
            # in "usage" is the prompt's exact length.
            text = arguments.pop("prompt")
            tokens = llama.tokenize(text.encode("utf-8"), add_bos=True, special=True)
            prompt_tokens = len(tokens)
            stream = llama.create_completion(prompt=tokens, **arguments, stream=True)
    except Exception as exc:
        return _failure(exc)

    def on_text(text: str, t: float, index: int) -> None:
        job.deliver(Piece(text, t))
        send(p.Token(text=text, t=t, index=index, id=job.id))

    try:
        timing = follow_stream(
            stream,
            llama,
            chat=job.kind == "chat",
            on_text=on_text,
            stop=job.stop,
            stopped_as="disconnected",
        )
    except Exception as exc:
        return _failure(exc)
    finally:
        stream.close()
    ended = time.monotonic()
    finish = timing.finish
    if job.kind == "chat":
        prompt_tokens = prompt_length()
    completion = counter.count
    last = counter.last
    if (
        finish == "stop"
        and last is not None
        and llama_cpp.llama_vocab_is_eog(llama._model.vocab, last)
    ):
        completion -= 1  # the end-of-generation token ends the answer, it is not in it
    rate = timing.decode_tokens_per_s
    ttft = timing.ttft_s(job.received_t, ended)
    if finish == "disconnected":
        _finished(
            send,
            job,
            499,
            prompt_tokens=prompt_tokens,
            generated_tokens=completion,
            ttft_s=ttft,
            gen_tokens_per_s=rate,
            stop_reason="disconnected",
        )
        return None
    reason: Literal["stop", "length"] = "stop" if finish == "stop" else "length"
    job.deliver(Finished(reason, prompt_tokens, completion, ttft, rate))
    _finished(
        send,
        job,
        200,
        prompt_tokens=prompt_tokens,
        generated_tokens=completion,
        ttft_s=ttft,
        gen_tokens_per_s=rate,
        stop_reason=reason,
    )
    return None


class _SampledTokens:
    """Wraps ``Llama.generate`` on the instance to count the tokens it yields.

    llama-cpp-python's stream reports no usage, and its cache position (``n_tokens``) is
    one short when a stop sequence or max_tokens ended the answer (the last token is
    sampled but never evaluated); the sampled tokens themselves are exact.
    """

    def __init__(self, generate: Callable[..., Iterator[int]]) -> None:
        self._generate = generate
        self.count = 0
        self.last: int | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Iterator[int]:
        tokens = self._generate(*args, **kwargs)
        try:
            for token in tokens:
                self.count += 1
                self.last = int(token)
                yield token
        finally:
            tokens.close()  # type: ignore[attr-defined]  # a generator: stop its llama.cpp loop


def unknown_model(asked: str, model: ServedModel) -> Failed:
    return Failed(
        404,
        f"The model '{asked}' is not served here; this server serves '{model.id}' "
        "(GET /v1/models lists it).",
        code="model_not_found",
        param="model",
    )


def _failure(exc: Exception) -> Failed:
    text = str(exc)
    match = _CONTEXT_RE.search(text)
    if match:
        return Failed(
            400,
            f"The prompt has {match['asked']} tokens, but the model was loaded with a context "
            f"of {match['n']} tokens. Shorten the conversation, or load the model with a "
            "larger context.",
            code="context_length_exceeded",
            param="messages",
        )
    if type(exc).__module__.startswith("jinja2"):
        return Failed(
            400,
            f"The model's chat template could not render these messages ({text}).",
            code="template_error",
            param="messages",
        )
    return Failed(
        500,
        f"llama.cpp failed while answering: {text}.",
        code="internal_error",
        kind="server_error",
    )


def _fail(send: Callable[[p.Event], None], job: ApiJob, failed: Failed) -> None:
    job.deliver(failed)
    _finished(send, job, failed.status, message=failed.message)


def _finished(send: Callable[[p.Event], None], job: ApiJob, status: int, **figures: Any) -> None:
    send(
        p.ApiFinished(
            client=job.client,
            endpoint=job.endpoint,
            status=status,
            t=time.monotonic(),
            id=job.id,
            **figures,
        )
    )
