"""Name frequency lists and the nickname table.

Frequencies are rough shapes of English and Merseyside name distributions (a few very common names,
a long tail), because linkage difficulty depends on how often two different people share a name.
All names are representable in cp1252, since one provider's extract uses that encoding.
"""

from __future__ import annotations

import unicodedata

import numpy as np

# (name, relative frequency)
MALE_FORENAMES: tuple[tuple[str, float], ...] = (
    ("David", 40),
    ("John", 38),
    ("Paul", 30),
    ("Michael", 30),
    ("James", 30),
    ("Mark", 26),
    ("Peter", 22),
    ("Stephen", 22),
    ("Robert", 22),
    ("William", 20),
    ("Anthony", 20),
    ("Thomas", 20),
    ("Christopher", 18),
    ("Daniel", 18),
    ("Andrew", 18),
    ("Richard", 16),
    ("Joseph", 14),
    ("Gary", 14),
    ("Kevin", 12),
    ("Steven", 12),
    ("Matthew", 14),
    ("Jonathan", 8),
    ("Edward", 8),
    ("Kenneth", 6),
    ("Gerard", 6),
    ("Francis", 6),
    ("Ian", 10),
    ("Alan", 10),
    ("Brian", 8),
    ("Patrick", 8),
    ("Sean", 8),
    ("Liam", 10),
    ("Ryan", 10),
    ("Jack", 12),
    ("Joshua", 10),
    ("Adam", 8),
    ("Lee", 8),
    ("Craig", 8),
    ("Carl", 6),
    ("Nicholas", 6),
    ("Alexander", 6),
    ("Samuel", 6),
    ("Callum", 6),
    ("Connor", 6),
    ("Jamie", 6),
    ("Dylan", 4),
    ("Kieran", 4),
    ("Declan", 4),
    ("Seán", 2),
    ("José", 1),
    ("René", 1),
    ("Lukasz", 1),
    ("Piotr", 1),
    ("Tomás", 1),
)
FEMALE_FORENAMES: tuple[tuple[str, float], ...] = (
    ("Sarah", 30),
    ("Susan", 22),
    ("Margaret", 20),
    ("Elizabeth", 20),
    ("Catherine", 18),
    ("Karen", 18),
    ("Julie", 18),
    ("Lisa", 18),
    ("Helen", 16),
    ("Claire", 16),
    ("Patricia", 14),
    ("Jennifer", 12),
    ("Rebecca", 14),
    ("Emma", 16),
    ("Laura", 16),
    ("Samantha", 12),
    ("Deborah", 10),
    ("Victoria", 10),
    ("Jacqueline", 8),
    ("Kimberley", 6),
    ("Nicola", 12),
    ("Joanne", 12),
    ("Michelle", 12),
    ("Angela", 10),
    ("Christine", 10),
    ("Janet", 8),
    ("Mary", 14),
    ("Anne", 10),
    ("Linda", 8),
    ("Jessica", 10),
    ("Amy", 10),
    ("Chloe", 10),
    ("Sophie", 10),
    ("Megan", 8),
    ("Hannah", 8),
    ("Lauren", 8),
    ("Gemma", 8),
    ("Stacey", 6),
    ("Kelly", 6),
    ("Louise", 8),
    ("Danielle", 6),
    ("Leanne", 6),
    ("Natalie", 6),
    ("Siobhan", 4),
    ("Zoë", 3),
    ("Chloé", 1),
    ("Renée", 1),
    ("Siân", 2),
    ("Niamh", 3),
    ("Aoife", 2),
    ("Agnieszka", 1),
    ("Zoe", 4),
)
ASIAN_MALE = (
    ("Mohammed", 10),
    ("Ahmed", 6),
    ("Ali", 5),
    ("Imran", 4),
    ("Raj", 3),
    ("Arjun", 3),
    ("Wei", 3),
    ("Hassan", 3),
    ("Bilal", 3),
    ("Sanjay", 2),
)
ASIAN_FEMALE = (
    ("Fatima", 8),
    ("Aisha", 6),
    ("Priya", 4),
    ("Ayesha", 4),
    ("Mei", 3),
    ("Sana", 3),
    ("Nadia", 3),
    ("Anjali", 2),
    ("Zainab", 3),
)
BLACK_MALE = (
    ("Emmanuel", 5),
    ("Kwame", 4),
    ("Oluwaseun", 3),
    ("Abdi", 3),
    ("Tyrone", 2),
    ("Chidi", 3),
    ("Samuel", 4),
    ("Daniel", 4),
)
BLACK_FEMALE = (
    ("Grace", 5),
    ("Blessing", 4),
    ("Amara", 3),
    ("Fatuma", 3),
    ("Chiamaka", 3),
    ("Precious", 3),
    ("Esther", 3),
    ("Abena", 2),
)

