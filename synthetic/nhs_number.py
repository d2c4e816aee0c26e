"""NHS numbers with valid modulus-11 check digits, and the ways people mistype them.

The check digit matters to the pipeline: a single mistyped digit always breaks it (the weights
10..2 are coprime with 11), so validation can flag such numbers instead of linking on them. Copying
another person's number does not, which is the dangerous case linkage must survive.
"""

from __future__ import annotations

import numpy as np

WEIGHTS = np.arange(10, 1, -1)  # 10, 9, ..., 2 for the first nine digits


def check_digits(first_nine: np.ndarray) -> np.ndarray:
    """Check digit for each row of a (n, 9) digit array; 10 means the base number is unusable."""
    total = (first_nine * WEIGHTS).sum(axis=1)
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


def is_valid(numbers: np.ndarray) -> np.ndarray:
    """Vectorised modulus-11 validity of 10-character digit strings (anything else is invalid)."""
    numbers = np.asarray(numbers, dtype=object)
    ok = np.array([isinstance(x, str) and len(x) == 10 and x.isdigit() for x in numbers], dtype=bool)
    out = np.zeros(len(numbers), dtype=bool)
    if ok.any():
        digits = np.array([list(x) for x in numbers[ok]], dtype=np.int64)
        out[ok] = check_digits(digits[:, :9]) == digits[:, 9]
    return out


def _digits_to_str(digits: np.ndarray) -> np.ndarray:
    as_int = (digits * (10 ** np.arange(digits.shape[1] - 1, -1, -1))).sum(axis=1)
    return np.char.zfill(as_int.astype(str), digits.shape[1]).astype(object)


def generate(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct valid NHS numbers (object array of 10-digit strings) in the 400-499 million range."""
    chosen: np.ndarray = np.empty(0, dtype=np.int64)
    while len(chosen) < n:
        need = n - len(chosen)
        base = rng.integers(400_000_000, 500_000_000, size=int(need * 1.15) + 16, dtype=np.int64)
        digits = (base[:, None] // 10 ** np.arange(8, -1, -1)) % 10
        check = check_digits(digits)
        full = base * 10 + check
        full = full[check != 10]
        pool = np.concatenate([chosen, full])
        _, first = np.unique(pool, return_index=True)
        chosen = pool[np.sort(first)][:n]
    return np.char.zfill(chosen.astype(str), 10).astype(object)


def mistype(
    rng: np.random.Generator, numbers: np.ndarray, wrong_person_pool: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt each number: one digit changed (45%), two adjacent digits swapped (35%) or another
    person's valid number copied (20%). Returns the new numbers and the kind of each error."""
    n = len(numbers)
    kind = rng.choice(
        np.array(["digit_changed", "digits_swapped", "other_persons_number"], dtype=object),
        size=n,
        p=[0.45, 0.35, 0.20],
    )
    out = np.array(numbers, dtype=object)
    digits = np.array([list(x) for x in out], dtype=np.int64).reshape(n, 10)
    pos = rng.integers(0, 10, n)
    shift = rng.integers(1, 10, n)
    changed = kind == "digit_changed"
    rows = np.flatnonzero(changed)
    digits[rows, pos[rows]] = (digits[rows, pos[rows]] + shift[rows]) % 10
    swapped = np.flatnonzero(kind == "digits_swapped")
    p9 = rng.integers(0, 9, len(swapped))
    for r, p in zip(swapped, p9, strict=True):
        row = digits[r]
        # find adjacent different digits starting at p (identical neighbours would be no error)
        for q in list(range(p, 9)) + list(range(0, p)):
            if row[q] != row[q + 1]:
                row[q], row[q + 1] = row[q + 1], row[q]
                break
        else:  # all ten digits equal cannot be a generated number, but stay safe
            row[0] = (row[0] + 1) % 10
    out_edit = _digits_to_str(digits)
    out = np.where(
        kind == "other_persons_number",
        wrong_person_pool[rng.integers(0, len(wrong_person_pool), n)],
        out_edit,
    )
    same = out == np.asarray(numbers, dtype=object)
    # a copied number that happens to be the person's own is re-drawn as a changed digit
    if same.any():
        fix = np.flatnonzero(same)
        d = digits[fix]
        d[:, 0] = (d[:, 0] + 1) % 10
        out[fix] = _digits_to_str(d)
        kind[fix] = "digit_changed"
    return out.astype(object), kind
