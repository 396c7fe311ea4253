package wrap

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz targets. Seeds live in testdata/fuzz/<FuzzName>/ (regenerate with
// `go test ./wrap -run TestFuzzSeeds -update`); run one target with
// `go test ./wrap -run '^$' -fuzz '^FuzzParseBlob$' -fuzztime 60s -parallel 1`.

// FuzzParsePublicKey: public-key parsing (DER under every spec, PEM,
// base64) never panics, fails only with *ParamError, and what it accepts
// marshals and parses back to the same key.
func FuzzParsePublicKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, spec := range keySpecs {
			pub, err := ParsePublicKeyDER(data, spec)
			checkParsedKey(t, pub, err, spec)
		}
		pub, spec, err := ParsePublicKeyPEM(string(data))
		checkParsedKey(t, pub, err, spec)
		pub, err = ParsePublicKeyBlob(string(data), SpecSM2)
		checkParsedKey(t, pub, err, SpecSM2)
	})
}

func checkParsedKey(t *testing.T, pub crypto.PublicKey, err error, spec KeySpec) {
	t.Helper()
	if err != nil {
		var pe *ParamError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v (%T) is not a *ParamError", err, err)
		}
		return
	}
	if got, err := SpecOf(pub); err != nil || got != spec {
		t.Fatalf("accepted key has spec %v (%v), want %v", got, err, spec)
	}
	der, err := MarshalPublicKeyDER(pub)
	if err != nil {
		t.Fatalf("accepted key does not marshal: %v", err)
	}
	again, err := ParsePublicKeyDER(der, spec)
	if err != nil {
		t.Fatalf("marshalled key does not parse: %v", err)
	}
	if !again.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Fatal("parse → marshal → parse changed the key")
	}
	if der2, _ := MarshalPublicKeyDER(again); !bytes.Equal(der, der2) {
		t.Fatal("marshal is not stable")
	}
}

// FuzzParseBlob: ParseBlob never panics, fails only with a *BlobError
// matching exactly one sentinel, and parse → marshal gives the input back.
func FuzzParseBlob(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBlob(data)
		if err != nil {
			var be *BlobError
			if !errors.As(err, &be) || errors.Is(err, ErrBlobVersion) == errors.Is(err, ErrBlobTruncated) {
				t.Fatalf("bad error %v (%T)", err, err)
			}
			return
		}
		if !bytes.Equal(b.Marshal(), data) {
			t.Fatalf("round trip: %x != %x", b.Marshal(), data)
		}
		if !bytes.Equal(b.Header(), data[:BlobHeaderSize]) || len(b.Sealed) < BlobTagSize {
			t.Fatal("header or sealed part wrong")
		}
	})
}

// FuzzParseSM2ASN1: SM2 ciphertext parsing (ASN.1, and the same bytes as
// C1C3C2) never panics, fails only with ErrDecryption, and what it accepts
// re-encodes to the identical bytes (strict DER) and survives
// FinishWithSharedX without panicking.
func FuzzParseSM2ASN1(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, enc := range []SM2Encoding{SM2ASN1, SM2C1C3C2} {
			c, err := ParseSM2Ciphertext(data, enc)
			if err != nil {
				if err != ErrDecryption {
					t.Fatalf("%v: error %v is not ErrDecryption", enc, err)
				}
				continue
			}
			again, err := c.Marshal(enc)
			if err != nil || !bytes.Equal(again, data) {
				t.Fatalf("%v: re-encoding differs: %x (%v)", enc, again, err)
			}
			other := SM2C1C3C2 + SM2ASN1 - enc
			conv, err := c.Marshal(other)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := ParseSM2Ciphertext(conv, other)
			if err != nil || !bytes.Equal(c2.C1, c.C1) || !bytes.Equal(c2.C2, c.C2) || !bytes.Equal(c2.C3, c.C3) {
				t.Fatalf("conversion to %v lost data: %v", other, err)
			}
			if _, err := c.FinishWithSharedX(c.C1[1:33]); err != nil && err != ErrDecryption {
				t.Fatalf("FinishWithSharedX: %v", err)
			}
		}
	})
}

// FuzzDecodeOAEP: DecodeOAEP never panics, fails only with exactly
// ErrDecryption, and agrees with a plain (variable-time) reference decoder
// written straight from RFC 8017 on every input.
func FuzzDecodeOAEP(f *testing.F) {
	f.Fuzz(func(t *testing.T, em []byte, k uint16, label []byte, useSHA1 bool) {
		h := crypto.SHA256
		if useSHA1 {
			h = crypto.SHA1
		}
		kk := int(k % 1024)
		got, err := DecodeOAEP(h, em, kk, label)
		want, ok := refDecodeOAEP(h, em, kk, label)
		if err != nil && err != ErrDecryption {
			t.Fatalf("error %v is not ErrDecryption", err)
		}
		if (err == nil) != ok || !bytes.Equal(got, want) {
			t.Fatalf("DecodeOAEP = %x, %v; reference = %x, %v", got, err, want, ok)
		}
		// PKCS#1 v1.5 decoding of the same bytes must not panic either,
		// and agrees with its own reference.
		got, err = DecodePKCS1v15(em, kk)
		want, ok = refDecodePKCS1(em, kk)
		if (err == nil) != ok || !bytes.Equal(got, want) || err != nil && err != ErrDecryption {
			t.Fatalf("DecodePKCS1v15 = %x, %v; reference = %x, %v", got, err, want, ok)
		}
	})
}

