"""`chatbridge generate`: answer every question of a JSONL file with `pipeline("chatbridge")`, in batches, resumably.

Each input line is one question: `{"text": ..., "images"/"videos"/"audio": path or list of paths}` (relative paths
are read from the input file's folder, so a question file travels with its media) or `{"messages": [chat messages]}`;
an optional `"id"` is copied to the answer. The output has exactly one line per input line, in input order:
`{"line": n, "id": ..., "generated_text": ...}`, or `{"line": n, "id": ..., "error": ...}` for a line that cannot be
answered. Because of this one-to-one order, the number of complete output lines is all a rerun needs to resume.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import transformers_chatbridge  # noqa: F401  (registers the "chatbridge" task)
from transformers.pipelines.any_to_any import Chat

from ..modalities import MODALITIES
from ..pipeline_chatbridge import MEDIA_KEYS as PIPELINE_MEDIA_KEYS, ChatBridgePipeline
from .quantization import quantization_kwargs

# Keys of a question line that hold media (the pipeline takes the same), and the kind of media each holds.
MEDIA_KEYS = {key: modality for modality, keys in PIPELINE_MEDIA_KEYS.items() for key in keys}


class InputError(Exception):
    """The run cannot start (unreadable input, output of another input): reported in one line, exit status 2."""


@dataclass
class Request:
    """One input line: the pipeline input when the line is usable, else the reason it is not."""

    line: int
    id: Any = None
    inputs: Any = None  # a dict for `pipeline("chatbridge")` or a `Chat`
    error: str | None = None


def count_lines(path: Path) -> int:
    """Lines as a JSONL reader sees them: every newline ends one, and a last line without newline counts too."""
    with open(path, "rb") as file:
        return sum(1 for _ in file)


def read_requests(path: Path, start: int = 0) -> Iterator[Request]:
    """The requests of `path` after its first `start` lines, read lazily; a bad line becomes a request with an error.

    Lines are read as bytes and decoded one by one, so a stray non-UTF-8 line spoils only itself.
    """
    base = path.resolve().parent
    with open(path, "rb") as file:
        for number, raw in islice(enumerate(file, start=1), start, None):
            yield parse_request(raw, number, base)


def parse_request(raw: bytes, line: int, base: Path) -> Request:
    """Check one line now, so that a bad line gets a precise message and never costs a failed batch."""
    try:
        record = json.loads(raw.decode("utf-8").rstrip("\r\n"))
    except UnicodeDecodeError as error:
        return Request(line, error=f"line {line}: not UTF-8 text ({error})")
    except json.JSONDecodeError as error:
        problem = "empty line" if not raw.strip() else f"invalid JSON ({error})"
        return Request(line, error=f"line {line}: {problem}")
    if not isinstance(record, dict):
        return Request(line, error=f"line {line}: expected a JSON object, got {type(record).__name__}")
    request = Request(line, id=record.get("id"))
    try:
        request.inputs = _pipeline_inputs(record, base)
    except ValueError as error:
        request.error = f"line {line}: {error}"
    return request


def _pipeline_inputs(record: dict, base: Path) -> Any:
    has_text, has_messages = "text" in record, "messages" in record
    if has_text == has_messages:
        found = "not both" if has_text else "found neither"
        raise ValueError(f'needs either "text" (a question) or "messages" (a chat), {found}')
    # A misspelt media key ("picture") would otherwise be answered without its media.
    known = {"messages", "id"} if has_messages else {"text", "id", *MEDIA_KEYS}
    unknown = sorted(key for key in record if key not in known)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}; a line holds " + (
            '"messages" and "id"' if has_messages else f'"text", "id" and media under {", ".join(MEDIA_KEYS)}'))
    if has_messages:
        messages = record["messages"]
        if not messages or not isinstance(messages, list) or not all(isinstance(item, dict) for item in messages):
            raise ValueError('"messages" must be a non-empty list of {"role", "content"} objects')
        return Chat([_resolve_message(message, base) for message in messages])  # Chat checks role and content
    text = record["text"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError('"text" must be a non-empty string')
    inputs: dict[str, Any] = {"text": text}
    for key, kind in MEDIA_KEYS.items():
        if key in record:
            values = record[key] if isinstance(record[key], list) else [record[key]]
            inputs[key] = [_resolve(value, kind, base) for value in values]
    return inputs


def _resolve_message(message: dict, base: Path) -> dict:
    """A copy of a chat message whose local media paths are resolved like those of plain questions."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    items = []
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind in MODALITIES:
            item = {**item, **{key: _resolve(item[key], kind, base) for key in (kind, "path") if key in item}}
        items.append(item)
    return {**message, "content": items}