SURNAMES: tuple[tuple[str, float], ...] = (
    ("Jones", 60),
    ("Smith", 50),
    ("Williams", 40),
    ("Roberts", 30),
    ("Hughes", 28),
    ("Davies", 28),
    ("Evans", 24),
    ("Taylor", 24),
    ("Johnson", 22),
    ("Brown", 22),
    ("Wilson", 20),
    ("Thompson", 18),
    ("Murphy", 18),
    ("Kelly", 18),
    ("Wright", 14),
    ("Walker", 14),
    ("Harrison", 14),
    ("Clarke", 12),
    ("Lewis", 12),
    ("Jackson", 12),
    ("Wood", 10),
    ("Hall", 10),
    ("Green", 10),
    ("Edwards", 12),
    ("Martin", 10),
    ("Moore", 10),
    ("Parry", 10),
    ("Griffiths", 10),
    ("Owen", 8),
    ("Doyle", 8),
    ("Byrne", 8),
    ("Ryan", 8),
    ("O'Brien", 8),
    ("O'Neill", 6),
    ("O'Connor", 5),
    ("McDonald", 8),
    ("McCarthy", 6),
    ("McGrath", 4),
    ("Gallagher", 6),
    ("Quinn", 6),
    ("Hughes", 6),
    ("Rimmer", 4),
    ("Corrigan", 3),
    ("Fitzpatrick", 4),
    ("Carroll", 4),
    ("Doherty", 5),
    ("Molyneux", 4),
    ("Tyrer", 3),
    ("Ashcroft", 3),
    ("Halsall", 3),
    ("Lunt", 2),
    ("Cunningham", 4),
    ("Atherton", 3),
    ("Dunne", 3),
    ("Finnegan", 3),
    ("Heaney", 2),
    ("Cooper", 8),
    ("King", 6),
    ("Baker", 6),
    ("Hill", 8),
    ("Scott", 8),
    ("Morris", 8),
    ("Ward", 8),
    ("Turner", 8),
    ("Campbell", 6),
    ("Stewart", 5),
    ("Bennett", 6),
    ("Mitchell", 6),
    ("Young", 6),
    ("Lloyd", 6),
    ("Rogers", 6),
    ("Phillips", 6),
    ("Price", 6),
    ("Watson", 6),
    ("Shaw", 6),
    ("Bell", 5),
    ("Fisher", 4),
    ("Mercer", 3),
    ("Nuñez", 1),
    ("Müller", 1),
    ("Kowalski", 2),
    ("Nowak", 2),
    ("Brontë", 1),
)
ASIAN_SURNAMES = (
    ("Khan", 10),
    ("Ahmed", 8),
    ("Ali", 8),
    ("Hussain", 7),
    ("Patel", 7),
    ("Begum", 5),
    ("Chen", 4),
    ("Wong", 4),
    ("Li", 4),
    ("Singh", 4),
    ("Shah", 4),
    ("Rahman", 3),
    ("Nguyen", 2),
)
BLACK_SURNAMES = (
    ("Okafor", 4),
    ("Mensah", 4),
    ("Mohamed", 6),
    ("Abdi", 4),
    ("Adeyemi", 3),
    ("Osei", 3),
    ("Campbell", 3),
    ("Johnson", 3),
    ("Okonkwo", 3),
    ("Williams", 3),
    ("Farah", 3),
)

