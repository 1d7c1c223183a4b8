"""`python -m mlops.features > feature_store.yaml`: the Feast config of the current settings.

For pointing the `feast` CLI or the Feast UI at the stores of any profile (see
`feature_repo/README.md`).
"""

from __future__ import annotations

import sys

from mlops.features.config import render_feature_store_yaml
from mlops.settings import get_settings

if __name__ == "__main__":
    sys.stdout.write(render_feature_store_yaml(get_settings()))
