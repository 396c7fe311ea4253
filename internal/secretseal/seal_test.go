package secretseal_test

import (
	"errors"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/internal/secretseal"
	"github.com/p11kms/p11kms/internal/softhsmtest"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

// A sealed secret opens with the token for its own id only; the sealing
// key is one per token, sensitive and never extractable.
func TestSealOpen(t *testing.T) {
	tok := softhsmtest.New(t)
	s, err := secretseal.New(t.Context(), tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal("LTAIone", []byte("the secret"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Open("LTAIone", sealed); err != nil || string(got) != "the secret" {
		t.Fatalf("Open: %q %v", got, err)
	}
	if _, err := s.Open("LTAItwo", sealed); !errors.Is(err, secretseal.ErrNotSealedHere) {
		t.Fatalf("Open under another id: %v", err)
	}
	if _, err := s.Open("LTAIone", "not base64!"); err == nil {
		t.Fatal("Open of garbage succeeded")
	}
	again, err := secretseal.New(t.Context(), tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Open("LTAIone", sealed); err != nil || string(got) != "the secret" {
		t.Fatalf("Open with the key found again: %q %v", got, err)
	}
	key, err := tok.Token.AESKey(t.Context(), secretseal.KeyLabel)
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[uint]bool{pkcs11.CKA_EXTRACTABLE: false, pkcs11.CKA_SENSITIVE: true} {
		if got, err := tok.Token.BoolAttribute(t.Context(), key, typ); err != nil || got != want {
			t.Errorf("attribute %#x: %v %v, want %v", typ, got, err, want)
		}
	}
}

// A secret sealed for one purpose opens for that purpose only: an XKS
// SigV4 secret cannot be moved into the access-keys file (or back) under an
// id both accept, and an empty or NUL-holding purpose is refused.
func TestPurposesAreApart(t *testing.T) {
	tok := softhsmtest.New(t)
	keys, err := secretseal.New(t.Context(), tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	xks, err := keys.WithPurpose("xks")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := keys.WithPurpose("other")
	const id = "AKIA234567ABCDEF2345"
	forXKS, err := xks.Seal(id, []byte("xks secret"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := xks.Open(id, forXKS); err != nil || string(got) != "xks secret" {
		t.Fatalf("Open for xks: %q %v", got, err)
	}
	for name, s := range map[string]*secretseal.Sealer{"access keys": keys, "other": other} {
		if _, err := s.Open(id, forXKS); !errors.Is(err, secretseal.ErrNotSealedHere) {
			t.Errorf("an xks secret opened for %s: %v", name, err)
		}
	}
	forKeys, _ := keys.Seal(id, []byte("access key secret"))
	if _, err := xks.Open(id, forKeys); !errors.Is(err, secretseal.ErrNotSealedHere) {
		t.Errorf("an access-key secret opened for xks: %v", err)
	}
	for _, bad := range []string{"", "x\x00y"} {
		if _, err := keys.WithPurpose(bad); err == nil {
			t.Errorf("WithPurpose(%q) accepted", bad)
		}
	}
}
