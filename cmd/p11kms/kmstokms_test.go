package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// newHome makes a p11kms home with its token and returns it with its
// access key.
func newHome(t *testing.T, bin, dir, name string) (home, ak, secret string) {
	t.Helper()
	home = filepath.Join(dir, name)
	if out, err := exec.Command(bin, "--home", home, "init").CombinedOutput(); err != nil {
		t.Fatalf("init %s: %v\n%s", name, err, out)
	}
	var keys struct {
		AccessKeys []struct{ AccessKeyId, AccessKeySecret string }
	}
	b, _ := os.ReadFile(filepath.Join(home, "access-keys.json"))
	if err := json.Unmarshal(b, &keys); err != nil || len(keys.AccessKeys) != 1 {
		t.Fatalf("access keys of %s: %v %s", name, err, b)
	}
	return home, keys.AccessKeys[0].AccessKeyId, keys.AccessKeys[0].AccessKeySecret
}

// KMS to KMS (issue 21): two homes, two serve processes. A's
// GenerateAndExportDataKey exports to B's asymmetric CMK (RSA_2048 with
// RSAES_OAEP_SHA_256, EC_SM2 with SM2PKE), B's AsymmetricDecrypt returns
// the key, and its KCV equals that of A's Decrypt of the CiphertextBlob —
// all through the official SDK (scripts/kmstokms, which the demo runs too).
func TestKMSToKMS(t *testing.T) {
	bin := buildBinary(t)
	helper := filepath.Join(t.TempDir(), "kmstokms")
	if out, err := exec.Command("go", "build", "-o", helper, "../../scripts/kmstokms").CombinedOutput(); err != nil {
		t.Fatalf("go build kmstokms: %v\n%s", err, out)
	}
	dir := t.TempDir()
	homeA, akA, secretA := newHome(t, bin, dir, "a")
	homeB, akB, secretB := newHome(t, bin, dir, "b")
	addrA, addrB := freePort(t), freePort(t)
	a := startServe(t, bin, homeA, addrA)
	defer stopServe(t, a)
	b := startServe(t, bin, homeB, addrB)
	defer stopServe(t, b)
	out, err := exec.Command(helper, addrA, akA, secretA, addrB, akB, secretB).CombinedOutput()
	if err != nil {
		t.Fatalf("kmstokms: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`(?m)^(\S+) +A Decrypt KCV ([0-9a-f]{6}) +B AsymmetricDecrypt KCV ([0-9a-f]{6})$`)
	got := line.FindAllStringSubmatch(string(out), -1)
	if len(got) != 2 || got[0][1] != "RSAES_OAEP_SHA_256" || got[1][1] != "SM2PKE" {
		t.Fatalf("kmstokms printed:\n%s", out)
	}
	for _, m := range got {
		if m[2] != m[3] {
			t.Errorf("%s: A's KCV %s, B's %s", m[1], m[2], m[3])
		}
	}
}
