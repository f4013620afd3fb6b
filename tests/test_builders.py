"""Stage-1 and MULTIS builders (`transformers_chatbridge.data.builders`, `chatbridge data build`) on tiny files
written here in each corpus's own format: rows, media paths, answers, skip accounting, loading, mixing, CLI, speed."""

import csv
import io
import json
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, IterableDataset, load_dataset

from transformers_chatbridge.data import (
    CHAT_ROW_FEATURES, load_folder_split, mix_datasets, resolve_media_paths, row_messages,
)
from transformers_chatbridge.data.builders import BUILDER_FEATURES, CaptionLimit, build_dataset, convert_conversation
from transformers_chatbridge.data.builders.templates import CAPTION, SHORT_ANSWER
from transformers_chatbridge.data.miniature import write_mp4, write_png, write_wav

LONG_CAPTION = " ".join(["word"] * 40)


def png(path: Path, colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[:] = colour
    write_png(path, pixels)
    return path


def mp4(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(4)])
    return path


def wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, 0.1 * np.sin(np.linspace(0, 440 * 2 * np.pi, 16000)).astype(np.float32))
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def built_rows(out: Path, expected_rows: int) -> list[dict]:
    """Rows of a built folder read the way the training script reads them, checked against the schema; media
    paths resolved against the folder and checked to exist."""
    dataset = load_dataset(str(out), split="train")
    assert dataset.num_rows == expected_rows
    for name, feature in CHAT_ROW_FEATURES.items():
        assert dataset.features[name] == feature
    assert dataset.features == BUILDER_FEATURES
    rows = [resolve_media_paths(row, out) for row in dataset]
    for row in rows:
        for column in ("images", "videos", "audios"):
            for path in row[column]:
                assert Path(path).is_file(), path
        row_messages(row)  # media counts agree with the columns
    return rows


def skips(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]


def only_text(message) -> str:
    return " ".join(item["text"] for item in message["content"] if item["type"] == "text")


def kinds(message) -> list[str]:
    return [item["type"] for item in message["content"]]


# ---------------------------------------------------------------------------------------------------------------
# Source fixtures in the official formats
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    names = [f"COCO_train2014_{i:012d}.jpg" for i in (9, 25, 30)]
    for name in names[:2]:  # the third image is missing on disk
        png(root / "train2014" / name)
    data = {
        "info": {}, "licenses": [],
        "images": [{"id": i, "file_name": name, "height": 16, "width": 16} for i, name in zip((9, 25, 30), names)],
        "annotations": [
            {"id": 1, "image_id": 9, "caption": "A red square on a table."},
            {"id": 2, "image_id": 9, "caption": "  Something   red.\n"},
            {"id": 3, "image_id": 25, "caption": "   "},  # empty
            {"id": 4, "image_id": 25, "caption": LONG_CAPTION},  # too long
            {"id": 5, "image_id": 30, "caption": "An image whose file is missing."},
            {"id": 6, "image_id": 99, "caption": "Unknown image id."},
        ],
    }
    return write_json(root / "annotations" / "captions_train2014.json", data), root


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    mp4(root / "001_050" / "1066686061.mp4")
    mp4(root / "001_050" / "1066686062.mp4")
    mp4(root / "video0.mp4")
    mp4(root / "video1.mp4")
    return root


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    wav(root / "180913.wav")
    wav(root / "Yabc123_30.wav")
    wav(root / "91139.flac")  # written as WAV bytes with a .flac name: only existence matters here
    return root


# ---------------------------------------------------------------------------------------------------------------
# Stage 1
# ---------------------------------------------------------------------------------------------------------------


