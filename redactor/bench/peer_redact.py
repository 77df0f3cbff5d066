"""The benchmark's peer: the redactor's patterns, validators and tokens in
Python with the standard `re` module, the way such a redactor is usually
written (one scan per pattern, in priority order).

    python3 peer_redact.py KEY_HEX CORPUS OUTPUT MIN_SECONDS

Redacts every line of CORPUS (one field per line), repeating until
MIN_SECONDS have passed, writes the redacted lines to OUTPUT once, and
prints {"bytes_per_second": ..., "passes": ...}.
"""

import hashlib
import hmac
import ipaddress
import json
import re
import sys
import time

B = r"\b"
PATTERNS = [
    ("private_key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    ("bearer", r"(?i:bearer)[ \t]+[A-Za-z0-9._~+/-]{16,}=*"),
    ("jwt", B + r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("aws_key", B + r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}" + B),
    ("api_key", B + r"(?:sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|xox[abpr]-[A-Za-z0-9-]{10,})"),
    ("email", B + r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}" + B),
    ("iban", B + r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}" + B),
    ("card", B + r"[0-9](?:[ -]?[0-9]){12,22}" + B),
    ("ssn", B + r"(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4})" + B),
    ("phone", r"\+[1-9][0-9]{0,3}(?:[ .-]?\(?[0-9]{1,5}\)?){1,6}"
              r"|(?:\b1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|\b[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}\b"
              r"|\b0[1-9][0-9]{1,4}(?:[ /-][0-9]{2,8}){1,3}\b"),
    ("ipv4", B + r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}" + B),
    ("ipv6", B + r"[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}"),
]
COMPILED = [(k, re.compile(p, re.ASCII)) for k, p in PATTERNS]
TOKEN = re.compile(r"<[a-z][a-z0-9_]{0,31}:[0-9a-f]{16}>")


def luhn(ds):
    total = 0
    for i, d in enumerate(reversed(ds)):
        d = int(d)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def v_card(s):
    ds, ends = [], []
    for i, c in enumerate(s):
        if c.isdigit():
            ds.append(c)
            if i + 1 == len(s) or not s[i + 1].isdigit():
                ends.append((len(ds), i + 1))
    for n, end in reversed(ends):
        if not 13 <= n <= 19:
            continue
        first = ds[0]
        issued = first == "4" or (first in "23456" and n >= 14)
        if issued and luhn(ds[:n]) and len(set(ds[:n])) > 1:
            return end
    return None


IBAN_LEN = {"DE": 22, "GB": 22, "IE": 22, "FR": 27, "IT": 27, "MC": 27, "NL": 18, "BE": 16, "ES": 24, "SE": 24,
            "CH": 21, "LI": 21, "AT": 20, "PL": 28, "PT": 25, "DK": 18, "FI": 18, "NO": 15, "LU": 20}


def v_iban(s):
    compact, end_of = [], []
    for i, c in enumerate(s):
        if c != " ":
            compact.append(c)
            end_of.append(i + 1)
    lengths = [IBAN_LEN[s[:2]]] if s[:2] in IBAN_LEN else range(34, 14, -1)
    for n in lengths:
        if n > len(compact):
            continue
        end = end_of[n - 1]
        if end < len(s) and s[end].isalnum():
            continue
        cand = "".join(compact[4:n] + compact[:4])
        if int("".join(str(int(c, 36)) for c in cand)) % 97 == 1:
            return end
    return None


def v_ssn(s):
    d = [c for c in s if c.isdigit()]
    if len(d) != 9:
        return None
    area, group, serial = int("".join(d[:3])), int("".join(d[3:5])), int("".join(d[5:]))
    return len(s) if area not in (0, 666) and area < 900 and group and serial else None


SSN_SHAPE = re.compile(r"[0-9]{3}-[0-9]{2}-[0-9]{4}\Z")


def v_phone(s):
    if SSN_SHAPE.match(s):
        return None
    t = s.rstrip("".join(c for c in set(s) if not c.isdigit()))
    n = sum(c.isdigit() for c in t)
    ok = (8 <= n <= 15) if t.startswith("+") else (9 <= n <= 12) if t.startswith("0") else n == 11 if t.startswith("1") else n == 10
    return len(t) if ok else None


def v_bearer(s):
    t = s.rstrip(".,")
    parts = t.split()
    return len(t) if len(parts) > 1 and len(parts[1]) >= 16 else None


def v_ipv4(text, start, end):
    s = text[start:end]
    if start > 0 and text[start - 1] == ".":
        return None
    if end + 1 < len(text) and text[end] == "." and text[end + 1].isdigit():
        return None
    for o in s.split("."):
        if not o or len(o) > 3 or (o != "0" and o.startswith("0")) or int(o) > 255:
            return None
    return len(s)


def v_ipv6(s):
    end = len(s)
    while end > 2:
        cand = s[:end]
        try:
            ipaddress.IPv6Address(cand)
            return end if len([g for g in cand.split(":") if g]) >= 3 else None
        except ValueError:
            end = cand.rfind(":")
            if end < 0:
                return None
    return None


def validate(kind, text, start, end):
    s = text[start:end]
    if kind == "card":
        n = v_card(s)
    elif kind == "iban":
        n = v_iban(s)
    elif kind == "ssn":
        n = v_ssn(s)
    elif kind == "phone":
        n = v_phone(s)
    elif kind == "bearer":
        n = v_bearer(s)
    elif kind == "ipv4":
        n = v_ipv4(text, start, end)
    elif kind == "ipv6":
        n = v_ipv6(s)
    else:
        n = len(s)
    return None if n is None else start + n


def normalise(kind, value):
    if kind == "email":
        return value.lower()
    if kind in ("phone", "card", "ssn"):
        return "".join(c for c in value if c.isdigit())
    if kind == "iban":
        return "".join(value.split()).upper()
    if kind == "ipv6":
        try:
            return ipaddress.IPv6Address(value).compressed
        except ValueError:
            return value.lower()
    return value


def token(key, kind, value):
    mac = hmac.new(key, kind.encode() + b"\0" + normalise(kind, value).encode(), hashlib.sha256)
    return f"<{kind}:{mac.hexdigest()[:16]}>"


def redact(key, text):
    taken = [(m.start(), m.end(), None) for m in TOKEN.finditer(text)]

    def free(a, b):
        return all(b <= s or a >= e for s, e, _ in taken)

    for kind, rx in COMPILED:
        for m in rx.finditer(text):
            end = validate(kind, text, m.start(), m.end())
            if end is not None and free(m.start(), end):
                taken.append((m.start(), end, kind))
    if not any(k for _, _, k in taken):
        return text
    out, last = [], 0
    for s, e, k in sorted(taken):
        if k is None:
            continue
        out.append(text[last:s])
        out.append(token(key, k, text[s:e]))
        last = e
    out.append(text[last:])
    return "".join(out)


def main():
    key = bytes.fromhex(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        lines = f.read().split("\n")
    size = sum(len(l.encode()) for l in lines)
    redacted = [redact(key, l) for l in lines]
    with open(sys.argv[3], "w", encoding="utf-8") as f:
        f.write("\n".join(redacted))
    min_seconds = float(sys.argv[4])
    passes, start = 0, time.perf_counter()
    while True:
        for l in lines:
            redact(key, l)
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    print(json.dumps({"bytes_per_second": size * passes / elapsed, "passes": passes}))


if __name__ == "__main__":
    main()
