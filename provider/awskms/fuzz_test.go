package awskms

import (
	"slices"
	"testing"
)

// FuzzDecode: every operation's strict JSON decoding and checks (key
// references, ARNs, aliases, tags, paging, Recipient) never panic on any
// body, and a request they accept names a key, if it names one, in the
// core's form (no ARN left).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/k1","Plaintext":"aGk="}`,
		`{"KeyId":"arn:aws:kms:us-east-1:111122223333:alias/a","KeySpec":"AES_256"}`,
		`{"AliasName":"alias/aws/x","TargetKeyId":"k"}`,
		`{"KeyId":"k","Tags":[{"TagKey":"a","TagValue":"b"},{"TagKey":"a","TagValue":"c"}]}`,
		`{"Limit":5,"Marker":"p11kms-3"}`,
		`{"NumberOfBytes":16,"Recipient":{"AttestationDocument":"2IREoEA="}}`,
		`{"CiphertextBlob":"AA==","KeyId":"arn:aws:kms:x"}`, `[]`, `{"KeyId":1}`, ``,
	} {
		f.Add(s)
	}
	names := Operations()
	r := refs{region: "us-east-1", account: "111122223333"}
	f.Fuzz(func(t *testing.T, body string) {
		for _, name := range names {
			req, err := ops[name].prepare([]byte(body), r)
			if err != nil {
				continue
			}
			if o := ops[name]; o.action.Touches != nil {
				for _, tch := range o.action.Touches(req) {
					if tch.Key != nil && len(*tch.Key) > 4 && (*tch.Key)[:4] == "arn:" {
						t.Fatalf("%s accepted %q and left the ARN %q", name, body, *tch.Key)
					}
				}
			}
		}
		if !slices.IsSorted(names) {
			t.Fatal("Operations not sorted")
		}
	})
}

// TestEveryOperationHasASummary: the CLI's help comes from the table.
func TestEveryOperationHasASummary(t *testing.T) {
	for _, name := range Operations() {
		if Summary(name) == "" || ops[name].action.Name != name {
			t.Errorf("%s: summary %q, row name %q", name, Summary(name), ops[name].action.Name)
		}
	}
	if len(Operations()) != 25 {
		t.Fatalf("%d operations served, want 25", len(Operations()))
	}
}