def test_coco_stage1_rows_answers_and_skips(coco, tmp_path):
    source, root = coco
    out = tmp_path / "out"
    summary = build_dataset("stage1", "coco", source, out, media_root=root, progress=False)
    rows = built_rows(out, 2)
    assert [row["answer"] for row in rows] == ["A red square on a table.", "Something red."]
    for row in rows:
        user, assistant = row["messages"]
        assert kinds(user) == ["image"] and user["role"] == "user"  # media prefix only
        assert only_text(assistant) == row["answer"]
        assert row["task"] == "stage1-image" and row["stage"] == 1 and row["source"] == "coco"
        assert Path(row["images"][0]).name == "COCO_train2014_000000000009.jpg"
    assert summary["tasks"] == {"stage1-image": 2}
    assert summary["skipped"] == {"caption_too_long": 1, "empty_caption": 1, "missing_media": 1, "unknown_image_id": 1}
    report = {entry["record"]: entry for entry in skips(out)}
    assert report["5"]["reason"] == "missing_media" and "000000000030" in report["5"]["detail"]
    assert report["4"]["detail"] == "40 words > 32"
    # The media lived outside the output folder: they are hard-linked into it, named relative to it.
    raw = pq.read_table(next((out / "data").glob("train-*.parquet"))).to_pylist()
    assert {row["images"][0] for row in raw} == {"media/linked/train2014/COCO_train2014_000000000009.jpg"}
    assert (out / raw[0]["images"][0]).samefile(root / "train2014" / "COCO_train2014_000000000009.jpg")
    card = (out / "README.md").read_text()
    assert "data/train-*.parquet" in card and "missing_media" in card


def test_a_built_set_moves_and_publishes_with_its_media(coco, tmp_path):
    """Absolute media paths tied a built set to the builder's disk: it now holds its media and can be moved."""
    from transformers_chatbridge.hub.publish import PublishError, publish_dataset

    source, root = coco
    build_dataset("stage1", "coco", source, tmp_path / "built", media_root=root, progress=False)
    moved = tmp_path / "elsewhere" / "coco-set"
    moved.parent.mkdir()
    (tmp_path / "built").rename(moved)
    rows = built_rows(moved, 2)
    assert all(Path(row["images"][0]).is_relative_to(moved.resolve()) for row in rows)
    published = publish_dataset(moved, "org/coco-set", dry_run=tmp_path / "staged")["files"]
    assert "media/linked/train2014/COCO_train2014_000000000009.jpg" in published
    assert built_rows(tmp_path / "staged", 2)

    # `--media reference` copies nothing; its paths climb out of the folder, so publishing refuses it.
    referenced = tmp_path / "referenced"
    build_dataset("stage1", "coco", source, referenced, media_root=root, progress=False, media="reference")
    assert not (referenced / "media").exists()
    raw = pq.read_table(next((referenced / "data").glob("train-*.parquet"))).to_pylist()
    assert raw[0]["images"][0].startswith("../") and built_rows(referenced, 2)
    with pytest.raises(PublishError, match=r"column 'images' names \.\./.*COCO_train2014_000000000009\.jpg, outside"):
        publish_dataset(referenced, "org/coco-set", dry_run=tmp_path / "refused")


def test_media_of_one_name_from_two_folders_stay_apart(tmp_path):
    """Two sources' `clip.wav` both land in the set, as two files; each row keeps its own."""
    first, second = wav(tmp_path / "a" / "x" / "clip.wav"), tmp_path / "b" / "x" / "clip.wav"
    second.parent.mkdir(parents=True)
    write_json(tmp_path / "unused.json", {})
    second.write_bytes(first.read_bytes()[:-200])  # another file of the same name
    rows = [{"id": name, "audio": str(path), "caption": f"clip {name}"} for name, path in (("1", first), ("2", second))]
    source = write_json(tmp_path / "wavcaps.json", {"data": rows})
    out = tmp_path / "out"
    build_dataset("stage1", "wavcaps", source, out, progress=False)
    built = {row["answer"]: Path(row["audios"][0]) for row in built_rows(out, 2)}
    assert built["clip 1"].read_bytes() == first.read_bytes() and built["clip 2"].read_bytes() == second.read_bytes()


def test_caption_limit_truncate_and_tokenizer_counts():
    limit = CaptionLimit(5, mode="truncate")
    assert limit.apply("one two three four five six seven") == ("one two three four five", "")
    assert CaptionLimit(5).apply("one two three four five six")[0] is None

    class Chars:  # any callable tokenizer object works; here one token per character
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

        def decode(self, ids, skip_special_tokens=True):
            return "".join(map(chr, ids))

    assert CaptionLimit(4, tokenizer=Chars()).apply("abcde") == (None, "5 tokens > 4")
    assert CaptionLimit(4, tokenizer=Chars(), mode="truncate").apply("abcde")[0] == "abcd"


