"""`chatbridge demo`: build a tiny random ChatBridge, show it an image it has never seen, and print its answer.

The weights are random, so the answer is gibberish; what the demo shows is the whole path a real checkpoint takes
(save, Auto* load, chat template, image preprocessing, placeholder expansion, feature splicing, cached decoding).
"""

import argparse
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from transformers import AutoModelForMultimodalLM, AutoProcessor

from .testing import tiny_chatbridge


def draw_shape_image(path: Path) -> Path:
    """A red circle at the top left of a white canvas."""
    image = Image.new("RGB", (96, 96), "white")
    ImageDraw.Draw(image).ellipse((8, 8, 40, 40), fill="red")
    image.save(path)
    return path


def run_demo(out: str | Path = "demo_run", question: str = "What colour is the shape?") -> str:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model_dir = out / "tiny-chatbridge"
    tiny_chatbridge(save_dir=model_dir)
    print(f"[1/3] Built a tiny RANDOM ChatBridge (untrained weights) and saved it to {model_dir}")

    model = AutoModelForMultimodalLM.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    image_path = draw_shape_image(out / "shape.png")
    print(f"[2/3] Loaded it back with AutoModelForMultimodalLM ({type(model).__name__}) and AutoProcessor")

    messages = [{"role": "user", "content": [{"type": "image", "path": str(image_path)}, {"type": "text", "text": question}]}]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    answer = processor.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
    print(f"[3/3] Asked: {question} (image {image_path})")
    print(f"      Answer of the random model (expect gibberish): {answer!r}")
    print(f"Done in {time.perf_counter() - started:.1f} s.")
    return answer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_run", help="Folder for the model and the generated image.")
    parser.add_argument("--question", default="What colour is the shape?")


def run(args: argparse.Namespace) -> int:
    run_demo(out=args.out, question=args.question)
    return 0
