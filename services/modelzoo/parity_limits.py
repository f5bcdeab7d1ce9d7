"""The parity check's default tolerances and the ceilings on user overrides, as plain numbers.

They live apart from `parity` (which needs torch and numpy) so that the command line can show them in
`deploylab export --help` without importing a deep-learning framework.
"""

from __future__ import annotations

RTOL = 1e-3
#: float32's smallest normal number, 2**-126 (numpy's `finfo(float32).tiny`): below it a logit has no
#: relative precision left (and an engine may flush it to zero), so only rows of (near-)zero logits
#: lean on this floor.
ATOL = 2.0**-126
#: Ceilings for user overrides: past them a wrong export (a swapped class, a 10 % error) would pass.
MAX_RTOL = 0.1
MAX_ATOL = 1.0