def test_cc3m_tsv_headerless_and_laion_parquet(tmp_path):
    root = tmp_path / "images"
    png(root / "a.jpg")
    png(root / "shard0" / "000000001.jpg")
    tsv = tmp_path / "Train_GCC-training.tsv"
    tsv.write_text(
        "a man rides a \"bike\" down the hill\thttp://example.com/img/a.jpg?size=big\n"
        "a lost picture\thttp://example.com/img/lost.jpg\n"
        "\thttp://example.com/img/a.jpg\n"
    )
    out = tmp_path / "cc3m"
    summary = build_dataset("stage1", "cc3m", tsv, out, media_root=root, progress=False)
    rows = built_rows(out, 1)
    assert rows[0]["answer"] == 'a man rides a "bike" down the hill'
    assert summary["skipped"] == {"empty_caption": 1, "missing_media": 1}
    parquet = tmp_path / "laion.parquet"
    Dataset.from_list([
        {"URL": "http://x/1.jpg", "TEXT": "a laion caption", "key": "000000001", "filepath": "shard0/000000001.jpg"},
        {"URL": "http://x/2.jpg", "TEXT": "missing", "key": "000000002", "filepath": "shard0/000000002.jpg"},
    ]).to_parquet(parquet)
    summary = build_dataset("stage1", "laion", parquet, tmp_path / "laion", media_root=root, progress=False)
    assert [row["answer"] for row in built_rows(tmp_path / "laion", 1)] == ["a laion caption"]
    assert summary["skipped"] == {"missing_media": 1}


