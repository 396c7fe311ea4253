package provider

import (
	"strings"
	"testing"
	"time"
)

// FuzzSweepLabels: the parsers of the labels Sweep reads from the token
// never panic, and what they accept is exactly what versionLabel and
// wrappingLabel make (one spelling per object).
func FuzzSweepLabels(f *testing.F) {
	f.Add(versionLabel("k1", "0b7e5b1e-0000-4000-8000-000000000000"))
	f.Add(wrappingLabel("k1", time.Unix(1_800_000_000, 0)))
	f.Add("p11kms/audit-hmac")
	f.Add("p11kms-import/k/+07")
	f.Fuzz(func(t *testing.T, label string) {
		if ref, ok := parseVersionLabel(label); ok {
			keyID, ver, _ := strings.Cut(ref, "/")
			if versionLabel(keyID, ver) != label {
				t.Fatalf("accepted %q as version %q of %q", label, ver, keyID)
			}
		}
		if keyID, exp, ok := parseWrappingLabel(label); ok && wrappingLabel(keyID, exp) != label {
			t.Fatalf("accepted %q as a wrapping key of %q expiring %d", label, keyID, exp.Unix())
		}
	})
}
