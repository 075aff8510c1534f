#!/usr/bin/env python3
"""Generates tests/vectors/vectors.json: the conformance vectors every crate runs.

Signatures are computed here with Python's standard hmac/hashlib, exactly as the
seed's "Testing your handler" recipe does, so the vectors are an independent
cross-check of our Rust code, not our code agreeing with itself. Expected
values of valid vectors come from Python's json module.

    python3 tests/vectors/generate.py          # rewrite vectors.json
    python3 tests/vectors/generate.py --check  # fail if vectors.json is stale
"""

import base64
import gzip
import struct
import zlib
import hashlib
import hmac
import json
import os
import sys

NOW = 1767225600  # 2026-01-01T00:00:00Z; every vector is judged at this instant
SECRET = "whsec_test_conformance"
OLD = "whsec_old_conformance"
OTHER = "whsec_not_the_secret"


def sign(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def header(t, body, *secrets):
    secrets = secrets or (SECRET,)
    return f"t={t}" + "".join(f",v1={sign(s, int(t), body)}" for s in secrets)


def env(**extra):
    e = {
        "id": "evt_01HXCONFORMANCE",
        "type": "plugipay.invoice.paid.v1",
        "account_id": "acc_01HXCONFORMANCE",
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": {"object": {"id": "inv_01H", "total": 4200, "currency": "usd"}},
    }
    e.update(extra)
    return json.dumps(e, separators=(",", ":")).encode()


BODY = env()
vectors = []


def add(name, body, headers, expect, secrets=(SECRET,), tolerance=None, now=NOW, http=True, note=None, content_encoding=None):
    """headers: None (no field), a str/bytes (one field) or a list (several fields)."""
    if headers is None:
        headers = []
    elif not isinstance(headers, list):
        headers = [headers]
    raw_headers = [h if isinstance(h, bytes) else h.encode() for h in headers]
    v = {"name": name}
    if note:
        v["note"] = note
    v["secrets"] = list(secrets)
    if tolerance is not None:
        v["tolerance"] = tolerance
    if now != NOW:
        v["now"] = now
    v["headers_b64"] = [base64.b64encode(h).decode() for h in raw_headers]
    v["body_b64"] = base64.b64encode(body).decode()
    if all(0x20 <= c < 0x7F for c in body):
        v["body_text"] = body.decode()
    v["http"] = http
    if content_encoding:
        v["content_encoding"] = content_encoding
    if expect == "ok":
        e = json.loads(body)
        data = e.get("data") or {}
        v["expect"] = {
            "ok": {
                "id": e["id"],
                "type": e["type"],
                "account_id": e.get("account_id"),
                "occurred_at": e.get("occurred_at"),
                "object": data.get("object"),
            }
        }
    elif isinstance(expect, tuple):  # ("ok", matched_secret)
        add(name, body, headers, "ok", secrets, tolerance, now, http, note, content_encoding)
        vectors[-1]["expect"]["ok"]["matched_secret"] = expect[1]
        return
    else:
        v["expect"] = {"error": expect}
    if "ok" in v["expect"]:
        v["expect"]["ok"]["matched_secret"] = 0
    vectors.append(v)


T = NOW
# --- valid deliveries -------------------------------------------------------
add("valid", BODY, header(T, BODY), "ok")
add("valid_one_second_old", BODY, header(T - 1, BODY), "ok")
minimal = b'{"id":"evt_1","type":"plugipay.customer.created.v1"}'
add("valid_minimal_envelope", minimal, header(T, minimal), "ok")
for n, b in [
    ("valid_data_null", env(data=None)),
    ("valid_data_without_object", env(data={"other": 1})),
    ("valid_object_null", env(data={"object": None})),
    ("valid_account_and_time_null", env(account_id=None, occurred_at=None)),
    ("valid_object_scalar", env(data={"object": "just a string"})),
    ("valid_extra_fields_everywhere", env(livemode=False, api_version="2026-01", data={"previous": {"a": [1, 2]}, "object": {"id": "x", "nested": {"deep": [{"k": None}]}}})),
]:
    add(n, b, header(T, b), "ok")
uni = '{"id":"evt_\\u0031","type":"plugipay.customer.created.v1","data":{"object":{"name":"Zoë 😀 \\ud83d\\ude00 \\u00e9","city":"Zürich"}}}'.encode()
add("valid_unicode_and_escapes", uni, header(T, uni), "ok")
spaced = b' \n{ "id" : "evt_ws" ,\r\n\t"type":"plugipay.payout.paid.v1" , "data" : { "object" : [ 1 , 2.5e-3 , -7 , true ] } }\n '
add("valid_insignificant_whitespace", spaced, header(T, spaced), "ok")
big = env(data={"object": {"n": 1e308, "small": 1e-400, "int": 123456789012345678901234567890}})
add("valid_large_finite_numbers", big, header(T, big), "ok")
add("tolerance_edge_past_ok", BODY, header(T - 300, BODY), "ok")
add("tolerance_edge_future_ok", BODY, header(T + 300, BODY), "ok")
add("tolerance_custom_ok", BODY, header(T - 10, BODY), "ok", tolerance=10)
sig = sign(SECRET, T, BODY)
add("several_v1_second_matches", BODY, f"t={T},v1={'0'*64},v1={sig}", "ok")
add("several_v1_invalid_forms_then_match", BODY, f"t={T},v1=zz,v1=,v1={'a'*63},v1={sig}", "ok")
add("uppercase_hex_accepted", BODY, f"t={T},v1={sig.upper()}", "ok")
add("unknown_schemes_ignored", BODY, f"v0=abc,t={T},v2={'1'*64},v1={sig},x=y,=z", "ok")
add("whitespace_around_items", BODY, f" \tt = {T} ,\t v1 =\t{sig} ", "ok")
add("trailing_and_empty_items", BODY, f",,t={T},,v1={sig},", "ok")
add("timestamp_leading_zeros", BODY, f"t=000{T},v1={sig}", "ok", note="t=000<t> signs as '<t>.'")
add("rotation_old_secret_matches", BODY, header(T, BODY, OLD), ("ok", 1), secrets=(SECRET, OLD))
add("rotation_both_signed_first_wins", BODY, header(T, BODY, OLD, SECRET), ("ok", 0), secrets=(SECRET, OLD))
add("rotation_empty_secret_skipped", BODY, header(T, BODY, OLD), ("ok", 1), secrets=("", OLD))
thirty_two = f"t={T}" + f",v1={'0'*64}" * 31 + f",v1={sig}"
add("thirty_two_v1_allowed", BODY, thirty_two, "ok")
base = header(T, BODY)
pad = 8192 - len(base) - len(",x=")
add("header_exactly_8192_bytes", BODY, base + ",x=" + "a" * pad, "ok")
deep64 = b'{"id":"evt_deep","type":"plugipay.customer.created.v1","data":{"object":' + b"[" * 62 + b"]" * 62 + b"}}"
add("nesting_64_levels_ok", deep64, header(T, deep64), "ok")
emptyobj = env(data={"object": {}})
add("valid_object_empty", emptyobj, header(T, emptyobj), "ok")

# --- signature_missing ------------------------------------------------------
add("header_absent", BODY, None, "signature_missing")
add("header_empty", BODY, "", "signature_missing")
add("header_only_whitespace", BODY, " \t ", "signature_missing")
add("no_secret_configured", BODY, header(T, BODY), "signature_missing", secrets=())
add("only_empty_secret", BODY, header(T, BODY), "signature_missing", secrets=("",))
add("missing_secret_beats_malformed_header", BODY, "garbage", "signature_missing", secrets=("",))

# --- signature_malformed ----------------------------------------------------
add("no_t", BODY, f"v1={sig}", "signature_malformed")
add("no_v1", BODY, f"t={T}", "signature_malformed")
add("only_other_schemes", BODY, f"t={T},v0={sig}", "signature_malformed")
add("duplicate_t", BODY, f"t={T},t={T},v1={sig}", "signature_malformed")
for i, form in enumerate(["-1", "+1", "1.5", "1_0", "0x10", "", "1e3", " ", "99999999999999999999", "9223372036854775808", "١٢٣"]):
    h = f"t={form},v1={sig}"
    add(f"timestamp_form_{i}_{form!r}", BODY, h, "signature_malformed", http=all(ord(c) < 128 for c in h))
add("uppercase_T_is_unknown_key", BODY, f"T={T},v1={sig}", "signature_malformed")
add("item_without_equals", BODY, f"t={T},v1={sig},junk", "signature_malformed")
add("plain_signature_no_parts", BODY, sig, "signature_malformed")
add("thirty_three_v1", BODY, thirty_two + f",v1={sig}", "signature_malformed")
add("header_8193_bytes", BODY, base + ",x=" + "a" * (pad + 1), "signature_malformed")
add("header_nul_byte", BODY, base.encode() + b"\x00", "signature_malformed", http=False, note="HTTP servers refuse NUL in a header")
add("header_del_byte", BODY, base.encode() + b",x=\x7f", "signature_malformed", http=False, note="hyper refuses DEL in a header value with its own 400")
add("header_non_ascii_byte", BODY, base.encode() + b",x=\xc3\xa9", "signature_malformed", note="rocket drops non-UTF-8 header values; UTF-8 ones reach us")
add("header_non_utf8_byte", BODY, base.encode() + b",x=\xff", "signature_malformed", note="rocket: signature_missing (docs/http.md)")
add("two_header_fields", BODY, [header(T, BODY), header(T, BODY)], "signature_malformed")
add("two_header_fields_one_empty", BODY, [header(T, BODY), ""], "signature_malformed")
add("malformed_beats_bad_body", b"not json", "t=abc,v1=00", "signature_malformed")

# --- signature_invalid ------------------------------------------------------
add("wrong_secret", BODY, header(T, BODY, OTHER), "signature_invalid")
add("tampered_body", BODY.replace(b"4200", b"4201"), header(T, BODY), "signature_invalid")
add("reserialised_body", json.dumps(json.loads(BODY), indent=2).encode(), header(T, BODY), "signature_invalid")
add("signed_with_other_timestamp", BODY, f"t={T},v1={sign(SECRET, T - 1, BODY)}", "signature_invalid")
add("v1_not_hex", BODY, f"t={T},v1={'g'*64}", "signature_invalid")
add("v1_too_short", BODY, f"t={T},v1={sig[:-1]}", "signature_invalid")
add("v1_too_long", BODY, f"t={T},v1={sig}0", "signature_invalid")
add("secret_prefix_is_part_of_key", BODY, header(T, BODY, SECRET[len("whsec_"):]), "signature_invalid")
add("invalid_beats_stale", BODY, header(T - 10_000, BODY, OTHER), "signature_invalid")


def bad_body(name, body, note=None):
    add(name, body, header(T, body), "signature_invalid", note=note)


bad_body("body_empty", b"")
bad_body("body_not_utf8", b'{"id":"evt_1","type":"t","x":"\xff"}')
bad_body("body_not_json", b"id=evt_1&type=plugipay.invoice.paid.v1")
bad_body("body_top_level_array", b'[{"id":"evt_1","type":"t"}]')
bad_body("body_top_level_string", b'"evt_1"')
bad_body("body_nan", b'{"id":"evt_1","type":"t","data":{"object":{"n":NaN}}}', "Python's json accepts NaN")
bad_body("body_infinity", b'{"id":"evt_1","type":"t","data":{"object":{"n":Infinity}}}')
bad_body("body_negative_infinity", b'{"id":"evt_1","type":"t","data":{"object":{"n":-Infinity}}}')
bad_body("body_number_overflow", b'{"id":"evt_1","type":"t","data":{"object":{"n":1e400}}}')
bad_body("body_leading_zero", b'{"id":"evt_1","type":"t","n":012}')
bad_body("body_lone_high_surrogate", b'{"id":"evt_1","type":"t","data":{"object":{"s":"\\ud800"}}}', "Python's json accepts lone surrogates")
bad_body("body_lone_low_surrogate", b'{"id":"evt_1","type":"t","data":{"object":{"s":"\\udc00"}}}')
bad_body("body_reversed_surrogates", b'{"id":"evt_1","type":"t","s":"\\udc00\\ud800"}')
bad_body("body_lone_surrogate_in_key", b'{"id":"evt_1","type":"t","data":{"object":{"\\ud800":1}}}')
bad_body("body_raw_control_char", b'{"id":"evt_1","type":"t","s":"a\tb"}')
bad_body("body_trailing_garbage", BODY + b"x")
bad_body("body_two_documents", BODY + BODY)
bad_body("body_trailing_comma", b'{"id":"evt_1","type":"t",}')
bad_body("body_single_quotes", b"{'id':'evt_1','type':'t'}")
bad_body("body_truncated", BODY[:-1])
deep65 = b'{"id":"evt_deep","type":"plugipay.customer.created.v1","data":{"object":' + b"[" * 63 + b"]" * 63 + b"}}"
bad_body("body_nesting_65_levels", deep65)
bad_body("duplicate_id", b'{"id":"evt_1","type":"t","id":"evt_2"}', "parser differentials fool de-duplication")
bad_body("duplicate_id_escaped_key", b'{"id":"evt_1","type":"t","\\u0069d":"evt_2"}')
bad_body("duplicate_type", b'{"id":"evt_1","type":"t","type":"u"}')
bad_body("duplicate_account_id", b'{"id":"evt_1","type":"t","account_id":null,"account_id":"acc_2"}')
bad_body("duplicate_occurred_at", b'{"id":"evt_1","type":"t","occurred_at":"a","occurred_at":"b"}')
bad_body("duplicate_data", b'{"id":"evt_1","type":"t","data":{"object":1},"data":{"object":2}}')
bad_body("duplicate_data_object", b'{"id":"evt_1","type":"t","data":{"object":1,"object":2}}')
bad_body("missing_id", b'{"type":"t"}')
bad_body("missing_type", b'{"id":"evt_1"}')
bad_body("id_not_string", b'{"id":1,"type":"t"}')
bad_body("id_null", b'{"id":null,"type":"t"}')
bad_body("type_not_string", b'{"id":"evt_1","type":["t"]}')
bad_body("account_id_number", b'{"id":"evt_1","type":"t","account_id":5}')
bad_body("occurred_at_object", b'{"id":"evt_1","type":"t","occurred_at":{}}')
bad_body("data_array", b'{"id":"evt_1","type":"t","data":[]}')
bad_body("data_string", b'{"id":"evt_1","type":"t","data":"x"}')



def gzip_stored(data: bytes) -> bytes:
    """A gzip member holding `data` in one stored (uncompressed) deflate block:
    byte-for-byte deterministic, unlike zlib's compressor output."""
    assert len(data) < 65536
    header = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF])
    block = bytes([1]) + struct.pack("<HH", len(data), len(data) ^ 0xFFFF) + data
    return header + block + struct.pack("<II", zlib.crc32(data), len(data))


