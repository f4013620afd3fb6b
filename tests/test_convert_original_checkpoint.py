"""`chatbridge convert`: original ChatBridge checkpoints (both forms) -> a ChatBridge folder reproducing the original.

Everything runs on the reference fixtures of tests/fixtures/original_tiny (the original code's tiny model in its
on-disk formats and the tensors that code computed); see their README.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from tokenizers import Regex, Tokenizer, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import AutoModelForMultimodalLM, AutoProcessor, PreTrainedTokenizerFast, pipeline

import transformers_chatbridge  # noqa: F401  (registers the Auto classes and the "chatbridge" task)
from transformers_chatbridge import cli
from transformers_chatbridge.convert.original_checkpoint import convert_checkpoint


FIXTURES = Path(__file__).parent / "fixtures" / "original_tiny"
MEDIA = FIXTURES / "media"
COMPONENTS = {
    "eva": FIXTURES / "eva_vit.pth", "blip2": FIXTURES / "blip2_pretrained.pth", "beats": FIXTURES / "beats.pt"
}  # fmt: skip
# The tiny towers' head counts (fixture config.json); at release size the converter knows them from the widths.
HEADS = {"vision_heads": 4, "qformer_heads": 4}
LLM_VOCAB = 1000


def convert(out: Path, checkpoint: str | Path = FIXTURES / "chatbridge.pth", **kwargs):
    """The fixture conversion; the full checkpoint needs no component file (only --llm, for its config)."""
    components = {} if Path(checkpoint).name == "chatbridge_full.pth" else COMPONENTS
    return convert_checkpoint(checkpoint, out, FIXTURES / "llm", **{**components, **HEADS, **kwargs})


def build_fixture_tokenizer(folder: Path, size: int = LLM_VOCAB) -> Path:
    """A word-level tokenizer whose ids line up with the fixture LLM's fixed vocabulary (bos 1, eos 2, "###" 835)."""
    words = ["Human", "Assistant", "Given", "following", "image", "video", "audio", "the", "and", "its", "background"]
    words += ["What", "is", "this", "in", "it", ":", ".", "?", ","]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{word: 3 + index for index, word in enumerate(words)}}
    filler = (f"w{index}" for index in range(size))
    while len(vocab) < size:
        vocab["###" if len(vocab) == 835 else next(filler)] = len(vocab)
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"###|\w+|[^\w\s]"), behavior="isolated")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("converted")
    tokenizer = build_fixture_tokenizer(root / "tokenizer")
    return {
        # Small shards, so the sharded layout (index json) is exercised too.
        "trainable": convert(root / "trainable", max_shard_size="200KB"),
        "full": convert(root / "full", FIXTURES / "chatbridge_full.pth"),
        "with_processor": convert(root / "with_processor", tokenizer=tokenizer),
    }


@pytest.fixture(scope="module")
def models(converted) -> dict:
    names = ("trainable", "full")
    return {name: AutoModelForMultimodalLM.from_pretrained(converted[name].out).eval() for name in names}


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / "tensors.safetensors")


def max_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    assert ours.shape == theirs.shape
    return (ours.float() - theirs.float()).abs().max().item()


# ---------------------------------------------------------------------------------------------------------------------
# Output folder and weights
# ---------------------------------------------------------------------------------------------------------------------


def test_both_checkpoint_forms_give_the_same_model(models, converted):
    trainable, full = models["trainable"].state_dict(), models["full"].state_dict()
    assert trainable.keys() == full.keys()
    assert all(torch.equal(trainable[key], full[key]) for key in trainable)
    # The full form has no BEATs cfg to read: its audio config is derived from the tensors and comes out the same.
    configs = [json.loads((converted[name].out / "config.json").read_text()) for name in ("trainable", "full")]
    assert configs[0] == configs[1]
    # ln_audio is the one allowed default: absent from the trainable-only form, and said so.
    assert any("model.audio_layernorm.weight" in note for note in converted["trainable"].notes)
    assert not any("audio_layernorm" in note for note in converted["full"].notes)


