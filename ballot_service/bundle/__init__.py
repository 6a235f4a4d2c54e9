"""The audit bundle: a folder an auditor takes away and checks offline with
`ballot-service audit verify BUNDLE` (or by hand with openssl and sha256sum).

Layout (every JSON file is UTF-8, keys sorted; `.json` files indented by one space,
`.jsonl` files one canonical JSON object per line, see formats/canonical.py)::

    manifest.json                 sha256 of every other file
    README.md                     how to verify (Chinese and English)
    events.jsonl                  every audit event in seq order: seq, at, kind, data, prev_hash, hash
    checkpoints.json              signed chain heads: seq, head_hash, reason, signature, key_fingerprint;
                                  reason vote_closed:<item>:<round> or session_closed:<session>
    counts.json                   per item and round: issued, returned, refused by reason, members,
                                  present, candidate keys, places, rule, item kind, ids
    ballots/<item>-r<n>.jsonl     accepted casts of a round, sorted by serial: serial, signature, marks
                                  (+ member_id, member_no for named votes only)
    records/<item>.json           signed record: canonical text as signed, signature, fingerprint
    keys/<name>.pub.pem           public keys; keys/fingerprints.json names their fingerprints

What a ballot signature covers: the canonical JSON of
`{"v": 1, "body", "session", "item", "round", "serial"}` (formats/ballots.py). The bundle does
not repeat the token text: `body`, `session`, `item` and `round` are the ids that counts.json
gives for the round whose file holds the ballot, and `serial` is on the line. A ballot moved
to another round's file therefore fails its signature check (round/item binding).

Modules, in the order the data flows (import from them; this package re-exports nothing):

    layout.py          file and folder names, format tags, the fields of each file
    encoding.py        the byte forms: pretty JSON, canonical JSON lines, base64url, sha256
    errors.py          BundleInvalid, the one error a check raises
    export.py          database -> bundle folder (export_bundle); README.bundle.md is its README
    readers.py         bundle files -> plain data, refusing any file not in the written form
    pool.py            worker processes for the per-file ballot checks
    checks_files.py    1 manifest, 2 keys
    checks_chain.py    3 event chain, 4 checkpoints, 5 event log
    checks_counts.py   6 counts
    checks_ballots.py  7 ballots
    checks_records.py  8 records, 9 recount
    verify.py          verify_bundle: the checks in order -> a summary, or BundleInvalid naming
                       the first failed check
"""
