#!/usr/bin/env python3
"""Writes the fuzz corpora's seeds from tests/vectors/vectors.json."""
import base64, hashlib, json, os

root = os.path.dirname(os.path.abspath(__file__))
doc = json.load(open(os.path.join(root, "..", "tests", "vectors", "vectors.json")))
for target in ("header", "verify", "scan"):
    os.makedirs(os.path.join(root, "corpus", target), exist_ok=True)

def put(target, data):
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(root, "corpus", target, name), "wb") as f:
        f.write(data)

n = 0
for v in doc["vectors"]:
    headers = [base64.b64decode(h) for h in v["headers_b64"]]
    body = base64.b64decode(v["body_b64"])
    put("header", b"\n".join(headers))
    if len(headers) == 1:
        sel = 1 if len(v["secrets"]) == 2 else 0
        put("verify", bytes([sel]) + headers[0] + b"\n\n" + body)
        put("verify", bytes([0x80]) + b"\n\n" + body)
        put("scan", body)
        n += 1
# Non-ASCII text, for the UTF-8 validators the scan target compares.
text = "Abonnement été — プラン座席・年間契約 😀 Grüße".encode()
put("scan", b'{"id":"evt_1","type":"t","data":{"object":{"d":"' + text * 4 + b'"}}}')
put("scan", b'{"id":"evt_1","type":"t","d":"' + text * 3 + b"\xed\xa0\x80" + text + b'"}')
print(f"seeded corpora from {len(doc['vectors'])} vectors ({n} verify seeds x2)")
