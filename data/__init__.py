"""alphaforge data layer: Binance/Tardis sources, schemas, parquet store, validation."""

import os as _os

# Numba's OpenMP threads spin while waiting by default; on a shared or oversubscribed
# machine that makes every small parallel kernel call cost milliseconds. Sleep instead
# (a user's explicit setting wins).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
