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

// apiMessage runs the CLI, insists on an API error with the code, and
// returns its message.
func apiMessage(t *testing.T, code string, args ...string) string {
	t.Helper()
	_, errOut, exit := cli(t, args...)
	if exit != 1 {
		t.Fatalf("%v: exit %d, want 1 (%s)", args, exit, errOut)
	}
	e := jsonOut(t, errOut)
	if e["Code"] != code {
		t.Fatalf("%v: %s, want %s", args, errOut, code)
	}
	return e["Message"].(string)
}

// A parameter that does not parse is named once, with what it accepts, in
// the API's words (not Go's strconv text).
func TestCLIParameterMessages(t *testing.T) {
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
	for _, c := range []struct {
		args    []string
		param   string
		mention []string
	}{
		{[]string{"kms", "GenerateDataKey", "--KeyId", id, "--EncryptionContext", `{"order":42}`}, "EncryptionContext", []string{"not a string"}},
		{[]string{"kms", "ReEncrypt", "--CiphertextBlob", blob, "--DestinationKeyId", id, "--SourceEncryptionContext", `{"a":1}`}, "SourceEncryptionContext", nil},
		{[]string{"kms", "ScheduleKeyDeletion", "--KeyId", id, "--PendingWindowInDays", "x"}, "PendingWindowInDays", []string{`"x" is not an integer`, "7 to 366"}},
		{[]string{"kms", "ScheduleKeyDeletion", "--KeyId", id, "--PendingWindowInDays", "3"}, "PendingWindowInDays", []string{"7 to 366"}},
		{[]string{"kms", "GenerateDataKey", "--KeyId", id, "--NumberOfBytes", "99999999999999999999"}, "NumberOfBytes", []string{"out of range", "1 to 1024"}},
		{[]string{"kms", "GenerateDataKey", "--KeyId", id, "--NumberOfBytes", "0"}, "NumberOfBytes", []string{"1 to 1024"}},
		{[]string{"kms", "ListKeys", "--PageSize", "0"}, "PageSize", []string{"1 to 100"}},
		{[]string{"kms", "ListKeys", "--PageNumber", "0"}, "PageNumber", []string{"1 or more"}},
		{[]string{"kms", "GenerateDataKey", "--KeyId", id, "--DryRun=maybe"}, "DryRun", []string{"true or false"}},
		{[]string{"kms", "UpdateRotationPolicy", "--KeyId", id, "--EnableAutomaticRotation", "--RotationInterval", "604800"}, "RotationInterval", []string{"d, h, m or s"}},
	} {
		msg := apiMessage(t, "InvalidParameter", c.args...)
		if !strings.HasPrefix(msg, c.param+": ") || strings.Count(msg, c.param+":") != 1 || strings.Contains(msg, "strconv") {
			t.Errorf("%v: message %q should name %s once, first, in the API's words", c.args[1:], msg, c.param)
		}
		for _, m := range c.mention {
			if !strings.Contains(msg, m) {
				t.Errorf("%v: message %q should mention %q", c.args[1:], msg, m)
			}
		}
	}
}

// An explicit 0 on the command line is a value: refused, never the default.
func TestCLIExplicitZero(t *testing.T) {
	if _, _, code := cli(t, "init"); code != 0 {
		t.Fatal("init failed")
	}
	out, errOut, code := cli(t, "kms", "CreateKey")
	if code != 0 {
		t.Fatal(errOut)
	}
	id := jsonOut(t, out)["KeyMetadata"].(map[string]any)["KeyId"].(string)
	for _, args := range [][]string{
		{"kms", "GenerateDataKey", "--KeyId", id, "--NumberOfBytes", "0"},
		{"kms", "GenerateDataKeyWithoutPlaintext", "--KeyId", id, "--NumberOfBytes", "0"},
		{"kms", "ListKeys", "--PageSize", "0"},
		{"kms", "ListKeyVersions", "--KeyId", id, "--PageSize", "0"},
		{"kms", "ListAliases", "--PageNumber", "0"},
	} {
		apiMessage(t, "InvalidParameter", args...)
	}
	// Absent: the defaults.
	out, errOut, code = cli(t, "kms", "ListKeys")
	if code != 0 || jsonOut(t, out)["PageSize"] != 10.0 || jsonOut(t, out)["PageNumber"] != 1.0 {
		t.Fatalf("ListKeys defaults: %d %s %s", code, out, errOut)
	}
}

