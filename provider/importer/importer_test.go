package importer_test

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/importer"
	"github.com/p11kms/p11kms/wrap"
)

var (
	rsaAlgs = []string{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSAES_PKCS1_V1_5"}
	sm2Algs = []string{"SM2PKE", "SM2", "SM2_C1C3C2_ASN1"}
)

// expectedPath is the path an algorithm takes on tok with AllowHostDecode.
func expectedPath(t *testing.T, tok *hsm.Token, wrapLabel, alg string) string {
	t.Helper()
	switch alg {
	case "SM2PKE", "SM2", "SM2_C1C3C2_ASN1":
		return importer.PathHostSM2
	case "RSAES_OAEP_SHA_256":
		kp, err := tok.FindKeyPair(bg, wrapLabel)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := tok.SupportsRSA(bg, kp, hsm.RSAMechanism{Kind: hsm.RSAOAEP, Hash: crypto.SHA256})
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return importer.PathHostOAEP
		}
	}
	return importer.PathTokenUnwrap
}

// TestImportEveryAlgorithmAndSpec imports under every WrappingKeySpec ×
// WrappingAlgorithm, the exporting side simulated with wrap's Encrypt on the
// PublicKeyBlob CreateWrappingKey returned.
func TestImportEveryAlgorithmAndSpec(t *testing.T) {
	tok, svc := newService(t)
	specs := []struct {
		spec string
		algs []string
	}{
		{"RSA_2048", rsaAlgs}, {"RSA_3072", rsaAlgs}, {"RSA_4096", rsaAlgs}, {"EC_SM2", sm2Algs},
	}
	i := 0
	for _, sc := range specs {
		wk := createWrappingKey(t, svc, sc.spec, "wrap-"+sc.spec) // generated once per spec (RSA-4096 is slow)
		if wk.WrappingKeySpec != sc.spec {
			t.Fatalf("WrappingKeySpec %s, want %s", wk.WrappingKeySpec, sc.spec)
		}
		for _, alg := range sc.algs {
			size := []int{32, 16, 24}[i%3]
			ephemeral := i%2 == 1
			i++
			t.Run(fmt.Sprintf("%s/%s/AES-%d/ephemeral=%v", sc.spec, alg, size*8, ephemeral), func(t *testing.T) {
				key := randomKey(size)
				before := countObjects(t, tok.Token)
				resp, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{
					WrappingKeyLabel: wk.KeyLabel, WrappingAlgorithm: alg, ExportedDataKey: export(t, wk, alg, key),
					KeyLabel: "dk/" + sc.spec + "/" + alg, AllowHostDecode: true, Ephemeral: ephemeral,
				})
				if err != nil {
					t.Fatal(err)
				}
				if want := expectedPath(t, tok.Token, wk.KeyLabel, alg); resp.Path != want {
					t.Fatalf("Path %s, want %s", resp.Path, want)
				}
				t.Logf("Path %s, KCV %s", resp.Path, resp.KeyCheckValue)
				if after := countObjects(t, tok.Token); after != before+1 {
					t.Fatalf("%d objects after the import, want %d (one new key, no temporaries)", after, before+1)
				}
				if resp.KeyType != importer.KeyTypeAES || strings.Join(resp.Usage, ",") != "encrypt,decrypt" || resp.RequestId == "" || len(resp.KeyId) != 32 {
					t.Fatalf("response %+v", resp)
				}
				assertImported(t, tok.Token, svc, resp, key)
			})
		}
	}
}

