"""DecodedMediaCache: decoded files reused while active, never stale, never changing what the processors return."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from transformers_chatbridge.data import ChatBridgeDataCollator, make_row
from transformers_chatbridge.image_processing_chatbridge import load_image
from transformers_chatbridge.media_cache import DecodedMediaCache, active_media_cache
from transformers_chatbridge.testing import tiny_chatbridge
from transformers_chatbridge.video_processing_chatbridge import ChatBridgeVideoProcessor, read_video

from sample_media import write_mp4, write_sample_media, write_tone


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = write_sample_media(tmp_path_factory.mktemp("cache-media"))
    frames = [np.full((24, 24, 3), (index * 30, 255 - index * 30, 90), dtype=np.uint8) for index in range(8)]
    write_mp4(folder / "colours.mp4", frames, fps=4)
    return folder


def test_inactive_unless_entered():
    cache = DecodedMediaCache(2**20)
    assert active_media_cache() is None
    with cache.active():
        assert active_media_cache() is cache
    assert active_media_cache() is None


def test_max_bytes_must_be_positive():
    with pytest.raises(ValueError, match="max_bytes"):
        DecodedMediaCache(0)


def test_an_image_is_decoded_once_and_each_caller_gets_its_own_copy(media):
    cache = DecodedMediaCache(2**20)
    with cache.active():
        first = load_image(str(media / "red.png"))
        first.paste((0, 255, 0), (0, 0, 10, 10))  # a caller changing its image changes no one else's
        second = load_image(media / "red.png")
    assert (cache.misses, cache.hits) == (1, 1)
    assert np.array_equal(np.asarray(second), np.asarray(load_image(str(media / "red.png"))))
    assert np.asarray(second)[0, 0].tolist() == [255, 0, 0]


def test_a_rewritten_file_is_decoded_again(tmp_path):
    path = tmp_path / "picture.png"
    Image.new("RGB", (20, 20), "red").save(path)
    cache = DecodedMediaCache(2**20)
    with cache.active():
        assert np.asarray(load_image(str(path)))[0, 0].tolist() == [255, 0, 0]
        Image.new("RGB", (20, 20), "blue").save(path)
        status = os.stat(path)
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))  # same size, later time
        assert np.asarray(load_image(str(path)))[0, 0].tolist() == [0, 0, 255]
    assert cache.misses == 2


def test_bytes_and_arrays_are_not_kept(media):
    cache = DecodedMediaCache(2**20)
    with cache.active():
        load_image((media / "red.png").read_bytes())
        load_image(np.zeros((4, 4, 3), dtype=np.uint8))
    assert (cache.misses, cache.hits, cache.stored_bytes) == (0, 0, 0)


def test_a_full_cache_still_decodes_what_it_cannot_keep(media):
    red_bytes = 40 * 30 * 3
    cache = DecodedMediaCache(red_bytes)
    with cache.active():
        for _ in range(2):
            load_image(str(media / "red.png"))
            blue = load_image(str(media / "blue.png"))
    assert cache.stored_bytes == red_bytes
    assert (cache.misses, cache.hits) == (3, 1)  # blue did not fit: decoded both times
    assert np.asarray(blue)[0, 0].tolist() == [0, 0, 255]


def test_video_frames_are_read_once_per_choice_of_frames(media):
    path = str(media / "colours.mp4")
    processor = ChatBridgeVideoProcessor(num_frames=4, size={"height": 24, "width": 24})
    uncached = processor(videos=[path], return_tensors="pt")["pixel_values_videos"]
    cache = DecodedMediaCache(2**20)
    with cache.active():
        batches = [processor(videos=[path, path], return_tensors="pt")["pixel_values_videos"] for _ in range(2)]
        stats = {}
        frames, metadata = read_video(path, lambda metadata, **_: [1, 2], stats=stats)
    assert all(torch.equal(batch[index], uncached[0]) for batch in batches for index in range(2))
    assert (cache.misses, cache.hits) == (2, 3)  # the 4 uniform frames once, then frames 1 and 2 once
    assert stats["decoded_frames"] > 0 and metadata.frames_indices == [1, 2]
    assert np.array_equal(frames, read_video(path, lambda metadata, **_: [1, 2])[0])


def test_random_frame_sampling_draws_the_same_frames_with_and_without_the_cache(media):
    path = str(media / "colours.mp4")
    processor = ChatBridgeVideoProcessor(num_frames=4, frame_sampling="segment_random", size={"height": 24, "width": 24})

    def draws():
        torch.manual_seed(0)
        return [processor(videos=[path], return_tensors="pt")["pixel_values_videos"] for _ in range(6)]

    plain = draws()
    cache = DecodedMediaCache(2**20)
    with cache.active():
        cached = draws()
    assert all(torch.equal(a, b) for a, b in zip(plain, cached))
    assert cache.hits > 0  # 6 draws of 4 frames among 2 per group: some choices repeat
    assert len({tuple(batch.flatten()[:4].tolist()) for batch in plain}) > 1  # and the draws differ


def test_a_collator_with_the_cache_gives_the_same_batches(media):
    _, processor = tiny_chatbridge()
    image, video, audio = str(media / "red.png"), str(media / "clip.mp4"), str(write_tone(media / "low.wav", 220.0))

    def row(kinds, question, answer, **files):
        content = [*({"type": kind} for kind in kinds), {"type": "text", "text": question}]
        messages = [
            {"role": "user", "content": content},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]
        return make_row(messages, **files)

    rows = [
        row(["image"], "What colour?", "Red.", images=[image]),
        row(["video"], "What happens?", "It gets brighter.", videos=[video]),
        row(["video", "audio"], "What is heard?", "A low tone.", videos=[video], audios=[audio]),
        row(["image"], "What shape?", "A rectangle.", images=[image]),
    ]
    plain = ChatBridgeDataCollator(processor, pack=True)
    cached = ChatBridgeDataCollator(processor, pack=True, media_cache_bytes=2**20)
    for batch in (rows, rows[::-1], rows):
        expected, found = plain(batch), cached(batch)
        assert expected.keys() == found.keys()
        for key, value in expected.items():
            assert torch.equal(value, found[key]) if torch.is_tensor(value) else value == found[key], key
    assert cached.media_cache.misses == 2 and cached.media_cache.hits == 10  # one image, one video (4 frames)
    assert active_media_cache() is None
    with pytest.raises(ValueError, match="media_cache_bytes"):
        ChatBridgeDataCollator(processor, media_cache_bytes=-1)


def test_evaluation_with_the_cache_gives_the_same_predictions(tmp_path):
    from transformers_chatbridge.data.miniature import build_miniature
    from transformers_chatbridge.evaluation.runner import evaluate

    tiny_chatbridge(save_dir=tmp_path / "model")
    build_miniature(tmp_path / "world", size=4, seed=0, progress=False)
    kwargs = {"batch_size": 8, "max_new_tokens": 3, "progress": False, "limit": 40}
    plain = evaluate(tmp_path / "model", "miniature", tmp_path / "world", tmp_path / "plain", **kwargs)
    cached = evaluate(tmp_path / "model", "miniature", tmp_path / "world", tmp_path / "cached", media_cache_gib=0.01,
                      **kwargs)  # fmt: skip
    lines = [(tmp_path / name / "predictions.jsonl").read_text() for name in ("plain", "cached")]
    assert lines[0] == lines[1] and plain["groups"] == cached["groups"]
    assert cached["settings"] == plain["settings"]  # a resumed run may turn the cache on or off