def test_webdataset_tar_extracts_images(tmp_path):
    shard = tmp_path / "shards" / "00000.tar"
    shard.parent.mkdir()
    image = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8), (0, 128, 255)).save(image, format="JPEG")
    members = {
        "000000000.jpg": image.getvalue(), "000000000.txt": b"a blue square",
        "000000001.jpg": image.getvalue(), "000000001.json": json.dumps({"caption": "from json", "key": "1"}).encode(),
        "000000002.txt": b"caption without image",
        "000000003.jpg": image.getvalue(), "000000003.txt": b"  ",
    }
    with tarfile.open(shard, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "wds"
    summary = build_dataset("stage1", "webdataset", shard.parent, out, progress=False)
    rows = built_rows(out, 2)
    assert [row["answer"] for row in rows] == ["a blue square", "from json"]
    raw = pq.read_table(next((out / "data").glob("*.parquet"))).to_pylist()
    assert [row["images"] for row in raw] == [["media/00000/000000000.jpg"], ["media/00000/000000001.jpg"]]
    assert (out / "media" / "00000" / "000000000.jpg").read_bytes() == image.getvalue()
    assert not (out / "media" / "00000" / "000000003.jpg").exists()  # skipped samples extract nothing
    assert summary["skipped"] == {"empty_caption": 1, "no_media_in_sample": 1}


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("member", ["../x/evil", "/tmp/chatbridge-evil/evil", "a/../../evil"])
def test_webdataset_member_outside_the_output_is_refused(tmp_path, member):
    shard = _tar(tmp_path / "shards" / "00000.tar", [(f"{member}.png", b"not really a png"), (f"{member}.txt", b"hi")])
    out = tmp_path / "deep" / "wds"
    with pytest.raises(ValueError, match=rf"00000\.tar: member '{re.escape(member)}' is an absolute path or climbs"):
        build_dataset("stage1", "webdataset", shard.parent, out, progress=False)
    written = {path for path in tmp_path.rglob("*") if path.is_file()} - {shard}
    assert not any(path.suffix == ".png" for path in written), written
    assert not Path("/tmp/chatbridge-evil").exists()


def test_webdataset_never_overwrites_an_extracted_file_with_other_content(tmp_path):
    from PIL import Image

    images = []
    for colour in ((0, 128, 255), (255, 0, 0)):
        image = io.BytesIO()
        Image.new("RGB", (8, 8), colour).save(image, format="PNG")
        images.append(image.getvalue())
    # Key 0 twice, apart: the second sample's image would replace the first's.
    members = [("0.png", images[0]), ("0.txt", b"blue"), ("1.txt", b"no image"), ("0.png", images[1]), ("0.txt", b"red")]
    shard = _tar(tmp_path / "shards" / "00000.tar", members)
    out = tmp_path / "wds"
    with pytest.raises(ValueError, match=r"0\.png already exists with other content; refusing to overwrite it"):
        build_dataset("stage1", "webdataset", shard.parent, out, progress=False)
    assert (out / "media" / "00000" / "0.png").read_bytes() == images[0]


def test_webvid_csv_videos(videos, tmp_path):
    source = tmp_path / "results_2M_train.csv"
    with open(source, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["videoid", "name", "page_idx", "page_dir", "duration", "contentUrl"])
        writer.writerow(["1066686061", "Aerial shot of a winter forest", "1", "001_050", "PT00H00M11S", "https://x"])
        writer.writerow(["1066686062", "Waves, on the beach", "1", "001_050", "PT00H00M11S", "https://x"])
        writer.writerow(["1066686063", "Missing clip", "1", "001_050", "PT00H00M11S", "https://x"])
    out = tmp_path / "webvid"
    summary = build_dataset("stage1", "webvid", source, out, media_root=videos, progress=False)
    rows = built_rows(out, 2)
    assert [row["answer"] for row in rows] == ["Aerial shot of a winter forest", "Waves, on the beach"]
    assert all(kinds(row["messages"][0]) == ["video"] and row["task"] == "stage1-video" for row in rows)
    assert summary["skipped"] == {"missing_media": 1}
    assert skips(out)[0]["record"] == "1066686063"


def test_wavcaps_json_audio(audio, tmp_path):
    source = write_json(tmp_path / "fsd_final.json", {"num_captions_per_audio": 1, "data": [
        {"id": "180913", "file_name": "UK Mello.wav", "caption": "Music plays over a loud engine.", "duration": 3.0},
        {"id": "91139", "caption": "A dog barks twice.", "duration": 1.0},
        {"id": "Yabc123_30.wav", "caption": "Birds chirp.", "audio": "missing/Yabc123_30.wav"},
        {"id": "404", "caption": "No audio file."},
        {"id": "180913", "caption": ""},
    ]})
    out = tmp_path / "wavcaps"
    summary = build_dataset("stage1", "wavcaps", source, out, media_root=audio, progress=False)
    rows = built_rows(out, 3)
    assert [row["answer"] for row in rows] == ["Music plays over a loud engine.", "A dog barks twice.", "Birds chirp."]
    assert [Path(row["audios"][0]).name for row in rows] == ["180913.wav", "91139.flac", "Yabc123_30.wav"]
    assert summary["skipped"] == {"empty_caption": 1, "missing_media": 1}


# ---------------------------------------------------------------------------------------------------------------
# MULTIS
# ---------------------------------------------------------------------------------------------------------------


def test_vqav2_short_answer_rows(coco, tmp_path):
    _, root = coco
    questions = write_json(tmp_path / "v2_OpenEnded_mscoco_train2014_questions.json", {
        "data_subtype": "train2014", "task_type": "Open-Ended", "questions": [
            {"image_id": 9, "question": "What colour is the square?", "question_id": 9000},
            {"image_id": 25, "question": "Is it on a table?", "question_id": 25000},
            {"image_id": 30, "question": "Missing image?", "question_id": 30000},
            {"image_id": 9, "question": "No annotation?", "question_id": 9001},
        ]})
    annotations = write_json(tmp_path / "v2_mscoco_train2014_annotations.json", {"annotations": [
        {"question_id": q, "image_id": i, "multiple_choice_answer": a, "answer_type": "other",
         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k} for k in range(1, 11)]}
        for q, i, a in ((9000, 9, "red"), (25000, 25, "yes"), (30000, 30, "no"))
    ]})
    out = tmp_path / "vqa"
    summary = build_dataset("multis", "ti-shortqa", [questions, annotations], out, media_root=root, progress=False)
    rows = built_rows(out, 2)
    assert [row["answer"] for row in rows] == ["red", "yes"]
    for row, question in zip(rows, ("What colour is the square?", "Is it on a table?")):
        user, assistant = row["messages"]
        assert kinds(user) == ["image", "text"] and only_text(assistant) == row["answer"]
        text = only_text(user)
        assert text.startswith(question) and text.split("\n")[1] in SHORT_ANSWER
        assert row["task"] == "ti-shortqa" and row["stage"] == 2
    assert summary["skipped"] == {"missing_media": 1, "no_annotation": 1}
    again = build_dataset("multis", "ti-shortqa", [questions, annotations], tmp_path / "again", media_root=root,
                          progress=False)
    assert again["rows"] == 2
    stored = [pq.read_table(next((folder / "data").glob("*.parquet"))).to_pylist() for folder in (out, tmp_path / "again")]
    assert stored[0] == stored[1]  # templates are deterministic, media paths relative to each folder


