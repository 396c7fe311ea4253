package vod

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the fuzz seeds in testdata/fuzz")

// Fuzz targets. Seeds live in testdata/fuzz/<FuzzName>/seed-NN (regenerate
// with `go test ./provider/vod -run TestFuzzSeeds -update`); run one
// target with
// `go test ./provider/vod -run '^$' -fuzz '^FuzzParseKeyFile$' -fuzztime 60s -parallel 1`.

const (
	fuzzApp    = "com.example.app"
	fuzzAppKey = "Abcdefgh12345678"
)

var (
	fuzzTokenKey = bytes.Repeat([]byte{0x5a}, 32)
	fuzzDataKey  = bytes.Repeat([]byte{0x3c}, 32)
	fuzzNow      = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	// fuzzBlob is a syntactically valid v1 CiphertextBlob (61 bytes).
	fuzzBlob = append([]byte{0x01}, bytes.Repeat([]byte{0xab}, 60)...)
)

// fuzzKeyFile is a deterministic, valid key file for fuzzApp / fuzzAppKey.
func fuzzKeyFile() *KeyFile {
	k := &KeyFile{Format: KeyFileFormat, Version: KeyFileVersion1, AppIdentification: fuzzApp,
		KeyId: "1a874378-ceee-4094-9918-baa2b1d15093", Salt: bytes.Repeat([]byte{1}, 16),
		Nonce: bytes.Repeat([]byte{2}, 12), CiphertextBlob: fuzzBlob}
	k.EncryptedKey = k.appKey(fuzzAppKey).Seal(nil, k.Nonce, fuzzDataKey, k.aad())
	return k
}

// FuzzParseKeyFile: the AppEncryptKey parser never panics, fails only with
// its two errors, and what it accepts re-encodes to a file that parses to
// the same value (parse → marshal → parse); opening any accepted file
// either works or is ErrKeyMismatch.
func FuzzParseKeyFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKeyFile(s)
		if err != nil {
			if !errors.Is(err, ErrKeyFileMalformed) && !errors.Is(err, ErrKeyFileVersion) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		m := k.Marshal()
		k2, err := ParseKeyFile(m)
		if err != nil {
			t.Fatalf("re-encoded key file refused: %v", err)
		}
		if !reflect.DeepEqual(k, k2) || k2.Marshal() != m {
			t.Fatalf("round trip changed the key file:\n%+v\n%+v", k, k2)
		}
		if dk, err := k.Open(fuzzApp, fuzzAppKey); err != nil {
			if !errors.Is(err, ErrKeyMismatch) {
				t.Fatalf("Open: %v", err)
			}
		} else if len(dk.Bytes()) != DownloadKeyBytes {
			t.Fatalf("Open gave %d bytes", len(dk.Bytes()))
		}
	})
}