// FuzzParseEncryptionContextJSON: never panics, fails only with a
// *ParamError, and what it accepts is what encoding/json reads.
func FuzzParseEncryptionContextJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		ctx, err := ParseEncryptionContextJSON(s, 8192)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Field != FieldContext {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		if strings.TrimSpace(s) == "" {
			if len(ctx) != 0 {
				t.Fatal("blank input gave a context")
			}
			return
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("accepted input encoding/json refuses: %v", err)
		}
		if !bytes.Equal(EncryptionContext(m).Canonical(), ctx.Canonical()) {
			t.Fatalf("context %v differs from encoding/json's %v", ctx, m)
		}
	})
}

// refDecodeOAEP is RFC 8017 7.1.2 step 3 written plainly, with early
// returns; it is the oracle for FuzzDecodeOAEP.
func refDecodeOAEP(h crypto.Hash, em []byte, k int, label []byte) ([]byte, bool) {
	newHash := map[crypto.Hash]func() hash.Hash{crypto.SHA1: sha1.New, crypto.SHA256: sha256.New}[h]
	hLen := newHash().Size()
	if k < 2*hLen+2 || len(em) > k {
		return nil, false
	}
	em = append(make([]byte, k-len(em)), em...)
	mgf := func(seed []byte, n int) []byte {
		var out []byte
		for c := uint32(0); len(out) < n; c++ {
			d := newHash()
			d.Write(seed)
			d.Write(binary.BigEndian.AppendUint32(nil, c))
			out = d.Sum(out)
		}
		return out[:n]
	}
	maskedSeed, maskedDB := em[1:1+hLen], em[1+hLen:]
	seed := xor(maskedSeed, mgf(maskedDB, hLen))
	db := xor(maskedDB, mgf(seed, k-hLen-1))
	lh := newHash()
	lh.Write(label)
	if em[0] != 0 || !bytes.Equal(db[:hLen], lh.Sum(nil)) {
		return nil, false
	}
	for i, b := range db[hLen:] {
		switch b {
		case 0:
			continue
		case 1:
			return append([]byte{}, db[hLen+i+1:]...), true
		}
		return nil, false
	}
	return nil, false
}

// refDecodePKCS1 is RFC 8017 7.2.2 step 3 written plainly.
func refDecodePKCS1(em []byte, k int) ([]byte, bool) {
	if k < 11 || len(em) > k {
		return nil, false
	}
	em = append(make([]byte, k-len(em)), em...)
	if em[0] != 0 || em[1] != 2 {
		return nil, false
	}
	i := bytes.IndexByte(em[2:], 0)
	if i < 8 {
		return nil, false
	}
	return append([]byte{}, em[2+i+1:]...), true
}

func xor(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// refEncodeOAEP builds a valid em (for seeds and tests).
func refEncodeOAEP(h crypto.Hash, msg []byte, k int, label, seed []byte) []byte {
	newHash := map[crypto.Hash]func() hash.Hash{crypto.SHA1: sha1.New, crypto.SHA256: sha256.New}[h]
	hLen := newHash().Size()
	lh := newHash()
	lh.Write(label)
	db := append(lh.Sum(nil), make([]byte, k-len(msg)-2*hLen-2)...)
	db = append(append(db, 1), msg...)
	mgf := func(seed []byte, n int) []byte {
		var out []byte
		for c := uint32(0); len(out) < n; c++ {
			d := newHash()
			d.Write(seed)
			d.Write(binary.BigEndian.AppendUint32(nil, c))
			out = d.Sum(out)
		}
		return out[:n]
	}
	maskedDB := xor(db, mgf(seed[:hLen], len(db)))
	maskedSeed := xor(seed[:hLen], mgf(maskedDB, hLen))
	return append(append([]byte{0}, maskedSeed...), maskedDB...)
}

func TestRefEncodeOAEPDecodes(t *testing.T) {
	seed := bytes.Repeat([]byte{0x5A}, 32)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		for _, label := range [][]byte{nil, []byte("label")} {
			em := refEncodeOAEP(h, []byte("msg"), 256, label, seed)
			if got, err := DecodeOAEP(h, em, 256, label); err != nil || string(got) != "msg" {
				t.Errorf("%v label %q: %q %v", h, label, got, err)
			}
		}
	}
}

