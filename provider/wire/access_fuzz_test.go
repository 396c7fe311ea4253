package wire_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/provider/wire"
)

// FuzzAccessKeysFile feeds arbitrary bytes as an access-keys file: loading
// never panics, and a set that loads holds only entries with an id and a
// secret.
func FuzzAccessKeysFile(f *testing.F) {
	f.Add([]byte(`{"AccessKeys":[{"AccessKeyId":"a","AccessKeySecret":"s","Policy":{"Actions":["*"],"Keys":["*"]}}]}`))
	f.Add([]byte(`{"AccessKeys":[{"AccessKeyId":"a","SealedSecret":"AAAA"}]}`))
	f.Add([]byte(`{"AccessKeys":[`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		file := filepath.Join(dir, "access-keys.json")
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		ak, err := wire.LoadAccessKeys(file)
		if err != nil {
			return
		}
		for _, k := range ak.List() {
			full, ok := ak.Lookup(k.AccessKeyId)
			if !ok || full.AccessKeyId == "" || full.AccessKeySecret == "" || full.SealedSecret != "" {
				t.Fatalf("loaded entry %+v", full)
			}
		}
		if _, err := wire.ReadAccessKeysFile(file); err != nil {
			t.Fatalf("loads but does not list: %v", err)
		}
	})
}

// FuzzHostMatches: no panic, every host matches itself, and the empty
// expectation matches everything.
func FuzzHostMatches(f *testing.F) {
	f.Add("kms.example.test", "KMS.example.test:443")
	f.Add("[::1]:80", "::1")
	f.Fuzz(func(t *testing.T, expected, host string) {
		_ = wire.HostMatches(expected, host)
		if !wire.HostMatches("", host) || (!strings.ContainsAny(host, "[]") && !wire.HostMatches(host, host)) {
			t.Fatalf("HostMatches(%q, %q)", expected, host)
		}
	})
}
