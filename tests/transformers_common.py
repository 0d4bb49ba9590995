"""transformers' own common model and config tests, taken at test time from the source distribution of the pinned
transformers release (never copied into this repository).

`.ci/run` downloads it (`pip download --no-binary :all: --no-deps transformers==<version>`) into
`ZEETAD_TRANSFORMERS_SDIST_DIR` and sets `ZEETAD_REQUIRE_TRANSFORMERS_COMMON_TESTS=1`, so CI fails rather than skips
when it is missing. Locally, without it, the tests skip with a reason saying how to get it.

The source distribution ships `tests/test_modeling_common.py` and `tests/test_configuration_common.py` but not three
modules they import: `tests/exporters/test_export.py` (`ExportTesterMixin`, `torch.export` tests of generic models;
ZEETAD's own export test is in `test_modeling_zeetad.py`), `tests/generation/test_utils.py`
(`GenerationTesterMixin`, for models that `generate`, which ZEETAD does not) and `tests/utils/
test_configuration_utils.py` (`config_common_kwargs`, read only for non-composite configs). They are replaced by
empty stand-ins written next to the extracted files.
"""

import os
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
import transformers


SDIST_DIR_VARIABLE = "ZEETAD_TRANSFORMERS_SDIST_DIR"
REQUIRE_VARIABLE = "ZEETAD_REQUIRE_TRANSFORMERS_COMMON_TESTS"
DEFAULT_SDIST_DIR = Path.home() / ".cache" / "zeetad_hf" / "transformers-sdist"
COMMON_FILES = ("tests/test_modeling_common.py", "tests/test_configuration_common.py")
MISSING_MODULES = {
    "exporters/test_export.py": "class ExportTesterMixin:\n    pass\n",
    "generation/test_utils.py": "class GenerationTesterMixin:\n    pass\n",
    # read only by `ConfigTester.check_config_arguments_init`, which returns before that for composite configs
    # (those with `sub_configs`, as ZeetadConfig)
    "utils/test_configuration_utils.py": "config_common_kwargs = {}\n",
}
PACKAGE = "transformers_common_tests"


def sdist_path() -> Path:
    directory = Path(os.environ.get(SDIST_DIR_VARIABLE, DEFAULT_SDIST_DIR))
    return directory / f"transformers-{transformers.__version__}.tar.gz"


def load_common_tests():
    """`(test_modeling_common, test_configuration_common)` of the installed transformers version, or a skip."""
    path = sdist_path()
    if not path.is_file():
        reason = (
            f"transformers' common tests need its source distribution at {path}: run `pip download --no-binary :all: "
            f"--no-deps transformers=={transformers.__version__} -d {path.parent}`"
        )
        if os.environ.get(REQUIRE_VARIABLE, "").lower() in ("1", "true", "yes"):
            raise FileNotFoundError(reason)
        pytest.skip(reason, allow_module_level=True)
    root = Path(tempfile.mkdtemp(prefix="transformers-common-"))
    package = root / PACKAGE
    prefix = f"transformers-{transformers.__version__}/"
    with tarfile.open(path) as archive:
        for name in COMMON_FILES:
            member = archive.getmember(prefix + name)
            target = package / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.extractfile(member).read())
    (package / "__init__.py").write_text("")
    for name, source in MISSING_MODULES.items():
        target = package / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (target.parent / "__init__.py").write_text("")
        target.write_text(source)
    sys.path.insert(0, str(root))
    import importlib

    return (
        importlib.import_module(f"{PACKAGE}.test_modeling_common"),
        importlib.import_module(f"{PACKAGE}.test_configuration_common"),
    )