// TestTamperedExportedDataKeyOneError: every way an ExportedDataKey can be
// wrong gives the same error, with the same message and cause, and leaves
// the token as it was.
func TestTamperedExportedDataKeyOneError(t *testing.T) {
	tok, svc := newService(t)
	rsaA := createWrappingKey(t, svc, "RSA_2048", "rsa-a")
	rsaB := createWrappingKey(t, svc, "RSA_2048", "rsa-b")
	sm2A := createWrappingKey(t, svc, "EC_SM2", "sm2-a")
	sm2B := createWrappingKey(t, svc, "EC_SM2", "sm2-b")
	key := randomKey(32)

	type attempt struct {
		name, wrapLabel, alg string
		ct                   []byte
	}
	var attempts []attempt
	for _, tc := range []struct {
		wk, other *importer.WrappingKeyResponse
		alg       string
		wrongAlgs []string
	}{
		{rsaA, rsaB, "RSAES_OAEP_SHA_1", []string{"RSAES_OAEP_SHA_256", "RSAES_PKCS1_V1_5"}},
		{rsaA, rsaB, "RSAES_OAEP_SHA_256", []string{"RSAES_OAEP_SHA_1", "RSAES_PKCS1_V1_5"}},
		{rsaA, rsaB, "RSAES_PKCS1_V1_5", []string{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"}},
		{sm2A, sm2B, "SM2PKE", []string{"SM2_C1C3C2_ASN1"}},
		{sm2A, sm2B, "SM2", []string{"SM2_C1C3C2_ASN1"}},
		{sm2A, sm2B, "SM2_C1C3C2_ASN1", []string{"SM2PKE", "SM2"}},
	} {
		ct := exportRaw(t, tc.wk, tc.alg, key)
		add := func(name, label, alg string, b []byte) {
			attempts = append(attempts, attempt{tc.alg + "/" + name, label, alg, b})
		}
		for _, i := range []int{0, 1, len(ct) / 2, len(ct) - 1} {
			for _, bit := range []byte{0x01, 0x80} {
				b := bytes.Clone(ct)
				b[i] ^= bit
				add(fmt.Sprintf("bit %#x of byte %d flipped", bit, i), tc.wk.KeyLabel, tc.alg, b)
			}
		}
		add("last byte cut", tc.wk.KeyLabel, tc.alg, ct[:len(ct)-1])
		add("first byte cut", tc.wk.KeyLabel, tc.alg, ct[1:])
		add("halved", tc.wk.KeyLabel, tc.alg, ct[:len(ct)/2])
		add("one byte", tc.wk.KeyLabel, tc.alg, ct[:1])
		add("byte appended", tc.wk.KeyLabel, tc.alg, append(bytes.Clone(ct), 0))
		for _, wrong := range tc.wrongAlgs {
			add("declared as "+wrong, tc.wk.KeyLabel, wrong, ct)
		}
		add("other wrapping key", tc.other.KeyLabel, tc.alg, ct)
		// Well-formed ciphertexts of keys that are not AES keys.
		for _, n := range []int{1, 15, 20, 33} {
			add(fmt.Sprintf("%d-byte plaintext", n), tc.wk.KeyLabel, tc.alg, exportRaw(t, tc.wk, tc.alg, randomKey(n)))
		}
		if tc.wk == rsaA {
			add("all ones (above the modulus)", tc.wk.KeyLabel, tc.alg, bytes.Repeat([]byte{0xff}, len(ct)))
			add("all zeros", tc.wk.KeyLabel, tc.alg, make([]byte, len(ct)))
		}
	}

	before := countObjects(t, tok.Token)
	var message string
	for _, a := range attempts {
		_, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{
			WrappingKeyLabel: a.wrapLabel, WrappingAlgorithm: a.alg,
			ExportedDataKey: base64.StdEncoding.EncodeToString(a.ct), KeyLabel: "never", AllowHostDecode: true,
		})
		pe := wantError(t, err, provider.CodeInvalidCiphertext, "ExportedDataKey")
		if message == "" {
			message = pe.Message
		}
		if pe.Message != message {
			t.Fatalf("%s: message %q differs from %q", a.name, pe.Message, message)
		}
		if pe.Err != wrap.ErrDecryption || errors.Is(err, hsm.ErrDecryption) {
			t.Fatalf("%s: cause %v, want exactly wrap.ErrDecryption", a.name, pe.Err)
		}
	}
	if after := countObjects(t, tok.Token); after != before {
		t.Fatalf("%d failed imports changed the object count from %d to %d", len(attempts), before, after)
	}
	t.Logf("%d tampered imports, one error: %s", len(attempts), message)
}

// TestSM2RejectsBadC1: a C1 off the curve or at infinity is refused before
// the token is asked to derive anything.
func TestSM2RejectsBadC1(t *testing.T) {
	tok, svc, cm := newCountingService(t)
	wk := createWrappingKey(t, svc, "EC_SM2", "sm2")
	key := randomKey(16)
	ct := exportRaw(t, wk, "SM2PKE", key)
	parts, err := wrap.ParseSM2Ciphertext(ct, wrap.SM2C1C3C2)
	if err != nil {
		t.Fatal(err)
	}
	offCurve := bytes.Clone(parts.C1)
	offCurve[64] ^= 1
	zero := append([]byte{4}, make([]byte, 64)...) // infinity as (0, 0)
	asn1With := func(c1 []byte) []byte {
		b, err := (&wrap.SM2Ciphertext{C1: c1, C3: parts.C3, C2: parts.C2}).Marshal(wrap.SM2ASN1)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name, alg string
		ct        []byte
	}{
		{"C1 off the curve", "SM2PKE", append(bytes.Clone(offCurve), ct[65:]...)},
		{"C1 = (0,0)", "SM2PKE", append(bytes.Clone(zero), ct[65:]...)},
		{"C1 = infinity (00)", "SM2", append([]byte{0}, ct[65:]...)},
		{"C1 compressed", "SM2", append(append([]byte{2 + parts.C1[64]&1}, parts.C1[1:33]...), ct[65:]...)},
		{"ASN.1 C1 off the curve", "SM2_C1C3C2_ASN1", asn1With(offCurve)},
		{"ASN.1 C1 = (0,0)", "SM2_C1C3C2_ASN1", asn1With(zero)},
	}
	before := countObjects(t, tok)
	for _, c := range cases {
		_, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "sm2", WrappingAlgorithm: c.alg,
			ExportedDataKey: base64.StdEncoding.EncodeToString(c.ct), KeyLabel: "bad"})
		wantError(t, err, provider.CodeInvalidCiphertext, "ExportedDataKey")
	}
	if n := cm.derives.Load(); n != 0 {
		t.Fatalf("the token derived %d times from invalid C1 points", n)
	}
	if after := countObjects(t, tok); after != before {
		t.Fatalf("object count %d → %d", before, after)
	}
	// The same ciphertext, untouched, imports with one derivation.
	resp, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "sm2", WrappingAlgorithm: "SM2PKE",
		ExportedDataKey: base64.StdEncoding.EncodeToString(ct), KeyLabel: "good"})
	if err != nil {
		t.Fatal(err)
	}
	if cm.derives.Load() != 1 || resp.Path != importer.PathHostSM2 {
		t.Fatalf("derives %d, path %s", cm.derives.Load(), resp.Path)
	}
	assertImported(t, tok, svc, resp, key)
}