def test_coco_image_captioning_templates(coco, tmp_path):
    source, root = coco
    out = tmp_path / "ticap"
    summary = build_dataset("multis", "ti-cap", source, out, media_root=root, progress=False)
    rows = built_rows(out, 3)  # no caption limit for MULTIS: the long caption stays
    assert [row["answer"] for row in rows] == ["A red square on a table.", "Something red.", LONG_CAPTION]
    assert all(only_text(row["messages"][0]) in CAPTION["image"] for row in rows)
    assert summary["skipped"] == {"empty_caption": 1, "missing_media": 1, "unknown_image_id": 1}
    other_seed = build_dataset("multis", "ti-cap", source, tmp_path / "seed", media_root=root, seed=7,
                               progress=False)
    assert other_seed["rows"] == 3


LLAVA = {
    "ti-det": [{"id": "000000000009", "image": "COCO_train2014_000000000009.jpg", "conversations": [
        {"from": "human", "value": "<image>\nDescribe the following image."},
        {"from": "gpt", "value": "A red square fills the picture."}]}],
    "ti-rea": [{"id": "000000000025", "image": "COCO_train2014_000000000025.jpg", "conversations": [
        {"from": "human", "value": "Why might the square be red?\n<image>"},
        {"from": "gpt", "value": "Because it was painted red."}]}],
    "ti-conv": [
        {"id": "000000000009", "image": "COCO_train2014_000000000009.jpg", "conversations": [
            {"from": "human", "value": "What is shown?\n<image>"}, {"from": "gpt", "value": "A square."},
            {"from": "human", "value": "Which colour?"}, {"from": "gpt", "value": "Red."}]},
        {"id": "000000000030", "image": "COCO_train2014_000000000030.jpg", "conversations": [
            {"from": "human", "value": "<image>\nMissing?"}, {"from": "gpt", "value": "Yes."}]},
        {"id": "bad", "image": "COCO_train2014_000000000009.jpg", "conversations": [
            {"from": "human", "value": "<image>\nOnly a question"}]},
    ],
}


@pytest.mark.parametrize("task", ["ti-det", "ti-rea", "ti-conv"])
def test_llava_instruct_conversations(coco, tmp_path, task):
    _, root = coco
    source = write_json(tmp_path / f"{task}.json", LLAVA[task])
    out = tmp_path / task
    summary = build_dataset("multis", task, source, out, media_root=root / "train2014", progress=False)
    rows = built_rows(out, 1)
    row = rows[0]
    answers = [turn["value"] for turn in LLAVA[task][0]["conversations"] if turn["from"] == "gpt"]
    assert row["answer"] == " | ".join(answers) and row["task"] == task and row["source"] == "llava"
    assert [only_text(m) for m in row["messages"] if m["role"] == "assistant"] == answers
    first = row["messages"][0]
    assert kinds(first) == ["image", "text"] and "<image>" not in only_text(first)
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"] * len(answers)
    if task == "ti-conv":
        assert kinds(row["messages"][2]) == ["text"]
        assert summary["skipped"] == {"malformed_conversation": 1, "missing_media": 1}
        assert {s["record"]: s["detail"] for s in skips(out)}["bad"] == "fewer than two turns"


def test_msrvtt_qa_and_captions(videos, tmp_path):
    qa = write_json(tmp_path / "train_qa.json", [
        {"answer": "dance", "id": 0, "question": "what are the people doing?", "video_id": 0},
        {"answer": "man", "id": 1, "question": "who is talking?", "video_id": 1},
        {"answer": "car", "id": 2, "question": "what drives?", "video_id": 7},
    ])
    summary = build_dataset("multis", "tv-shortqa", qa, tmp_path / "qa", media_root=videos, progress=False)
    rows = built_rows(tmp_path / "qa", 2)
    assert [row["answer"] for row in rows] == ["dance", "man"]
    assert kinds(rows[0]["messages"][0]) == ["video", "text"] and Path(rows[1]["videos"][0]).name == "video1.mp4"
    assert summary["skipped"] == {"missing_media": 1}
    captions = write_json(tmp_path / "train_val_videodatainfo.json", {
        "videos": [{"video_id": "video0", "category": 9}],
        "sentences": [{"caption": "people are dancing", "video_id": "video0", "sen_id": 0},
                      {"caption": "", "video_id": "video1", "sen_id": 1},
                      {"caption": "a car", "video_id": "video9", "sen_id": 2}]})
    summary = build_dataset("multis", "tv-cap", captions, tmp_path / "cap", media_root=videos, progress=False)
    rows = built_rows(tmp_path / "cap", 1)
    assert rows[0]["answer"] == "people are dancing" and only_text(rows[0]["messages"][0]) in CAPTION["video"]
    assert summary["skipped"] == {"empty_caption": 1, "missing_media": 1}


