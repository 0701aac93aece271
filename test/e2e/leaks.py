"""Looks for secrets where none may be: in log files, and in the command lines and environments of
processes (as test/vm/sidecar-guest.sh samples them).

usage: leaks.py [--key FILE]... [--secret TEXT]... [--tokens-from REQUESTS.json]... FILE...

--key FILE        a key (raw bytes); found as its bytes, hex (either case), base64 or base64url
--secret TEXT     a string that must not appear (e.g. a token's signature)
--tokens-from F   a fake service's /_requests list: the signatures of the tokens it received
                  (bearer tokens, the release request's "target") become secrets
Also reported: any whole JWT or JWS (three base64url parts, the first a JSON header "eyJ..."), as
the tools' logs must cut tokens to header.payload.

Prints one line per finding, "FILE: what"; nothing when clean.  Exit status 0 unless the usage is
wrong or a file cannot be read.
"""
import base64
import json
import re
import sys

JWS = re.compile(rb"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16,}")


def forms(name, raw):
    out = [(name + " (bytes)", raw), (name + " (hex)", raw.hex().encode()),
           (name + " (HEX)", raw.hex().upper().encode())]
    for label, enc in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        out.append(("%s (%s)" % (name, label), enc(raw).rstrip(b"=")))
    return out


def token_signatures(path):
    with open(path) as f:
        reqs = json.load(f)
    sigs = set()
    for r in reqs:
        texts = [r.get("headers", {}).get("Authorization", "")]
        try:
            body = json.loads(r.get("body") or "null")
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("target"), str):
            texts.append(body["target"])
        for t in texts:
            t = t.split()[-1] if t else ""
            parts = t.split(".")
            if len(parts) == 3 and len(parts[2]) >= 16:
                sigs.add(parts[2])
    return sigs


def main(argv):
    needles, files = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--key", "--secret", "--tokens-from") and i + 1 < len(argv):
            v = argv[i + 1]
            if a == "--key":
                with open(v, "rb") as f:
                    needles += forms("key " + v, f.read())
            elif a == "--secret":
                needles.append(("secret " + v[:8] + "...", v.encode()))
            else:
                needles += [("token signature %s... from %s" % (s[:8], v), s.encode())
                            for s in sorted(token_signatures(v))]
            i += 2
        elif a.startswith("--"):
            sys.exit(__doc__)
        else:
            files.append(a)
            i += 1
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        for what, needle in needles:
            if needle and needle in data:
                print("%s: %s" % (path, what))
        for m in JWS.finditer(data):
            print("%s: a whole token %s..." % (path, m.group(0)[:24].decode()))


if __name__ == "__main__":
    main(sys.argv[1:])