// TestOAEPSHA256NeedsOptIn: a token without OAEP-SHA-256 (SoftHSM2 2.6.1)
// imports RSAES_OAEP_SHA_256 only with AllowHostDecode.
func TestOAEPSHA256NeedsOptIn(t *testing.T) {
	tok, svc, cm := newCountingService(t)
	wk := createWrappingKey(t, svc, "RSA_2048", "rsa")
	key := randomKey(32)
	req := &importer.ImportDataKeyRequest{WrappingKeyLabel: "rsa", WrappingAlgorithm: "RSAES_OAEP_SHA_256",
		ExportedDataKey: export(t, wk, "RSAES_OAEP_SHA_256", key), KeyLabel: "dk"}
	if expectedPath(t, tok, "rsa", req.WrappingAlgorithm) == importer.PathTokenUnwrap {
		t.Fatal("this token unwraps OAEP-SHA-256: SoftHSM2 2.6.1 was expected to refuse it (CKR_ARGUMENTS_BAD)")
	}
	before := countObjects(t, tok)
	_, err := svc.ImportDataKey(bg, req)
	pe := wantError(t, err, provider.CodeUnsupportedOp, "WrappingAlgorithm")
	for _, want := range []string{"RSAES_OAEP_SHA_256", "AllowHostDecode", "--AllowHostDecode"} {
		if !strings.Contains(pe.Message, want) {
			t.Fatalf("message %q does not mention %s", pe.Message, want)
		}
	}
	if n := cm.decrypts.Load(); n != 0 {
		t.Fatalf("refused import still decrypted %d times in the token", n)
	}
	if after := countObjects(t, tok); after != before {
		t.Fatalf("object count %d → %d", before, after)
	}
	req.AllowHostDecode = true
	resp, err := svc.ImportDataKey(bg, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Path != importer.PathHostOAEP {
		t.Fatalf("Path %s", resp.Path)
	}
	assertImported(t, tok, svc, resp, key)
}

// TestExpectedKeyCheckValue on each path: a match imports, a mismatch
// leaves nothing.
func TestExpectedKeyCheckValue(t *testing.T) {
	tok, svc := newService(t)
	rsa := createWrappingKey(t, svc, "RSA_2048", "rsa")
	sm2 := createWrappingKey(t, svc, "EC_SM2", "sm2")
	for _, c := range []struct {
		wk  *importer.WrappingKeyResponse
		alg string
	}{{rsa, "RSAES_OAEP_SHA_1"}, {rsa, "RSAES_PKCS1_V1_5"}, {rsa, "RSAES_OAEP_SHA_256"}, {sm2, "SM2PKE"}} {
		t.Run(c.alg, func(t *testing.T) {
			key := randomKey(32)
			kcv, _ := wrap.KCV(key)
			kb, _ := hex.DecodeString(kcv)
			kb[2] ^= 1
			wrong := hex.EncodeToString(kb)
			req := &importer.ImportDataKeyRequest{WrappingKeyLabel: c.wk.KeyLabel, WrappingAlgorithm: c.alg,
				ExportedDataKey: export(t, c.wk, c.alg, key), KeyLabel: "kcv-" + c.alg, AllowHostDecode: true,
				ExpectedKeyCheckValue: wrong}
			before := countObjects(t, tok.Token)
			_, err := svc.ImportDataKey(bg, req)
			pe := wantError(t, err, provider.CodeInvalidParameter, "ExpectedKeyCheckValue")
			if !strings.Contains(pe.Message, kcv) {
				t.Fatalf("message %q does not give the actual KCV", pe.Message)
			}
			if after := countObjects(t, tok.Token); after != before {
				t.Fatalf("object count %d → %d after a KCV mismatch", before, after)
			}
			if _, err := tok.FindSecretKeyByLabel(bg, req.KeyLabel); !errors.Is(err, hsm.ErrNotFound) {
				t.Fatalf("a key with the label exists after a mismatch: %v", err)
			}
			req.ExpectedKeyCheckValue = strings.ToUpper(kcv)
			resp, err := svc.ImportDataKey(bg, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.KeyCheckValue != kcv {
				t.Fatalf("KCV %s, want %s", resp.KeyCheckValue, kcv)
			}
		})
	}
}

// TestLabelsConflictUnlessReplace: an existing label is refused; Replace
// replaces an imported key (after the new one exists) but never a wrapping
// key; reserved labels are refused.
func TestLabelsConflictUnlessReplace(t *testing.T) {
	tok, svc := newService(t)
	wk := createWrappingKey(t, svc, "RSA_2048", "wrap")
	k1, k2 := randomKey(32), randomKey(32)
	req := func(key []byte, label string, replace bool) *importer.ImportDataKeyRequest {
		return &importer.ImportDataKeyRequest{WrappingKeyLabel: "wrap", WrappingAlgorithm: "RSAES_OAEP_SHA_1",
			ExportedDataKey: export(t, wk, "RSAES_OAEP_SHA_1", key), KeyLabel: label, Replace: replace}
	}
	first, err := svc.ImportDataKey(bg, req(k1, "dk", false))
	if err != nil {
		t.Fatal(err)
	}
	before := countObjects(t, tok.Token)
	_, err = svc.ImportDataKey(bg, req(k2, "dk", false))
	pe := wantError(t, err, provider.CodeConflict, "KeyLabel")
	if !strings.Contains(pe.Message, "Replace") {
		t.Fatalf("message %q does not say how to replace", pe.Message)
	}
	if countObjects(t, tok.Token) != before {
		t.Fatal("a refused import changed the token")
	}
	// The first key still works.
	assertImported(t, tok.Token, svc, first, k1)

	second, err := svc.ImportDataKey(bg, req(k2, "dk", true))
	if err != nil {
		t.Fatal(err)
	}
	if countObjects(t, tok.Token) != before {
		t.Fatal("Replace did not destroy the old key")
	}
	if second.KeyId == first.KeyId {
		t.Fatal("replacement has the old CKA_ID")
	}
	assertImported(t, tok.Token, svc, second, k2) // the label now names k2

	// Replace also works from a second Service (cold cache).
	other := importer.New(tok.Token)
	third, err := other.ImportDataKey(bg, req(k1, "dk", true))
	if err != nil {
		t.Fatal(err)
	}
	assertImported(t, tok.Token, other, third, k1)
	// The first Service's cached handle for "dk" is stale: it looks again.
	assertImported(t, tok.Token, svc, third, k1)

	// An Ephemeral key's label lives among the Service's session keys: it
	// may repeat a token key's label (no token-wide search per use-once
	// import), and the Service that imported it uses it for that label;
	// a second one under the label needs Replace.
	before = countObjects(t, tok.Token)
	r := req(k2, "dk", false)
	r.Ephemeral = true
	if _, err := other.ImportDataKey(bg, r); err != nil {
		t.Fatal(err)
	}
	encryptsWith(t, other, "dk", k2)
	_, err = other.ImportDataKey(bg, r)
	wantError(t, err, provider.CodeConflict, "KeyLabel")
	r.Replace = true
	if _, err := other.ImportDataKey(bg, r); err != nil {
		t.Fatal(err)
	}
	encryptsWith(t, other, "dk", k2)
	if _, err := other.DeleteKey(bg, &importer.DeleteKeyRequest{KeyLabel: "dk"}); err != nil {
		t.Fatal(err)
	}
	if got := countObjects(t, tok.Token); got != before {
		t.Fatalf("%d objects after importing, replacing and deleting session keys, %d before", got, before)
	}
	assertImported(t, tok.Token, other, third, k1) // the token key is the label's again

	// A wrapping key's label is never replaced by an import.
	_, err = svc.ImportDataKey(bg, req(k1, "wrap", true))
	wantError(t, err, provider.CodeConflict, "KeyLabel")
	if _, err := tok.FindKeyPair(bg, "wrap"); err != nil {
		t.Fatalf("wrapping key damaged: %v", err)
	}
	// Nor can a wrapping key take an imported key's label, or another's.
	_, err = svc.CreateWrappingKey(bg, &importer.CreateWrappingKeyRequest{WrappingKeySpec: "EC_SM2", KeyLabel: "dk"})
	wantError(t, err, provider.CodeConflict, "KeyLabel")
	_, err = svc.CreateWrappingKey(bg, &importer.CreateWrappingKeyRequest{WrappingKeySpec: "EC_SM2", KeyLabel: "wrap"})
	wantError(t, err, provider.CodeConflict, "KeyLabel")
	// CMK version labels are reserved.
	_, err = svc.ImportDataKey(bg, req(k1, "p11kms/key/version", true))
	wantError(t, err, provider.CodeInvalidParameter, "KeyLabel")
}

// encryptsWith checks that svc's Encrypt under label uses key.
func encryptsWith(t *testing.T, svc *importer.Service, label string, key []byte) {
	t.Helper()
	enc, err := svc.Encrypt(bg, &importer.EncryptRequest{KeyLabel: label, Plaintext: "cDExa21z"})
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := base64.StdEncoding.DecodeString(enc.CiphertextBlob)
	if pt, err := goGCM(key).Open(nil, blob[:12], blob[12:], []byte(importer.DefaultAAD)); err != nil || string(pt) != "p11kms" {
		t.Fatalf("%s does not encrypt with the expected key: %v", label, err)
	}
}

// TestRequestValidation: every bad parameter is an error naming it, before
// any token work, and nothing panics.
func TestRequestValidation(t *testing.T) {
	tok, svc := newService(t)
	rsa := createWrappingKey(t, svc, "RSA_2048", "rsa")
	good := func() *importer.ImportDataKeyRequest {
		return &importer.ImportDataKeyRequest{WrappingKeyLabel: "rsa", WrappingAlgorithm: "RSAES_OAEP_SHA_1",
			ExportedDataKey: export(t, rsa, "RSAES_OAEP_SHA_1", randomKey(32)), KeyLabel: "dk"}
	}
	cases := []struct {
		name        string
		edit        func(*importer.ImportDataKeyRequest)
		code, param string
		mention     string
	}{
		{"no wrapping key label", func(r *importer.ImportDataKeyRequest) { r.WrappingKeyLabel = "" }, provider.CodeInvalidParameter, "WrappingKeyLabel", "required"},
		{"unknown wrapping key", func(r *importer.ImportDataKeyRequest) { r.WrappingKeyLabel = "nope" }, provider.CodeKeyNotFound, "WrappingKeyLabel", "nope"},
		{"no algorithm", func(r *importer.ImportDataKeyRequest) { r.WrappingAlgorithm = "" }, provider.CodeInvalidParameter, "WrappingAlgorithm", "SM2_C1C3C2_ASN1"},
		{"unknown algorithm", func(r *importer.ImportDataKeyRequest) { r.WrappingAlgorithm = "RSAES_OAEP_SHA_512" }, provider.CodeInvalidParameter, "WrappingAlgorithm", "RSAES_OAEP_SHA_1"},
		{"lower-case algorithm", func(r *importer.ImportDataKeyRequest) { r.WrappingAlgorithm = "sm2pke" }, provider.CodeInvalidParameter, "WrappingAlgorithm", "SM2PKE"},
		{"SM2 algorithm, RSA key", func(r *importer.ImportDataKeyRequest) { r.WrappingAlgorithm = "SM2PKE" }, provider.CodeInvalidParameter, "WrappingAlgorithm", "EC_SM2"},
		{"no exported key", func(r *importer.ImportDataKeyRequest) { r.ExportedDataKey = "" }, provider.CodeInvalidParameter, "ExportedDataKey", "required"},
		{"not base64", func(r *importer.ImportDataKeyRequest) { r.ExportedDataKey = "!!!!" }, provider.CodeInvalidParameter, "ExportedDataKey", "base64"},
		{"URL-safe base64", func(r *importer.ImportDataKeyRequest) { r.ExportedDataKey = "-_-_" }, provider.CodeInvalidParameter, "ExportedDataKey", "base64"},
		{"huge", func(r *importer.ImportDataKeyRequest) { r.ExportedDataKey = strings.Repeat("A", 10000) }, provider.CodeInvalidParameter, "ExportedDataKey", "8192"},
		{"no key label", func(r *importer.ImportDataKeyRequest) { r.KeyLabel = "" }, provider.CodeInvalidParameter, "KeyLabel", "required"},
		{"long key label", func(r *importer.ImportDataKeyRequest) { r.KeyLabel = strings.Repeat("x", 129) }, provider.CodeInvalidParameter, "KeyLabel", "128"},
		{"control character", func(r *importer.ImportDataKeyRequest) { r.KeyLabel = "a\nb" }, provider.CodeInvalidParameter, "KeyLabel", "printable"},
		{"invalid UTF-8", func(r *importer.ImportDataKeyRequest) { r.KeyLabel = "\xff" }, provider.CodeInvalidParameter, "KeyLabel", "UTF-8"},
		{"reserved label", func(r *importer.ImportDataKeyRequest) { r.KeyLabel = "p11kms/x" }, provider.CodeInvalidParameter, "KeyLabel", "reserved"},
		{"unknown key type", func(r *importer.ImportDataKeyRequest) { r.KeyType = "DES3" }, provider.CodeInvalidParameter, "KeyType", "GENERIC_SECRET"},
		{"short KCV", func(r *importer.ImportDataKeyRequest) { r.ExpectedKeyCheckValue = "abc" }, provider.CodeInvalidParameter, "ExpectedKeyCheckValue", "6 hex digits"},
		{"non-hex KCV", func(r *importer.ImportDataKeyRequest) { r.ExpectedKeyCheckValue = "abcxyz" }, provider.CodeInvalidParameter, "ExpectedKeyCheckValue", "6 hex digits"},
		{"unknown usage", func(r *importer.ImportDataKeyRequest) { r.Usage = []string{"encrypt", "derive"} }, provider.CodeInvalidParameter, "Usage", "unwrap"},
	}
	before := countObjects(t, tok.Token)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := good()
			c.edit(r)
			_, err := svc.ImportDataKey(bg, r)
			pe := wantError(t, err, c.code, c.param)
			if !strings.Contains(pe.Message, c.param) || !strings.Contains(pe.Message, c.mention) {
				t.Fatalf("message %q should name %s and mention %q", pe.Message, c.param, c.mention)
			}
		})
	}
	if countObjects(t, tok.Token) != before {
		t.Fatal("refused requests changed the token")
	}
	// nil requests.
	if _, err := svc.ImportDataKey(bg, nil); provider.ErrorCode(err) != provider.CodeInvalidParameter {
		t.Fatalf("nil ImportDataKey: %v", err)
	}
	if _, err := svc.CreateWrappingKey(bg, nil); provider.ErrorCode(err) != provider.CodeInvalidParameter {
		t.Fatalf("nil CreateWrappingKey: %v", err)
	}
	if _, err := svc.Encrypt(bg, nil); provider.ErrorCode(err) != provider.CodeInvalidParameter {
		t.Fatalf("nil Encrypt: %v", err)
	}
	// Wrapping key specs.
	for _, spec := range []string{"", "RSA_1024", "rsa_2048", "EC_P256"} {
		_, err := svc.CreateWrappingKey(bg, &importer.CreateWrappingKeyRequest{WrappingKeySpec: spec, KeyLabel: "w"})
		pe := wantError(t, err, provider.CodeInvalidParameter, "WrappingKeySpec")
		if !strings.Contains(pe.Message, "EC_SM2") {
			t.Fatalf("message %q does not list the accepted specs", pe.Message)
		}
	}
	// Usage names are case-insensitive and reported canonically.
	r := good()
	r.Usage = []string{"Decrypt", "encrypt", "SIGN", "encrypt"}
	resp, err := svc.ImportDataKey(bg, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(resp.Usage, ","); got != "encrypt,decrypt,sign" {
		t.Fatalf("Usage %s", got)
	}
	h, _ := tok.FindSecretKeyByLabel(bg, "dk")
	for attr, want := range map[uint]bool{pkcs11.CKA_ENCRYPT: true, pkcs11.CKA_DECRYPT: true, pkcs11.CKA_SIGN: true,
		pkcs11.CKA_VERIFY: false, pkcs11.CKA_WRAP: false, pkcs11.CKA_UNWRAP: false} {
		if v, err := tok.BoolAttribute(bg, h, attr); err != nil || v != want {
			t.Fatalf("attribute %#x = %v (%v), want %v", attr, v, err, want)
		}
	}
}

