package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func jsonOut(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return m
}

func TestKMSActions(t *testing.T) {
	if _, _, code := cli(t, "init"); code != 0 {
		t.Fatal("init failed")
	}
	out, errOut, code := cli(t, "kms", "CreateKey", "--Description", "cli test")
	if code != 0 {
		t.Fatalf("CreateKey: %s", errOut)
	}
	id := jsonOut(t, out)["KeyMetadata"].(map[string]any)["KeyId"].(string)
	if _, errOut, code := cli(t, "kms", "CreateAlias", "--AliasName", "alias/cli-"+id[:8], "--KeyId", id); code != 0 {
		t.Fatal(errOut)
	}
	out, errOut, code = cli(t, "kms", "GenerateDataKey", "--KeyId", "alias/cli-"+id[:8], "--EncryptionContext", `{"a":"b"}`, "--NumberOfBytes", "16")
	if code != 0 {
		t.Fatal(errOut)
	}
	g := jsonOut(t, out)
	out, errOut, code = cli(t, "kms", "Decrypt", "--CiphertextBlob", g["CiphertextBlob"].(string), "--EncryptionContext", `{"a":"b"}`)
	if code != 0 || jsonOut(t, out)["Plaintext"] != g["Plaintext"] {
		t.Fatalf("Decrypt: %s %s", out, errOut)
	}
	// API errors: JSON on stderr, exit 1.
	_, errOut, code = cli(t, "kms", "Decrypt", "--CiphertextBlob", g["CiphertextBlob"].(string))
	if code != 1 || jsonOut(t, errOut)["Code"] != "InvalidCiphertext" || jsonOut(t, errOut)["RequestId"] == "" {
		t.Fatalf("context mismatch: %d %s", code, errOut)
	}
	for _, args := range [][]string{
		{"kms", "GenerateDataKey", "--KeyId", id, "--NumberOfBytes", "x"},
		{"kms", "GenerateDataKey", "--KeyId", id, "--NumberOfBytes", "2000"},
		{"kms", "GenerateDataKey", "--KeyId", id, "--EncryptionContext", `{"a":1}`},
		{"kms", "GenerateDataKey", "--KeyId", id, "--EncryptionContext", `{"a":"1","a":"2"}`},
	} {
		_, errOut, code := cli(t, args...)
		if code != 1 || jsonOut(t, errOut)["Code"] != "InvalidParameter" {
			t.Errorf("%v: %d %s", args, code, errOut)
		}
	}
	_, errOut, code = cli(t, "kms", "DescribeKey", "--KeyId", "00000000-0000-4000-8000-000000000000")
	if code != 1 || jsonOut(t, errOut)["Code"] != "Forbidden.KeyNotFound" {
		t.Fatalf("%d %s", code, errOut)
	}
	// Usage errors: exit 2.
	for _, args := range [][]string{{"kms", "GenerateDataKey"}, {"kms", "GenerateDataKey", "--Bogus", "1"}, {"kms", "Decrypt", "extra-arg"}} {
		if _, _, code := cli(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	// @file for public keys.
	pub := filepath.Join(t.TempDir(), "pub.b64")
	os.WriteFile(pub, []byte("not-a-key\n"), 0o600)
	_, errOut, code = cli(t, "kms", "GenerateAndExportDataKey", "--KeyId", id, "--PublicKeyBlob", "@"+pub,
		"--WrappingKeySpec", "RSA_2048", "--WrappingAlgorithm", "RSAES_OAEP_SHA_256")
	if code != 1 || !strings.Contains(errOut, "PublicKeyBlob") {
		t.Fatalf("@file: %d %s", code, errOut)
	}
}

func TestAccessKeyCommands(t *testing.T) {
	if _, _, code := cli(t, "init"); code != 0 {
		t.Fatal("init failed")
	}
	file := filepath.Join(t.TempDir(), "ak.json")
	out, errOut, code := cli(t, "accesskey", "create", "--access-keys", file, "--actions", "GenerateDataKey,Decrypt", "--keys", "alias/app*")
	if code != 0 {
		t.Fatal(errOut)
	}
	k := jsonOut(t, out)
	id, secret := k["AccessKeyId"].(string), k["AccessKeySecret"].(string)
	if !strings.HasPrefix(id, "LTAI") || len(secret) < 20 {
		t.Fatalf("key %v", k)
	}
	st, _ := os.Stat(file)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	out, _, code = cli(t, "accesskey", "list", "--access-keys", file)
	if code != 0 || !strings.Contains(out, id) || strings.Contains(out, secret) {
		t.Fatalf("list shows the secret or misses the key:\n%s", out)
	}
	if _, _, code := cli(t, "accesskey", "delete", "--access-keys", file, id); code != 0 {
		t.Fatal("delete failed")
	}
	if _, errOut, code := cli(t, "accesskey", "delete", "--access-keys", file, id); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("second delete: %d %s", code, errOut)
	}
	// init made the admin key in the home and printed it once.
	ak, err := os.ReadFile(filepath.Join(testHome, "access-keys.json"))
	if err != nil || !strings.Contains(string(ak), `"*"`) {
		t.Fatalf("home access keys: %v", err)
	}
}