def test_sharded_folder_follows_save_pretrained(converted, models):
    folder = converted["trainable"].out
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(converted["trainable"].weight_files) > 1 and set(index["weight_map"].values()) == set(
        converted["trainable"].weight_files
    )
    assert set(index["weight_map"]) == set(models["trainable"].state_dict())
    sizes = []
    for name in converted["trainable"].weight_files:
        with safe_open(folder / name, "pt") as handle:
            tensors = [handle.get_tensor(key) for key in handle.keys()]
        sizes.append(sum(tensor.nbytes for tensor in tensors))
        assert sizes[-1] <= 200_000 or len(tensors) == 1  # a tensor above the limit gets a shard of its own
    assert index["metadata"]["total_size"] == sum(sizes)
    assert (converted["full"].out / "model.safetensors").is_file()
    assert not (converted["full"].out / "model.safetensors.index.json").exists()
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModelForMultimodalLM"] and (folder / "pipeline_chatbridge.py").is_file()


def test_placeholder_rows_and_generation_config(models):
    model = models["trainable"]
    config = model.config
    assert [config.image_token_id, config.video_token_id, config.audio_token_id] == [1000, 1001, 1002]
    original = load_file(FIXTURES / "llm" / "model.safetensors")
    for ours, theirs in (
        (model.get_input_embeddings().weight, original["model.embed_tokens.weight"]),
        (model.get_output_embeddings().weight, original["lm_head.weight"]),
    ):
        assert torch.equal(ours[:LLM_VOCAB], theirs)
        assert torch.allclose(ours[LLM_VOCAB:], theirs.mean(0).expand(3, -1))
    assert model.generation_config.suppress_tokens == [1000, 1001, 1002]
    assert model.generation_config.eos_token_id == [2]


# ---------------------------------------------------------------------------------------------------------------------
# Parity with the original's outputs
# ---------------------------------------------------------------------------------------------------------------------


def test_media_embeddings_match_the_original(models, reference):
    model = models["trainable"]
    with torch.no_grad():
        diffs = {
            "image": max_diff(model.get_image_features(reference["pixel_values"]).pooler_output, reference["image_embeds"]),
            "video": max_diff(model.get_video_features(reference["video_pixel_values"]).pooler_output, reference["video_embeds"]),
            "audio": max_diff(model.get_audio_features(reference["audio_fbank"]).pooler_output, reference["audio_embeds"]),
        }
    print(f"max |diff| of media embeddings: {diffs}")
    assert max(diffs.values()) <= 1e-5, diffs


def _image_pass(model, reference) -> tuple[torch.Tensor, dict]:
    placeholders = torch.full((1, model.config.num_image_query_tokens), model.config.image_token_id)
    input_ids = torch.cat([reference["prefix_ids"], placeholders, reference["suffix_ids"]], dim=1)
    return input_ids, {"pixel_values": reference["pixel_values"][:1]}


def _av_pass(model, reference) -> tuple[torch.Tensor, dict]:
    config = model.config
    video = torch.full((1, config.num_image_query_tokens), config.video_token_id)
    audio = torch.full((1, config.num_audio_query_tokens), config.audio_token_id)
    parts = [reference["av_prefix_ids"], video, reference["av_middle_ids"], audio, reference["av_suffix_ids"]]
    media = {"pixel_values_videos": reference["video_pixel_values"], "input_features": reference["audio_fbank"]}
    return torch.cat(parts, dim=1), media


@pytest.mark.parametrize("name,build", [("", _image_pass), ("av_", _av_pass)])
def test_llm_logits_and_greedy_ids_match_the_original(models, reference, name, build):
    model = models["full"]
    input_ids, media = build(model, reference)
    with torch.no_grad():
        logits = model(input_ids=input_ids, **media).logits[..., :LLM_VOCAB]
        generated = model.generate(
            input_ids=input_ids, **media, max_new_tokens=8, min_new_tokens=8, do_sample=False
        )
    diff = max_diff(logits, reference[f"{name}logits"])
    print(f"max |diff| of {name or 'image '}pass logits: {diff:.3g}")
    assert diff <= 1e-4
    assert generated[:, input_ids.shape[1] :].tolist() == reference[f"{name}greedy_ids"].tolist()