// TestWrappingKeyLifecycle: create, get, list, delete; a cached handle gone
// stale (another Service deleted or re-created the key) is looked up again.
func TestWrappingKeyLifecycle(t *testing.T) {
	tok, svc := newService(t)
	created := createWrappingKey(t, svc, "EC_SM2", "w1")
	createWrappingKey(t, svc, "RSA_2048", "w0")
	if !strings.HasPrefix(created.PublicKeyPem, "-----BEGIN PUBLIC KEY-----") || created.KeyId == "" || created.RequestId == "" {
		t.Fatalf("response %+v", created)
	}
	// The PEM and the blob are the same key, and the pair is in the token.
	pemKey, spec, err := wrap.ParsePublicKeyPEM(created.PublicKeyPem)
	if err != nil || spec != wrap.SpecSM2 {
		t.Fatal(spec, err)
	}
	der, _ := wrap.MarshalPublicKeyDER(pemKey)
	if base64.StdEncoding.EncodeToString(der) != created.PublicKeyBlob {
		t.Fatal("PublicKeyPem and PublicKeyBlob differ")
	}
	kp, err := tok.FindKeyPair(bg, "w1")
	if err != nil {
		t.Fatal(err)
	}
	for attr, want := range map[uint]bool{pkcs11.CKA_SENSITIVE: true, pkcs11.CKA_EXTRACTABLE: false, pkcs11.CKA_DERIVE: true, pkcs11.CKA_TOKEN: true} {
		if v, err := tok.BoolAttribute(bg, kp.Private, attr); err != nil || v != want {
			t.Fatalf("private key attribute %#x = %v (%v)", attr, v, err)
		}
	}
	got, err := svc.GetWrappingPublicKey(bg, &importer.GetWrappingPublicKeyRequest{KeyLabel: "w1"})
	if err != nil || got.PublicKeyBlob != created.PublicKeyBlob || got.KeyId != created.KeyId {
		t.Fatalf("GetWrappingPublicKey: %+v %v", got, err)
	}
	// An unrelated key pair and secret key are not listed.
	if _, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Label: "secret"}); err != nil {
		t.Fatal(err)
	}
	list, err := svc.ListWrappingKeys(bg, &importer.ListWrappingKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if list.TotalCount != 2 || list.WrappingKeys[0].KeyLabel != "w0" || list.WrappingKeys[0].WrappingKeySpec != "RSA_2048" ||
		list.WrappingKeys[1].KeyLabel != "w1" || list.WrappingKeys[1].WrappingKeySpec != "EC_SM2" || list.WrappingKeys[1].KeyId != created.KeyId {
		t.Fatalf("ListWrappingKeys: %+v", list)
	}
	// An import caches the wrapping key's handles ...
	key := randomKey(16)
	if _, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "w1", WrappingAlgorithm: "SM2PKE",
		ExportedDataKey: export(t, created, "SM2PKE", key), KeyLabel: "dk1"}); err != nil {
		t.Fatal(err)
	}
	// ... another Service deletes the key and creates a new one with the label ...
	other := importer.New(tok.Token)
	if _, err := other.DeleteWrappingKey(bg, &importer.DeleteWrappingKeyRequest{KeyLabel: "w1"}); err != nil {
		t.Fatal(err)
	}
	renewed := createWrappingKey(t, other, "EC_SM2", "w1")
	// ... and the first Service finds the new one.
	resp, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "w1", WrappingAlgorithm: "SM2PKE",
		ExportedDataKey: export(t, renewed, "SM2PKE", key), KeyLabel: "dk2"})
	if err != nil {
		t.Fatalf("import after the wrapping key was re-created elsewhere: %v", err)
	}
	assertImported(t, tok.Token, svc, resp, key)

	if _, err := svc.DeleteWrappingKey(bg, &importer.DeleteWrappingKeyRequest{KeyLabel: "w1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.FindKeyPair(bg, "w1"); !errors.Is(err, hsm.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	_, err = svc.GetWrappingPublicKey(bg, &importer.GetWrappingPublicKeyRequest{KeyLabel: "w1"})
	wantError(t, err, provider.CodeKeyNotFound, "KeyLabel")
	_, err = svc.DeleteWrappingKey(bg, &importer.DeleteWrappingKeyRequest{KeyLabel: "w1"})
	wantError(t, err, provider.CodeKeyNotFound, "KeyLabel")
	_, err = svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "w1", WrappingAlgorithm: "SM2PKE",
		ExportedDataKey: export(t, renewed, "SM2PKE", key), KeyLabel: "dk3"})
	wantError(t, err, provider.CodeKeyNotFound, "WrappingKeyLabel")
	// Imported keys outlive their wrapping key.
	assertImported(t, tok.Token, svc, resp, key)
	list, _ = svc.ListWrappingKeys(bg, &importer.ListWrappingKeysRequest{})
	if list.TotalCount != 1 || list.WrappingKeys[0].KeyLabel != "w0" {
		t.Fatalf("ListWrappingKeys after delete: %+v", list)
	}
}

