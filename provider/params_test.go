package provider_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/provider"
)

// wantParam asserts err is InvalidParameter naming param once, with a
// message mentioning each of mention.
func wantParam(t *testing.T, what string, err error, param string, mention ...string) {
	t.Helper()
	e := provider.AsError(err)
	if err == nil || e.Code != provider.CodeInvalidParameter || e.Param != param {
		t.Errorf("%s: %v; want InvalidParameter naming %s", what, err, param)
		return
	}
	if !strings.HasPrefix(e.Message, param+": ") || strings.Count(e.Message, param+":") != 1 {
		t.Errorf("%s: message %q should name %s once, first", what, e.Message, param)
	}
	for _, m := range mention {
		if !strings.Contains(e.Message, m) {
			t.Errorf("%s: message %q should mention %q", what, e.Message, m)
		}
	}
}

// A given 0 is a value, refused as out of range; only an absent (nil)
// NumberOfBytes, PageNumber or PageSize takes the default.
func TestExplicitZeroIsAValue(t *testing.T) {
	s, _, _ := newService(t)
	id := createKey(t, s)
	_, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id, NumberOfBytes: new(0)})
	wantParam(t, "GenerateDataKey NumberOfBytes 0", err, "NumberOfBytes", "1 to 1024")
	_, err = s.GenerateDataKeyWithoutPlaintext(bg, &provider.GenerateDataKeyWithoutPlaintextRequest{KeyId: id, NumberOfBytes: new(0)})
	wantParam(t, "GenerateDataKeyWithoutPlaintext NumberOfBytes 0", err, "NumberOfBytes", "1 to 1024")
	_, err = s.GenerateAndExportDataKey(bg, &provider.GenerateAndExportDataKeyRequest{KeyId: id, NumberOfBytes: new(0)})
	wantParam(t, "GenerateAndExportDataKey NumberOfBytes 0", err, "NumberOfBytes", "1 to 1024")
	// NumberOfBytes wins over KeySpec, but a bad KeySpec is still refused.
	_, err = s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id, KeySpec: "AES_512", NumberOfBytes: new(16)})
	wantParam(t, "KeySpec beside NumberOfBytes", err, "KeySpec", "AES_256, AES_128")

	lists := map[string]func(number, size *int) error{
		"ListKeys": func(n, sz *int) error {
			_, err := s.ListKeys(bg, &provider.ListKeysRequest{PageNumber: n, PageSize: sz})
			return err
		},
		"ListKeyVersions": func(n, sz *int) error {
			_, err := s.ListKeyVersions(bg, &provider.ListKeyVersionsRequest{KeyId: id, PageNumber: n, PageSize: sz})
			return err
		},
		"ListAliases": func(n, sz *int) error {
			_, err := s.ListAliases(bg, &provider.ListAliasesRequest{PageNumber: n, PageSize: sz})
			return err
		},
		"ListAliasesByKeyId": func(n, sz *int) error {
			_, err := s.ListAliasesByKeyId(bg, &provider.ListAliasesByKeyIdRequest{KeyId: id, PageNumber: n, PageSize: sz})
			return err
		},
	}
	for name, list := range lists {
		wantParam(t, name+" PageSize 0", list(nil, new(0)), "PageSize", "1 to 100")
		wantParam(t, name+" PageNumber 0", list(new(0), nil), "PageNumber", "1 or more")
		if err := list(nil, nil); err != nil {
			t.Errorf("%s with defaults: %v", name, err)
		}
	}
	// Absent: the defaults.
	l, err := s.ListKeys(bg, &provider.ListKeysRequest{})
	if err != nil || l.PageNumber != 1 || l.PageSize != 10 {
		t.Fatalf("ListKeys defaults: %+v %v", l, err)
	}
	g, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
	if err != nil || len(g.Plaintext) != 44 {
		t.Fatalf("GenerateDataKey default: %v", err)
	}
}

// RotationInterval is Alibaba's: an integer with a unit d, h, m or s, 7 to
// 365 days.
func TestRotationIntervalUnits(t *testing.T) {
	s, _, _ := newService(t)
	id := createKey(t, s)
	for iv, secs := range map[string]string{"168h": "604800s", "10080m": "604800s", "8760h": "31536000s", "7d": "604800s",
		"604800s": "604800s", "365d": "31536000s", "720h": "2592000s"} {
		if _, err := s.UpdateRotationPolicy(bg, &provider.UpdateRotationPolicyRequest{KeyId: id, EnableAutomaticRotation: true, RotationInterval: iv}); err != nil {
			t.Errorf("UpdateRotationPolicy %s: %v", iv, err)
			continue
		}
		d, _ := s.DescribeKey(bg, &provider.KeyIdRequest{KeyId: id})
		if d.KeyMetadata.RotationInterval != secs || d.KeyMetadata.AutomaticRotation != "Enabled" {
			t.Errorf("%s: RotationInterval %q, want %s", iv, d.KeyMetadata.RotationInterval, secs)
		}
		if _, err := s.CreateKey(bg, &provider.CreateKeyRequest{EnableAutomaticRotation: true, RotationInterval: iv}); err != nil {
			t.Errorf("CreateKey %s: %v", iv, err)
		}
	}
	for _, iv := range []string{"6d", "366d", "8761h", "10079m", "604799s", "604800", "7D", "+7d", "-7d", "7 d", " 7d", "7dd",
		"1e3s", "7.5d", "99999999999d", "d", "0x10d"} {
		_, err := s.UpdateRotationPolicy(bg, &provider.UpdateRotationPolicyRequest{KeyId: id, EnableAutomaticRotation: true, RotationInterval: iv})
		wantParam(t, "UpdateRotationPolicy "+iv, err, "RotationInterval", "d, h, m or s", "7 to 365 days")
		_, err = s.CreateKey(bg, &provider.CreateKeyRequest{EnableAutomaticRotation: true, RotationInterval: iv})
		wantParam(t, "CreateKey "+iv, err, "RotationInterval", "d, h, m or s", "7 to 365 days")
	}
	// Required with rotation on; refused (not ignored) with it off.
	_, err := s.UpdateRotationPolicy(bg, &provider.UpdateRotationPolicyRequest{KeyId: id, EnableAutomaticRotation: true})
	wantParam(t, "rotation on, no interval", err, "RotationInterval", "required")
	_, err = s.UpdateRotationPolicy(bg, &provider.UpdateRotationPolicyRequest{KeyId: id, RotationInterval: "30d"})
	wantParam(t, "rotation off, an interval", err, "RotationInterval", "EnableAutomaticRotation")
	_, err = s.CreateKey(bg, &provider.CreateKeyRequest{RotationInterval: "30d"})
	wantParam(t, "CreateKey rotation off, an interval", err, "RotationInterval", "EnableAutomaticRotation")
}