def _resolve(value: Any, kind: str, base: Path) -> str:
    """A media source: URLs as they are, local paths relative to the input file's folder, which must hold the file."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"a {kind} must be given as a path or URL, got {value!r}")
    if "://" in value or value.startswith("data:"):
        return value
    path = base / Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"no such {kind} file: {path}")
    return str(path)


def pipeline_kwargs(device: str | None, quantization: str | None) -> dict:
    """`pipeline("chatbridge", ...)` arguments for `--device` (default: the pipeline's choice) and `--load-in-*`."""
    kwargs: dict[str, Any] = {} if device is None else {"device": device}
    if quantization is not None:
        kwargs["model_kwargs"] = quantization_kwargs(quantization)
    return kwargs


# A local folder's files that decide what it answers: its weights (sharded or not, an adapter too) and its configs.
_MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".json")


def model_revision(model: str | Path) -> str | None:
    """What a rerun checks before it adds to or rescores an output: the commit of a model folder that is the root of a
    git repository, else its `config.json` `_commit_hash` (a Hub snapshot), else a fingerprint of the folder's weight
    and config files (name, size, modification time). A folder trained again in place is another model: its old
    predictions must never pass for its own."""
    path = Path(model)
    if not path.is_dir():
        return None
    try:
        top = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
        if top.returncode == 0 and Path(top.stdout.strip()).resolve() == path.resolve():
            head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
            if head.returncode == 0:
                return head.stdout.strip()
    except OSError:  # no git
        pass
    try:
        commit = json.loads((path / "config.json").read_text()).get("_commit_hash")
    except (OSError, ValueError, AttributeError):
        commit = None
    return commit or _files_fingerprint(path)