NICKNAMES: dict[str, tuple[str, ...]] = {
    "William": ("Bill", "Billy", "Will"),
    "Robert": ("Bob", "Rob", "Bobby"),
    "Margaret": ("Peggy", "Maggie", "Meg"),
    "Elizabeth": ("Liz", "Beth", "Lizzie"),
    "James": ("Jim", "Jimmy", "Jamie"),
    "Thomas": ("Tom", "Tommy"),
    "Michael": ("Mike", "Mick"),
    "Anthony": ("Tony",),
    "Richard": ("Rick", "Dick", "Richie"),
    "Joseph": ("Joe", "Joey"),
    "Edward": ("Ted", "Eddie", "Ed"),
    "Christopher": ("Chris",),
    "Daniel": ("Dan", "Danny"),
    "Matthew": ("Matt",),
    "Jonathan": ("Jon", "Jonny"),
    "Stephen": ("Steve",),
    "Steven": ("Steve",),
    "Kenneth": ("Ken", "Kenny"),
    "Gerard": ("Ged", "Gerry"),
    "Francis": ("Frank", "Frankie"),
    "Peter": ("Pete",),
    "David": ("Dave", "Davy"),
    "Andrew": ("Andy", "Drew"),
    "Nicholas": ("Nick", "Nicky"),
    "Alexander": ("Alex", "Sandy"),
    "Samuel": ("Sam", "Sammy"),
    "Patrick": ("Pat", "Paddy"),
    "Patricia": ("Pat", "Trish", "Patsy"),
    "Catherine": ("Kate", "Cathy", "Cath"),
    "Susan": ("Sue", "Suzy"),
    "Jennifer": ("Jenny", "Jen"),
    "Rebecca": ("Becky", "Becca"),
    "Samantha": ("Sam", "Sammy"),
    "Deborah": ("Debbie", "Debs"),
    "Victoria": ("Vicky", "Tori"),
    "Jacqueline": ("Jackie",),
    "Kimberley": ("Kim",),
    "Christine": ("Chris", "Tina"),
    "Mary": ("Molly", "Polly"),
    "Nicola": ("Nicky",),
    "Joanne": ("Jo",),
    "Mohammed": ("Mo",),
}


def _split(pairs: tuple[tuple[str, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    merged: dict[str, float] = {}
    for name, weight in pairs:
        merged[name] = merged.get(name, 0.0) + weight
    names = np.array(list(merged), dtype=object)
    w = np.array(list(merged.values()), dtype=float)
    return names, w / w.sum()


def _mix(base: tuple[tuple[str, float], ...], extra: tuple[tuple[str, float], ...], share: float):
    """A list where ``extra`` names carry ``share`` of the probability (ethnicity-specific names)."""
    b_names, b_p = _split(base)
    e_names, e_p = _split(extra)
    names = np.concatenate([b_names, e_names])
    p = np.concatenate([b_p * (1 - share), e_p * share])
    merged: dict[str, float] = {}
    for n, w in zip(names, p, strict=True):
        merged[n] = merged.get(n, 0.0) + w
    out_names = np.array(list(merged), dtype=object)
    out_p = np.array(list(merged.values()))
    return out_names, out_p / out_p.sum()


def draw_names(
    rng: np.random.Generator, female: np.ndarray, ethnicity: np.ndarray, hyphenated_rate: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """Forenames and surnames (object arrays) given sex and ethnicity label per person."""
    n = len(female)
    forename = np.empty(n, dtype=object)
    surname = np.empty(n, dtype=object)
    groups = {
        "Asian": (ASIAN_MALE, ASIAN_FEMALE, ASIAN_SURNAMES, 0.8),
        "Black": (BLACK_MALE, BLACK_FEMALE, BLACK_SURNAMES, 0.6),
        "Other": (ASIAN_MALE + BLACK_MALE, ASIAN_FEMALE + BLACK_FEMALE, ASIAN_SURNAMES + BLACK_SURNAMES, 0.4),
    }
    for eth in ("Asian", "Black", "Mixed", "White", "Other"):
        in_eth = ethnicity == eth
        if eth in groups:
            male_extra, female_extra, surname_extra, share = groups[eth]
            sur_names, sur_p = _mix(SURNAMES, surname_extra, share)
            m_names, m_p = _mix(MALE_FORENAMES, male_extra, share)
            f_names, f_p = _mix(FEMALE_FORENAMES, female_extra, share)
        else:
            sur_names, sur_p = _split(SURNAMES)
            m_names, m_p = _split(MALE_FORENAMES)
            f_names, f_p = _split(FEMALE_FORENAMES)
        for is_female, (names, p) in ((False, (m_names, m_p)), (True, (f_names, f_p))):
            idx = np.flatnonzero(in_eth & (female == is_female))
            forename[idx] = names[rng.choice(len(names), size=len(idx), p=p)]
        idx = np.flatnonzero(in_eth)
        surname[idx] = sur_names[rng.choice(len(sur_names), size=len(idx), p=sur_p)]
    # double-barrelled surnames: a second common surname joined by a hyphen
    dbl = np.flatnonzero(rng.random(n) < hyphenated_rate)
    base_names, base_p = _split(SURNAMES)
    second = base_names[rng.choice(len(base_names), size=len(dbl), p=base_p)]
    surname[dbl] = [f"{a}-{b}" if a != b else a for a, b in zip(surname[dbl], second, strict=True)]
    return forename, surname


def strip_accents(name: str) -> str:
    """``Zoë`` -> ``Zoe``: what a system without accented characters records."""
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))


def has_accent(name: str) -> bool:
    return strip_accents(name) != name
