package main

import (
	"encoding/base64"
	"strings"
	"testing"
)

// Malformed input through the CLI: every case ends with the API's error
// JSON and its specific code (exit 1), or a usage error (exit 2); never a
// panic, never a half-made object.
func TestCLIHostileInput(t *testing.T) {
	if _, _, code := cli(t, "init"); code != 0 {
		t.Fatal("init failed")
	}
	out, errOut, code := cli(t, "kms", "CreateKey")
	if code != 0 {
		t.Fatal(errOut)
	}
	id := jsonOut(t, out)["KeyMetadata"].(map[string]any)["KeyId"].(string)
	out, _, _ = cli(t, "kms", "GenerateDataKey", "--KeyId", id)
	blob := jsonOut(t, out)["CiphertextBlob"].(string)
	raw, _ := base64.StdEncoding.DecodeString(blob)
	mut := func(f func([]byte) []byte) string {
		b := append([]byte(nil), raw...)
		return base64.StdEncoding.EncodeToString(f(b))
	}
	cases := []struct {
		args []string
		want string // wire code, or "usage" for exit 2
	}{
		{[]string{"kms", "Decrypt", "--CiphertextBlob", "%%%"}, "InvalidCiphertext"},
		{[]string{"kms", "Decrypt", "--CiphertextBlob", mut(func(b []byte) []byte { return b[:20] })}, "InvalidCiphertext"},
		{[]string{"kms", "Decrypt", "--CiphertextBlob", mut(func(b []byte) []byte { b[0] = 9; return b })}, "InvalidCiphertext"},
		{[]string{"kms", "Decrypt", "--CiphertextBlob", mut(func(b []byte) []byte { b[20] ^= 1; return b })}, "InvalidCiphertext"},
		{[]string{"kms", "Decrypt", "--CiphertextBlob", mut(func(b []byte) []byte { return append(b, make([]byte, 9000)...) })}, "InvalidCiphertext"},
		{[]string{"kms", "Decrypt", "--CiphertextBlob", blob, "--EncryptionContext", `{"x":"y"}`}, "InvalidCiphertext"},
		{[]string{"kms", "Decrypt", "--CiphertextBlob", blob, "--EncryptionContext", `{"x":`}, "InvalidParameter"},
		{[]string{"kms", "Decrypt", "--CiphertextBlob", blob, "--EncryptionContext", `{"x":["y"]}`}, "InvalidParameter"},
		{[]string{"kms", "Decrypt", "--CiphertextBlob", blob, "--EncryptionContext", strings.Repeat("[", 10000)}, "InvalidParameter"},
		{[]string{"kms", "Decrypt", "--CiphertextBlob", blob, "--EncryptionContext", `{"a":"` + strings.Repeat("x", 9000) + `"}`}, "InvalidParameter"},
		{[]string{"kms", "Decrypt", "--CiphertextBlob", blob, "--EncryptionContext", "{\"a\":\"\xff\"}"}, "InvalidParameter"},
		{[]string{"kms", "GenerateDataKey", "--KeyId", id, "--NumberOfBytes", "-1"}, "InvalidParameter"},
		{[]string{"kms", "GenerateDataKey", "--KeyId", id, "--NumberOfBytes", "99999999999999999999"}, "InvalidParameter"},
		{[]string{"kms", "GenerateDataKey", "--KeyId", id, "--NumberOfBytes", "1025"}, "InvalidParameter"},
		{[]string{"kms", "GenerateDataKey", "--KeyId", id, "--KeySpec", "AES_64"}, "InvalidParameter"},
		{[]string{"kms", "GenerateDataKey", "--KeyId", "bad id"}, "InvalidParameter"},
		{[]string{"kms", "GenerateDataKey", "--KeyId", "alias/missing"}, "Forbidden.AliasNotFound"},
		{[]string{"kms", "GenerateDataKey", "--KeyId", "00000000-0000-4000-8000-000000000000"}, "Forbidden.KeyNotFound"},
		{[]string{"kms", "GenerateDataKey", "--KeyId", id, "--DryRun"}, "DryRunOperationError"},
		{[]string{"kms", "GenerateDataKey", "--KeyId", id, "--DryRun", "--DryRun=maybe"}, "InvalidParameter"},
		{[]string{"kms", "GenerateAndExportDataKey", "--KeyId", id, "--PublicKeyBlob", "AAAA", "--WrappingKeySpec", "RSA_2048", "--WrappingAlgorithm", "RSAES_OAEP_SHA_256"}, "InvalidParameter"},
		{[]string{"kms", "GenerateAndExportDataKey", "--KeyId", id, "--PublicKeyBlob", "AAAA", "--WrappingKeySpec", "RSA_1024", "--WrappingAlgorithm", "RSAES_OAEP_SHA_256"}, "InvalidParameter"},
		{[]string{"kms", "GenerateAndExportDataKey", "--KeyId", id, "--PublicKeyBlob", "AAAA", "--WrappingKeySpec", "RSA_2048", "--WrappingAlgorithm", "RSA_MAGIC"}, "InvalidParameter"},
		{[]string{"kms", "GenerateAndExportDataKey", "--KeyId", id, "--PublicKeyBlob", "@/nonexistent/file", "--WrappingKeySpec", "RSA_2048", "--WrappingAlgorithm", "RSAES_OAEP_SHA_256"}, "usage"},
		{[]string{"kms", "Encrypt", "--KeyId", id, "--Plaintext", "not base64!"}, "InvalidParameter"},
		{[]string{"kms", "Encrypt", "--KeyId", id, "--Plaintext", base64.StdEncoding.EncodeToString(make([]byte, 6145))}, "InvalidParameter"},
		{[]string{"kms", "ScheduleKeyDeletion", "--KeyId", id, "--PendingWindowInDays", "5"}, "InvalidParameter"},
		{[]string{"kms", "ScheduleKeyDeletion", "--KeyId", id}, "usage"},
		{[]string{"kms", "CreateAlias", "--AliasName", "noprefix", "--KeyId", id}, "InvalidParameter"},
		{[]string{"kms", "ListKeys", "--PageSize", "1000"}, "InvalidParameter"},
		{[]string{"kms", "ListKeys", "--PageSize", "0"}, "InvalidParameter"},
		{[]string{"kms", "ListAliasesByKeyId", "--KeyId", id, "--PageSize", "0"}, "InvalidParameter"},
		{[]string{"kms", "GenerateDataKey", "--KeyId", id, "--NumberOfBytes", "0"}, "InvalidParameter"},
		{[]string{"kms", "GenerateAndExportDataKey", "--KeyId", id, "--NumberOfBytes", "0", "--PublicKeyBlob", "AAAA", "--WrappingKeySpec", "RSA_2048", "--WrappingAlgorithm", "RSAES_OAEP_SHA_256"}, "InvalidParameter"},
		{[]string{"kms", "DescribeKey", "--KeyId", id, "--DryRun"}, "usage"},
		{[]string{"kms", "GenerateDataKeyWithoutPlaintext", "--KeyId", id, "--EncryptionAlgorithm", "SM2"}, "usage"},
		{[]string{"kms", "CreateAlias", "--AliasName", "alias/a:b", "--KeyId", id}, "InvalidParameter"},
		{[]string{"kms", "DescribeKey", "--KeyId", "acs:kms:cn-shanghai:999:key/" + id}, "Forbidden.KeyNotFound"},
		{[]string{"kms", "Encrypt", "--KeyId", "acs:kms:cn-hangzhou:999:key/" + id, "--Plaintext", "aGk="}, "Forbidden.KeyNotFound"},
		{[]string{"kms", "UpdateRotationPolicy", "--KeyId", id, "--EnableAutomaticRotation", "--RotationInterval", "6d"}, "InvalidParameter"},
		{[]string{"kms", "UpdateRotationPolicy", "--KeyId", id, "--RotationInterval", "30d"}, "InvalidParameter"},
		{[]string{"kms", "NoSuchAction"}, "usage"},
		{[]string{"bench", "--rounds", "0"}, "usage"},
		{[]string{"bench", "--server-pid", "1"}, "usage"},
		{[]string{"bench", "--cpuprofile", "/nonexistent/dir/cpu.prof"}, "usage"},
		{[]string{"bench", "--memprofile", "/nonexistent/dir/mem.prof"}, "usage"},
		{[]string{"importer", "ImportDataKey", "--WrappingKeyLabel", "none", "--WrappingAlgorithm", "SM2PKE", "--ExportedDataKey", "AAAA", "--KeyLabel", "x"}, "Forbidden.KeyNotFound"},
		{[]string{"importer", "ImportDataKey", "--WrappingKeyLabel", "none", "--WrappingAlgorithm", "BOGUS", "--ExportedDataKey", "AAAA", "--KeyLabel", "x"}, "InvalidParameter"},
	}
	for _, c := range cases {
		_, errOut, code := cli(t, c.args...)
		switch {
		case c.want == "usage":
			if code != 2 {
				t.Errorf("%v: exit %d, want 2 (usage)", c.args[:2], code)
			}
		case code != 1:
			t.Errorf("%v: exit %d, want 1: %s", c.args[:2], code, errOut)
		default:
			if got := jsonOut(t, errOut)["Code"]; got != c.want {
				t.Errorf("%v %s: code %v, want %s", c.args[:2], truncate(strings.Join(c.args[2:], " "), 60), got, c.want)
			}
		}
	}
	// Still works.
	if _, errOut, code := cli(t, "kms", "Decrypt", "--CiphertextBlob", blob); code != 0 {
		t.Fatal(errOut)
	}
}

// Without a home (or with a token that is not there) the command says why
// and what to do, not only that the key store is unavailable.
func TestCLITokenOpenErrorsSayWhy(t *testing.T) {
	empty := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--home", empty, "kms", "ListKeys"}, "run `p11kms init` first"},
		{[]string{"--home", empty, "importer", "ListWrappingKeys"}, "run `p11kms init` first"},
		{[]string{"--token", "pkcs11:token=no-such-token", "kms", "ListKeys"}, `no token matches token=no-such-token in module `},
	} {
		_, errOut, code := cli(t, c.args...)
		if code != 1 || !strings.Contains(errOut, "InternalFailure") || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %s; want InternalFailure saying %s", c.args, code, errOut, c.want)
		}
	}
}
