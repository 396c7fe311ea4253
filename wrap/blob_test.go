package wrap

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/wrap")

func TestParseBlob(t *testing.T) {
	b := &Blob{Sealed: bytes.Repeat([]byte{0xEE}, 20)}
	for i := range b.VersionID {
		b.VersionID[i] = byte(i)
	}
	for i := range b.IV {
		b.IV[i] = byte(0xA0 + i)
	}
	raw := b.Marshal()
	if len(raw) != 29+20 || raw[0] != BlobVersion1 || !bytes.Equal(raw[:29], b.Header()) {
		t.Fatalf("Marshal = %x", raw)
	}
	got, err := ParseBlob(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.VersionID != b.VersionID || got.IV != b.IV || !bytes.Equal(got.Sealed, b.Sealed) {
		t.Errorf("round trip: %+v", got)
	}
	raw[len(raw)-1] = 0 // Sealed is a copy
	if got.Sealed[len(got.Sealed)-1] != 0xEE {
		t.Error("Sealed aliases the input")
	}
	// Header is usable before Sealed is set (the sealer builds AAD first).
	if h := (&Blob{VersionID: b.VersionID, IV: b.IV}).Header(); !bytes.Equal(h, b.Header()) || len(h) != BlobHeaderSize {
		t.Error("Header depends on Sealed")
	}

	minimal := append(b.Header(), make([]byte, BlobTagSize)...)
	if _, err := ParseBlob(minimal); err != nil {
		t.Errorf("header + tag (empty ciphertext): %v", err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		kind error
		msg  string
	}{
		{"empty", nil, ErrBlobTruncated, "CiphertextBlob: is empty"},
		{"version 0", append([]byte{0}, raw[1:]...), ErrBlobVersion, "CiphertextBlob: unknown version byte 0x00; supported: 0x01"},
		{"version 2", []byte{2}, ErrBlobVersion, "unknown version byte 0x02"},
		{"header only", b.Header(), ErrBlobTruncated, "CiphertextBlob: is 29 bytes; a v1 blob has at least 45"},
		{"one short", minimal[:BlobMinSize-1], ErrBlobTruncated, "is 44 bytes"},
		{"version byte only", []byte{1}, ErrBlobTruncated, "is 1 bytes"},
	} {
		_, err := ParseBlob(tc.in)
		var be *BlobError
		if !errors.As(err, &be) || !errors.Is(err, tc.kind) || err.Error() != tc.msg && !bytes.Contains([]byte(err.Error()), []byte(tc.msg)) {
			t.Errorf("%s: %v", tc.name, err)
		}
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Field != FieldCiphertext {
			t.Errorf("%s: no *ParamError in %v", tc.name, err)
		}
		other := ErrBlobVersion
		if tc.kind == ErrBlobVersion {
			other = ErrBlobTruncated
		}
		if errors.Is(err, other) {
			t.Errorf("%s: matches both sentinels", tc.name)
		}
	}
}

// goldenBlob is testdata/wrap/blob_v1_golden.json.
type goldenBlob struct {
	Comment           string            `json:"comment"`
	KeyHex            string            `json:"key_hex"`
	VersionIDHex      string            `json:"versionId_hex"`
	IVHex             string            `json:"iv_hex"`
	PlaintextHex      string            `json:"plaintext_hex"`
	EncryptionContext map[string]string `json:"encryptionContext"`
	CanonicalHex      string            `json:"canonicalContext_hex"`
	AADHex            string            `json:"aad_hex"`
	BlobBase64        string            `json:"blob_base64"`
	KCV               string            `json:"plaintext_kcv"`
}

// TestBlobGolden pins the v1 layout, the canonical context and the AAD:
// a blob sealed from fixed inputs must equal the committed one, and it
// must open with Go's AES-GCM using AAD(Header, ctx). Run with -update
// to rewrite the file after an intended format change.
func TestBlobGolden(t *testing.T) {
	path := filepath.Join(testdataDir, "blob_v1_golden.json")
	in := goldenBlob{
		Comment:      "CiphertextBlob v1 golden: AES-256-GCM(key, iv, plaintext, aad = header || canonical(ctx)); written by wrap.TestBlobGolden -update",
		KeyHex:       "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		VersionIDHex: "7b0c2e4e6f8a4c1d9e2f3a4b5c6d7e8f",
		IVHex:        "cafebabefacedbaddecaf888",
		PlaintextHex: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
		EncryptionContext: map[string]string{
			"purpose": "backup", "app": "p11kms", "B": "upper sorts first", "é": "two-byte key",
		},
	}
	key, ver, iv, pt := unhex(t, in.KeyHex), unhex(t, in.VersionIDHex), unhex(t, in.IVHex), unhex(t, in.PlaintextHex)
	var b Blob
	copy(b.VersionID[:], ver)
	copy(b.IV[:], iv)
	ctx := EncryptionContext(in.EncryptionContext)
	aad := AAD(b.Header(), ctx)
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	b.Sealed = gcm.Seal(nil, iv, pt, aad)
	in.CanonicalHex = hex.EncodeToString(ctx.Canonical())
	in.AADHex = hex.EncodeToString(aad)
	in.BlobBase64 = base64.StdEncoding.EncodeToString(b.Marshal())
	in.KCV, _ = KCV(pt)

	if *update {
		out, _ := json.MarshalIndent(in, "", "  ")
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var want goldenBlob
	readJSON(t, "blob_v1_golden.json", &want)
	if want.CanonicalHex != in.CanonicalHex || want.AADHex != in.AADHex || want.BlobBase64 != in.BlobBase64 || want.KCV != in.KCV {
		t.Fatalf("golden blob changed:\n got %+v\nwant %+v", in, want)
	}
	// The canonical encoding, spelled out: sorted by key bytes
	// ("B" < "app" < "purpose" < "é"), uvarint lengths.
	wantCanon := "01" + hex.EncodeToString([]byte("B")) + "11" + hex.EncodeToString([]byte("upper sorts first")) +
		"03" + hex.EncodeToString([]byte("app")) + "06" + hex.EncodeToString([]byte("p11kms")) +
		"07" + hex.EncodeToString([]byte("purpose")) + "06" + hex.EncodeToString([]byte("backup")) +
		"02" + "c3a9" + "0c" + hex.EncodeToString([]byte("two-byte key"))
	if want.CanonicalHex != wantCanon {
		t.Errorf("canonical context = %s, want %s", want.CanonicalHex, wantCanon)
	}
	// Open the committed blob the way Decrypt does.
	raw, _ := base64.StdEncoding.DecodeString(want.BlobBase64)
	parsed, err := ParseBlob(raw)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := gcm.Open(nil, parsed.IV[:], parsed.Sealed, AAD(parsed.Header(), EncryptionContext(want.EncryptionContext)))
	if err != nil || !bytes.Equal(opened, pt) {
		t.Fatalf("golden blob does not open: %v", err)
	}
	// A different context (or none) does not open it.
	for _, c := range []EncryptionContext{nil, {"purpose": "backup"}} {
		if _, err := gcm.Open(nil, parsed.IV[:], parsed.Sealed, AAD(parsed.Header(), c)); err == nil {
			t.Errorf("opened with context %v", c)
		}
	}
	if !bytes.Equal(parsed.Marshal(), raw) {
		t.Error("parse → marshal changed the golden blob")
	}
}