def test_audiocaps_csv(audio, tmp_path):
    source = tmp_path / "train.csv"
    source.write_text("audiocap_id,youtube_id,start_time,caption\n"
                      "91139,r1nicOVtvkQ,130,A woman talks nearby as water pours\n"
                      "58146,abc123,30,Birds chirp in the distance\n"
                      "11111,nothere,0,Missing audio\n")
    summary = build_dataset("multis", "ta-cap", source, tmp_path / "ac", media_root=audio, progress=False)
    rows = built_rows(tmp_path / "ac", 2)
    assert [row["answer"] for row in rows] == ["A woman talks nearby as water pours", "Birds chirp in the distance"]
    assert [Path(row["audios"][0]).name for row in rows] == ["91139.flac", "Yabc123_30.wav"]
    assert all(kinds(row["messages"][0]) == ["audio", "text"] for row in rows)
    assert summary["skipped"] == {"missing_media": 1}


def test_multis_release_json(coco, videos, audio, tmp_path):
    _, root = coco
    media = tmp_path / "media"
    media.mkdir()
    for name, target in (("img", root / "train2014"), ("vid", videos), ("aud", audio)):
        (media / name).symlink_to(target)
    records = [
        {"id": "av1", "task": "tva-conv", "video": "vid/video0.mp4", "audio": "aud/180913.wav", "conversations": [
            {"from": "human", "value": "<video>\n<audio>\nWhat happens?"}, {"from": "gpt", "value": "A dance."},
            {"from": "human", "value": "And the sound?"}, {"from": "gpt", "value": "Music."}]},
        {"id": "im1", "image": "img/COCO_train2014_000000000009.jpg", "conversations": [
            {"from": "human", "value": "What colour?"}, {"from": "gpt", "value": "Red."}]},
        {"id": "au1", "task": "ta-cap", "audio": "aud/91139.flac", "conversations": [
            {"from": "human", "value": "<audio>\nDescribe the sound."}, {"from": "gpt", "value": "A dog barks."}]},
        {"id": "bad1", "image": "img/COCO_train2014_000000000009.jpg", "conversations": [
            {"from": "human", "value": "<image><image> two markers"}, {"from": "gpt", "value": "?"}]},
        {"id": "bad2", "video": "vid/none.mp4", "conversations": [
            {"from": "human", "value": "<video>"}, {"from": "gpt", "value": "?"}]},
    ]
    source = write_json(tmp_path / "multis_release.json", records)
    summary = build_dataset("multis", "release", source, tmp_path / "rel", media_root=media, progress=False)
    rows = built_rows(tmp_path / "rel", 3)
    av_row, image_row, audio_row = rows
    assert av_row["task"] == "tva-conv" and av_row["modality"] == "audio-video"
    assert kinds(av_row["messages"][0]) == ["video", "audio", "text"]
    assert only_text(av_row["messages"][0]) == "What happens?"
    assert av_row["answer"] == "A dance. | Music."
    assert image_row["task"] == "multis-image" and kinds(image_row["messages"][0]) == ["image", "text"]
    assert audio_row["task"] == "ta-cap" and audio_row["answer"] == "A dog barks."
    assert summary["skipped"] == {"malformed_conversation": 1, "missing_media": 1}
    details = {entry["record"]: entry["detail"] for entry in skips(tmp_path / "rel")}
    assert details["bad1"] == "2 <image> marker(s) but 1 image file(s)"