// fuzzSeeds returns the committed seed corpus, built from the fixtures.
func fuzzSeeds(t *testing.T) map[string][][]any {
	seeds := map[string][][]any{}
	add := func(target string, args ...any) { seeds[target] = append(seeds[target], args) }

	// Public keys: DER and PEM of every fixture key, plus broken ones.
	paths, _ := filepath.Glob(filepath.Join(testdataDir, "keys", "*.pub.pem"))
	for _, p := range paths {
		text, _ := os.ReadFile(p)
		add("FuzzParsePublicKey", text)
		add("FuzzParsePublicKey", pemBytes(t, "keys/"+filepath.Base(p)))
	}
	sm2DER := pemBytes(t, "keys/sm2.pub.pem")
	add("FuzzParsePublicKey", []byte(base64.StdEncoding.EncodeToString(sm2DER)))
	add("FuzzParsePublicKey", append(bytes.Clone(sm2DER), 0))
	add("FuzzParsePublicKey", spki(t, oidSM2, derOID(oidSM2), sm2DER[len(sm2DER)-65:]))
	add("FuzzParsePublicKey", []byte{})

	// Blobs.
	var golden goldenBlob
	readJSON(t, "blob_v1_golden.json", &golden)
	blob, _ := base64.StdEncoding.DecodeString(golden.BlobBase64)
	add("FuzzParseBlob", blob)
	add("FuzzParseBlob", blob[:BlobMinSize])
	add("FuzzParseBlob", blob[:BlobMinSize-1])
	add("FuzzParseBlob", append([]byte{2}, blob[1:]...))
	add("FuzzParseBlob", []byte{})

	// SM2 ciphertexts: the KAT positives and rejections, OpenSSL's.
	var kat katFile
	readJSON(t, "sm2/sm2_encryption_kat_with_rejections.json", &kat)
	for _, tc := range kat.Tests {
		for _, h := range []string{tc.CiphertextASN1, tc.CiphertextC1C3C2} {
			if h != "" {
				add("FuzzParseSM2ASN1", unhex(t, h))
			}
		}
		for _, r := range tc.MustReject {
			add("FuzzParseSM2ASN1", unhex(t, r.Ciphertext))
		}
	}
	var samples struct {
		Samples []struct {
			Ciphertext string `json:"ciphertext_asn1_der_base64"`
		} `json:"samples"`
	}
	readJSON(t, "sm2/openssl3_sm2_asn1_samples.json", &samples)
	for _, s := range samples.Samples {
		ct, _ := base64.StdEncoding.DecodeString(s.Ciphertext)
		add("FuzzParseSM2ASN1", ct)
	}

	// OAEP: valid encoded messages (SHA-1, SHA-256, with and without a
	// label, leading zero stripped), PKCS#1 v1.5 blocks, junk.
	seed := bytes.Repeat([]byte{0xC3}, 32)
	for _, useSHA1 := range []bool{false, true} {
		h := crypto.SHA256
		if useSHA1 {
			h = crypto.SHA1
		}
		em := refEncodeOAEP(h, []byte("0123456789abcdef"), 256, nil, seed)
		add("FuzzDecodeOAEP", em, uint16(256), []byte{}, useSHA1)
		add("FuzzDecodeOAEP", em[1:], uint16(256), []byte{}, useSHA1)
		add("FuzzDecodeOAEP", refEncodeOAEP(h, nil, 128, []byte("L"), seed), uint16(128), []byte("L"), useSHA1)
	}
	pkcs := append([]byte{0, 2}, bytes.Repeat([]byte{0x11}, 8)...)
	pkcs = append(append(pkcs, 0), []byte("message")...)
	add("FuzzDecodeOAEP", pkcs, uint16(len(pkcs)), []byte{}, false)
	add("FuzzDecodeOAEP", make([]byte, 256), uint16(256), []byte{}, true)

	// Encryption contexts.
	for _, s := range []string{"", "{}", `{"a":"1","b":"2"}`, `{"a":"1","a":"2"}`, `{"k\u00e9y":"v"}`, `{"a":{"b":"c"}}`, `{"a":1}`, `[]`, `{"a":"1"} x`} {
		add("FuzzParseEncryptionContextJSON", s)
	}
	return seeds
}

// TestFuzzSeeds checks the committed seed corpus is what the fixtures
// give, and rewrites it with -update.
func TestFuzzSeeds(t *testing.T) {
	for target, entries := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if *update {
			// Replace our seed-NN files; leave any other corpus entries.
			old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
			for _, p := range old {
				os.Remove(p)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for i, args := range entries {
			var b strings.Builder
			b.WriteString("go test fuzz v1\n")
			for _, a := range args {
				switch v := a.(type) {
				case []byte:
					fmt.Fprintf(&b, "[]byte(%q)\n", v)
				case string:
					fmt.Fprintf(&b, "string(%q)\n", v)
				case uint16:
					fmt.Fprintf(&b, "uint16(%d)\n", v)
				case bool:
					fmt.Fprintf(&b, "bool(%v)\n", v)
				default:
					t.Fatalf("seed type %T", a)
				}
			}
			path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			if *update {
				if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := os.ReadFile(path); err != nil || string(got) != b.String() {
				t.Errorf("%s is missing or stale (run go test ./wrap -run TestFuzzSeeds -update): %v", path, err)
			}
		}
	}
}
