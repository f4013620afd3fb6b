"""The benchmarks added to `chatbridge eval` (Flickr30K, NoCaps, OK-VQA, GQA, MSVD-QA, MSR-VTT and VATEX captioning,
Clotho, VALOR-32K, MUSIC-AVQA, AVSD): each loader on small files written here in the benchmark's official format with
real media files, its prompts and metrics, one run of each on the tiny random model, and resuming with other settings.
"""

import argparse
import json
import logging
import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from transformers_chatbridge.inference.batch import InputError
from transformers_chatbridge.evaluation import TASKS, evaluate, get_task
from transformers_chatbridge.cli import eval as eval_cli
from transformers_chatbridge.evaluation.benchmarks import load_vqav2
from transformers_chatbridge.evaluation.benchmarks.audio_video import fill_template, music_avqa_answer
from transformers_chatbridge.evaluation.metrics import load_metric
from transformers_chatbridge.processing_chatbridge import ChatBridgeProcessor
from transformers_chatbridge.testing import tiny_chatbridge

from sample_media import write_mp4, write_tone

SHORT = "Answer the question using a single word or phrase."
MAX_NEW_TOKENS = 3


# ---------------------------------------------------------------------------------------------------------------
# Media
# ---------------------------------------------------------------------------------------------------------------


def _jpg(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path)
    return path


def _frames(level, count=8):
    return [np.full((32, 32, 3), (level + 20 * index) % 256, dtype=np.uint8) for index in range(count)]


def write_av_clip(path, level=0, frequency=440.0, seconds=1.0, rate=16000):
    """An mp4 with an H.264 video stream and an AAC sound track (a tone), as a YouTube or Charades clip has."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=4)
        video.height = video.width = 32
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for frame in _frames(level):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        wave = (0.3 * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate)).astype(np.float32)
        for start in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for stream in (audio, video):
            for packet in stream.encode():
                container.mux(packet)
    return path


def _captions(word, count):
    return [f"A {word} thing number {index}." for index in range(count)]


# ---------------------------------------------------------------------------------------------------------------
# Official formats
# ---------------------------------------------------------------------------------------------------------------

FLICKR_IMAGES = (("1000092795.jpg", "red", "test"), ("10002456.jpg", "green", "test"),
                 ("1000268201.jpg", "blue", "train"), ("1000344755.jpg", "white", "val"),
                 ("1000366164.jpg", "black", "test"))  # fmt: skip


def write_flickr30k(root):
    """Karpathy's dataset_flickr30k.json (3 test images, a train and a val one), images in flickr30k-images/."""
    images = []
    for index, (name, colour, split) in enumerate(FLICKR_IMAGES):
        _jpg(root / "flickr30k-images" / name, colour)
        raws = _captions(colour, 5)
        sentences = [{"tokens": raw.lower().rstrip(".").split(), "raw": f" {raw} ", "imgid": index,
                      "sentid": 5 * index + k} for k, raw in enumerate(raws)]  # fmt: skip
        images.append({"sentids": [s["sentid"] for s in sentences], "imgid": index, "sentences": sentences,
                       "split": split, "filename": name})  # fmt: skip
    (root / "dataset_flickr30k.json").write_text(json.dumps({"images": images, "dataset": "flickr30k"}))


NOCAPS_IMAGES = ((0, "0013ea2087020901", "in-domain", "red"), (1, "00223d0f4bc4f1a2", "near-domain", "green"),
                 (2, "0036d1a1d2a5e2b9", "out-domain", "blue"))  # fmt: skip


def write_nocaps(root):
    """nocaps_val_4500_captions.json (COCO style, 10 captions per image), images in validation/."""
    images, annotations = [], []
    for image_id, open_images_id, domain, colour in NOCAPS_IMAGES:
        _jpg(root / "validation" / f"{open_images_id}.jpg", colour)
        images.append({"id": image_id, "open_images_id": open_images_id, "file_name": f"{open_images_id}.jpg",
                       "height": 30, "width": 40, "domain": domain, "license": 2, "date_captured": "2018-11-06",
                       "coco_url": f"https://s3.amazonaws.com/nocaps/val/{open_images_id}.jpg"})  # fmt: skip
        annotations += [{"image_id": image_id, "id": 10 * image_id + k, "caption": caption}
                        for k, caption in enumerate(_captions(colour, 10))]  # fmt: skip
    info = {"description": "nocaps validation", "version": "0.1", "year": 2018}
    document = {"licenses": [], "info": info, "images": images, "annotations": annotations}
    (root / "nocaps_val_4500_captions.json").write_text(json.dumps(document))