def test_converted_folder_has_llava_layout_and_loads_as_the_base_model(converted, models, reference):
    from transformers import AutoModel

    folder = converted["full"].out
    with safe_open(folder / "model.safetensors", "pt") as weights:
        keys = set(weights.keys())
    assert "lm_head.weight" in keys and "model.language_model.embed_tokens.weight" in keys
    assert not any(key.startswith("model.language_model.model.") for key in keys)
    base, loading = AutoModel.from_pretrained(folder, output_loading_info=True)
    assert not loading["missing_keys"]
    input_ids, media = _av_pass(models["full"], reference)
    with torch.no_grad():
        hidden = base.eval()(input_ids=input_ids, **media).last_hidden_state
        torch.testing.assert_close(models["full"].lm_head(hidden), models["full"](input_ids=input_ids, **media).logits)


# ---------------------------------------------------------------------------------------------------------------------
# Processor
# ---------------------------------------------------------------------------------------------------------------------


def test_without_tokenizer_the_model_is_written_not_the_processor(converted):
    assert not converted["full"].processor_written
    assert not (converted["full"].out / "processor_config.json").exists()
    assert converted["with_processor"].processor_written


def test_processor_reproduces_the_original_preprocessing(converted, models, reference):
    processor = AutoProcessor.from_pretrained(converted["with_processor"].out)
    assert processor.tokenizer.convert_tokens_to_ids(["<image>", "<video>", "<audio>"]) == [1000, 1001, 1002]
    images = [str(MEDIA / "rgb_gradient_97x61.png"), str(MEDIA / "rgba_150x90.png")]
    pixel_values = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    assert max_diff(pixel_values, reference["pixel_values"]) <= 1e-6
    video = processor.video_processor(
        str(MEDIA / "colorbars_48f_64x48.mp4"), frame_sampling="uniform", return_metadata=True, return_tensors="pt"
    )
    assert video["video_metadata"][0].frames_indices == [0, 12, 24, 36]
    fbank = processor.feature_extractor(str(MEDIA / "chirp_14s_16khz_mono.wav"), return_tensors="pt")["input_features"]
    assert max_diff(fbank, reference["audio_fbank"]) <= 1e-4
    with torch.no_grad():
        embeds = models["trainable"].get_image_features(pixel_values).pooler_output
    assert max_diff(embeds, reference["image_embeds"]) <= 1e-5


def test_pipeline_round_trip(converted):
    folder = converted["with_processor"].out
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == [2, 835]  # "###" stops
    pipe = pipeline("chatbridge", model=str(folder))
    (record,) = pipe(text="What is this?", images=str(MEDIA / "rgb_gradient_97x61.png"), max_new_tokens=4)
    assert isinstance(record["generated_text"], str) and record["input_text"] == "What is this?"


def test_tokenizer_that_does_not_fit_the_llm_is_refused(tmp_path):
    tokenizer = build_fixture_tokenizer(tmp_path / "tokenizer", size=990)
    with pytest.raises(ValueError, match=r"--tokenizer.*990 tokens"):
        convert(tmp_path / "out", tokenizer=tokenizer)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------------


def test_trainable_checkpoint_without_eva_names_the_option(tmp_path):
    with pytest.raises(ValueError, match=r"chatbridge\.pth.*EVA.*pass --eva"):
        convert(tmp_path / "out", eva=None)


def test_corrupted_file_is_named(tmp_path):
    broken = tmp_path / "chatbridge.pth"
    broken.write_bytes((FIXTURES / "chatbridge.pth").read_bytes()[:50_000])
    with pytest.raises(ValueError, match=rf"{broken}.*--checkpoint.*cannot be read"):
        convert(tmp_path / "out", broken)


