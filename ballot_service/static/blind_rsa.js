/* blind_rsa.js: the client half of RSA blind signatures, RSABSSA-SHA384-PSS-Randomized
 * (RFC 9474), for seat tablets on plain-http pages where crypto.subtle does not exist.
 * The server half is ballot_service/crypto/blind_rsa.py; the wire format is described there.
 *
 * Classic <script>, after vendor/noble-hashes.js (SHA-384). Defines the global BlindRSA:
 *   pk = BlindRSA.importPublicKey(pemString | derBytes | {n: b64url, e: b64url})
 *   prepared = BlindRSA.prepare(msgBytes)
 *   {blindedMsg, inv} = BlindRSA.blind(pk, prepared)      -> send blindedMsg, keep inv
 *   sig = BlindRSA.finalize(pk, prepared, blindSig, inv)  -> throws if it does not verify
 *   BlindRSA.verify(pk, prepared, sig)                    -> throws if invalid
 * All byte values are Uint8Array; integers are BigInt. Randomness comes only from
 * crypto.getRandomValues; crypto.subtle is never used. */
(function (root) {
  "use strict";

  var H_LEN = 48, S_LEN = 48, PREFIX_LEN = 32, SERIAL_LEN = 16;
  // DER of OID 1.2.840.113549.1.1.1 (rsaEncryption)
  var RSA_OID = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

  function sha384(bytes) {
    // Looked up on each call so the script order only matters at first use.
    return root.nobleHashes.sha384(bytes);
  }

  function randomBytes(len) {
    var out = new Uint8Array(len);
    root.crypto.getRandomValues(out);
    return out;
  }

  function checkBytes(x, what) {
    if (!(x instanceof Uint8Array)) throw new TypeError(what + " must be a Uint8Array");
    return x;
  }

  function concat() {
    var total = 0, i, out, at = 0;
    for (i = 0; i < arguments.length; i++) total += arguments[i].length;
    out = new Uint8Array(total);
    for (i = 0; i < arguments.length; i++) { out.set(arguments[i], at); at += arguments[i].length; }
    return out;
  }

  // ---- integers ---------------------------------------------------------------------------

  function bytesToInt(bytes) {
    var hex = bytesToHex(bytes);
    return hex ? BigInt("0x" + hex) : 0n;
  }

  function intToBytes(x, len) {
    var hex = x.toString(16);
    if (hex.length > 2 * len) throw new RangeError("integer too large for " + len + " bytes");
    return hexToBytes(hex.padStart(2 * len, "0"));
  }

  function bitLength(x) { return x === 0n ? 0 : x.toString(2).length; }

  function modPow(base, exp, mod) {
    // Left-to-right square and multiply; only used with public exponents, so timing is harmless.
    var result = 1n, bits = exp.toString(2), i;
    base %= mod;
    for (i = 0; i < bits.length; i++) {
      result = result * result % mod;
      if (bits[i] === "1") result = result * base % mod;
    }
    return result;
  }

  function gcd(a, b) {
    while (b) { var t = a % b; a = b; b = t; }
    return a;
  }

  function modInverse(a, n) {
    var t = 0n, newT = 1n, r = n, newR = ((a % n) + n) % n, q, tmp;
    while (newR !== 0n) {
      q = r / newR;
      tmp = t - q * newT; t = newT; newT = tmp;
      tmp = r - q * newR; r = newR; newR = tmp;
    }
    if (r !== 1n) throw new RangeError("not invertible modulo n");
    return t < 0n ? t + n : t;
  }

  function randomBelow(n) {
    // Uniform in [1, n) by rejection, as RFC 9474 random_integer_uniform.
    var len = Math.ceil(bitLength(n) / 8), extra = BigInt(8 * len - bitLength(n)), x;
    do { x = bytesToInt(randomBytes(len)) >> extra; } while (x === 0n || x >= n);
    return x;
  }

  // ---- encodings --------------------------------------------------------------------------

  function bytesToHex(bytes) {
    var s = "", i;
    for (i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return s;
  }

  function hexToBytes(hex) {
    if (hex.length % 2 || /[^0-9a-fA-F]/.test(hex)) throw new TypeError("not a hex string");
    var out = new Uint8Array(hex.length / 2), i;
    for (i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
    return out;
  }

  function base64ToBytes(text) {
    var s = text.replace(/\s+/g, "").replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
    if (/[^A-Za-z0-9+/]/.test(s) || s.length % 4 === 1) throw new TypeError("not base64");
    var bin = root.atob(s + "===".slice((s.length + 3) % 4)), out = new Uint8Array(bin.length), i;
    for (i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function bytesToBase64url(bytes) {
    var bin = "", i;
    for (i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return root.btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // ---- public keys ------------------------------------------------------------------------

  function derRead(bytes, pos, tag) {
    // One DER TLV with the expected tag: returns {start, end} of its contents.
    if (bytes[pos] !== tag) throw new TypeError("unexpected DER tag in public key");
    var len = bytes[pos + 1], at = pos + 2, n;
    if (len & 0x80) {
      n = len & 0x7f;
      if (n < 1 || n > 4) throw new TypeError("bad DER length in public key");
      len = 0;
      for (; n > 0; n--) len = len * 256 + bytes[at++];
    }
    if (at + len > bytes.length) throw new TypeError("truncated public key");
    return { start: at, end: at + len };
  }

  function parseSpki(der) {
    var spki = derRead(der, 0, 0x30), alg = derRead(der, spki.start, 0x30);
    var oid = derRead(der, alg.start, 0x06), i;
    if (oid.end - oid.start !== RSA_OID.length) throw new TypeError("not an RSA public key");
    for (i = 0; i < RSA_OID.length; i++) {
      if (der[oid.start + i] !== RSA_OID[i]) throw new TypeError("not an RSA public key");
    }
    var bits = derRead(der, alg.end, 0x03);
    if (der[bits.start] !== 0) throw new TypeError("bad BIT STRING in public key");
    var seq = derRead(der, bits.start + 1, 0x30);
    var n = derRead(der, seq.start, 0x02), e = derRead(der, n.end, 0x02);
    return { n: bytesToInt(der.subarray(n.start, n.end)), e: bytesToInt(der.subarray(e.start, e.end)) };
  }

  function makeKey(n, e) {
    if (n <= 0n || e <= 1n || n % 2n === 0n) throw new RangeError("invalid RSA public key");
    var modBits = bitLength(n);
    if (modBits < 2048) throw new RangeError("RSA modulus below 2048 bits");
    return Object.freeze({ n: n, e: e, modBits: modBits, k: Math.ceil(modBits / 8) });
  }

  function importPublicKey(input) {
    if (typeof input === "string") {
      var m = /-----BEGIN PUBLIC KEY-----([\s\S]*?)-----END PUBLIC KEY-----/.exec(input);
      if (!m) throw new TypeError("expected a PEM 'PUBLIC KEY' (SubjectPublicKeyInfo)");
      input = base64ToBytes(m[1]);
    }
    if (input instanceof Uint8Array) {
      var ne = parseSpki(input);
      return makeKey(ne.n, ne.e);
    }
    if (input && typeof input.n === "string" && typeof input.e === "string") {
      return makeKey(bytesToInt(base64ToBytes(input.n)), bytesToInt(base64ToBytes(input.e)));
    }
    throw new TypeError("public key must be PEM, SPKI DER bytes or {n, e} in base64url");
  }

  // ---- EMSA-PSS (RFC 8017 sections 9.1.1 and 9.1.2), SHA-384 and MGF1-SHA-384 ------------

  function mgf1(seed, len) {
    var out = new Uint8Array(len), at = 0, counter = 0, block;
    while (at < len) {
      block = sha384(concat(seed, intToBytes(BigInt(counter++), 4)));
      out.set(block.subarray(0, Math.min(H_LEN, len - at)), at);
      at += H_LEN;
    }
    return out;
  }

  function pssHash(msg, salt) {
    return sha384(concat(new Uint8Array(8), sha384(msg), salt));
  }

  function emsaPssEncode(msg, emBits, salt) {
    var emLen = Math.ceil(emBits / 8), i;
    if (emLen < H_LEN + S_LEN + 2) throw new RangeError("modulus too small");
    var h = pssHash(msg, salt);
    var db = concat(new Uint8Array(emLen - S_LEN - H_LEN - 2), Uint8Array.of(1), salt);
    var mask = mgf1(h, emLen - H_LEN - 1);
    for (i = 0; i < db.length; i++) db[i] ^= mask[i];
    db[0] &= 0xff >> (8 * emLen - emBits);  // keep the integer below n
    return concat(db, h, Uint8Array.of(0xbc));
  }

  function emsaPssVerify(msg, em, emBits) {
    var emLen = Math.ceil(emBits / 8), i, zeroBits = 8 * emLen - emBits;
    if (em.length !== emLen || emLen < H_LEN + S_LEN + 2 || em[emLen - 1] !== 0xbc) return false;
    var db = em.slice(0, emLen - H_LEN - 1), h = em.subarray(emLen - H_LEN - 1, emLen - 1);
    if (db[0] & (0xff << (8 - zeroBits)) & 0xff) return false;
    var mask = mgf1(h, db.length);
    for (i = 0; i < db.length; i++) db[i] ^= mask[i];
    db[0] &= 0xff >> zeroBits;
    var psLen = emLen - H_LEN - S_LEN - 2;
    for (i = 0; i < psLen; i++) if (db[i] !== 0) return false;
    if (db[psLen] !== 1) return false;
    var h2 = pssHash(msg, db.subarray(db.length - S_LEN)), diff = 0;
    for (i = 0; i < H_LEN; i++) diff |= h[i] ^ h2[i];
    return diff === 0;
  }

  // ---- the protocol (RFC 9474 section 4) --------------------------------------------------

  function prepare(msg, opts) {
    checkBytes(msg, "message");
    var prefix = opts && opts.prefix ? checkBytes(opts.prefix, "prefix") : randomBytes(PREFIX_LEN);
    if (prefix.length !== PREFIX_LEN) throw new RangeError("prefix must be " + PREFIX_LEN + " bytes");
    return concat(prefix, msg);
  }

  // opts.salt and opts.inv fix the PSS salt and the blinding inverse: only for test vectors.
  function blind(pk, preparedMsg, opts) {
    checkBytes(preparedMsg, "prepared message");
    var salt = opts && opts.salt ? checkBytes(opts.salt, "salt") : randomBytes(S_LEN), r, inv;
    if (salt.length !== S_LEN) throw new RangeError("salt must be " + S_LEN + " bytes");
    var m = bytesToInt(emsaPssEncode(preparedMsg, pk.modBits - 1, salt));
    if (gcd(m, pk.n) !== 1n) throw new RangeError("encoded message is not invertible modulo n");
    if (opts && opts.inv) {
      inv = bytesToInt(checkBytes(opts.inv, "inv"));
      r = modInverse(inv, pk.n);
    } else {
      r = randomBelow(pk.n);
      inv = modInverse(r, pk.n);
    }
    var z = m * modPow(r, pk.e, pk.n) % pk.n;
    return { blindedMsg: intToBytes(z, pk.k), inv: intToBytes(inv, pk.k) };
  }

  function verify(pk, preparedMsg, sig) {
    checkBytes(preparedMsg, "prepared message");
    checkBytes(sig, "signature");
    var s = bytesToInt(sig), ok = sig.length === pk.k && s < pk.n;
    if (ok) {
      var emLen = Math.ceil((pk.modBits - 1) / 8), m = modPow(s, pk.e, pk.n);
      ok = bitLength(m) <= 8 * emLen && emsaPssVerify(preparedMsg, intToBytes(m, emLen), pk.modBits - 1);
    }
    if (!ok) throw new Error("invalid signature");
  }

  function finalize(pk, preparedMsg, blindSig, inv) {
    checkBytes(blindSig, "blind signature");
    checkBytes(inv, "inv");
    if (blindSig.length !== pk.k || inv.length !== pk.k) {
      throw new RangeError("blind signature and inv must be " + pk.k + " bytes");
    }
    var sig = intToBytes(bytesToInt(blindSig) * bytesToInt(inv) % pk.n, pk.k);
    verify(pk, preparedMsg, sig);
    return sig;
  }

  // Same bytes as ballot_service.crypto.blind_rsa.ballot_message.
  function ballotMessage(roundRef, serial) {
    if (typeof roundRef !== "string" || !/^[A-Za-z0-9._-]{1,64}$/.test(roundRef)) {
      throw new RangeError("roundRef must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'");
    }
    if (!(serial instanceof Uint8Array) || serial.length !== SERIAL_LEN) {
      throw new RangeError("serial must be exactly " + SERIAL_LEN + " bytes");
    }
    return new TextEncoder().encode("ballot-service/ballot/v1\n" + roundRef + "\n" + bytesToHex(serial));
  }

  root.BlindRSA = Object.freeze({
    importPublicKey: importPublicKey,
    prepare: prepare,
    blind: blind,
    finalize: finalize,
    verify: verify,
    ballotMessage: ballotMessage,
    randomBytes: randomBytes,
    hexToBytes: hexToBytes,
    bytesToHex: bytesToHex,
    base64urlToBytes: base64ToBytes,
    bytesToBase64url: bytesToBase64url,
    _emsaPssEncode: emsaPssEncode
  });
})(typeof globalThis !== "undefined" ? globalThis : this);
