"""`chatbridge serve`: a real server subprocess with the tiny random model, driven by a real headless Chromium.

The browser is Debian's chromium (CI installs it; a missing one fails the tests) driven by Playwright; nothing is
mocked and nothing reaches the network. The random model answers gibberish, so the tests check that an answer
appears for each turn, and read what the model received from the server's log line of each turn (media counted
from the processor's tensors: the whole conversation, media included, is sent again each turn).

A second server, started only for the tests of the limits (--auth, --max-file-size, --max-queue), is reached over
HTTP with urllib the way any client could, through the same endpoints the page uses.

CHATBRIDGE_UPDATE_SCREENSHOT=1 also writes the page of the two-turn test to docs/serve.png (shown in the README).
"""

import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from transformers_chatbridge import cli
from transformers_chatbridge.data.miniature import build_miniature
from transformers_chatbridge.testing import tiny_chatbridge

from sample_media import write_sample_media

CHROMIUM = Path("/usr/bin/chromium")
# The closed network of test machines makes Chromium's background services fail or hang without these.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",  # a microphone that plays a beep
]
TIMEOUT_MS = 60_000  # a hang fails the test instead of blocking the run
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "serve.png"
LOCAL = ("http://127.0.0.1:", "data:", "blob:")
TURN_LOG = re.compile(r"session (\S+), turn (\d+): media: image (\d+), video (\d+), audio (\d+)")
LOGIN = ("alice", "open:sesame")  # of the limited server; the password holds the separator's colon
MB = 1024 * 1024


class Server:
    def __init__(self, url: str, folder: Path, log: Path, uploads: Path) -> None:
        self.url, self.folder, self.log, self.uploads = url, folder, log, uploads

    def turns_since(self, offset: int) -> list[tuple[str, int, int, int, int]]:
        """(session, turn, images, videos, audio clips) of each turn the server logged after `offset` characters."""
        found = TURN_LOG.findall(self.log.read_text()[offset:])
        return [(session, *map(int, numbers)) for session, *numbers in found]

    def log_size(self) -> int:
        return len(self.log.read_text())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The tiny model, the sample media and a miniature world, for the servers of this module."""
    folder = tmp_path_factory.mktemp("serve")
    # Seed 1's random answers hold spaces and whole UTF-8 characters, which a text streamer needs to flush mid-answer.
    tiny_chatbridge(save_dir=folder / "model", seed=1)
    write_sample_media(folder)
    build_miniature(folder / "world", size=1, progress=False)
    return folder


@contextmanager
def serve(folder: Path, name: str, *options: str) -> Iterator[Server]:
    """`chatbridge serve` of folder/model with `options` on a free loopback port, its uploads in folder/name-uploads
    and its output in folder/name.log; stopped (SIGTERM), it must end without a traceback and delete the uploads."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log, uploads = folder / f"{name}.log", folder / f"{name}-uploads"
    command = [sys.executable, "-m", "transformers_chatbridge.cli", "serve", "--model", str(folder / "model"), "--port",
               str(port), *options]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(uploads),
           "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=folder)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"chatbridge serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
    yield Server(url, folder, log, uploads)
    process.terminate()
    process.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    # Stopping deleted the uploads; only the examples' media (the world's test-* files) stay, copied for good.
    assert [path.name for path in uploads.rglob("*") if path.is_file() and not path.name.startswith("test-")] == []


@pytest.fixture(scope="module")
def server(workspace):
    """The chat with the miniature world's examples, until the module ends."""
    with serve(workspace, "server", "--max-new-tokens", "8", "--examples", str(workspace / "world")) as server:
        yield server


@pytest.fixture(scope="module")
def limited_server(workspace):
    """The chat behind a login, with a 1 MB upload limit and room for one waiting turn."""
    with serve(workspace, "limited", "--auth", ":".join(LOGIN), "--max-file-size", "1mb", "--max-queue", "1") as server:
        yield server


