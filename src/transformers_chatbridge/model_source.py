"""Where a model argument points: a folder holding a saved model, or a Hub id. Checked before anything loads.

transformers takes any name that is not a folder for a Hub id: a missing folder then ends in a message about repo id
syntax (`path/to/model`) or, offline, in a connection error (`runs/stage2` is a valid id), neither of which says that
the folder is missing.
"""

import os


def check_model_source(option: str, value: str) -> None:
    """Raise a ValueError naming `option` when `value` is neither a folder with a saved model nor a Hub id that could
    be reached (offline, one in the local Hub cache)."""
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    path = os.path.expanduser(value)
    if os.path.isdir(path):
        if not any(os.path.isfile(os.path.join(path, name)) for name in ("config.json", "adapter_config.json")):
            raise ValueError(f"{option} {value}: the folder holds no config.json (not a saved model)")
        return
    try:
        validate_repo_id(value)
    except HFValidationError:
        raise ValueError(f"{option} {value}: no such folder (and not a Hub id)") from None
    if constants.HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(value, "config.json"), str):
        raise ValueError(f"{option} {value}: no such folder, and no Hub model of that name in the cache (offline)")


__all__ = ["check_model_source"]