def _files_fingerprint(folder: Path) -> str | None:
    files = sorted(file for file in folder.iterdir() if file.is_file() and file.suffix in _MODEL_FILE_SUFFIXES)
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        status = file.stat()
        digest.update(f"{file.name}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return "files:" + digest.hexdigest()[:16]


def _model_key(model: Any) -> Any:
    """A local model folder by its resolved path (`./m` and `/abs/m` are the same model), anything else as it is."""
    if isinstance(model, (str, Path)) and str(model) and Path(model).exists():
        return str(Path(model).resolve())
    return model


def settings_differences(stored: dict, current: dict, keys: tuple[str, ...]) -> list[str]:
    """The `keys` whose values differ, as "name: was X, now Y" (a nested dict compared by its own names); a setting
    one side does not record is not compared."""
    differences = []
    for key in keys:
        if key not in stored or key not in current:
            continue
        old, new = stored[key], current[key]
        if isinstance(old, dict) and isinstance(new, dict):
            differences += [
                f"{key}.{name}: was {old[name]!r}, now {new[name]!r}"
                for name in sorted(set(old) & set(new))
                if old[name] != new[name]
            ]
        elif (_model_key(old) != _model_key(new)) if key == "model" else (old != new):
            differences.append(f"{key}: was {old!r}, now {new!r}")
    return differences


# What decides the answers of a run: a rerun adds to an output only when these are the same.
RUN_SETTINGS = ("input", "input_sha256", "model", "model_revision", "max_new_tokens", "quantization")


def run_record_path(output: Path) -> Path:
    """The file beside `output` recording what produced it."""
    return output.with_name(output.name + ".run.json")


def run_settings(args: argparse.Namespace) -> dict:
    with open(args.input, "rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return {
        "input": str(args.input.resolve()), "input_sha256": digest, "model": str(_model_key(args.model)),
        "model_revision": model_revision(args.model), "max_new_tokens": args.max_new_tokens,
        "quantization": args.quantization,
    }  # fmt: skip


def check_output(output: Path, settings: dict, overwrite: bool) -> None:
    """An existing output is continued only if its run record shows these settings; with `overwrite` it is removed.

    Without a run record the file is not this command's output (a results file, say): it is neither appended to nor
    cut, whatever it holds.
    """
    record = run_record_path(output)
    if not output.exists():
        record.unlink(missing_ok=True)
        return
    if overwrite:
        output.unlink()
        record.unlink(missing_ok=True)
        return
    if not record.is_file():
        raise InputError(
            f"{output} exists but no {record.name} says `chatbridge generate` wrote it: refusing to add to it or cut "
            "it (use another --output, or --overwrite to replace it)"
        )
    try:
        stored = json.loads(record.read_text())
    except ValueError as error:
        raise InputError(f"{record} is not JSON ({error}): use --overwrite to start over") from None
    differences = settings_differences(stored, settings, RUN_SETTINGS)
    if differences:
        raise InputError(
            f"{output} was begun with other settings ({'; '.join(differences)}): rerun with the same ones to continue "
            "it, or use another --output (or --overwrite to start over)"
        )


def resume_point(output: Path, total: int) -> int:
    """How many input lines the output already answers; a torn last line (no newline) is cut off first.

    The output must be this command's output for this input: every complete line is a record whose `"line"` is its
    own position, and there are no more of them than input lines. Anything else raises `InputError` and leaves the
    file as it is, because appending to it would mix two runs.
    """
    if not output.exists():
        return 0
    done, end = 0, 0
    with open(output, "rb+") as file:
        for raw in file:
            if not raw.endswith(b"\n"):
                break  # the torn last line of an interrupted write
            done, end = done + 1, end + len(raw)
            if done > total:
                lines = done + sum(1 for _ in file)
                raise InputError(
                    f"{output} has {lines} lines but the input has only {total}: it is not the output of this input "
                    "(use another --output, or delete it to start over)"
                )
            _check_record(raw, done, output)
        file.truncate(end)
    return done


def _check_record(raw: bytes, position: int, output: Path) -> None:
    try:
        number = json.loads(raw).get("line")
    except (ValueError, AttributeError):
        number = None
    if number != position:
        raise InputError(
            f"line {position} of {output} is not the answer to input line {position}: it is not the output of this "
            "command (use another --output, or delete it to start over)"
        )


def answer_batch(pipe: ChatBridgePipeline, requests: list[Request], max_new_tokens: int) -> list[dict]:
    """Records for `requests`, in order: one pipeline call (one `generate`) for the usable ones.

    If that call fails, its requests are tried one by one, so only the culprits get errors and the rest their answers.
    """
    usable = [request for request in requests if request.error is None]
    answers: dict[int, dict] = {}
    if usable:
        try:
            results = _ask(pipe, [request.inputs for request in usable], max_new_tokens)
            answers = {request.line: {"generated_text": text} for request, text in zip(usable, results, strict=True)}
        except Exception:
            for request in usable:
                try:
                    (text,) = _ask(pipe, [request.inputs], max_new_tokens)
                    answers[request.line] = {"generated_text": text}
                except Exception as error:
                    message = " ".join(str(error).split()) or type(error).__name__
                    answers[request.line] = {"error": f"line {request.line}: {message}"}
    return [
        {"line": request.line, "id": request.id, **answers.get(request.line, {"error": request.error})}
        for request in requests
    ]


def _ask(pipe: ChatBridgePipeline, inputs: list, max_new_tokens: int) -> list[str]:
    results = pipe(inputs, batch_size=len(inputs), max_new_tokens=max_new_tokens, return_full_text=False)
    return [records[0]["generated_text"] for records in results]


def write_record(output: TextIO, record: dict) -> None:
    """One whole line per write, flushed at once: a killed run loses at most the line being written."""
    output.write(json.dumps(record, ensure_ascii=False) + "\n")
    output.flush()


def batches(requests: Iterator[Request], batch_size: int) -> Iterator[list[Request]]:
    """Consecutive runs of requests holding `batch_size` usable ones, so bad lines do not leave generate calls short.

    A run is capped at twice `batch_size` lines, so that a long stretch of bad lines is still written (and counts
    for resuming) as it goes rather than held in memory.
    """
    batch: list[Request] = []
    usable = 0
    for request in requests:
        batch.append(request)
        usable += request.error is None
        if usable == batch_size or len(batch) == 2 * batch_size:
            yield batch
            batch, usable = [], 0
    if batch:
        yield batch