def test_renamed_key_is_listed_as_missing_and_unexpected(tmp_path):
    checkpoint = torch.load(FIXTURES / "chatbridge.pth", map_location="cpu", weights_only=True)
    checkpoint["model"]["llama_projection.weight"] = checkpoint["model"].pop("llama_proj.weight")
    torch.save(checkpoint, tmp_path / "renamed.pth")
    with pytest.raises(ValueError) as error:
        convert(tmp_path / "out", tmp_path / "renamed.pth")
    message = str(error.value)
    assert "Missing (1):\n  model.language_projection.weight" in message
    assert "Unexpected (no rule maps them) (1):\n  llama_projection.weight" in message
    assert not (tmp_path / "out").exists()


def test_relative_bias_copy_must_equal_the_beats_table(tmp_path):
    checkpoint = torch.load(FIXTURES / "chatbridge.pth", map_location="cpu", weights_only=True)
    checkpoint["model"]["audio_encoder.encoder.layers.1.self_attn.relative_attention_bias.weight"] += 1.0
    torch.save(checkpoint, tmp_path / "changed.pth")
    with pytest.raises(ValueError, match=r"changed\.pth.*layers\.1\.self_attn\.relative_attention_bias.*beats\.pt"):
        convert(tmp_path / "out", tmp_path / "changed.pth")


def test_head_count_is_asked_for_unknown_widths(tmp_path):
    with pytest.raises(ValueError, match="width 32.*--vision-heads"):
        convert(tmp_path / "out", vision_heads=None)


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------


def run_cli(*arguments: str | Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "transformers_chatbridge.cli", "convert", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, env=os.environ, timeout=120)


def test_cli_converts_in_a_subprocess(tmp_path, capsys):
    out = tmp_path / "chatbridge-tiny"
    inputs = ["--checkpoint", FIXTURES / "chatbridge.pth", "--llm", FIXTURES / "llm"]
    inputs += ["--vision-heads", "4", "--qformer-heads", "4"]
    components = ["--eva", COMPONENTS["eva"], "--blip2", COMPONENTS["blip2"], "--beats", COMPONENTS["beats"]]
    done = run_cli(*inputs, *components, "--out", out, "--dtype", "bfloat16")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "NOT the processor" in done.stdout and "wrote model.safetensors" in done.stdout
    with safe_open(out / "model.safetensors", "pt") as handle:
        assert {handle.get_slice(key).get_dtype() for key in handle.keys()} == {"BF16"}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"

    # The error path in-process (same entry point; a second interpreter start would only cost time).
    with pytest.raises(SystemExit) as exit_code:
        cli.main(["convert", *map(str, inputs), *map(str, components[2:]), "--out", str(tmp_path / "other")])
    assert exit_code.value.code == 2 and "pass --eva" in capsys.readouterr().out


def test_a_killed_conversion_leaves_nothing_behind_after_the_next_run(tmp_path):
    out = tmp_path / "chatbridge-tiny"
    inputs = ["--checkpoint", FIXTURES / "chatbridge.pth", "--llm", FIXTURES / "llm", "--vision-heads", "4",
              "--qformer-heads", "4", "--eva", COMPONENTS["eva"], "--blip2", COMPONENTS["blip2"],
              "--beats", COMPONENTS["beats"], "--out", out]  # fmt: skip
    command = [sys.executable, "-m", "transformers_chatbridge.cli", "convert", *map(str, inputs)]
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(f".{out.name}.partial-{killed.pid}-*")):
            assert killed.poll() is None and time.monotonic() < deadline, "the conversion never started writing"
            time.sleep(0.01)
        killed.kill()
    finally:
        killed.wait()
    if out.exists():  # the kill came after the rename: make the next run write a new folder
        shutil.rmtree(out)
    assert list(tmp_path.glob(f".{out.name}.partial-*")), "the kill left no partial folder"
    busy = tmp_path / f".{out.name}.partial-{os.getpid()}-abc"  # a running conversion's folder stays
    busy.mkdir()
    done = run_cli(*inputs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "left by a conversion that did not finish" in done.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([busy.name, out.name])