def fetch(opener: urllib.request.OpenerDirector, url: str, data: bytes | None = None,
          headers: dict | None = None) -> tuple[int, bytes]:
    """HTTP status and body of a GET (or, with `data`, a POST); an error status is returned, not raised."""
    try:
        with opener.open(urllib.request.Request(url, data=data, headers=headers or {}), timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def client(server: Server, login: tuple[str, str] | None = None) -> urllib.request.OpenerDirector:
    """An HTTP client of `server` that keeps its cookies, logged in with `login` if given."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    if login:
        form = urllib.parse.urlencode({"username": login[0], "password": login[1]}).encode()
        assert fetch(opener, server.url + "login", form) == (200, b'{"success":true}')
    return opener


def upload(opener: urllib.request.OpenerDirector, server: Server, name: str, size: int) -> tuple[int, bytes]:
    """Post a file of `size` bytes to the upload endpoint the page uses for attached files."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: audio/wav\r\n\r\n").encode() + b"\0" * size + f"\r\n--{boundary}--\r\n".encode()
    return fetch(opener, server.url + "gradio_api/upload", body,
                 {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def turn_request(opener: urllib.request.OpenerDirector, server: Server, session: str, text: str,
                 max_tokens: int) -> tuple[int, bytes]:
    """The event id of the input box's submit and the body that queues a turn of `session`, as the page sends it."""
    config = json.loads(fetch(opener, server.url + "config")[1])
    box = next(item["id"] for item in config["components"] if item["props"].get("elem_id") == "chat-input")
    submit = next(event["id"] for event in config["dependencies"] if event["targets"] == [[box, "submit"]])
    # The inputs: the input box, the chat display, the conversation (held by the server), max tokens, temperature.
    body = {"data": [{"text": text, "files": []}, [], None, max_tokens, 0], "fn_index": submit, "trigger_id": box,
            "session_hash": session, "event_data": None}
    return submit, json.dumps(body).encode()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as .ci/run does")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class ChatPage:
    """One browser tab on the chat page (its own context, hence its own Gradio session)."""

    def __init__(self, browser: Browser, url: str) -> None:
        context = browser.new_context(viewport={"width": 1100, "height": 900}, permissions=["microphone"])
        context.set_default_timeout(TIMEOUT_MS)
        self.page: Page = context.new_page()
        self.external: list[str] = []  # addresses the page requested beyond the server: none expected
        self.page.on("request", self._note_external)
        self.page.goto(url)
        self.input = self.page.locator("#chat-input textarea")
        self.answers = self.page.locator("#chat [data-testid=bot]")
        self.questions = self.page.locator("#chat [data-testid=user]")
        self.toasts = self.page.locator("[data-testid=toast-body]")
        expect(self.input).to_be_editable(timeout=TIMEOUT_MS)

    def _note_external(self, request) -> None:
        if not request.url.startswith(LOCAL):
            self.external.append(request.url)

    def attach(self, *paths: Path) -> None:
        thumbnails = self.page.locator("#chat-input [aria-label='File thumbnail']")
        count = thumbnails.count()
        self.page.locator("#chat-input input[type=file]").set_input_files([str(path) for path in paths])
        expect(thumbnails).to_have_count(count + len(paths), timeout=TIMEOUT_MS)  # uploaded

    def record(self, seconds: float = 1.0) -> None:
        """Record from the (fake) microphone and attach the clip to the message."""
        self.page.get_by_role("button", name="Record audio").click()
        self.page.get_by_role("button", name="Start recording").click()
        time.sleep(seconds)
        self.page.get_by_role("button", name="Stop recording").click()
        self.page.get_by_role("button", name="Attach audio").click()
        expect(self.page.locator("#chat-input [aria-label='File thumbnail']")).to_have_count(1, timeout=TIMEOUT_MS)

    def send(self, text: str | None = None) -> None:
        """Send the message (with `text` typed in, if given) without waiting for the answer."""
        if text is not None:
            self.input.fill(text)
        self.input.press("Enter")

    def wait_for_answer(self, turn: int) -> str:
        """The `turn`-th answer once complete: the input is cleared and enabled again only after the last chunk."""
        expect(self.answers).to_have_count(turn, timeout=TIMEOUT_MS)
        expect(self.input).to_be_editable(timeout=TIMEOUT_MS)
        expect(self.input).to_have_value("", timeout=TIMEOUT_MS)
        return self.answers.nth(turn - 1).inner_text()

    def ask(self, text: str, turn: int) -> str:
        self.send(text)
        return self.wait_for_answer(turn)

    def watch_answers(self) -> None:
        """Record every text the newest answer shows, as it changes, to see it stream."""
        self.page.evaluate("""() => {
            window.seenAnswers = [];
            new MutationObserver(() => {
                const answers = document.querySelectorAll('#chat [data-testid=bot]');
                if (answers.length) window.seenAnswers.push(answers[answers.length - 1].innerText);
            }).observe(document.querySelector('#chat'), {childList: true, subtree: true, characterData: true});
        }""")

    def seen_answers(self) -> list[str]:
        return self.page.evaluate("window.seenAnswers")


def test_two_turns_about_an_uploaded_image_and_audio_clip_stream_their_answers(server, browser, tmp_path):
    offset = server.log_size()
    chat = ChatPage(browser, server.url)
    chat.attach(server.folder / "red.png", server.folder / "tone.wav")
    chat.watch_answers()
    first = chat.ask("What do you see and hear?", turn=1)
    partial = {text for text in chat.seen_answers() if text.strip() and text != first}
    second = chat.ask("And what colour is it?", turn=2)

    assert first.strip() and second.strip()  # gibberish, but an answer
    assert partial, "the first answer appeared at once instead of streaming in"
    assert chat.questions.nth(-1).inner_text() == "And what colour is it?"
    assert chat.toasts.count() == 0 and chat.external == []
    turns = server.turns_since(offset)
    session = turns[0][0]
    # Both turns reached the model with the image and the audio clip (the second resends the first's media).
    assert turns == [(session, 1, 1, 0, 1), (session, 2, 1, 0, 1)]

    chat.page.screenshot(path=tmp_path / "serve.png")
    if os.environ.get("CHATBRIDGE_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "serve.png", SCREENSHOT)

    chat.page.locator("#clear").click()
    expect(chat.answers).to_have_count(0)
    chat.ask("Hello?", turn=1)
    assert server.turns_since(offset)[-1] == (session, 1, 0, 0, 0)  # clear forgot the conversation and its media


def test_two_tabs_chat_at_once_without_mixing_conversations(server, browser):
    offset = server.log_size()
    alpha, beta = ChatPage(browser, server.url), ChatPage(browser, server.url)
    alpha.attach(server.folder / "red.png")
    beta.attach(server.folder / "tone.wav")
    alpha.send("Alpha: what is this?")
    beta.send("Beta: what is this?")  # queued behind alpha's answer
    alpha.wait_for_answer(1)
    beta.wait_for_answer(1)
    alpha.ask("Alpha again?", turn=2)
    beta.ask("Beta again?", turn=2)

    assert alpha.questions.all_inner_texts()[-2:] == ["Alpha: what is this?", "Alpha again?"]
    assert beta.questions.all_inner_texts()[-2:] == ["Beta: what is this?", "Beta again?"]
    assert alpha.answers.count() == beta.answers.count() == 2
    turns = server.turns_since(offset)
    sessions = {session for session, *_ in turns}
    assert len(sessions) == 2
    by_session = {session: [turn[1:] for turn in turns if turn[0] == session] for session in sessions}
    # Each conversation holds only its own media: alpha one image, beta one audio clip, in both of their turns.
    assert sorted(by_session.values()) == [[(1, 0, 0, 1), (2, 0, 0, 1)], [(1, 1, 0, 0), (2, 1, 0, 0)]]


def test_a_bad_upload_is_reported_in_the_page_and_the_chat_goes_on(server, browser):
    offset = server.log_size()
    chat = ChatPage(browser, server.url)
    chat.attach(server.folder / "notes.png")  # a text file named .png
    chat.send("What is this?")
    expect(chat.toasts).to_contain_text(re.compile(r"notes\.png.* is not an image"), timeout=TIMEOUT_MS)
    expect(chat.input).to_have_value("What is this?")  # kept, to fix and send again
    assert chat.answers.count() == 0 and server.turns_since(offset) == []

    chat.page.locator("#chat-input button[aria-label='Remove file']").click()
    example = "Describe the video and its sound briefly."  # of the miniature world's gallery: a video and its sound
    chat.page.get_by_text(example).click()
    expect(chat.input).to_have_value(example)
    chat.send()
    assert chat.wait_for_answer(1).strip()
    chat.record()
    assert chat.ask("And this sound?", turn=2).strip()
    turns = server.turns_since(offset)
    session = turns[0][0]
    assert turns == [(session, 1, 0, 1, 1), (session, 2, 0, 1, 2)]  # the example's video and audio, then the recording


def test_a_folder_that_is_not_a_miniature_world_is_refused_before_the_model_loads(tmp_path):
    tiny_chatbridge(save_dir=tmp_path / "model")
    result = subprocess.run(
        [sys.executable, "-m", "transformers_chatbridge.cli", "serve", "--model", str(tmp_path / "model"),
         "--examples", str(tmp_path)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert f"{tmp_path} is not a miniature world folder" in result.stderr and "Traceback" not in result.stderr


def logged_in_page(browser: Browser, server: Server) -> Page:
    """A new tab on `server`'s page, logged in through its login form."""
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.url)
    page.get_by_label("username").fill(LOGIN[0])
    page.get_by_label("password").fill(LOGIN[1])
    page.get_by_role("button", name="Login").click()
    return page


def test_of_the_examples_folder_only_the_examples_media_can_be_downloaded(server, workspace):
    opener = client(server)
    world = workspace / "world"
    config = json.loads(fetch(opener, server.url + "config")[1])
    gallery = next(item for item in config["components"] if item["type"] == "dataset")
    media = [file["url"] for (sample,) in gallery["props"]["samples"] for file in sample["files"]]
    assert media and all(fetch(opener, url)[0] == 200 for url in media)  # Gradio's copies, in its cache

    for path in [world / "ground_truth.json", *sorted((world / "data").glob("*.parquet")),
                 next((world / "media").rglob("*.png"))]:  # answers, and media of the world by their own path
        status, body = fetch(opener, f"{server.url}gradio_api/file={path}")
        assert status == 403 and b"File not allowed" in body, (path, status)


def test_a_login_is_asked_for_before_the_page_or_its_api_can_be_used(limited_server, browser):
    anonymous = client(limited_server)
    assert fetch(anonymous, limited_server.url + "config")[0] == 401
    assert upload(anonymous, limited_server, "tone.wav", 1000)[0] == 401
    _, turn = turn_request(client(limited_server, LOGIN), limited_server, "anonymous", "Hello?", max_tokens=8)
    assert fetch(anonymous, limited_server.url + "gradio_api/queue/join", turn,
                 {"Content-Type": "application/json"})[0] == 401
    form = urllib.parse.urlencode({"username": LOGIN[0], "password": "open"}).encode()
    assert fetch(anonymous, limited_server.url + "login", form)[0] == 400

    page = logged_in_page(browser, limited_server)
    expect(page.locator("#chat-input textarea")).to_be_editable()  # the chat, after the login form
    page.context.close()


def test_an_upload_over_max_file_size_is_refused_and_not_kept(limited_server, browser, tmp_path):
    opener = client(limited_server, LOGIN)
    status, body = upload(opener, limited_server, "small.wav", MB - 1024)
    assert status == 200 and Path(json.loads(body)[0]).stat().st_size == MB - 1024  # under the limit: kept
    status, body = upload(opener, limited_server, "large.wav", 2 * MB)
    assert status == 413 and b"maximum allowed size" in body
    kept = [path.name for path in limited_server.uploads.rglob("*") if path.is_file()]
    assert kept == ["small.wav"]  # not even the part of large.wav read before the limit

    (tmp_path / "large.wav").write_bytes(b"\0" * 2 * MB)  # the page says so before sending it
    page = logged_in_page(browser, limited_server)
    page.locator("#chat-input input[type=file]").set_input_files(tmp_path / "large.wav")
    expect(page.locator("[data-testid=toast-body]")).to_contain_text("exceed the maximum allowed size")
    expect(page.locator("#chat-input [aria-label='File thumbnail']")).to_have_count(0)
    page.context.close()


def test_turns_beyond_max_queue_are_refused_rather_than_queued(limited_server):
    opener = client(limited_server, LOGIN)
    session = uuid.uuid4().hex
    # Long answers (1024 tokens, many seconds each) keep the first turn generating while the others arrive.
    submit, turn = turn_request(opener, limited_server, session, "Tell me everything.", max_tokens=1024)
    replies = [fetch(opener, limited_server.url + "gradio_api/queue/join", turn, {"Content-Type": "application/json"})
               for _ in range(5)]
    statuses = [status for status, _ in replies]
    # One turn generating and one waiting (--max-queue 1) at most; the rest are refused at once (503).
    assert statuses[0] == 200 and statuses.count(200) <= 2 and 503 in statuses, statuses
    assert all(b"Queue is full" in body for status, body in replies if status == 503)
    for status, body in reversed(replies):  # the waiting turn first, then the generating one
        if status == 200:
            cancel = {"session_hash": session, "fn_index": submit, "event_id": json.loads(body)["event_id"]}
            assert fetch(opener, limited_server.url + "gradio_api/cancel", json.dumps(cancel).encode(),
                         {"Content-Type": "application/json"})[0] == 200


def test_a_malformed_auth_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:  # the command's own parser, in this process: no server starts
        cli.main(["serve", "--model", "never-loaded", "--auth", "bob-secret"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error
    assert "bob-secret" not in error  # not echoed back: it may be a mistyped password
    assert error.splitlines()[-1] == ("chatbridge serve: error: argument --auth: expected USER:PASSWORD, "
                                      "e.g. --auth alice:secret")