// RotationInterval takes Alibaba's units: d, h, m and s.
func TestCLIRotationIntervalUnits(t *testing.T) {
	if _, _, code := cli(t, "init"); code != 0 {
		t.Fatal("init failed")
	}
	out, errOut, code := cli(t, "kms", "CreateKey")
	if code != 0 {
		t.Fatal(errOut)
	}
	id := jsonOut(t, out)["KeyMetadata"].(map[string]any)["KeyId"].(string)
	for iv, secs := range map[string]string{"168h": "604800s", "10080m": "604800s", "8760h": "31536000s", "30d": "2592000s"} {
		if _, errOut, code := cli(t, "kms", "UpdateRotationPolicy", "--KeyId", id, "--EnableAutomaticRotation", "--RotationInterval", iv); code != 0 {
			t.Fatalf("%s: %s", iv, errOut)
		}
		out, _, _ := cli(t, "kms", "DescribeKey", "--KeyId", id)
		if got := jsonOut(t, out)["KeyMetadata"].(map[string]any)["RotationInterval"]; got != secs {
			t.Errorf("%s: RotationInterval %v, want %s", iv, got, secs)
		}
	}
}

// No action offers a flag it ignores or refuses: DescribeKey and the state
// changes have no DryRun (the Alibaba API has none for them), and
// GenerateDataKeyWithoutPlaintext has no Tencent public-key flags.
func TestCLIOffersOnlyFlagsItHonours(t *testing.T) {
	for _, c := range []struct {
		action string
		absent []string
	}{
		{"DescribeKey", []string{"--DryRun"}},
		{"EnableKey", []string{"--DryRun"}},
		{"DisableKey", []string{"--DryRun"}},
		{"CancelKeyDeletion", []string{"--DryRun"}},
		{"CreateKeyVersion", []string{"--DryRun"}},
		{"ScheduleKeyDeletion", []string{"--DryRun"}},
		{"CreateKey", []string{"--DryRun"}},
		{"GenerateDataKeyWithoutPlaintext", []string{"--EncryptionPublicKey", "--EncryptionAlgorithm"}},
	} {
		out, errOut, code := cli(t, "kms", c.action, "--help")
		if code != 0 || !strings.Contains(out+errOut, "--KeyId") && c.action != "CreateKey" {
			t.Fatalf("%s --help: %d %s %s", c.action, code, out, errOut)
		}
		for _, flag := range c.absent {
			if strings.Contains(out+errOut, flag) {
				t.Errorf("%s --help lists %s, which it does not honour", c.action, flag)
			}
			args := []string{"kms", c.action, "--KeyId", "k", flag}
			if flag != "--DryRun" {
				args = append(args, "x")
			}
			if _, _, code := cli(t, args...); code != 2 {
				t.Errorf("%s %s: exit %d, want 2 (no such flag)", c.action, flag, code)
			}
		}
	}
	for _, c := range []struct{ action, flag string }{{"GenerateDataKey", "--DryRun"}, {"GenerateDataKeyWithoutPlaintext", "--DryRun"},
		{"GenerateDataKey", "--EncryptionPublicKey"}, {"Encrypt", "--DryRun"}, {"Decrypt", "--DryRun"}, {"ReEncrypt", "--DryRun"}} {
		if out, _, _ := cli(t, "kms", c.action, "--help"); !strings.Contains(out, c.flag) {
			t.Errorf("%s --help lacks %s", c.action, c.flag)
		}
	}
}

// kms Sweep prints [] for each kind of work it did not do, never null.
func TestCLISweepPrintsLists(t *testing.T) {
	if _, _, code := cli(t, "init"); code != 0 {
		t.Fatal("init failed")
	}
	out, errOut, code := cli(t, "kms", "Sweep")
	if code != 0 {
		t.Fatal(errOut)
	}
	if strings.Contains(out, "null") {
		t.Fatalf("Sweep printed null:\n%s", out)
	}
	for _, k := range []string{"Deleted", "Rotated", "Repaired", "Missing"} {
		if _, ok := jsonOut(t, out)[k].([]any); !ok {
			t.Errorf("Sweep's %s is not a list:\n%s", k, out)
		}
	}
}
