"""The serving chapter's align() judged: each row's positions and mask in a padded batch.

align(cached, new) gives the rows of one forward step, padded on the left to the longest, their
positions and attention mask; a wrong one is told which row, which query and which keys are
wrong, and the likely mistake (padding counted, one length for all rows, padded keys seen).
"""

import numpy as np

from checks.learner import call, not_none


# (cached, new) per row for align(): two prompts arriving beside two decoding requests, with
# caches of different lengths; the shorter prompt has padded queries and nothing cached.
ALIGN_CASE = ([3, 0, 5, 0], [1, 4, 1, 2])
ALIGN = "align(cached=[3, 0, 5, 0], new=[1, 4, 1, 2])"

# The known mistakes' words; align_problem() decides which one a wrong align() made.
PADDING_COUNTED = (
    "the padding before its new ids is counted as positions. The padding sits on the left, so a "
    "row's first real id is at column S - new[i]."
)
POSITIONS_NOT_PER_ROW = (
    "The positions are not per row: each row continues after its own cached length, not the "
    "longest one's."
)
ONE_MASK_FOR_EVERY_ROW = (
    "gave every row the same mask; the rows have different lengths: each row's mask is its own "
    "(its cached keys on the right of the N, its new keys after its padding)."
)
PADDED_QUERY_SEES_NOTHING = (
    "softmax over only -inf is NaN, and NaN keys and values spread. Let a padded query see "
    "itself (its output is never used)."
)
PADDING_ATTENDED_TO = (
    "padding is attended to. Hide the first N - cached[i] cached slots and the new slots before "
    "the row's own ids."
)


def expected_visible(cached: list[int], new: list[int]) -> np.ndarray:
    """[B, S, N + S] booleans: the keys each query sees, for queries that are real tokens (padded
    queries' rows are left False: they are checked apart)."""
    n, s = max(cached), max(new)
    visible = np.zeros((len(cached), s, n + s), bool)
    for row, (c, k) in enumerate(zip(cached, new, strict=True)):
        for query in range(s - k, s):
            visible[row, query, n - c : n] = True  # its own cached keys, the last c of N
            visible[row, query, n + s - k : n + query + 1] = True  # its new keys up to itself
    return visible


def align_problem(align) -> str | None:
    """What is wrong with the learner's align() on ALIGN_CASE, in a sentence, or None."""
    cached, new = ALIGN_CASE
    out = not_none(ALIGN, call(ALIGN, align, list(cached), list(new)))
    if not isinstance(out, tuple) or len(out) != 2:
        return f"{ALIGN} returned {type(out).__name__}; it should return (positions, mask)."
    for part, todo in zip(out, ("positions", "mask"), strict=True):
        if part is None:
            number = 3 if todo == "positions" else 4
            return (
                f"{ALIGN} gave {todo} None: it is still the skeleton's placeholder. Replace it as "
                f"its TODO ({number}) says."
            )
    positions, mask = (np.asarray(part) for part in out)
    return positions_problem(positions, cached, new) or mask_problem(mask, cached, new)


def positions_problem(positions: np.ndarray, cached, new) -> str | None:
    """What is wrong with align()'s positions for rows of `cached` and `new` lengths, or None."""
    n, s, batch = max(cached), max(new), len(cached)
    if positions.shape != (batch, s):
        return (
            f"{ALIGN} gave positions of shape {list(positions.shape)}; they should be [B, S] = "
            f"[{batch}, {s}]: a position for every id of the padded batch."
        )
    for row, (c, k) in enumerate(zip(cached, new, strict=True)):
        got, want = positions[row, s - k :].tolist(), list(range(c, c + k))
        if got == want:
            continue
        if got == list(range(c + s - k, c + s)):
            return (
                f"{ALIGN}: row {row} ({c} cached, {k} new) has positions {got}; they should be "
                f"{want}: {PADDING_COUNTED}"
            )
        if got in (list(range(n, n + k)), list(range(n + s - k, n + s))):
            return (
                f"{ALIGN}: row {row} ({c} cached, {k} new) has positions {got} for its new "
                f"tokens; they should be {want}. {POSITIONS_NOT_PER_ROW}"
            )
        return (
            f"{ALIGN}: row {row} ({c} cached, {k} new) has positions {got} for its new tokens "
            f"(the last {k} columns); they should be {want}, continuing after its cache."
        )
    if (positions < 0).any():
        return f"{ALIGN} gave a negative position ({positions.tolist()}): wpe has no such row."
    return None


def mask_problem(mask: np.ndarray, cached, new) -> str | None:
    """What is wrong with align()'s mask for rows of `cached` and `new` lengths, or None."""
    n, s, batch = max(cached), max(new), len(cached)
    if mask.shape != (batch, 1, s, n + s):
        return (
            f"{ALIGN} gave a mask of shape {list(mask.shape)}; it should be [B, 1, S, N + S] = "
            f"[{batch}, 1, {s}, {n + s}]: one per row, shared by the heads."
        )
    if not np.isin(mask, (0.0, -np.inf)).all():
        return (
            f"{ALIGN} gave a mask with values other than 0 and -inf: it is added to the scores, "
            "0 where a key is visible, -inf where it is hidden."
        )
    visible, wanted = mask[:, 0] == 0, expected_visible(cached, new)
    if all((visible[row] == visible[0]).all() for row in range(batch)):
        return f"{ALIGN} {ONE_MASK_FOR_EVERY_ROW}"
    for row, (c, k) in enumerate(zip(cached, new, strict=True)):
        for query in range(s):
            real = query >= s - k
            seen = np.flatnonzero(visible[row, query]).tolist()
            if not real:
                if not seen:
                    return (
                        f"{ALIGN}: row {row}'s padded query {query} sees no key at all: "
                        f"{PADDED_QUERY_SEES_NOTHING}"
                    )
                continue
            want = np.flatnonzero(wanted[row, query]).tolist()
            if seen == want:
                continue
            padded = [key for key in seen if key < n - c or n <= key < n + s - k]
            if padded:
                return (
                    f"{ALIGN}: row {row} ({c} cached, {k} new), query {query}, sees the padded "
                    f"key slots {padded}: {PADDING_ATTENDED_TO}"
                )
            later = [key for key in seen if key > n + query]
            if later:
                return (
                    f"{ALIGN}: row {row}, query {query}, sees later keys {later}: a token may "
                    "only see the keys up to its own (causal)."
                )
            return (
                f"{ALIGN}: row {row} ({c} cached, {k} new), query {query}, sees the key slots "
                f"{seen}; it should see {want}: its cached keys (the last {c} of the N = {n}) "
                "and its new ones up to itself."
            )
    return None
