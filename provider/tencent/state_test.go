package tencent_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	kms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/hsmtest"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/tencent"
	"github.com/p11kms/p11kms/provider/wire"
)

// stateEnv is a Tencent handler on a token whose module calls can be
// faulted, and the official SDK client against it.
type stateEnv struct {
	kms    *provider.Service
	faults *hsmtest.Faults
	tok    *softhsmtest.Token
	client *kms.Client
}

func newStateEnv(t *testing.T, opt provider.Options) *stateEnv {
	t.Helper()
	st := softhsmtest.Create(t)
	tok, faults := hsmtest.Open(t, st.Config)
	st.Token = tok
	s := &stateEnv{kms: provider.New(tok, opt), faults: faults, tok: st}
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: secretID, AccessKeySecret: secretKey,
		Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}})
	srv := httptest.NewServer(tencent.New(tencent.Config{KMS: s.kms, Keys: keys}))
	t.Cleanup(srv.Close)
	s.client = (&env{srv: srv}).client(t, variants[0], secretID, secretKey)
	return s
}

// disabledKey is a new key, disabled.
func (s *stateEnv) disabledKey(t *testing.T) string {
	t.Helper()
	bg := context.Background()
	k, err := s.kms.CreateKey(bg, &provider.CreateKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	id := k.KeyMetadata.KeyId
	if _, err := s.kms.DisableKey(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	return id
}

// pendingKey is a new key, disabled and scheduled for deletion.
func (s *stateEnv) pendingKey(t *testing.T) string {
	t.Helper()
	id := s.disabledKey(t)
	if _, err := s.kms.ScheduleKeyDeletion(context.Background(), &provider.ScheduleKeyDeletionRequest{KeyId: id, PendingWindowInDays: 7}); err != nil {
		t.Fatal(err)
	}
	return id
}

func (s *stateEnv) state(t *testing.T, id string) string {
	t.Helper()
	d, err := s.kms.DescribeKey(context.Background(), &provider.KeyIdRequest{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	return d.KeyMetadata.KeyState
}

// CancelKeyDeletion leaves the key Disabled in the one metadata write that
// cancels the deletion: a token that fails the request's second write
// cannot leave the key Enabled behind an error. Before, the deletion was
// cancelled (Enabled) and then a separate DisableKey wrote again; when that
// write failed the client got a bare wrapped error (InternalError) while
// the key was left Enabled.
func TestCancelKeyDeletionIsOneWrite(t *testing.T) {
	s := newStateEnv(t, provider.Options{})
	id := s.pendingKey(t)
	s.faults.Add(hsmtest.Fault{Call: "C_CreateObject", Nth: 2, Code: pkcs11.CKR_DEVICE_ERROR})
	req := kms.NewCancelKeyDeletionRequest()
	req.KeyId = &id
	resp, err := s.client.CancelKeyDeletion(req)
	s.faults.Clear()
	if err != nil || resp.Response.KeyId == nil || *resp.Response.KeyId != id {
		t.Fatalf("CancelKeyDeletion: %v", err)
	}
	if got := s.state(t, id); got != provider.StateDisabled {
		t.Fatalf("after CancelKeyDeletion the key is %s, want Disabled", got)
	}
	// A failure of the one write is the API's InternalError, and the key
	// is still pending deletion: nothing half-done.
	id = s.pendingKey(t)
	s.faults.Add(hsmtest.Fault{Call: "C_CreateObject", Code: pkcs11.CKR_DEVICE_ERROR, Times: 10})
	req.KeyId = &id
	_, err = s.client.CancelKeyDeletion(req)
	s.faults.Clear()
	wantSDKCode(t, "CancelKeyDeletion with a failing token", err, "InternalError")
	if got := s.state(t, id); got != provider.StatePendingDeletion {
		t.Fatalf("after a failed CancelKeyDeletion the key is %s, want PendingDeletion", got)
	}
}

// ScheduleKeyDeletion refuses an Enabled key by the state the token holds
// when the deletion is written, not by an earlier read: a key another
// process enabled a moment ago (this process's cache still says Disabled)
// is refused CmkShouldBeDisabled and stays Enabled. Before, the state was
// read first (from the cache) and the deletion written after, so the
// Enabled key was scheduled.
func TestScheduleKeyDeletionChecksTheStateItChanges(t *testing.T) {
	s := newStateEnv(t, provider.Options{CacheTTL: time.Hour})
	other := provider.New(s.tok.Token, provider.Options{}) // another process on the token
	bg := context.Background()
	id := s.disabledKey(t)
	if got := s.state(t, id); got != provider.StateDisabled { // cached Disabled
		t.Fatal(got)
	}
	if _, err := other.EnableKey(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	req := kms.NewScheduleKeyDeletionRequest()
	req.KeyId, req.PendingWindowInDays = &id, new(uint64(7))
	_, err := s.client.ScheduleKeyDeletion(req)
	wantSDKCode(t, "ScheduleKeyDeletion of a key enabled by another process", err, "ResourceUnavailable.CmkShouldBeDisabled")
	d, err := other.DescribeKey(bg, &provider.KeyIdRequest{KeyId: id})
	if err != nil || d.KeyMetadata.KeyState != provider.StateEnabled {
		t.Fatalf("the key is %v (%v), want Enabled", d, err)
	}
	// Disabled, it is scheduled (signed in the next second: a TC3
	// signature performs a write once, refused or not).
	if _, err := other.DisableKey(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	nextSecond()
	resp, err := s.client.ScheduleKeyDeletion(req)
	if err != nil || resp.Response.DeletionDate == nil || *resp.Response.DeletionDate == 0 {
		t.Fatalf("ScheduleKeyDeletion of a Disabled key: %v", err)
	}
}

// ReEncrypt without DestinationKeyId re-encrypts under the blob's own key,
// which the pipeline authorized (as the blob's key) before the action
// derives anything from the blob: a SecretId allowed ReEncrypt on key A
// only is refused a blob of key B, with or without a destination, and a
// destination outside its policy; a blob of A stays under A.
func TestReEncryptAuthorizesTheBlobKeyBeforeUsingIt(t *testing.T) {
	s := newStateEnv(t, provider.Options{})
	bg := context.Background()
	newKey := func() string {
		k, err := s.kms.CreateKey(bg, &provider.CreateKeyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return k.KeyMetadata.KeyId
	}
	a, b := newKey(), newKey()
	blobOf := func(id string) string {
		r, err := s.kms.Encrypt(bg, &provider.EncryptRequest{KeyId: id, Plaintext: "aGVsbG8="})
		if err != nil {
			t.Fatal(err)
		}
		return r.CiphertextBlob
	}
	const onlyA = "AKIDReEncryptOnlyKeyA000000000000004"
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: onlyA, AccessKeySecret: otherSecret,
		Policy: wire.Policy{Actions: []string{"ReEncrypt"}, Keys: []string{a}}})
	srv := httptest.NewServer(tencent.New(tencent.Config{KMS: s.kms, Keys: keys}))
	defer srv.Close()
	c := (&env{srv: srv}).client(t, variants[0], onlyA, otherSecret)
	reEncrypt := func(blob, dest string) (*kms.ReEncryptResponse, error) {
		req := kms.NewReEncryptRequest()
		req.CiphertextBlob = &blob
		if dest != "" {
			req.DestinationKeyId = &dest
		}
		return c.ReEncrypt(req)
	}
	for _, tc := range []struct{ what, blob, dest string }{
		{"a blob of B, no destination", blobOf(b), ""},
		{"a blob of B to A", blobOf(b), a},
		{"a blob of A to B", blobOf(a), b},
	} {
		_, err := reEncrypt(tc.blob, tc.dest)
		wantSDKCode(t, tc.what, err, "UnauthorizedOperation")
	}
	r, err := reEncrypt(blobOf(a), "")
	if err != nil || *r.Response.KeyId != a || *r.Response.SourceKeyId != a {
		t.Fatalf("a blob of A, no destination: %v", err)
	}
}

// The asymmetric and key-import requests' required parameters are
// required: a request without one is MissingParameter naming it, before
// the pipeline resolves a key. Before, their tags were tc:"required",
// which the decoder does not read, so the request reached the core with
// an empty value (and got the core's answer for it).
func TestAsymmetricAndImportParametersAreRequired(t *testing.T) {
	e := newEnv(t)
	cc := common.NewCommonClient(common.NewCredential(secretID, secretKey), region, e.profile(variants[0]))
	id := "00000000-0000-4000-8000-000000000000"
	for action, params := range map[string]map[string]any{
		"SignByAsymmetricKey":    {"KeyId": id, "Algorithm": "ECC"},
		"VerifyByAsymmetricKey":  {"KeyId": id, "Message": "aGk="},
		"AsymmetricRsaDecrypt":   {"KeyId": id, "Algorithm": "RSAES_OAEP_SHA_256"},
		"AsymmetricSm2Decrypt":   {"Ciphertext": "aGk="},
		"GetParametersForImport": {"KeyId": id, "WrappingAlgorithm": "RSAES_OAEP_SHA_256"},
		"ImportKeyMaterial":      {"KeyId": id, "EncryptedKeyMaterial": "aGk="},
	} {
		req := tchttp.NewCommonRequest("kms", tencent.APIVersion, action)
		if err := req.SetActionParameters(params); err != nil {
			t.Fatal(err)
		}
		err := cc.Send(req, tchttp.NewCommonResponse())
		wantSDKCode(t, action, err, "MissingParameter")
	}
}