// Alias names take letters, digits, _, - and /, as Alibaba's do: no ':'.
func TestAliasCharacters(t *testing.T) {
	s, _, _ := newService(t)
	id := createKey(t, s)
	for _, name := range []string{"alias/a:b", "alias/x:", "alias/a.b", "alias/a b"} {
		_, err := s.CreateAlias(bg, &provider.AliasRequest{AliasName: name, KeyId: id})
		wantParam(t, "CreateAlias "+name, err, "AliasName", "letters, digits, _ - and /")
		_, err = s.DescribeKey(bg, &provider.KeyIdRequest{KeyId: name})
		wantParam(t, "DescribeKey "+name, err, "KeyId", "letters, digits, _ - and /")
	}
	if _, err := s.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/Team_1-a/b", KeyId: id}); err != nil {
		t.Fatal(err)
	}
}

// An ARN naming another region or account is not one of our keys: it is
// Forbidden.KeyNotFound (an alias ARN: Forbidden.AliasNotFound) naming the
// region and account this service has, never resolved as if it were ours.
func TestForeignARNsAreRefused(t *testing.T) {
	s, _, _ := newService(t)
	id := createKey(t, s)
	if _, err := s.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/ours", KeyId: id}); err != nil {
		t.Fatal(err)
	}
	const region, account = "cn-hangzhou", "1234567890123456" // the defaults
	for _, ref := range []string{"acs:kms:" + region + ":" + account + ":key/" + id, "acs:kms:" + region + ":" + account + ":alias/ours"} {
		if d, err := s.DescribeKey(bg, &provider.KeyIdRequest{KeyId: ref}); err != nil || d.KeyMetadata.KeyId != id {
			t.Fatalf("our ARN %s: %v", ref, err)
		}
	}
	for _, c := range []struct{ ref, code string }{
		{"acs:kms:cn-shanghai:999:key/" + id, provider.CodeKeyNotFound},
		{"acs:kms:cn-shanghai:" + account + ":key/" + id, provider.CodeKeyNotFound},
		{"acs:kms:" + region + ":999:key/" + id, provider.CodeKeyNotFound},
		{"acs:kms:cn-shanghai:999:alias/ours", provider.CodeAliasNotFound},
	} {
		for name, call := range map[string]func() error{
			"DescribeKey": func() error { _, err := s.DescribeKey(bg, &provider.KeyIdRequest{KeyId: c.ref}); return err },
			"GenerateDataKey": func() error {
				_, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: c.ref})
				return err
			},
			"CreateAlias": func() error {
				_, err := s.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/theirs", KeyId: c.ref})
				return err
			},
			"ResolveKeyId": func() error { _, err := s.ResolveKeyId(bg, c.ref); return err },
		} {
			err := call()
			e := provider.AsError(err)
			if err == nil || e.Code != c.code || !strings.Contains(e.Message, "KeyId") ||
				!strings.Contains(e.Message, region) || !strings.Contains(e.Message, account) {
				t.Errorf("%s %s: %v; want %s naming KeyId, %s and %s", name, c.ref, err, c.code, region, account)
			}
		}
	}
}

// Sweep reports every list as a list, [] when there was nothing to do.
func TestSweepListsAreNeverNull(t *testing.T) {
	s, _, _ := newService(t)
	res, err := s.Sweep(bg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	if string(b) != `{"Deleted":[],"Rotated":[],"Repaired":[],"Missing":[],"Orphans":[]}` {
		t.Fatalf("Sweep with nothing to do: %s", b)
	}
}

// A PendingWindowInDays out of range says what is accepted.
func TestPendingWindowMessage(t *testing.T) {
	s, _, _ := newService(t)
	id := createKey(t, s)
	_, err := s.ScheduleKeyDeletion(bg, &provider.ScheduleKeyDeletionRequest{KeyId: id, PendingWindowInDays: 0})
	wantParam(t, "PendingWindowInDays 0", err, "PendingWindowInDays", "an integer from 7 to 366")
}
