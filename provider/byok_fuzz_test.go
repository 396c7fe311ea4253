package provider

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseImportPayload: the import-token parser never panics, and what
// it accepts encodes back to the same bytes (one encoding per token).
func FuzzParseImportPayload(f *testing.F) {
	t := importToken{keyID: "k1", alg: AlgRSAOAEPSHA256, spec: KeySpecRSA2048, expires: time.Unix(1_800_000_000, 0).UTC()}
	f.Add(t.payload())
	f.Add([]byte(importTokenMagic))
	f.Add([]byte{})
	f.Fuzz(func(tt *testing.T, b []byte) {
		got, ok := parseImportPayload(b)
		if ok && !bytes.Equal(got.payload(), b) {
			tt.Fatalf("accepted %x, which encodes back as %x", b, got.payload())
		}
	})
}
