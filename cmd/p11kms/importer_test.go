package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/wrap"
)

// importerCLI runs `p11kms importer <args>` in-process on a root of its own
// (so the test does not depend on how root.go registers the group).
func importerCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	g := &globals{home: testHome}
	root := &cobra.Command{Use: "p11kms", SilenceUsage: true, SilenceErrors: true}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&g.token, "token", "", "")
	root.AddCommand(newImporterCmd(g))
	root.SetArgs(append([]string{"importer"}, args...))

	oldOut, oldErr := os.Stdout, os.Stderr
	ro, wo, _ := os.Pipe()
	re, we, _ := os.Pipe()
	os.Stdout, os.Stderr = wo, we
	outC, errC := make(chan string), make(chan string)
	go func() { b, _ := io.ReadAll(ro); outC <- string(b) }()
	go func() { b, _ := io.ReadAll(re); errC <- string(b) }()
	root.SetOut(wo)
	err := root.Execute()
	code := 0
	if err != nil {
		var ok bool
		if code, ok = exitCode(err); !ok {
			code = 1
		}
	}
	wo.Close()
	we.Close()
	os.Stdout, os.Stderr = oldOut, oldErr
	return <-outC, <-errC, code
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
}

func TestImporterCLI(t *testing.T) {
	for _, args := range [][]string{{"init"}, {"init", "--token-label", "device"}} {
		if _, errOut, code := cli(t, args...); code != 0 {
			t.Fatalf("%v: %s", args, errOut)
		}
	}
	dev := "--token=pkcs11:token=device"
	run := strconv.FormatInt(time.Now().UnixNano(), 36) // labels unique per run: the home is shared
	wrapL, dkL, dk256L := "cli-wrap-"+run, "cli-dk-"+run, "cli-dk256-"+run

	out, errOut, code := importerCLI(t, "CreateWrappingKey", dev, "--WrappingKeySpec", "RSA_2048", "--KeyLabel", wrapL)
	if code != 0 {
		t.Fatalf("CreateWrappingKey: %d %s", code, errOut)
	}
	var wk struct{ KeyLabel, WrappingKeySpec, PublicKeyBlob, PublicKeyPem, KeyId, RequestId string }
	decodeJSON(t, out, &wk)
	if wk.KeyLabel != wrapL || wk.WrappingKeySpec != "RSA_2048" || wk.RequestId == "" {
		t.Fatalf("CreateWrappingKey output: %s", out)
	}

	// The exporting side, in Go; the ExportedDataKey goes through a file
	// as `base64` writes it (wrapped lines, trailing newline).
	pub, err := wrap.ParsePublicKeyBlob(wk.PublicKeyBlob, wrap.SpecRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	kcv, _ := wrap.KCV(key)
	exportFile := func(alg string) string {
		a, _ := wrap.LookupAlgorithm(alg)
		ct, err := a.Encrypt(nil, pub, key)
		if err != nil {
			t.Fatal(err)
		}
		b64 := base64.StdEncoding.EncodeToString(ct)
		var lines []string
		for len(b64) > 76 {
			lines, b64 = append(lines, b64[:76]), b64[76:]
		}
		p := filepath.Join(t.TempDir(), "exported.b64")
		os.WriteFile(p, []byte(strings.Join(append(lines, b64), "\n")+"\n"), 0o600)
		return "@" + p
	}

	out, errOut, code = importerCLI(t, "ImportDataKey", dev, "--WrappingKeyLabel", wrapL, "--WrappingAlgorithm", "RSAES_OAEP_SHA_1",
		"--ExportedDataKey", exportFile("RSAES_OAEP_SHA_1"), "--KeyLabel", dkL, "--ExpectedKeyCheckValue", kcv, "--Usage", `["encrypt","decrypt"]`)
	if code != 0 {
		t.Fatalf("ImportDataKey: %d %s", code, errOut)
	}
	var imp struct {
		Path, KeyLabel, KeyId, KeyCheckValue string
		Usage                                []string
	}
	decodeJSON(t, out, &imp)
	if imp.Path != "token-unwrap" || imp.KeyCheckValue != kcv || len(imp.Usage) != 2 {
		t.Fatalf("ImportDataKey output: %s", out)
	}

	// OAEP-SHA-256 on SoftHSM2 2.6.1: refused without the opt-in, with a
	// JSON error on stderr and exit status 1.
	sha256File := exportFile("RSAES_OAEP_SHA_256")
	_, errOut, code = importerCLI(t, "ImportDataKey", dev, "--WrappingKeyLabel", wrapL, "--WrappingAlgorithm", "RSAES_OAEP_SHA_256",
		"--ExportedDataKey", sha256File, "--KeyLabel", dk256L)
	var apiErr struct{ Code, Message, RequestId string }
	decodeJSON(t, errOut, &apiErr)
	if code != 1 || apiErr.Code != "UnsupportedOperation" || !strings.Contains(apiErr.Message, "--AllowHostDecode") {
		t.Fatalf("OAEP-SHA-256 without opt-in: %d %s", code, errOut)
	}
	out, errOut, code = importerCLI(t, "ImportDataKey", dev, "--WrappingKeyLabel", wrapL, "--WrappingAlgorithm", "RSAES_OAEP_SHA_256",
		"--ExportedDataKey", sha256File, "--KeyLabel", dk256L, "--AllowHostDecode")
	decodeJSON(t, out, &imp)
	if code != 0 || imp.Path != "token-raw-rsa+host-oaep" || imp.KeyCheckValue != kcv {
		t.Fatalf("OAEP-SHA-256 with --AllowHostDecode: %d %s %s", code, out, errOut)
	}

	// Use the key: encrypt in the token, open in Go; decrypt in the token.
	aad := base64.StdEncoding.EncodeToString([]byte("order 42"))
	out, errOut, code = importerCLI(t, "Encrypt", dev, "--KeyLabel", dkL, "--Plaintext", "aGVsbG8=", "--AAD", aad)
	if code != 0 {
		t.Fatalf("Encrypt: %d %s", code, errOut)
	}
	var enc struct{ CiphertextBlob string }
	decodeJSON(t, out, &enc)
	blob, _ := base64.StdEncoding.DecodeString(enc.CiphertextBlob)
	b, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(b)
	if pt, err := gcm.Open(nil, blob[:12], blob[12:], []byte("order 42")); err != nil || string(pt) != "hello" {
		t.Fatalf("Go cannot open the CLI's ciphertext: %v", err)
	}
	out, errOut, code = importerCLI(t, "Decrypt", dev, "--KeyLabel", dk256L, "--CiphertextBlob", enc.CiphertextBlob, "--AAD", aad)
	var dec struct{ Plaintext string }
	decodeJSON(t, out, &dec)
	if code != 0 || dec.Plaintext != "aGVsbG8=" {
		t.Fatalf("Decrypt with the same key imported the other way: %d %s %s", code, out, errOut)
	}

	// The default token ("kms") does not hold the device's wrapping key.
	_, errOut, code = importerCLI(t, "GetWrappingPublicKey", "--KeyLabel", wrapL)
	decodeJSON(t, errOut, &apiErr)
	if code != 1 || apiErr.Code != "Forbidden.KeyNotFound" {
		t.Fatalf("wrapping key on the wrong token: %d %s", code, errOut)
	}
	out, _, code = importerCLI(t, "ListWrappingKeys", dev)
	var list struct {
		WrappingKeys []struct{ KeyLabel, WrappingKeySpec string }
		TotalCount   int
	}
	decodeJSON(t, out, &list)
	if code != 0 || list.TotalCount != 1 || list.WrappingKeys[0].KeyLabel != wrapL {
		t.Fatalf("ListWrappingKeys: %s", out)
	}
	if _, errOut, code = importerCLI(t, "DeleteWrappingKey", dev, "--KeyLabel", wrapL); code != 0 {
		t.Fatalf("DeleteWrappingKey: %s", errOut)
	}
	// Usage errors: exit status 2.
	if _, _, code = importerCLI(t, "ImportDataKey", dev, "--KeyLabel", "x"); code != 2 {
		t.Fatalf("missing required parameters: exit status %d, want 2", code)
	}
	// A bad list parameter is an API error naming it.
	_, errOut, code = importerCLI(t, "ImportDataKey", dev, "--WrappingKeyLabel", "w", "--WrappingAlgorithm", "SM2PKE",
		"--ExportedDataKey", "AA==", "--KeyLabel", "x", "--Usage", "encrypt")
	decodeJSON(t, errOut, &apiErr)
	if code != 1 || apiErr.Code != "InvalidParameter" || !strings.Contains(apiErr.Message, "Usage") {
		t.Fatalf("bad --Usage: %d %s", code, errOut)
	}
}