def test_convert_conversation_rejects_bad_turn_orders():
    assert convert_conversation({"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}]},
                                {}).startswith("turn 0")
    messages, answers = convert_conversation({"conversations": [
        {"from": "system", "value": "be nice"}, {"from": "human", "value": "hi"},
        {"from": "gpt", "value": "hello"}]}, {})
    assert answers == ["hello"] and kinds(messages[0]) == ["text"]


# ---------------------------------------------------------------------------------------------------------------
# Loading, streaming, mixing; CLI; speed
# ---------------------------------------------------------------------------------------------------------------


def test_load_stream_and_mix(coco, videos, tmp_path):
    source, root = coco
    build_dataset("stage1", "coco", source, tmp_path / "a", media_root=root, progress=False)
    qa = write_json(tmp_path / "train_qa.json", [
        {"answer": f"a{i}", "id": i, "question": f"q{i}?", "video_id": i % 2} for i in range(20)])
    build_dataset("multis", "tv-shortqa", qa, tmp_path / "b", media_root=videos, shard_size=7, progress=False)
    assert len(list((tmp_path / "b" / "data").glob("train-*-of-00003.parquet"))) == 3
    a, b = load_folder_split(tmp_path / "a"), load_folder_split(tmp_path / "b")
    assert Path(a[0]["images"][0]).is_file() and b.num_rows == 20
    stream = load_folder_split(tmp_path / "b", streaming=True)
    assert isinstance(stream, IterableDataset)
    streamed = list(stream)
    assert [row["answer"] for row in streamed] == [f"a{i}" for i in range(20)]
    assert all(Path(row["videos"][0]).is_file() for row in streamed)
    mixed = mix_datasets([a, b], [1, 3], seed=0, stopping_strategy="first_exhausted", features=BUILDER_FEATURES)
    assert set(mixed["task"]) == {"stage1-image", "tv-shortqa"}
    mixed_stream = mix_datasets([load_folder_split(tmp_path / "a", streaming=True), stream], [0.5, 0.5], seed=1)
    tasks = [row["task"] for row in mixed_stream]
    assert tasks.count("tv-shortqa") == 20 and tasks.count("stage1-image") >= 2
    with pytest.raises(ValueError, match="weight"):
        mix_datasets([a, b], weights=[1])


def test_cli_build_in_a_real_subprocess(coco, tmp_path, capsys):
    source, root = coco
    out = tmp_path / "cli"
    command = [sys.executable, "-m", "transformers_chatbridge.cli", "data", "build", "--kind", "stage1", "--task",
               "coco", "--source", str(source), "--media-root", str(root), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "stage1 coco: 2 rows, 4 source records skipped" in result.stdout
    assert "skipped (missing_media): 1" in result.stdout and "rows/s" in result.stdout
    assert "record" in result.stderr  # the progress bar
    assert len(skips(out)) == 4 and built_rows(out, 2)
    from transformers_chatbridge.cli import main  # the error paths, in process (a subprocess costs ~5 s)

    with pytest.raises(SystemExit) as exit_info:
        main(command[3:])
    assert exit_info.value.code == 2 and "not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(command[3:8] + ["nope"] + command[9:] + ["--overwrite"])
    assert exit_info.value.code == 2 and "unknown stage1 task 'nope'" in capsys.readouterr().err


def test_throughput_on_synthetic_records(tmp_path):
    """Rows/s of each builder on a few thousand synthetic records (media files are empty placeholders: the
    builders check existence only, except WebDataset which writes each image)."""
    n = 3000
    media = tmp_path / "media"
    (media / "train2014").mkdir(parents=True)
    for i in range(n // 5):
        (media / "train2014" / f"COCO_train2014_{i:012d}.jpg").touch()
    for i in range(100):
        (media / f"video{i}.mp4").touch()
        (media / f"{i}.wav").touch()
    coco = write_json(tmp_path / "captions_train2014.json", {
        "images": [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg"} for i in range(n // 5)],
        "annotations": [{"id": k, "image_id": k % (n // 5), "caption": f"caption number {k}"} for k in range(n)]})
    tsv = tmp_path / "cc.tsv"
    tsv.write_text("caption\timage\n" + "".join(
        f"caption {k}\ttrain2014/COCO_train2014_{k % (n // 5):012d}.jpg\n" for k in range(n)))
    tar_path = tmp_path / "shard.tar"
    with tarfile.open(tar_path, "w") as tar:
        for k in range(n):
            for extension, data in (("jpg", b"\xff\xd8jpeg"), ("txt", f"caption {k}".encode())):
                info = tarfile.TarInfo(f"{k:09d}.{extension}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    webvid = tmp_path / "webvid.csv"
    webvid.write_text("videoid,name,page_dir\n" + "".join(f"video{k % 100},clip {k},\n" for k in range(n)))
    wavcaps = write_json(tmp_path / "wavcaps.json", {"data": [{"id": str(k % 100), "caption": f"sound {k}"}
                                                               for k in range(n)]})
    questions = write_json(tmp_path / "q_questions.json", {"data_subtype": "train2014", "questions": [
        {"image_id": k % (n // 5), "question": f"question {k}?", "question_id": k} for k in range(n)]})
    answers = write_json(tmp_path / "a_annotations.json", {"annotations": [
        {"question_id": k, "multiple_choice_answer": f"a{k}"} for k in range(n)]})
    llava = write_json(tmp_path / "llava.json", [
        {"id": str(k), "image": f"train2014/COCO_train2014_{k % (n // 5):012d}.jpg", "conversations": [
            {"from": "human", "value": "<image>\nq?"}, {"from": "gpt", "value": "a."},
            {"from": "human", "value": "q2?"}, {"from": "gpt", "value": "b."}]} for k in range(n)])
    msrvtt = write_json(tmp_path / "train_qa.json", [
        {"answer": "x", "id": k, "question": "q?", "video_id": k % 100} for k in range(n)])
    audiocaps = tmp_path / "audiocaps.csv"
    audiocaps.write_text("audiocap_id,youtube_id,start_time,caption\n" + "".join(
        f"{k % 100},,,sound {k}\n" for k in range(n)))
    jobs = [
        ("stage1", "coco", coco), ("stage1", "cc3m", tsv), ("stage1", "webdataset", tar_path),
        ("stage1", "webvid", webvid), ("stage1", "wavcaps", wavcaps), ("multis", "ti-shortqa", [questions, answers]),
        ("multis", "ti-cap", coco), ("multis", "ti-conv", llava), ("multis", "tv-shortqa", msrvtt),
        ("multis", "ta-cap", audiocaps),
    ]
    report = []
    for kind, task, source in jobs:
        start = time.perf_counter()
        summary = build_dataset(kind, task, source, tmp_path / f"out-{task}", media_root=media, progress=False)
        seconds = time.perf_counter() - start
        assert summary["rows"] == n and summary["skipped_total"] == 0, (task, summary)
        report.append(f"{kind:6s} {task:10s} {summary['rows']:5d} rows {n / seconds:8.0f} records/s")
    print("\nbuilder throughput (records/s, end to end incl. Parquet write):\n" + "\n".join(report))


def test_built_rows_feed_the_collator(coco, videos, audio, tiny, tmp_path):
    """Rows of three builders (stage-1 image, LLaVA conversation, release audio-video) collate into one batch with
    every answer labelled."""
    from transformers_chatbridge.data import IGNORE_INDEX, ChatBridgeDataCollator

    source, root = coco
    build_dataset("stage1", "coco", source, tmp_path / "s1", media_root=root, progress=False)
    conv = write_json(tmp_path / "conv.json", LLAVA["ti-conv"][:1])
    build_dataset("multis", "ti-conv", conv, tmp_path / "conv", media_root=root / "train2014", progress=False)
    release = write_json(tmp_path / "rel.json", [{"id": "av", "task": "tva-cap", "video": str(videos / "video0.mp4"),
                                                  "audio": str(audio / "180913.wav"), "conversations": [
        {"from": "human", "value": "<video>\n<audio>\nDescribe."}, {"from": "gpt", "value": "A dance."}]}])
    build_dataset("multis", "release", release, tmp_path / "rel", progress=False)
    rows = [load_folder_split(tmp_path / name)[0] for name in ("s1", "conv", "rel")]
    _, processor = tiny
    batch = ChatBridgeDataCollator(processor, max_length=512)(rows)
    assert batch["input_ids"].shape[0] == 3
    assert batch["pixel_values"].shape[0] == 2 and batch["pixel_values_videos"].shape[0] == 1
    assert batch["input_features"].shape[0] == 1
    tokenizer = processor.tokenizer
    labelled = [tokenizer.decode(ids[labels != IGNORE_INDEX])
                for ids, labels in zip(batch["input_ids"], batch["labels"])]
    assert "A red square on a table." in labelled[0]
    assert "A square." in labelled[1] and "Red." in labelled[1]
    assert "A dance." in labelled[2]
