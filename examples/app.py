"""`zeetad demo` as a Hugging Face Space: copy this file to the Space as `app.py`, with the `requirements.txt` of
examples/README.md ("The demo as a Space"), and set the Space variable ZEETAD_MODEL to the model's Hub id.

Locally: `ZEETAD_MODEL=zeetad-quickstart/runs/bottleneck python examples/app.py` serves on 127.0.0.1 (Spaces set
GRADIO_SERVER_NAME and GRADIO_SERVER_PORT, which Gradio reads).
"""

import os
import sys

from zeetad_hf.cli_errors import UsageError, run_command
from zeetad_hf.demo import launch_demo


MODEL_VARIABLE = "ZEETAD_MODEL"


def main(argv: list[str]) -> None:
    if argv:
        raise UsageError(f"takes no arguments (got {' '.join(argv)}); the model comes from {MODEL_VARIABLE}")
    model = os.environ.get(MODEL_VARIABLE)
    if not model:
        raise UsageError(
            f"set {MODEL_VARIABLE} to a ZEETAD model that reads video files: a Hub id such as "
            "your-name/zeetad-quickstart-bottleneck, or a folder such as zeetad-quickstart/runs/bottleneck"
        )
    launch_demo(model, host=None, on_ready=lambda url, seconds: print(f"Serving the demo on {url}", flush=True))


if __name__ == "__main__":
    sys.exit(run_command(main, "app.py"))