// TestGenericSecret: on the host paths the length and KCV (SHA-1, as
// PKCS#11 3.0 and SoftHSM define it) are checked; on the token-unwrap path
// SoftHSM2 2.6.1 reports neither, so an ExpectedKeyCheckValue is refused.
func TestGenericSecret(t *testing.T) {
	tok, svc := newService(t)
	rsa := createWrappingKey(t, svc, "RSA_2048", "rsa")
	sm2 := createWrappingKey(t, svc, "EC_SM2", "sm2")
	secret := randomKey(48) // an HMAC-SHA-384 key, say

	resp, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "sm2", WrappingAlgorithm: "SM2_C1C3C2_ASN1",
		ExportedDataKey: export(t, sm2, "SM2_C1C3C2_ASN1", secret), KeyLabel: "hmac", KeyType: "GENERIC_SECRET"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := wrap.KCVGenericSecret(secret)
	if resp.KeyCheckValue != want || strings.Join(resp.Usage, ",") != "sign,verify" || resp.KeyType != importer.KeyTypeGenericSecret {
		t.Fatalf("response %+v, want KCV %s", resp, want)
	}
	assertImported(t, tok.Token, svc, resp, secret)
	h, _ := tok.FindSecretKeyByLabel(bg, "hmac")
	a, err := tok.Attributes(bg, h, pkcs11.CKA_CHECK_VALUE, pkcs11.CKA_VALUE_LEN, pkcs11.CKA_KEY_TYPE)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(a[pkcs11.CKA_CHECK_VALUE]) != want {
		t.Fatalf("token's CKA_CHECK_VALUE %x, ours %s", a[pkcs11.CKA_CHECK_VALUE], want)
	}
	// A generic secret cannot do AES-GCM.
	_, err = svc.Encrypt(bg, &importer.EncryptRequest{KeyLabel: "hmac", Plaintext: "AA=="})
	wantError(t, err, provider.CodeInvalidParameter, "KeyLabel")

	// Token unwrap: imported, but unchecked on SoftHSM2 2.6.1.
	req := &importer.ImportDataKeyRequest{WrappingKeyLabel: "rsa", WrappingAlgorithm: "RSAES_OAEP_SHA_1",
		ExportedDataKey: export(t, rsa, "RSAES_OAEP_SHA_1", secret), KeyLabel: "hmac2", KeyType: "GENERIC_SECRET"}
	resp, err = svc.ImportDataKey(bg, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Path != importer.PathTokenUnwrap {
		t.Fatalf("Path %s", resp.Path)
	}
	t.Logf("token-unwrap GENERIC_SECRET KeyCheckValue %q (SoftHSM2 2.6.1 reports none)", resp.KeyCheckValue)
	if resp.KeyCheckValue != "" && resp.KeyCheckValue != want {
		t.Fatalf("KCV %s, want %s or none", resp.KeyCheckValue, want)
	}
	assertImported(t, tok.Token, svc, resp, secret)
	if resp.KeyCheckValue == "" {
		before := countObjects(t, tok.Token)
		req.KeyLabel, req.ExpectedKeyCheckValue = "hmac3", want
		_, err = svc.ImportDataKey(bg, req)
		wantError(t, err, provider.CodeUnsupportedOp, "ExpectedKeyCheckValue")
		if countObjects(t, tok.Token) != before {
			t.Fatal("refused import changed the token")
		}
	}
	// Host path: a too-long secret is refused like any bad ciphertext.
	_, err = svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "sm2", WrappingAlgorithm: "SM2PKE",
		ExportedDataKey: export(t, sm2, "SM2PKE", make([]byte, 1024)), KeyLabel: "ok-1024", KeyType: "GENERIC_SECRET"})
	if err != nil {
		t.Fatalf("1024-byte generic secret: %v", err)
	}
}