def write_okvqa(root):
    """OK-VQA's OpenEnded_mscoco_val2014_questions.json + mscoco_val2014_annotations.json (5 answers, each twice)."""
    for image_id, colour in ((297147, "red"), (393225, "blue")):
        _jpg(root / "val2014" / f"COCO_val2014_{image_id:012d}.jpg", colour)
    qa = [(297147, 2971475, "What sport can you use this for?", "race", "one"),
          (297147, 2971476, "Which animal is this?", "cat", "eight"),
          (393225, 3932255, "What is this made of?", "wood", "other")]  # fmt: skip
    questions = {"license": {}, "data_subtype": "val2014", "task_type": "Open-Ended", "data_type": "mscoco",
                 "info": {}, "questions": [{"image_id": i, "question": text, "question_id": q}
                                           for i, q, text, _, _ in qa]}  # fmt: skip
    annotations = {"license": {}, "data_subtype": "val2014", "data_type": "mscoco", "info": {}, "annotations": [
        {"image_id": i, "question_id": q, "question_type": kind, "answer_type": "other", "confidence": 3,
         "answers": [{"answer_id": k + 1, "raw_answer": answer + ("s" if k % 2 else ""), "answer_confidence": "yes",
                      "answer": answer if k < 8 else "other"} for k in range(10)]}
        for i, q, _, answer, kind in qa]}  # fmt: skip
    (root / "OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps(questions))
    (root / "mscoco_val2014_annotations.json").write_text(json.dumps(annotations))


def write_gqa(root):
    """GQA's testdev_balanced_questions.json (a dict by question id), images in images/."""
    for image_id, colour in (("n161313", "red"), ("n235859", "green")):
        _jpg(root / "images" / f"{image_id}.jpg", colour)
    rows = [("20968379", "n161313", "Is the sky dark?", "no", "verify", "attr"),
            ("201307251", "n161313", "What is on the table?", "cup", "query", "rel"),
            ("202228637", "n235859", "Is the cup to the left or right of the plate?", "left", "choose", "rel")]
    questions = {
        question_id: {"semantic": [{"operation": "select", "dependencies": [], "argument": "sky (2486325)"}],
                      "entailed": [], "equivalent": [question_id], "question": question, "imageId": image_id,
                      "isBalanced": True, "groups": {"global": None, "local": "06-sky_dark"}, "answer": answer,
                      "semanticStr": "select: sky", "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
                      "types": {"detailed": f"{structural}Attr", "semantic": semantic, "structural": structural},
                      "fullAnswer": f"The answer is {answer}."}
        for question_id, image_id, question, answer, structural, semantic in rows
    }  # fmt: skip
    (root / "testdev_balanced_questions.json").write_text(json.dumps(questions))


MSVD_CLIPS = (("-4wsuPCjDBc_5_15", 1), ("-7KMZQEsJW4_205_208", 2), ("00jrXRMlZOY_0_10", 3))


def write_msvd_qa(root):
    """MSVD-QA: test_qa.json, youtube_mapping.txt and the MSVD clips YouTubeClips/<clip>.avi."""
    for clip, number in MSVD_CLIPS:
        write_mp4(root / "YouTubeClips" / f"{clip}.avi", _frames(number * 50), fps=4)
    (root / "youtube_mapping.txt").write_text("".join(f"{clip} vid{number}\n" for clip, number in MSVD_CLIPS))
    entries = [{"answer": "man", "id": 30933, "question": "who is slicing a tomato?", "video_id": 1},
               {"answer": "slice", "id": 30934, "question": "what does a man do?", "video_id": 1},
               {"answer": "cat", "id": 30935, "question": "what is playing with a ball?", "video_id": 3}]
    (root / "test_qa.json").write_text(json.dumps(entries))


def write_msrvtt_caption(root):
    """MSR-VTT's test_videodatainfo.json (20 captions per video), videos in TestVideo/."""
    videos, sentences = [], []
    for number in (7010, 7011, 7012):
        write_mp4(root / "TestVideo" / f"video{number}.mp4", _frames(number % 7 * 30), fps=4)
        videos.append({"category": 9, "url": f"https://www.youtube.com/watch?v=x{number}", "video_id":
                       f"video{number}", "start time": 1.0, "end time": 11.0, "split": "test", "id": number})
        sentences += [{"caption": caption.lower().rstrip("."), "video_id": f"video{number}",
                       "sen_id": 20 * number + k} for k, caption in enumerate(_captions(str(number), 20))]
    info = {"contributor": "Microsoft MSM group", "year": "2016", "version": "1.0"}
    (root / "test_videodatainfo.json").write_text(json.dumps({"info": info, "videos": videos,
                                                              "sentences": sentences}))  # fmt: skip


VATEX_IDS = ("G9zN5TTuGO4_000179_000189", "-Ptf_2VRj-V_000122_000132", "gone1234567_000010_000020")


def write_vatex(root):
    """VATEX vatex_public_test_english_v1.1.json; the first clip by its videoID, the second by its YouTube id,
    the third absent."""
    write_mp4(root / "videos" / f"{VATEX_IDS[0]}.mp4", _frames(10), fps=4)
    write_mp4(root / "videos" / f"{VATEX_IDS[1][:11]}.mp4", _frames(90), fps=4)
    entries = [{"videoID": video_id, "enCap": _captions(f"clip{index}", 10)}
               for index, video_id in enumerate(VATEX_IDS)]  # fmt: skip
    (root / "vatex_public_test_english_v1.1.json").write_text(json.dumps(entries))


CLOTHO_FILES = ("Santa Motor.wav", "Flipping Pages.wav", "Water_Lapping_01.wav")


def write_clotho(root):
    """Clotho clotho_captions_evaluation.csv (5 captions per clip) and evaluation/<file_name>."""
    lines = ["file_name,caption_1,caption_2,caption_3,caption_4,caption_5"]
    for index, name in enumerate(CLOTHO_FILES):
        write_tone(root / "evaluation" / name, 300 + 200 * index, seconds=0.5)
        lines.append(",".join([name] + [f'"A sound, number {k} of clip {index}."' for k in range(5)]))
    (root / "clotho_captions_evaluation.csv").write_text("\n".join(lines) + "\n")


VALOR_IDS = ("x-2Abohj8VY_30.000_40.000", "abcdefghijk_10.000_20.000", "silentvideo_0.000_10.000",
             "siblingwav0_0.000_10.000", "missingclip_0.000_10.000")  # fmt: skip


def write_valor32k(root):
    """VALOR-32K desc_test.json: a clip with its sound track, a silent clip whose sound track was extracted to
    audio/, a silent clip, one whose sound track was extracted next to it, and an absent one."""
    write_av_clip(root / "videos" / f"{VALOR_IDS[0]}.mp4", level=20, frequency=500)
    write_mp4(root / "videos" / f"{VALOR_IDS[1]}.mp4", _frames(100), fps=4)
    write_tone(root / "audio" / f"{VALOR_IDS[1]}.wav", 700)
    write_mp4(root / "videos" / f"{VALOR_IDS[2]}.mp4", _frames(200), fps=4)
    write_mp4(root / "videos" / f"{VALOR_IDS[3]}.mp4", _frames(60), fps=4)
    write_tone(root / "videos" / f"{VALOR_IDS[3]}.flac", 250)
    entries = [{"video_id": video_id, "desc": f"With music playing, clip {index} is shown."}
               for index, video_id in enumerate(VALOR_IDS)]  # fmt: skip
    (root / "desc_test.json").write_text(json.dumps(entries))


MUSIC_AVQA_ROWS = (
    ("00000823", 1, '["Audio", "Counting"]', "How many instruments are sounding in the video?", "[]", "two"),
    ("00000823", 2, '["Audio-Visual", "Temporal"]', "Where is the first sounding instrument?", "[]", "left"),
    ("00001234", 3, '["Audio-Visual", "Existential"]', "Is the <Object> in the video always playing?",
     "['acoustic_guitar']", "yes"),
    ("00001234", 4, '["Audio", "Comparative"]', "Is the <Object> louder than the <Object>?",
     '["piano", "violin"]', "no"),
)  # fmt: skip


def write_music_avqa(root):
    """MUSIC-AVQA avqa-test.json (`anser`, sic) and MUSIC-AVQA-videos-Real/<video_id>.mp4 with sound."""
    write_av_clip(root / "MUSIC-AVQA-videos-Real" / "00000823.mp4", level=30, frequency=330)
    write_av_clip(root / "MUSIC-AVQA-videos-Real" / "00001234.mp4", level=90, frequency=880)
    entries = [{"video_id": video_id, "question_id": question_id, "type": kind, "question_content": question,
                "templ_values": values, "question_deleted": 0, "anser": answer}
               for video_id, question_id, kind, question, values, answer in MUSIC_AVQA_ROWS]  # fmt: skip
    (root / "avqa-test.json").write_text(json.dumps(entries))


AVSD_DIALOGS = [
    {"image_id": "0KZH5", "summary": "A man opens a door.", "caption": "A man walks in and opens a door.",
     "dialog": [{"question": "is there audio ?", "answer": "yes , a man is talking ."},
                {"question": "what does he do ?", "answer": "he opens a door ."},
                {"question": "does he leave ?", "answer": "__UNDISCLOSED__"}]},
    {"image_id": "1XSD4", "summary": "A woman reads.", "caption": "A woman sits and reads a book.",
     "dialog": [{"question": "how many people are there ?", "answer": "__UNDISCLOSED__"}]},
]  # fmt: skip
AVSD_REFERENCES = {"0KZH5": [f"yes he leaves , answer {k} ." for k in range(6)],
                   "1XSD4": [f"just one woman , answer {k} ." for k in range(6)]}  # fmt: skip


def write_avsd(root, references="multiref"):
    """AVSD test_set4DSTC7-AVSD.json (the withheld answers `__UNDISCLOSED__`), the DSTC7 evaluation package's
    test_set4DSTC7-AVSD_multiref.json (COCO style, `<video>_<turn>` names) or lbl_test_set4DSTC7-AVSD.json, and the
    Charades clips Charades_v1_480/<image_id>.mp4 with sound."""
    write_av_clip(root / "Charades_v1_480" / "0KZH5.mp4", level=40, frequency=300)
    write_av_clip(root / "Charades_v1_480" / "1XSD4.mp4", level=160, frequency=600)
    (root / "test_set4DSTC7-AVSD.json").write_text(json.dumps({"type": "test", "version": "DSTC7",
                                                                "dialogs": AVSD_DIALOGS}))  # fmt: skip
    if references == "multiref":
        images = [{"name": "0KZH5_2", "id": 1}, {"name": "1XSD4_0", "id": 2}]
        annotations = [{"image_id": image_id, "caption": caption, "id": 10 * image_id + k}
                       for image_id, video in ((1, "0KZH5"), (2, "1XSD4"))
                       for k, caption in enumerate(AVSD_REFERENCES[video])]  # fmt: skip
        document = {"info": {}, "licenses": [], "type": "captions", "images": images, "annotations": annotations}
        (root / "test_set4DSTC7-AVSD_multiref.json").write_text(json.dumps(document))
    elif references == "labelled":
        labelled = json.loads(json.dumps(AVSD_DIALOGS))
        labelled[0]["dialog"][2]["answer"] = "yes he leaves ."
        labelled[1]["dialog"][0]["answer"] = "just one woman ."
        (root / "lbl_test_set4DSTC7-AVSD.json").write_text(json.dumps({"type": "test", "dialogs": labelled}))


WRITERS = {
    "flickr30k": write_flickr30k, "nocaps": write_nocaps, "okvqa": write_okvqa, "gqa": write_gqa,
    "msvd_qa": write_msvd_qa, "msrvtt_caption": write_msrvtt_caption, "vatex": write_vatex, "clotho": write_clotho,
    "valor32k": write_valor32k, "music_avqa": write_music_avqa, "avsd": write_avsd,
}  # fmt: skip
EXPECTED_SAMPLES = {"flickr30k": 3, "nocaps": 3, "okvqa": 3, "gqa": 3, "msvd_qa": 3, "msrvtt_caption": 3, "vatex": 2,
                    "clotho": 3, "valor32k": 4, "music_avqa": 4, "avsd": 2}  # fmt: skip
EXPECTED_METRICS = {"flickr30k": ("cider", "bleu4"), "nocaps": ("cider", "bleu4"), "okvqa": ("vqa_accuracy",),
                    "gqa": ("exact_match",), "msvd_qa": ("exact_match",), "msrvtt_caption": ("cider", "bleu4"),
                    "vatex": ("cider", "bleu4"), "clotho": ("cider",), "valor32k": ("cider", "bleu4"),
                    "music_avqa": ("classification_accuracy",), "avsd": ("cider", "bleu4")}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny model and every new benchmark's files, each in its own folder."""
    root = tmp_path_factory.mktemp("benchmarks")
    tiny_chatbridge(save_dir=root / "model")
    for name, write in WRITERS.items():
        (root / name).mkdir()
        write(root / name)
    return root


def load(world, task):
    return get_task(task).loader(world / task)


# ---------------------------------------------------------------------------------------------------------------
# Loaders: samples, references, media, groups, prompts and metrics
# ---------------------------------------------------------------------------------------------------------------


def test_registry_prompts_and_metrics():
    assert set(WRITERS) <= set(TASKS)
    for name, metrics in EXPECTED_METRICS.items():
        assert get_task(name).metrics == metrics, name
    for name in ("flickr30k", "nocaps"):
        assert get_task(name).prompt == "Write a short caption for this image."
    for name in ("msrvtt_caption", "vatex"):
        assert get_task(name).prompt == "Write a short caption for this video."
    assert get_task("clotho").prompt == get_task("audiocaps").prompt == "Write a short caption for this audio."
    for name in ("okvqa", "gqa", "msvd_qa", "music_avqa"):
        assert get_task(name).prompt == f"{{question}} {SHORT}" and get_task(name).max_new_tokens == 10
    assert {get_task(name).modality for name in ("valor32k", "music_avqa", "avsd")} == {"audio-video"}
    # the old module's names still import from the package
    assert load_vqav2 is get_task("vqav2").loader


def test_flickr30k(world):
    samples = load(world, "flickr30k")
    assert [s.id for s in samples] == ["1000092795", "10002456", "1000366164"]  # the train and val images left out
    assert samples[0].references == _captions("red", 5)  # raw sentences, stripped
    assert samples[2].media == {"images": [str(world / "flickr30k" / "flickr30k-images" / "1000366164.jpg")]}
    assert samples[0].question is None and samples[0].group is None
    assert get_task("flickr30k").format_prompt(samples[0]) == "Write a short caption for this image."


def test_nocaps(world):
    samples = load(world, "nocaps")
    assert [s.id for s in samples] == ["0", "1", "2"]
    assert [s.group for s in samples] == ["in-domain", "near-domain", "out-domain"]
    assert samples[1].references == _captions("green", 10)
    assert samples[1].media["images"] == [str(world / "nocaps" / "validation" / "00223d0f4bc4f1a2.jpg")]


def test_okvqa(world):
    samples = load(world, "okvqa")
    assert [s.id for s in samples] == ["2971475", "2971476", "3932255"]
    assert [s.group for s in samples] == ["Vehicles and Transportation", "Plants and Animals", "Other"]
    assert samples[1].references == ["cat"] * 8 + ["other"] * 2  # the `answer` fields, not `raw_answer`
    assert samples[2].media["images"] == [str(world / "okvqa" / "val2014" / "COCO_val2014_000000393225.jpg")]
    assert get_task("okvqa").format_prompt(samples[1]) == f"Which animal is this? {SHORT}"
    assert get_task("okvqa").postprocess("Cats.\nThey purr.") == "cats"


def test_gqa(world):
    samples = load(world, "gqa")
    assert [s.id for s in samples] == ["20968379", "201307251", "202228637"]
    assert [s.references for s in samples] == [["no"], ["cup"], ["left"]]
    assert [s.group for s in samples] == ["verify", "query", "choose"]
    assert samples[2].media["images"] == [str(world / "gqa" / "images" / "n235859.jpg")]
    assert get_task("gqa").format_prompt(samples[0]) == f"Is the sky dark? {SHORT}"


def test_msvd_qa(world):
    samples = load(world, "msvd_qa")
    assert [s.id for s in samples] == ["30933", "30934", "30935"]
    clips = [Path(s.media["videos"][0]) for s in samples]
    assert [clip.name for clip in clips] == ["-4wsuPCjDBc_5_15.avi"] * 2 + ["00jrXRMlZOY_0_10.avi"]
    assert all(clip.is_file() for clip in clips)
    assert [s.group for s in samples] == ["who", "what", "what"] and samples[0].references == ["man"]
    assert get_task("msvd_qa").format_prompt(samples[0]) == f"who is slicing a tomato? {SHORT}"


def test_msvd_qa_needs_the_mapping(tmp_path):
    write_msvd_qa(tmp_path)
    (tmp_path / "youtube_mapping.txt").unlink()
    with pytest.raises(FileNotFoundError, match="youtube_mapping.txt"):
        get_task("msvd_qa").loader(tmp_path)


def test_msrvtt_caption(world):
    samples = load(world, "msrvtt_caption")
    assert [s.id for s in samples] == ["video7010", "video7011", "video7012"]
    assert len(samples[0].references) == 20 and samples[0].references[0] == "a 7010 thing number 0"
    assert samples[1].media["videos"] == [str(world / "msrvtt_caption" / "TestVideo" / "video7011.mp4")]


def test_msrvtt_caption_split_files(tmp_path):
    """A file of every split (MSRVTT_data.json) gives its test split; train_val_videodatainfo.json alone has none."""
    videos = [{"video_id": f"video{n}", "split": split, "id": n}
              for n, split in ((1, "train"), (6600, "validate"), (7010, "test"))]  # fmt: skip
    sentences = [{"video_id": f"video{n}", "caption": f"caption {n}", "sen_id": n} for n in (1, 6600, 7010)]
    (tmp_path / "train_val_videodatainfo.json").write_text(json.dumps({"videos": videos[:2], "sentences": sentences}))
    with pytest.raises(FileNotFoundError, match="test_videodatainfo.json"):
        get_task("msrvtt_caption").loader(tmp_path)
    (tmp_path / "MSRVTT_data.json").write_text(json.dumps({"videos": videos, "sentences": sentences}))
    (sample,) = get_task("msrvtt_caption").loader(tmp_path)
    assert sample.id == "video7010" and sample.references == ["caption 7010"]
    assert sample.media["videos"] == [str(tmp_path / "video7010.mp4")]  # absent: reported by the runner


def test_vatex(world, caplog):
    with caplog.at_level(logging.WARNING):
        samples = load(world, "vatex")
    assert [s.id for s in samples] == list(VATEX_IDS[:2])  # the absent clip is left out, with a warning
    assert "1 of 3 clips" in caplog.text
    assert samples[1].media["videos"] == [str(world / "vatex" / "videos" / "-Ptf_2VRj-V.mp4")]
    assert samples[0].references == _captions("clip0", 10)


def test_clotho(world):
    samples = load(world, "clotho")
    assert [s.id for s in samples] == list(CLOTHO_FILES)
    assert samples[0].references == [f"A sound, number {k} of clip 0." for k in range(5)]
    assert samples[0].media == {"audio": [str(world / "clotho" / "evaluation" / "Santa Motor.wav")]}
    assert get_task("clotho").format_prompt(samples[0]) == "Write a short caption for this audio."


def test_valor32k(world, caplog):
    with caplog.at_level(logging.WARNING):
        samples = load(world, "valor32k")
    folder = world / "valor32k"
    assert [s.id for s in samples] == list(VALOR_IDS[:4]) and "1 of 5 clips" in caplog.text
    with_sound = str(folder / "videos" / f"{VALOR_IDS[0]}.mp4")
    assert samples[0].media == {"videos": [with_sound], "audio": [with_sound]}  # the video's own sound track
    assert samples[1].media["audio"] == [str(folder / "audio" / f"{VALOR_IDS[1]}.wav")]  # the extracted one
    assert samples[2].media == {"videos": [str(folder / "videos" / f"{VALOR_IDS[2]}.mp4")]}  # no sound track
    assert samples[3].media["audio"] == [str(folder / "videos" / f"{VALOR_IDS[3]}.flac")]  # next to the video
    assert samples[0].references == ["With music playing, clip 0 is shown."]
    assert get_task("valor32k").format_prompt(samples[0]) == "Write a short caption for this video and its sound."


def test_music_avqa(world):
    samples = load(world, "music_avqa")
    assert [s.id for s in samples] == ["1", "2", "3", "4"]
    assert [s.question for s in samples[2:]] == ["Is the acoustic guitar in the video always playing?",
                                                 "Is the piano louder than the violin?"]  # fmt: skip
    assert [s.group for s in samples] == ["Audio/Counting", "Audio-Visual/Temporal", "Audio-Visual/Existential",
                                          "Audio/Comparative"]  # fmt: skip
    assert samples[0].references == ["two"] and samples[0].choices == ("two", "left", "yes", "no")
    video = str(world / "music_avqa" / "MUSIC-AVQA-videos-Real" / "00000823.mp4")
    assert samples[0].media == {"videos": [video], "audio": [video]}
    task = get_task("music_avqa")
    assert task.format_prompt(samples[0]) == f"How many instruments are sounding in the video? {SHORT}"
    assert task.postprocess("2 instruments.\nA cello and a piano.") == "two instruments"
    metric = load_metric("classification_accuracy")
    scores = metric.compute(predictions=["two instruments", "on the left", "Yes", "10"],
                            references=["two", "left", "yes", "no"], class_names=list(samples[0].choices))
    assert scores["accuracy"] == pytest.approx(0.75)


def test_music_avqa_helpers():
    assert fill_template("Is the <LL_Instrument> on the left of the <RL>?", ["electric_bass", "drum"]) == (
        "Is the electric bass on the left of the drum?"
    )
    assert fill_template("Where is <Object>?", []) == "Where is <Object>?"
    assert music_avqa_answer("There are 3 of them") == "there are three of them"
    assert music_avqa_answer("10.") == "ten" and music_avqa_answer("12") == "12"


def test_avsd(world):
    samples = load(world, "avsd")
    assert [s.id for s in samples] == ["0KZH5_2", "1XSD4_0"]
    first, second = samples
    assert first.question == "does he leave ?" and first.references == AVSD_REFERENCES["0KZH5"]
    assert first.history == (
        ("is there audio ?", "yes , a man is talking ."), ("what does he do ?", "he opens a door .")
    )
    assert second.history == () and second.references == AVSD_REFERENCES["1XSD4"]
    video = str(world / "avsd" / "Charades_v1_480" / "0KZH5.mp4")
    assert first.media == {"videos": [video], "audio": [video]}
    task = get_task("avsd")
    assert task.format_prompt(first) == "does he leave ? Answer in one sentence."
    # the earlier turns are chat turns; the media open the first user turn, as "a video and its background audio"
    chat = task.pipeline_inputs(first)
    processor = ChatBridgeProcessor.from_pretrained(world / "model")
    prompt = processor.apply_chat_template(chat.messages, add_generation_prompt=True)
    assert prompt == (
        "###Human: Given following video: <video> and its background audio: <audio>.###Human: is there audio ?"
        "###Assistant: yes , a man is talking .###Human: what does he do ?###Assistant: he opens a door ."
        "###Human: does he leave ? Answer in one sentence.###Assistant:"
    )
    assert task.pipeline_inputs(second) == {"text": "how many people are there ? Answer in one sentence.",
                                            "videos": [str(world / "avsd" / "Charades_v1_480" / "1XSD4.mp4")],
                                            "audio": [str(world / "avsd" / "Charades_v1_480" / "1XSD4.mp4")]}


def test_avsd_references(tmp_path):
    """Without the multi-reference file the labelled test file answers; without either the loader says what to add."""
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    write_avsd(labelled, references="labelled")
    samples = get_task("avsd").loader(labelled)
    assert [s.references for s in samples] == [["yes he leaves ."], ["just one woman ."]]
    bare = tmp_path / "bare"
    bare.mkdir()
    write_avsd(bare, references=None)
    with pytest.raises(FileNotFoundError, match="test_set4DSTC7-AVSD_multiref.json"):
        get_task("avsd").loader(bare)


# ---------------------------------------------------------------------------------------------------------------
# Each benchmark end to end on the tiny model
# ---------------------------------------------------------------------------------------------------------------


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("task", sorted(WRITERS))
def test_benchmark_end_to_end(world, tmp_path, task):
    """Each format runs through the pipeline (images, .avi and .mp4 videos, sound tracks read from videos, chats) and
    scores exactly what the metric modules give on the written predictions."""
    out = tmp_path / "out"
    results = evaluate(world / "model", task, world / task, out, batch_size=2, max_new_tokens=MAX_NEW_TOKENS,
                       progress=False)  # fmt: skip
    records = read_lines(out / "predictions.jsonl")
    assert len(records) == EXPECTED_SAMPLES[task] == results["counts"]["samples"]
    assert results["counts"]["errors"] == 0, [record.get("error") for record in records]
    assert [record["line"] for record in records] == list(range(1, len(records) + 1))
    predictions = [record["prediction"] for record in records]
    references = [record["references"] for record in records]
    expected = {}
    for name in EXPECTED_METRICS[task]:
        if name == "classification_accuracy":
            classes = list(dict.fromkeys(row[-1] for row in MUSIC_AVQA_ROWS))
            expected.update(load_metric(name).compute(predictions=predictions, references=[r[0] for r in references],
                                                      class_names=classes))  # fmt: skip
        else:
            expected.update(load_metric(name).compute(predictions=predictions, references=references))
    assert {key: results["metrics"][key] for key in expected} == pytest.approx(expected, abs=1e-9)
    if task == "avsd":
        assert records[0]["history"] == [[turn["question"], turn["answer"]] for turn in AVSD_DIALOGS[0]["dialog"][:2]]
        assert "history" not in records[1]
    if task in ("nocaps", "okvqa", "gqa", "music_avqa"):
        assert set(results["groups"]) == {record["group"] for record in records}


# ---------------------------------------------------------------------------------------------------------------
# Resuming with other settings
# ---------------------------------------------------------------------------------------------------------------


def test_resume_refuses_other_settings(world, tmp_path, capsys):
    out = tmp_path / "out"
    model = world / "model"
    evaluate(model, "gqa", world / "gqa", out, limit=1, batch_size=1, max_new_tokens=2, progress=False)
    stored = json.loads((out / "settings.json").read_text())
    assert stored["generation"]["max_new_tokens"] == 2 and {"do_sample", "num_beams"} <= set(stored["generation"])
    assert stored["model"] == str(model) and "model_revision" in stored
    # another answer length or another model: refused before anything is loaded or written, naming the setting
    with pytest.raises(InputError, match=r"generation\.max_new_tokens: was 2, now 3"):
        evaluate(model, "gqa", world / "gqa", out, limit=2, max_new_tokens=3, progress=False)
    with pytest.raises(InputError, match=r"model: was '.*model', now '.*other-model'"):
        evaluate(tmp_path / "other-model", "gqa", world / "gqa", out, limit=2, max_new_tokens=2, progress=False)
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    args = parser.parse_args(["--model", str(model), "--task", "gqa", "--data-dir", str(world / "gqa"), "--limit", "3",
                              "--batch-size", "1", "--output", str(out), "--max-new-tokens", "5"])  # fmt: skip
    assert eval_cli.run(args) == 2
    error = capsys.readouterr().err
    assert "begun with other settings" in error and "generation.max_new_tokens: was 2, now 5" in error
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 1
    # the same settings continue it: another batch size, the model folder by another path
    same_model = Path(os.path.relpath(model))
    results = evaluate(same_model, "gqa", world / "gqa", out, limit=2, batch_size=2, max_new_tokens=2, progress=False)
    assert results["counts"]["resumed"] == 1 and results["counts"]["generated_now"] == 1
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "settings.json").read_text()) == stored  # the file keeps the settings it began with
    # a rerun that answers nothing reports the settings the predictions were made with, and only for those settings
    again = evaluate(same_model, "gqa", world / "gqa", out, limit=2, max_new_tokens=2, progress=False)
    assert again["counts"]["generated_now"] == 0 and again["metrics"] == results["metrics"]
    assert again["settings"]["model"] == str(model) and again["settings"]["generation"] == stored["generation"]
    with pytest.raises(InputError, match=r"model: was '.*model', now 'no-such-model'; .*generation\.max_new_tokens"):
        evaluate("no-such-model", "gqa", world / "gqa", out, limit=2, max_new_tokens=9, progress=False)
    # an output folder from before settings.json: results.json's settings are the stored ones
    (out / "settings.json").unlink()
    with pytest.raises(InputError, match=r"generation\.max_new_tokens: was 2, now 4"):
        evaluate(model, "gqa", world / "gqa", out, limit=3, max_new_tokens=4, progress=False)
