"""Former home of the match stage, which now sits with the other data stages in
:mod:`dlearn.data.match` (this package keeps the DensePose format readers); re-exported here for
existing imports."""

from dlearn.data.match import (  # noqa: F401
    MatchOptions,
    UVMatcher,
    brute_force_match,
    match_correspondences,
    matching_error_mm,
)
