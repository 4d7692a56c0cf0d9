"""Reading a bundle's config.json: the fast JSON scanner first, the json
package only to word an error (its import costs create milliseconds)."""
import os

from pyrunc.errors import ConfigError
from pyrunc.lean import fastjson


def load_config(bundle: str) -> dict:
    """The bundle's config.json, its keys read as runc reads them (spec/keys.py)."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"config.json not found in bundle {bundle}") from None
    try:
        config = fastjson.loads(text)
    except ValueError:
        # NaN and friends, or broken JSON: the json package decides and words the error
        import json
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config.json is not valid JSON: {e}") from None
    if isinstance(config, dict):
        from pyrunc.spec.keys import normalize_config
        normalize_config(config)
    return config