// TestEncryptDecrypt covers the use helpers' parameters and failures.
func TestEncryptDecrypt(t *testing.T) {
	_, svc := newService(t)
	wk := createWrappingKey(t, svc, "RSA_2048", "rsa")
	key := randomKey(32)
	imp := func(label string, usage ...string) {
		t.Helper()
		if _, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "rsa", WrappingAlgorithm: "RSAES_OAEP_SHA_1",
			ExportedDataKey: export(t, wk, "RSAES_OAEP_SHA_1", key), KeyLabel: label, Usage: usage}); err != nil {
			t.Fatal(err)
		}
	}
	imp("both")
	imp("enc-only", "encrypt")
	b64 := base64.StdEncoding.EncodeToString
	msg := bytes.Repeat([]byte("p11kms "), 1000)

	// Default AAD: DefaultAAD, documented; Go opens it with that.
	enc, err := svc.Encrypt(bg, &importer.EncryptRequest{KeyLabel: "both", Plaintext: b64(msg)})
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := base64.StdEncoding.DecodeString(enc.CiphertextBlob)
	if len(blob) != 12+len(msg)+16 {
		t.Fatalf("blob of %d bytes", len(blob))
	}
	if pt, err := goGCM(key).Open(nil, blob[:12], blob[12:], []byte(importer.DefaultAAD)); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("Go open with DefaultAAD: %v", err)
	}
	dec, err := svc.Decrypt(bg, &importer.DecryptRequest{KeyLabel: "both", CiphertextBlob: enc.CiphertextBlob})
	if err != nil || dec.Plaintext != b64(msg) {
		t.Fatalf("Decrypt: %v", err)
	}
	// Fresh IVs.
	enc2, _ := svc.Encrypt(bg, &importer.EncryptRequest{KeyLabel: "both", Plaintext: b64(msg)})
	if enc2.CiphertextBlob[:16] == enc.CiphertextBlob[:16] {
		t.Fatal("two encryptions share an IV")
	}

	// Every decryption failure is one error.
	bad := func(name string, r *importer.DecryptRequest) {
		t.Helper()
		_, err := svc.Decrypt(bg, r)
		if pe := wantError(t, err, provider.CodeInvalidCiphertext, "CiphertextBlob"); pe.Err != wrap.ErrDecryption {
			t.Fatalf("%s: cause %v", name, pe.Err)
		}
	}
	for _, i := range []int{0, 11, 12, len(blob) - 1} {
		b := bytes.Clone(blob)
		b[i] ^= 1
		bad(fmt.Sprintf("byte %d flipped", i), &importer.DecryptRequest{KeyLabel: "both", CiphertextBlob: b64(b)})
	}
	bad("truncated", &importer.DecryptRequest{KeyLabel: "both", CiphertextBlob: b64(blob[:len(blob)-1])})
	bad("tag only", &importer.DecryptRequest{KeyLabel: "both", CiphertextBlob: b64(blob[:28])})
	bad("wrong AAD", &importer.DecryptRequest{KeyLabel: "both", CiphertextBlob: enc.CiphertextBlob, AAD: b64([]byte("x"))})

	// Usage is enforced by the token.
	_, err = svc.Decrypt(bg, &importer.DecryptRequest{KeyLabel: "enc-only", CiphertextBlob: enc.CiphertextBlob})
	pe := wantError(t, err, provider.CodeInvalidParameter, "KeyLabel")
	if !strings.Contains(pe.Message, "decrypt") {
		t.Fatalf("message %q", pe.Message)
	}
	if _, err := svc.Encrypt(bg, &importer.EncryptRequest{KeyLabel: "enc-only", Plaintext: b64(msg)}); err != nil {
		t.Fatal(err)
	}
	// Parameters.
	for _, c := range []struct {
		req   *importer.EncryptRequest
		code  string
		param string
	}{
		{&importer.EncryptRequest{KeyLabel: "absent", Plaintext: "AA=="}, provider.CodeKeyNotFound, "KeyLabel"},
		{&importer.EncryptRequest{KeyLabel: "", Plaintext: "AA=="}, provider.CodeInvalidParameter, "KeyLabel"},
		{&importer.EncryptRequest{KeyLabel: "both", Plaintext: ""}, provider.CodeInvalidParameter, "Plaintext"},
		{&importer.EncryptRequest{KeyLabel: "both", Plaintext: "%%%"}, provider.CodeInvalidParameter, "Plaintext"},
		{&importer.EncryptRequest{KeyLabel: "both", Plaintext: b64(make([]byte, importer.MaxPlaintextBytes+1))}, provider.CodeInvalidParameter, "Plaintext"},
		{&importer.EncryptRequest{KeyLabel: "both", Plaintext: "AA==", AAD: "%"}, provider.CodeInvalidParameter, "AAD"},
		{&importer.EncryptRequest{KeyLabel: "p11kms/k/v", Plaintext: "AA=="}, provider.CodeInvalidParameter, "KeyLabel"},
	} {
		_, err := svc.Encrypt(bg, c.req)
		wantError(t, err, c.code, c.param)
	}
	_, err = svc.Decrypt(bg, &importer.DecryptRequest{KeyLabel: "both"})
	wantError(t, err, provider.CodeInvalidParameter, "CiphertextBlob")
}

