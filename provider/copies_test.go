package provider_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/p11kms/p11kms/provider"
)

// Disabling a key destroys its session copies while other requests may be
// using them. SoftHSM2 answers a C_EncryptInit/C_DecryptInit that meets the
// destruction with any of CKR_OBJECT_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT,
// CKR_KEY_FUNCTION_NOT_PERMITTED or CKR_MECHANISM_INVALID. A request that
// passed the state check before the disable must then finish with the token
// object, not fail: each answer is a success or Rejected.Disabled, never
// InternalFailure (the soak's one unexplained InternalFailure, RELIABILITY.md
// §9) and never InvalidCiphertext for a good blob.
func TestKeyUseRacesCopyDestruction(t *testing.T) {
	s, _, _ := newService(t)
	id := createKey(t, s)
	g, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	var mu sync.Mutex
	answers := map[string]int{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				var err error
				if w%2 == 0 {
					_, err = s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
				} else {
					_, err = s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: g.CiphertextBlob})
				}
				code := provider.ErrorCode(err)
				if err == nil {
					code = "ok"
				} else if code != provider.CodeDisabled {
					t.Errorf("%v", err)
				}
				mu.Lock()
				answers[code]++
				mu.Unlock()
			}
		}()
	}
	for range 150 {
		if _, err := s.DisableKey(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EnableKey(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	t.Logf("answers: %v", answers)
	if answers["ok"] == 0 {
		t.Fatal("no request succeeded: the race was not exercised")
	}
}
