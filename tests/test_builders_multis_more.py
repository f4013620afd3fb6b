"""The MULTIS builders of Visual Genome QA (ti-normalqa), TextCaps / OCR-VQA (ti-ocr), Video-ChatGPT VideoInstruct100K
(tv-det / tv-rea / tv-conv), VALOR-32K and AVSD (tva-cap / tva-det / tva-conv), on tiny files written here in each
source's own format with real media files: rows, media columns, tasks, skip counts and reasons, the CLI once."""

import json
import time
from pathlib import Path

import av
import numpy as np
import pytest
from datasets import load_dataset
from PIL import Image

from sample_media import write_mp4, write_tone
from transformers_chatbridge.data import resolve_media_paths, row_messages
from transformers_chatbridge.data.builders import BUILDER_FEATURES, BUILDERS, MULTIS_TASKS, build_dataset
from transformers_chatbridge.data.builders.multis_audio_video import has_audio_track
from transformers_chatbridge.data.builders.multis_video import is_descriptive
from transformers_chatbridge.data.builders.templates import CAPTION, DETAIL, NORMAL_QA, OCR_CAPTION, OCR_QA


def jpg(path: Path, colour="red") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 16), colour).save(path)
    return path


def write_mp4_with_audio(path: Path, seconds: float = 1.0, rate: int = 16000, fps: int = 10) -> Path:
    """An H.264 + AAC mp4: 10 grey frames and a 440 Hz tone (what a downloaded clip with sound looks like)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.height, video.width, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for index in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), index * 20, np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)).astype(np.float32)
        sound = av.AudioFrame.from_ndarray(wave[None], format="fltp", layout="mono")
        sound.sample_rate = rate
        for stream, item in ((audio, sound), (audio, None), (video, None)):
            for packet in stream.encode(item):
                container.mux(packet)
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def built_rows(out: Path, expected_rows: int) -> list[dict]:
    """Rows as the training script reads them: schema checked, media paths resolved and existing, media items in
    `messages` agreeing with the media columns."""
    dataset = load_dataset(str(out), split="train")
    assert dataset.num_rows == expected_rows and dataset.features == BUILDER_FEATURES
    rows = [resolve_media_paths(row, out) for row in dataset]
    for row in rows:
        for column in ("images", "videos", "audios"):
            assert all(Path(path).is_file() for path in row[column]), row[column]
        row_messages(row)
    return rows


def skips(out: Path) -> dict[str, dict]:
    return {entry["record"]: entry for entry in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())}


def text_of(message) -> str:
    return " ".join(item["text"] for item in message["content"] if item["type"] == "text")


def kinds(message) -> list[str]:
    return [item["type"] for item in message["content"]]


def test_every_multis_task_has_a_dedicated_builder():
    names = {task: BUILDERS["multis"][task].__name__ for task in MULTIS_TASKS}
    assert names["ti-normalqa"] == "build_visual_genome" and names["ti-ocr"] == "build_ocr"
    assert {names[t] for t in ("tv-det", "tv-rea", "tv-conv")} == {"build_video_instruct"}
    assert {names[t] for t in ("tva-cap", "tva-det", "tva-conv")} == {"build_audio_video"}
    assert list(BUILDERS["multis"])[:-1] == list(MULTIS_TASKS) and "release" in BUILDERS["multis"]
    for templates in (NORMAL_QA, OCR_CAPTION, OCR_QA, CAPTION["audio-video"], DETAIL["audio-video"]):
        assert len(templates) >= 4 and len(set(templates)) == len(templates)


# ---------------------------------------------------------------------------------------------------------------
# ti-normalqa: Visual Genome question_answers.json
# ---------------------------------------------------------------------------------------------------------------


def test_visual_genome_qa(tmp_path):
    root = tmp_path / "vg"
    jpg(root / "VG_100K" / "1.jpg")
    jpg(root / "VG_100K_2" / "2.jpg", "blue")
    qa = [
        {"id": 1, "qas": [
            {"a_objects": [], "question": "What color is the clock?", "image_id": 1, "qa_id": 986768,
             "answer": "Green.", "q_objects": []},
            {"question": "Where are the people?", "image_id": 1, "qa_id": 986769, "answer": "On the sidewalk."},
            {"question": "What is it?", "image_id": 1, "qa_id": 986770, "answer": "  "},
        ]},
        {"id": 2, "qas": [{"question": "Why is it blue?", "image_id": 2, "qa_id": 5, "answer": "It is painted."}]},
        {"id": 3, "qas": [{"question": "Is it missing?", "image_id": 3, "qa_id": 6, "answer": "Yes."}]},
        {"id": 4},
    ]
    source = write_json(root / "question_answers.json", qa)
    out = tmp_path / "out"
    summary = build_dataset("multis", "ti-normalqa", root, out, media_root=root, progress=False)  # a folder source
    rows = built_rows(out, 3)
    assert summary["tasks"] == {"ti-normalqa": 3}
    assert summary["skipped"] == {"empty_text": 1, "malformed_record": 1, "missing_media": 1}
    assert [row["answer"] for row in rows] == ["Green.", "On the sidewalk.", "It is painted."]
    for row in rows:
        user, assistant = row["messages"]
        assert kinds(user) == ["image", "text"] and text_of(assistant) == row["answer"]
        question, instruction = text_of(user).split("\n")
        assert question.endswith("?") and instruction in NORMAL_QA
        assert row["task"] == "ti-normalqa" and row["modality"] == "image" and row["source"] == "visual-genome"
    assert rows[0]["id"] == "visual-genome-ti-normalqa-986768"
    assert Path(rows[0]["images"][0]).parent.name == "VG_100K"
    assert Path(rows[2]["images"][0]).parent.name == "VG_100K_2"
    report = skips(out)
    assert report["6"]["reason"] == "missing_media" and "3.jpg" in report["6"]["detail"]
    assert report["986770"]["reason"] == "empty_text" and report["image #3"]["reason"] == "malformed_record"
    assert all(entry["source"] == str(source) for entry in report.values())


# ---------------------------------------------------------------------------------------------------------------
# ti-ocr: TextCaps and OCR-VQA
# ---------------------------------------------------------------------------------------------------------------


def test_textcaps_and_ocr_vqa(tmp_path):
    root = tmp_path / "ocr"
    jpg(root / "train_images" / "011e7e629fb9ae7b.jpg")
    jpg(root / "images" / "1234.jpg")
    jpg(root / "images" / "77.png")
    entry = {"image_id": "011e7e629fb9ae7b", "image_classes": ["Poster"], "flickr_original_url": "x",
             "image_width": 24, "image_height": 16, "set_name": "train", "image_name": "011e7e629fb9ae7b",
             "image_path": "train/011e7e629fb9ae7b.jpg", "reference_tokens": []}
    refs = ["A poster that says SALE.", "A red sign reading SALE."]
    textcaps = write_json(root / "TextCaps_0.1_train.json", {"dataset_type": "train", "dataset_name": "textcaps",
                                                             "dataset_version": "0.1", "data": [
        {**entry, "caption_id": 1, "caption_str": refs[0], "caption_tokens": [], "reference_strs": refs},
        {**entry, "caption_id": 2, "caption_str": refs[1], "caption_tokens": [], "reference_strs": refs},
        {**entry, "caption_id": 3, "caption_str": " ", "reference_strs": refs},
        {**entry, "image_id": "ffff", "image_path": "train/ffff.jpg", "caption_id": 4, "caption_str": "Gone."},
        {**entry, "image_id": "eeee", "image_path": "train/eeee.jpg"},  # test-style entry: no caption
    ]})
    book = {"imageURL": "http://ecx.images-amazon.com/images/I/51x.jpg", "title": "Tiny Book",
            "authorName": "A. Writer", "genre": "Reference", "split": 1}
    ocr_vqa = write_json(root / "dataset.json", {
        "1234": {**book, "questions": ["Who wrote this book?", "What is the title of this book?"],
                 "answers": ["A. Writer", "Tiny Book"]},
        "77": {**book, "imageURL": "http://x/77.png", "questions": ["Is this a comic book?", "Extra?"],
               "answers": ["No"]},
        "999": {**book, "questions": ["Who wrote this book?"], "answers": ["Nobody"]},  # image not downloaded
        "555": {**book, "split": 3, "questions": ["Q?", "R?"], "answers": ["a", "b"]},  # test split
    })
    out = tmp_path / "out"
    summary = build_dataset("multis", "ti-ocr", [textcaps, ocr_vqa], out, media_root=root, progress=False)
    rows = built_rows(out, 5)
    assert summary["tasks"] == {"ti-ocr": 5}
    assert summary["skipped"] == {"empty_caption": 1, "malformed_record": 1, "missing_media": 2, "no_caption": 1,
                                  "other_split": 2}
    textcaps_rows = [row for row in rows if row["source"] == "textcaps"]
    assert [row["answer"] for row in textcaps_rows] == refs
    assert all(text_of(row["messages"][0]) in OCR_CAPTION for row in textcaps_rows)
    assert all(Path(row["images"][0]).name == "011e7e629fb9ae7b.jpg" for row in textcaps_rows)
    assert textcaps_rows[0]["id"] == "textcaps-ti-ocr-011e7e629fb9ae7b#1"
    vqa_rows = {row["id"]: row for row in rows if row["source"] == "ocr-vqa"}
    assert set(vqa_rows) == {"ocr-vqa-ti-ocr-1234#0", "ocr-vqa-ti-ocr-1234#1", "ocr-vqa-ti-ocr-77#0"}
    row = vqa_rows["ocr-vqa-ti-ocr-1234#1"]
    question, instruction = text_of(row["messages"][0]).split("\n")
    assert question == "What is the title of this book?" and instruction in OCR_QA and row["answer"] == "Tiny Book"
    assert Path(vqa_rows["ocr-vqa-ti-ocr-77#0"]["images"][0]).name == "77.png"  # extension from imageURL
    report = skips(out)
    assert report["77#1"]["reason"] == "malformed_record" and "2 questions but 1 answers" in report["77#1"]["detail"]
    assert report["999#0"]["reason"] == "missing_media" and report["ffff#4"]["reason"] == "missing_media"
    assert report["555#0"]["reason"] == report["555#1"]["reason"] == "other_split"
    assert report["eeee"]["reason"] == "no_caption"
    # `--split test` keeps OCR-VQA's split 3 only; any other split name keeps every split
    test = build_dataset("multis", "ti-ocr", ocr_vqa, tmp_path / "test", media_root=root, split="test",
                         progress=False)
    assert test["rows"] == 0 and test["skipped"] == {"other_split": 5, "missing_media": 2}
    everything = build_dataset("multis", "ti-ocr", ocr_vqa, tmp_path / "all", media_root=root, split="all",
                               progress=False)
    assert everything["rows"] == 3 and everything["skipped"]["missing_media"] == 3


# ---------------------------------------------------------------------------------------------------------------
# tv-det / tv-rea / tv-conv: VideoInstruct100K
# ---------------------------------------------------------------------------------------------------------------

VIDEO_INSTRUCT = [
    {"video_id": "v_k_ZXmr8pmrs", "q": "Can you describe the video in detail?", "a": "A man sets up a camera."},
    {"video_id": "v_k_ZXmr8pmrs", "q": "Why does the man adjust the tripod?", "a": "To level the shot."},
    {"video_id": "v_k_ZXmr8pmrs", "q": "What happens in the video?", "a": "Someone films."},
    {"video_id": "v_k_ZXmr8pmrs", "q": "What color is the camera?", "a": "Black."},
    {"video_id": "v_k_ZXmr8pmrs", "q": "How many people appear?", "a": "One."},
    {"video_id": "v_abc", "q": "Summarize the video.", "a": "A dog runs."},
    {"video_id": "v_abc", "q": "What does the dog chase?", "a": " "},
    {"video_id": "v_missing", "q": "Why is it raining?", "a": "It is a storm."},
    {"q": "no video id", "a": "x"},
]


@pytest.fixture(scope="module")
def video_instruct(tmp_path_factory):
    root = tmp_path_factory.mktemp("anet")
    write_mp4(root / "v_k_ZXmr8pmrs.mp4")
    write_mp4(root / "videos" / "abc.mp4")  # a downloader that drops the v_ prefix, in a videos/ folder
    return write_json(root / "VideoInstruct100K.json", VIDEO_INSTRUCT), root


def test_descriptive_rule():
    assert is_descriptive("Can you provide a detailed description of the video?")
    assert is_descriptive("What is happening in this clip?") and is_descriptive("Give me an overview of the events.")
    assert not is_descriptive("Why does the man adjust the tripod?")
    assert not is_descriptive("Can you describe the man's shirt?")  # not about the whole video


@pytest.mark.parametrize("task", ["tv-det", "tv-rea"])
def test_video_instruct_single_turn(video_instruct, task, tmp_path):
    source, root = video_instruct
    out = tmp_path / task
    summary = build_dataset("multis", task, source, out, media_root=root, progress=False)
    descriptive = {"#0", "#2", "#5"}
    expected = [item for index, item in enumerate(VIDEO_INSTRUCT[:6])
                if (f"#{index}" in descriptive) == (task == "tv-det")]
    rows = built_rows(out, len(expected))
    assert [row["answer"] for row in rows] == [item["a"] for item in expected]
    for row, item in zip(rows, expected):
        user, assistant = row["messages"]
        assert kinds(user) == ["video", "text"] and text_of(user) == item["q"]  # questions kept as written
        assert text_of(assistant) == item["a"] and row["videos"] and not row["images"] and not row["audios"]
        assert row["task"] == task and row["modality"] == "video" and row["source"] == "video-chatgpt"
    # the rule runs before the media look-up: v_missing's question is a reasoning one, so tv-det counts it as
    # other_task and tv-rea as missing_media
    assert summary["skipped"] == ({"empty_text": 1, "malformed_record": 1, "other_task": 4} if task == "tv-det"
                                  else {"empty_text": 1, "malformed_record": 1, "missing_media": 1, "other_task": 3})
    report = skips(out)
    assert report["v_abc#6"]["reason"] == "empty_text" and report["#8"]["reason"] == "malformed_record"
    assert {entry["detail"] for entry in report.values() if entry["reason"] == "other_task"} == {
        "tv-rea" if task == "tv-det" else "tv-det"}
    assert summary["rows"] + summary["skipped_total"] == len(VIDEO_INSTRUCT)


def test_video_instruct_conversations(video_instruct, tmp_path):
    source, root = video_instruct
    out = tmp_path / "conv"
    summary = build_dataset("multis", "tv-conv", source, out, media_root=root, progress=False)
    rows = built_rows(out, 3)  # 5 pairs of one video -> 3 + 2, and one pair of the other
    assert summary["skipped"] == {"empty_text": 1, "malformed_record": 1, "missing_media": 1}
    assert [row["id"] for row in rows] == ["video-chatgpt-tv-conv-v_k_ZXmr8pmrs/0",
                                           "video-chatgpt-tv-conv-v_k_ZXmr8pmrs/1", "video-chatgpt-tv-conv-v_abc/0"]
    first = rows[0]["messages"]
    assert [m["role"] for m in first] == ["user", "assistant"] * 3
    assert kinds(first[0]) == ["video", "text"] and kinds(first[2]) == ["text"]  # the video opens the first turn
    assert [text_of(m) for m in first[1::2]] == [item["a"] for item in VIDEO_INSTRUCT[:3]]
    assert rows[0]["answer"] == " | ".join(item["a"] for item in VIDEO_INSTRUCT[:3])
    assert len(rows[1]["messages"]) == 4 and rows[1]["videos"] == rows[0]["videos"]
    assert Path(rows[2]["videos"][0]).samefile(root / "videos" / "abc.mp4")  # linked into the set
    paired = sum(len(row["messages"]) // 2 for row in rows)
    assert paired + summary["skipped_total"] == len(VIDEO_INSTRUCT)  # every pair is in a row or counted


# ---------------------------------------------------------------------------------------------------------------
# tva-cap / tva-det / tva-conv: VALOR-32K and AVSD
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def av_media(tmp_path_factory):
    root = tmp_path_factory.mktemp("av")
    write_mp4(root / "Charades_v1_480" / "QRTRY.mp4")  # silent video with a sibling wav
    write_tone(root / "Charades_v1_480" / "QRTRY.wav")
    write_mp4_with_audio(root / "SOUND.mp4")  # the audio comes from the video's own track
    write_mp4(root / "MUTE.mp4")  # no audio track, no wav: skipped
    write_mp4(root / "videos" / "-0a5AwF0zK0_30.000_40.000.mp4")
    write_tone(root / "audio" / "-0a5AwF0zK0_30.000_40.000.wav")  # audio in media_root/audio/
    return root


AVSD = {"dialogs": [
    {"image_id": "QRTRY", "summary": "A man walks in, sneezes and sits down.", "caption": "A man enters a room.",
     "dialog": [{"question": "is there sound?", "answer": "yes, he sneezes loudly"},
                {"question": "does he talk?", "answer": "no, he does not"}]},
    {"image_id": "SOUND", "summary": "", "caption": "A woman cooks.",
     "dialog": [{"question": "what does she cook?", "answer": "soup"}]},
    {"image_id": "MUTE", "summary": "Quiet.", "caption": "Nothing.",
     "dialog": [{"question": "anything?", "answer": "no"}]},
    {"image_id": "GONE", "summary": "s", "caption": "c", "dialog": [{"question": "q", "answer": "a"}]},
    {"image_id": "QRTRY", "summary": " ", "caption": "",
     "dialog": [{"question": "what?", "answer": "__UNDISCLOSED__"}]},
]}


@pytest.mark.parametrize("task", ["tva-cap", "tva-det", "tva-conv"])
def test_avsd(av_media, task, tmp_path):
    source = write_json(tmp_path / "train_set4DSTC7-AVSD.json", AVSD)
    out = tmp_path / "out"
    summary = build_dataset("multis", task, source, out, media_root=av_media, progress=False)
    rows = built_rows(out, 2)
    expected = {"tva-cap": ["A man enters a room.", "A woman cooks."],
                "tva-det": ["A man enters a room. A man walks in, sneezes and sits down.", "A woman cooks."],
                "tva-conv": ["yes, he sneezes loudly | no, he does not", "soup"]}[task]
    assert [row["answer"] for row in rows] == expected
    for row in rows:
        assert row["modality"] == "audio-video" and row["task"] == task and row["source"] == "avsd"
        assert kinds(row["messages"][0])[:2] == ["video", "audio"] and len(row["videos"]) == len(row["audios"]) == 1
    assert Path(rows[0]["audios"][0]).name == "QRTRY.wav" and Path(rows[0]["videos"][0]).parent.name == (
        "Charades_v1_480")
    assert rows[1]["audios"] == rows[1]["videos"]  # the MP4's own audio track
    if task == "tva-conv":
        assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"] * 2
        assert text_of(rows[0]["messages"][0]) == "is there sound?" and kinds(rows[0]["messages"][2]) == ["text"]
    else:
        templates = CAPTION["audio-video"] if task == "tva-cap" else DETAIL["audio-video"]
        assert all(text_of(row["messages"][0]) in templates for row in rows)
    last = {"tva-conv": "malformed_conversation"}.get(task, "empty_caption")
    assert summary["skipped"] == {"missing_media": 2, last: 1}
    report = [entry for entry in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())]
    details = {entry["record"]: entry["detail"] for entry in report if entry["reason"] == "missing_media"}
    assert "MUTE.mp4 has no audio track" in details["MUTE"] and "no video" in details["GONE"]


def test_audio_video_rows_feed_the_collator(av_media, tiny, tmp_path):
    """AVSD conversation rows (one with a sibling wav, one whose audio is the MP4's own track) collate into a batch
    with every answer labelled."""
    from transformers_chatbridge.data import IGNORE_INDEX, ChatBridgeDataCollator
    from transformers_chatbridge.data import load_folder_split

    source = write_json(tmp_path / "train_set4DSTC7-AVSD.json", AVSD)
    build_dataset("multis", "tva-conv", source, tmp_path / "out", media_root=av_media, progress=False)
    rows = list(load_folder_split(tmp_path / "out"))
    _, processor = tiny
    batch = ChatBridgeDataCollator(processor, max_length=512)(rows)
    assert batch["pixel_values_videos"].shape[0] == 2 and batch["input_features"].shape[0] == 2
    labelled = [processor.tokenizer.decode(ids[labels != IGNORE_INDEX])
                for ids, labels in zip(batch["input_ids"], batch["labels"])]
    assert "yes, he sneezes loudly" in labelled[0] and "no, he does not" in labelled[0] and "soup" in labelled[1]


def test_valor(av_media, tmp_path):
    write_json(tmp_path / "desc_train.json", [
        {"video_id": "-0a5AwF0zK0_30.000_40.000", "desc": "A man speaks while a car engine roars."},
        {"video_id": "SOUND", "desc": "A woman cooks as a pan sizzles."},
        {"video_id": "MUTE", "desc": "Silence."},
        {"video_id": "SOUND", "desc": "  "},
        {"desc": "no id"},
    ])
    out = tmp_path / "valor"
    summary = build_dataset("multis", "tva-cap", tmp_path, out, media_root=av_media, progress=False)  # folder
    rows = built_rows(out, 2)
    assert summary["skipped"] == {"empty_caption": 1, "malformed_record": 1, "missing_media": 1}
    assert [row["answer"] for row in rows] == ["A man speaks while a car engine roars.",
                                               "A woman cooks as a pan sizzles."]
    assert Path(rows[0]["audios"][0]).samefile(av_media / "audio" / "-0a5AwF0zK0_30.000_40.000.wav")
    assert rows[1]["audios"] == rows[1]["videos"] and rows[0]["source"] == "valor"
    assert all(text_of(row["messages"][0]) in CAPTION["audio-video"] for row in rows)
    with pytest.raises(ValueError, match="build tva-cap from it"):
        build_dataset("multis", "tva-det", tmp_path / "desc_train.json", tmp_path / "det", media_root=av_media,
                      progress=False)


def test_mp4_audio_track_is_read_by_the_feature_extractor(av_media):
    """Why the video itself may serve as the audio item: the BEATs feature extractor decodes its AAC track."""
    from transformers_chatbridge.feature_extraction_beats import BeatsFeatureExtractor

    assert has_audio_track(av_media / "SOUND.mp4") and not has_audio_track(av_media / "MUTE.mp4")
    assert not has_audio_track(av_media / "audio" / "nothing.wav")
    features = BeatsFeatureExtractor()([str(av_media / "SOUND.mp4")])
    assert features["input_features"].shape[0] == 1 and features["input_features_mask"].any()


def test_conversation_json_still_accepted(av_media, tmp_path):
    source = write_json(tmp_path / "tva.json", [{"id": "c1", "video": "SOUND.mp4", "audio": "SOUND.mp4",
                                                 "conversations": [{"from": "human", "value": "<video><audio>Hi?"},
                                                                   {"from": "gpt", "value": "Cooking."}]}])
    summary = build_dataset("multis", "tva-conv", source, tmp_path / "out", media_root=av_media, progress=False)
    row = built_rows(tmp_path / "out", 1)[0]
    assert summary["tasks"] == {"tva-conv": 1} and row["modality"] == "audio-video" and row["answer"] == "Cooking."


def test_cli_selects_the_new_builders(video_instruct, tmp_path, capsys):
    from transformers_chatbridge.cli import main

    source, root = video_instruct
    out = tmp_path / "cli"
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "build", "--kind", "multis", "--task", "tv-conv", "--source", str(source), "--media-root",
              str(root), "--out", str(out), "--quiet"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "multis tv-conv: 3 rows, 3 source records skipped" in printed and "skipped (missing_media): 1" in printed
    assert json.loads((out / "summary.json").read_text())["tasks"] == {"tv-conv": 3}
    assert "| tv-conv | 3 |" in (out / "README.md").read_text()


def test_throughput(tmp_path):
    """Records/s of the new builders on a few thousand synthetic records (empty placeholder media files: the
    builders check existence; the audio-video ones find sibling wavs, so no file is opened)."""
    n = 3000
    media = tmp_path / "media"
    (media / "VG_100K").mkdir(parents=True)
    for i in range(100):
        for name in (f"VG_100K/{i}.jpg", f"{i}.jpg", f"v_{i}.mp4", f"c{i}.mp4", f"c{i}.wav"):
            (media / name).touch()
    jobs = {
        "ti-normalqa": write_json(tmp_path / "question_answers.json", [
            {"id": i, "qas": [{"qa_id": i * 30 + k, "image_id": i, "question": "q?", "answer": "a."}
                              for k in range(n // 100)]} for i in range(100)]),
        "ti-ocr": write_json(tmp_path / "dataset.json", {str(i): {
            "imageURL": "x.jpg", "split": 1, "questions": ["q?"] * (n // 100), "answers": ["a"] * (n // 100)}
            for i in range(100)}),
        "tv-conv": write_json(tmp_path / "VideoInstruct100K.json", [
            {"video_id": f"v_{k % 100}", "q": "Why?", "a": "Because."} for k in range(n)]),
        "tva-cap": write_json(tmp_path / "desc_train.json", [{"video_id": f"c{k % 100}", "desc": "d"}
                                                              for k in range(n)]),
        "tva-conv": write_json(tmp_path / "train_set4DSTC7-AVSD.json", {"dialogs": [
            {"image_id": f"c{k % 100}", "dialog": [{"question": "q", "answer": "a"}] * 10} for k in range(n)]}),
    }
    report = []
    for task, source in jobs.items():
        start = time.perf_counter()
        summary = build_dataset("multis", task, source, tmp_path / task, media_root=media, progress=False)
        seconds = time.perf_counter() - start
        assert summary["skipped_total"] == 0 and summary["rows"] > 0, (task, summary)
        report.append(f"{task:12s} {n:5d} records {n / seconds:8.0f} records/s")
    print("\nnew MULTIS builder throughput (records/s, end to end incl. Parquet write):\n" + "\n".join(report))