// TestConcurrentImports: many goroutines import, replace and use keys at
// once; every label ends with exactly one key and nothing is left over.
func TestConcurrentImports(t *testing.T) {
	tok, svc := newService(t)
	rsa := createWrappingKey(t, svc, "RSA_2048", "rsa")
	sm2 := createWrappingKey(t, svc, "EC_SM2", "sm2")
	before := countObjects(t, tok.Token)
	const workers, each = 8, 6
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				wk, alg := rsa, "RSAES_OAEP_SHA_1"
				if (w+i)%2 == 1 {
					wk, alg = sm2, "SM2PKE"
				}
				key := randomKey(32)
				// Own label, and one shared label everybody replaces.
				for _, label := range []string{fmt.Sprintf("w%d-%d", w, i), "shared"} {
					resp, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: wk.KeyLabel, WrappingAlgorithm: alg,
						ExportedDataKey: export(t, wk, alg, key), KeyLabel: label, Replace: label == "shared", Ephemeral: i%2 == 0})
					if err != nil {
						errs <- fmt.Errorf("%s: %w", label, err)
						continue
					}
					if want, _ := wrap.KCV(key); resp.KeyCheckValue != want {
						errs <- fmt.Errorf("%s: KCV %s, want %s", label, resp.KeyCheckValue, want)
					}
					if label != "shared" {
						if _, err := svc.Encrypt(bg, &importer.EncryptRequest{KeyLabel: label, Plaintext: "AAEC"}); err != nil {
							errs <- fmt.Errorf("%s: Encrypt: %w", label, err)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if after := countObjects(t, tok.Token); after != before+workers*each+1 {
		t.Fatalf("%d objects, want %d", after, before+workers*each+1)
	}
	if hs, err := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "shared")}); err != nil || len(hs) != 1 {
		t.Fatalf("%d keys labelled shared (%v)", len(hs), err)
	}
}

// TestStaleWrappingKeyHandle: another Service (another process, say)
// destroys a wrapping key this Service has cached and makes a new one with
// the same label; the next import finds the new key.
func TestStaleWrappingKeyHandle(t *testing.T) {
	tok, svc := newService(t)
	for _, c := range []struct{ spec, alg string }{{"RSA_2048", "RSAES_OAEP_SHA_1"}, {"RSA_2048", "RSAES_PKCS1_V1_5"},
		{"RSA_2048", "RSAES_OAEP_SHA_256"}, {"EC_SM2", "SM2_C1C3C2_ASN1"}} {
		t.Run(c.alg, func(t *testing.T) {
			label := "stale-" + c.alg
			wk := createWrappingKey(t, svc, c.spec, label)
			key := randomKey(24)
			req := &importer.ImportDataKeyRequest{WrappingKeyLabel: label, WrappingAlgorithm: c.alg,
				ExportedDataKey: export(t, wk, c.alg, key), KeyLabel: label + "/1", AllowHostDecode: true, Ephemeral: true}
			if _, err := svc.ImportDataKey(bg, req); err != nil {
				t.Fatal(err)
			}
			other := importer.New(tok.Token)
			if _, err := other.DeleteWrappingKey(bg, &importer.DeleteWrappingKeyRequest{KeyLabel: label}); err != nil {
				t.Fatal(err)
			}
			renewed := createWrappingKey(t, other, c.spec, label)
			req.ExportedDataKey, req.KeyLabel = export(t, renewed, c.alg, key), label+"/2"
			resp, err := svc.ImportDataKey(bg, req)
			if err != nil {
				t.Fatalf("import with a stale cached wrapping key: %v", err)
			}
			assertImported(t, tok.Token, svc, resp, key)
			// Deleted for good: KeyNotFound, not a decryption error.
			if _, err := other.DeleteWrappingKey(bg, &importer.DeleteWrappingKeyRequest{KeyLabel: label}); err != nil {
				t.Fatal(err)
			}
			req.KeyLabel = label + "/3"
			_, err = svc.ImportDataKey(bg, req)
			wantError(t, err, provider.CodeKeyNotFound, "WrappingKeyLabel")
		})
	}
}

// TestForeignKeyPairThatCannotUnwrap: a key pair made by another tool
// without CKA_UNWRAP/CKA_DECRYPT/CKA_DERIVE is named as the problem.
func TestForeignKeyPairThatCannotUnwrap(t *testing.T) {
	tok, svc, cm := newCountingService(t)
	gen := func(label string, mech uint, pub, priv []*pkcs11.Attribute) {
		t.Helper()
		common := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(label))}
		_, err := hsm.Do(bg, tok, func(s *hsm.Session) (int, error) {
			_, _, err := cm.Module.GenerateKeyPair(s.Handle(), []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)},
				append(pub, common...), append(append(priv, common...), pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
					pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false)))
			return 0, err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sm2Params := []byte{0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d}
	gen("rsa-sign-only", pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN,
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, 2048), pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true), pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true)},
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false), pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false), pkcs11.NewAttribute(pkcs11.CKA_SIGN, true)})
	gen("sm2-sign-only", pkcs11.CKM_EC_KEY_PAIR_GEN,
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, sm2Params), pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true)},
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false), pkcs11.NewAttribute(pkcs11.CKA_SIGN, true)})

	for _, c := range []struct{ label, spec, alg string }{
		{"rsa-sign-only", "RSA_2048", "RSAES_OAEP_SHA_1"},
		{"rsa-sign-only", "RSA_2048", "RSAES_OAEP_SHA_256"},
		{"sm2-sign-only", "EC_SM2", "SM2PKE"},
	} {
		wk, err := svc.GetWrappingPublicKey(bg, &importer.GetWrappingPublicKeyRequest{KeyLabel: c.label})
		if err != nil || wk.WrappingKeySpec != c.spec {
			t.Fatalf("%s: %+v %v", c.label, wk, err)
		}
		before := countObjects(t, tok)
		_, err = svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: c.label, WrappingAlgorithm: c.alg,
			ExportedDataKey: export(t, wk, c.alg, randomKey(32)), KeyLabel: "dk", AllowHostDecode: true})
		pe := wantError(t, err, provider.CodeInvalidParameter, "WrappingKeyLabel")
		t.Logf("%s with %s: %s", c.label, c.alg, pe.Message)
		if countObjects(t, tok) != before {
			t.Fatal("refused import changed the token")
		}
	}
}