// FuzzParsePlayToken: the token parser never panics, fails only with the
// play-token errors, accepts exactly one encoding per token (parse →
// String is the identity), and verification of anything it accepts
// either succeeds or is a play-token refusal.
func FuzzParsePlayToken(f *testing.F) {
	s := &Service{hmacKey: fuzzTokenKey, now: func() time.Time { return fuzzNow }}
	f.Fuzz(func(t *testing.T, tok string, ct []byte) {
		p, err := ParsePlayToken(tok)
		if err != nil {
			if !isPlayTokenError(err) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if p.String() != tok {
			t.Fatalf("non-canonical token accepted: %q re-encodes as %q", tok, p.String())
		}
		if err := s.VerifyPlayToken(t.Context(), ct, tok); err != nil && !isPlayTokenError(err) {
			t.Fatalf("Verify: %v", err)
		}
	})
}

// FuzzDecryptStream: decrypting any input never panics, never writes
// more than the input's length, and fails only with the stream errors.
func FuzzDecryptStream(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		n, err := decryptStream(&out, bytes.NewReader(data), fuzzDataKey)
		if int64(out.Len()) != n || out.Len() > len(data) {
			t.Fatalf("wrote %d bytes (reported %d) from %d", out.Len(), n, len(data))
		}
		if err != nil && !errors.Is(err, ErrStreamFormat) && !errors.Is(err, ErrStreamVersion) &&
			!errors.Is(err, ErrStreamKey) && !errors.Is(err, ErrStreamDamaged) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// fuzzSeeds returns each target's seed inputs.
func fuzzSeeds(t *testing.T) map[string][][]any {
	seeds := map[string][][]any{}
	add := func(target string, args ...any) { seeds[target] = append(seeds[target], args) }

	// Key files: valid (base64 and JSON), and one of each refusal.
	k := fuzzKeyFile()
	add("FuzzParseKeyFile", k.Marshal())
	js, _ := json.Marshal(k)
	add("FuzzParseKeyFile", string(js))
	for _, mod := range []func(string) string{
		func(s string) string { return strings.Replace(s, `"Version":1`, `"Version":2`, 1) },
		func(s string) string { return strings.Replace(s, `"Version":1`, `"Version":1e999`, 1) },
		func(s string) string { return strings.Replace(s, `{`, `{"X":null,`, 1) },
		func(s string) string { return s + " []" },
		func(s string) string {
			return strings.Replace(s, `"Salt":"AQEBAQEBAQEBAQEBAQEBAQ=="`, `"Salt":"AQ=="`, 1)
		},
		func(s string) string { return strings.Replace(s, fuzzApp, "COM.EXAMPLE.APP", 1) },
		func(s string) string { return strings.Replace(s, `"KeyId":"`, `"KeyId":"\u0000`, 1) },
		func(s string) string { return strings.Replace(s, `"format"`, `"Format"`, 1) },
		func(s string) string { return strings.Replace(s, `"Format"`, `"format"`, 1) },
		func(s string) string { return strings.Replace(s, `"CiphertextBlob":"A`, `"CiphertextBlob":"B`, 1) },
	} {
		add("FuzzParseKeyFile", mod(string(js)))
	}
	a := *k
	a.AppIdentification = "3B:6D:0A:1F:22:9C:AE:41:7B:8D:5F:60:13:C2:99:E4:0B:7A:D1:5C"
	add("FuzzParseKeyFile", a.Marshal())
	for _, s := range []string{"", "{}", "null", "e30=", "!!!", strings.Repeat("A", 100)} {
		add("FuzzParseKeyFile", s)
	}

	// Play tokens: valid for fuzzBlob (live and expired), each refusal.
	live := &PlayToken{Version: PlayTokenVersion1, Expires: fuzzNow.Add(time.Hour).Unix()}
	live.MAC = playMAC(fuzzTokenKey, live.Expires, fuzzBlob)
	expired := &PlayToken{Version: PlayTokenVersion1, Expires: fuzzNow.Add(-time.Hour).Unix()}
	expired.MAC = playMAC(fuzzTokenKey, expired.Expires, fuzzBlob)
	add("FuzzParsePlayToken", live.String(), fuzzBlob)
	add("FuzzParsePlayToken", expired.String(), fuzzBlob)
	add("FuzzParsePlayToken", live.String(), fuzzBlob[:60])
	v2 := *live
	v2.Version = 2
	add("FuzzParsePlayToken", v2.String(), fuzzBlob)
	big := *live
	big.Expires = -1
	add("FuzzParsePlayToken", big.String(), fuzzBlob)
	add("FuzzParsePlayToken", live.String()[:54]+"B", fuzzBlob) // non-canonical trailing bits
	add("FuzzParsePlayToken", base64.URLEncoding.EncodeToString(make([]byte, 41)), fuzzBlob)
	add("FuzzParsePlayToken", "", []byte{})
	add("FuzzParsePlayToken", strings.Repeat("A", PlayTokenChars), []byte{})

	// Encrypted streams (chunk size 1 KiB): empty, one short chunk, two
	// full chunks, three chunks; a header alone; another key's stream.
	salt, prefix := bytes.Repeat([]byte{9}, 32), []byte{1, 2, 3, 4}
	for _, n := range []int{0, 100, 2048, 2500} {
		var b bytes.Buffer
		pt := bytes.Repeat([]byte{0x77}, n)
		if _, err := encryptStreamWith(&b, bytes.NewReader(pt), fuzzDataKey, minChunkSize, salt, prefix); err != nil {
			t.Fatal(err)
		}
		add("FuzzDecryptStream", b.Bytes())
		if n == 0 {
			add("FuzzDecryptStream", b.Bytes()[:streamHeaderSize])
		}
	}
	var other bytes.Buffer
	encryptStreamWith(&other, strings.NewReader("x"), bytes.Repeat([]byte{1}, 32), minChunkSize, salt, prefix)
	add("FuzzDecryptStream", other.Bytes())
	add("FuzzDecryptStream", []byte(StreamMagic))
	return seeds
}

// TestFuzzSeeds checks the committed seed corpus is what the fixtures
// give, and rewrites it with -update.
func TestFuzzSeeds(t *testing.T) {
	for target, entries := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if *update {
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
				t.Errorf("%s is missing or stale (run go test ./provider/vod -run TestFuzzSeeds -update): %v", path, err)
			}
		}
	}
}

// The seeds mean what they say: the valid ones parse and open.
func TestFuzzFixtures(t *testing.T) {
	k := fuzzKeyFile()
	dk, err := k.Open(fuzzApp, fuzzAppKey)
	if err != nil || !bytes.Equal(dk.Bytes(), fuzzDataKey) {
		t.Fatalf("fixture key file: %v", err)
	}
	s := &Service{hmacKey: fuzzTokenKey, now: func() time.Time { return fuzzNow }}
	live := &PlayToken{Version: PlayTokenVersion1, Expires: fuzzNow.Add(time.Hour).Unix()}
	live.MAC = playMAC(fuzzTokenKey, live.Expires, fuzzBlob)
	if err := s.VerifyPlayToken(t.Context(), fuzzBlob, live.String()); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	encryptStreamWith(&b, strings.NewReader("hello"), fuzzDataKey, minChunkSize, make([]byte, 32), make([]byte, 4))
	var out bytes.Buffer
	if _, err := decryptStream(&out, &b, fuzzDataKey); err != nil || out.String() != "hello" {
		t.Fatalf("fixture stream: %v", err)
	}
}