GZ = gzip_stored(BODY)
assert gzip.decompress(GZ) == BODY
add("gzip_label_on_plain_json_verified_as_sent", BODY, header(T, BODY), "ok", content_encoding="gzip",
    note="bytes are verified as sent; Content-Encoding is never decoded")
add("gzip_body_signed_over_decoded_json", GZ, header(T, BODY), "signature_invalid", content_encoding="gzip",
    note="a receiver that decoded the body would wrongly accept this")
add("gzip_body_signed_as_sent", GZ, header(T, GZ), "signature_invalid", content_encoding="gzip",
    note="genuine signature, but the bytes are not a JSON envelope")

# --- signature_stale --------------------------------------------------------
add("stale_301_seconds", BODY, header(T - 301, BODY), "signature_stale")
add("future_301_seconds", BODY, header(T + 301, BODY), "signature_stale")
add("stale_custom_tolerance", BODY, header(T - 11, BODY), "signature_stale", tolerance=10)
add("stale_one_day", BODY, header(T - 86400, BODY), "signature_stale")
add("stale_timestamp_zero", BODY, header(0, BODY), "signature_stale")
add("future_max_timestamp", BODY, header(9223372036854775807, BODY), "signature_stale")
add("stale_beats_bad_body", b"not json", header(T - 1000, b"not json"), "signature_stale", note="check 4 before check 5")
add("stale_with_zero_tolerance", BODY, header(T - 1, BODY), "signature_stale", tolerance=0)
add("far_past_now", BODY, header(T, BODY), "signature_stale", now=-9223372036854775808, http=False, note="no overflow for any i64")

doc = {
    "comment": "Generated by tests/vectors/generate.py with Python's hmac/hashlib; do not edit by hand.",
    "now": NOW,
    "default_tolerance": 300,
    "vectors": vectors,
}
out = json.dumps(doc, indent=1, ensure_ascii=True) + "\n"
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
names = [v["name"] for v in vectors]
assert len(names) == len(set(names)), "duplicate vector names"
if "--check" in sys.argv:
    with open(path) as f:
        if f.read() != out:
            sys.exit("tests/vectors/vectors.json is out of date: run python3 tests/vectors/generate.py")
    print(f"vectors.json is up to date ({len(vectors)} vectors)")
else:
    with open(path, "w") as f:
        f.write(out)
    print(f"wrote {len(vectors)} vectors to {path}")