func TestDeleteKey(t *testing.T) {
	tok, svc := newService(t)
	wk := createWrappingKey(t, svc, "EC_SM2", "sm2")
	key := randomKey(16)
	imp := func(label string, ephemeral bool) {
		t.Helper()
		if _, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "sm2", WrappingAlgorithm: "SM2PKE",
			ExportedDataKey: export(t, wk, "SM2PKE", key), KeyLabel: label, Ephemeral: ephemeral}); err != nil {
			t.Fatal(err)
		}
	}
	before, err := tok.FindObjects(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ephemeral := range []bool{true, false} {
		label := fmt.Sprintf("use-once-%v", ephemeral)
		imp(label, ephemeral)
		if _, err := svc.Encrypt(bg, &importer.EncryptRequest{KeyLabel: label, Plaintext: "AA=="}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.DeleteKey(bg, &importer.DeleteKeyRequest{KeyLabel: label}); err != nil {
			t.Fatalf("ephemeral=%v: %v", ephemeral, err)
		}
		_, err := svc.Encrypt(bg, &importer.EncryptRequest{KeyLabel: label, Plaintext: "AA=="})
		wantError(t, err, provider.CodeKeyNotFound, "KeyLabel")
		_, err = svc.DeleteKey(bg, &importer.DeleteKeyRequest{KeyLabel: label})
		wantError(t, err, provider.CodeKeyNotFound, "KeyLabel")
		// The label is free again.
		imp(label, ephemeral)
		if _, err := svc.DeleteKey(bg, &importer.DeleteKeyRequest{KeyLabel: label}); err != nil {
			t.Fatal(err)
		}
	}
	after, err := tok.FindObjects(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("%d objects before, %d after importing and deleting", len(before), len(after))
	}
	// A wrapping key is not deleted this way; bad labels name the parameter.
	_, err = svc.DeleteKey(bg, &importer.DeleteKeyRequest{KeyLabel: "sm2"})
	wantError(t, err, provider.CodeConflict, "KeyLabel")
	if _, err := svc.GetWrappingPublicKey(bg, &importer.GetWrappingPublicKeyRequest{KeyLabel: "sm2"}); err != nil {
		t.Fatalf("the wrapping key is gone: %v", err)
	}
	_, err = svc.DeleteKey(bg, &importer.DeleteKeyRequest{KeyLabel: ""})
	wantError(t, err, provider.CodeInvalidParameter, "KeyLabel")
	_, err = svc.DeleteKey(bg, nil)
	wantError(t, err, provider.CodeInvalidParameter, "request")
}

// A use-once (Ephemeral) key is deleted without asking the token whose it
// is while no session was lost since it was made; once the sessions are
// lost (closed behind the service's back, as a token removal does), the
// key is gone, and DeleteKey says so instead of trusting the old handle.
func TestDeleteSessionKeyAcrossSessionLoss(t *testing.T) {
	tok, svc, cm := newCountingService(t)
	wk := createWrappingKey(t, svc, "EC_SM2", "sm2")
	imp := func(label string) {
		t.Helper()
		if _, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "sm2", WrappingAlgorithm: "SM2PKE",
			ExportedDataKey: export(t, wk, "SM2PKE", randomKey(32)), KeyLabel: label, Ephemeral: true}); err != nil {
			t.Fatal(err)
		}
	}
	imp("once")
	reads := cm.attrReads.Load()
	if _, err := svc.DeleteKey(bg, &importer.DeleteKeyRequest{KeyLabel: "once"}); err != nil {
		t.Fatal(err)
	}
	if n := cm.attrReads.Load() - reads; n != 0 {
		t.Fatalf("deleting a session key of the current epoch read attributes %d times", n)
	}
	_, err := svc.Encrypt(bg, &importer.EncryptRequest{KeyLabel: "once", Plaintext: "AA=="})
	wantError(t, err, provider.CodeKeyNotFound, "KeyLabel")

	imp("lost")
	epoch := tok.SessionEpoch()
	slot := tok.SlotID()
	raw := pkcs11.New(tok.ModulePath())
	if err := raw.CloseAllSessions(slot); err != nil {
		t.Fatal(err)
	}
	// Any later call notices the loss (and logs in again).
	if _, err := tok.Random(bg, 8); err != nil {
		t.Fatal(err)
	}
	if tok.SessionEpoch() == epoch {
		t.Fatal("the session epoch did not change when every session was lost")
	}
	_, err = svc.DeleteKey(bg, &importer.DeleteKeyRequest{KeyLabel: "lost"})
	wantError(t, err, provider.CodeKeyNotFound, "KeyLabel")
	// The label is free, and a new use-once key under it works.
	imp("lost")
	if _, err := svc.Encrypt(bg, &importer.EncryptRequest{KeyLabel: "lost", Plaintext: "AA=="}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DeleteKey(bg, &importer.DeleteKeyRequest{KeyLabel: "lost"}); err != nil {
		t.Fatal(err)
	}
}

// An algorithm of the wrong kind for the wrapping key is refused in the
// importer's own terms: it names WrappingAlgorithm and the key by its
// WrappingKeyLabel, never WrappingKeySpec (a parameter the importer does
// not take).
func TestWrongAlgorithmKindNamesTheWrappingKeyLabel(t *testing.T) {
	_, svc := newService(t)
	rsa := createWrappingKey(t, svc, "RSA_2048", "rsa-wk")
	sm2 := createWrappingKey(t, svc, "EC_SM2", "sm2-wk")
	for _, c := range []struct {
		label, alg, spec, need string
		ct                     string
	}{
		{"rsa-wk", "SM2PKE", "RSA_2048", "an EC_SM2", export(t, rsa, "RSAES_OAEP_SHA_1", randomKey(32))},
		{"sm2-wk", "RSAES_OAEP_SHA_1", "EC_SM2", "an RSA", export(t, sm2, "SM2PKE", randomKey(32))},
	} {
		_, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: c.label, WrappingAlgorithm: c.alg,
			ExportedDataKey: c.ct, KeyLabel: "dk-" + c.label})
		pe := wantError(t, err, provider.CodeInvalidParameter, "WrappingAlgorithm")
		for _, m := range []string{c.alg + " needs " + c.need + " wrapping key", `WrappingKeyLabel "` + c.label + `"`, c.spec} {
			if !strings.Contains(pe.Message, m) {
				t.Errorf("%s on %s: message %q should mention %q", c.alg, c.label, pe.Message, m)
			}
		}
		if strings.Contains(pe.Message, "WrappingKeySpec") {
			t.Errorf("%s on %s: message %q names WrappingKeySpec, which the importer does not take", c.alg, c.label, pe.Message)
		}
	}
}
