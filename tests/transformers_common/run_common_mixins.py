"""Run transformers' own common test mixins against ChatBridge (`make test` runs this after the project's tests).

The mixins ship in the transformers source distribution on PyPI, not in the wheel: this downloads the distribution of
the installed version into a temporary folder, takes its top-level `tests/*.py`, adds what that folder imports but the
distribution leaves out (each named below), copies `chatbridge_common_tester.py` in as a test module and runs pytest
there. Nothing of it is kept. Extra arguments go to pytest (e.g. `-k Processor`).
"""

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import transformers

HERE = Path(__file__).resolve().parent
# Modules the distribution's tests import but do not ship: the export and generate test mixins (so their tests do not
# run here), and the table of common config kwargs.
ABSENT_FROM_SDIST = {
    "tests/exporters/test_export.py": "class ExportTesterMixin:\n    pass\n",
    "tests/generation/test_utils.py": "class GenerationTesterMixin:\n    pass\n",
    "tests/utils/test_configuration_utils.py": "config_common_kwargs = {}\n",
}


def unpack_tests(folder: Path) -> Path:
    """The top-level `tests/*.py` of the installed transformers' source distribution, unpacked in `folder`."""
    version = transformers.__version__
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               f"transformers=={version}", "--dest", str(folder)]  # fmt: skip
    subprocess.run(command, check=True)
    archive = next(folder.glob(f"transformers-{version}.tar.gz"))
    root = folder / "transformers"
    with tarfile.open(archive) as tar:
        members = [
            member for member in tar.getmembers()
            if member.isfile() and len(Path(member.name).parts) == 3 and Path(member.name).parts[1] == "tests"
            and member.name.endswith(".py")
        ]  # fmt: skip
        for member in members:
            member.name = str(Path(*Path(member.name).parts[1:]))  # drop the top folder; names are checked above
        tar.extractall(root, members=members, filter="data")
    return root


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="chatbridge-common-mixins-") as temporary:
        root = unpack_tests(Path(temporary))
        for relative, text in {**ABSENT_FROM_SDIST, "tests/__init__.py": ""}.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.parent / "__init__.py").touch()
            path.write_text(text)
        (root / "utils").mkdir()
        (root / "utils" / "fetch_hub_objects_for_ci.py").write_text((HERE / "fetch_hub_objects_for_ci.py").read_text())
        (root / "tests" / "test_chatbridge_common.py").write_text((HERE / "chatbridge_common_tester.py").read_text())
        command = [sys.executable, "-m", "pytest", "tests/test_chatbridge_common.py", "-p", "no:cacheprovider",
                   "-q", "-rs", "-W", "ignore::pytest.PytestUnknownMarkWarning", *sys.argv[1:]]  # fmt: skip
        environment = {**os.environ, "CHATBRIDGE_COMMON_MEDIA": temporary}
        return subprocess.run(command, cwd=root, env=environment).returncode


if __name__ == "__main__":
    sys.exit(main())
