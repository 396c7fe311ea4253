package provider_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/hsmtest"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// Faults injected into real SoftHSM2 calls: each operation either succeeds
// by retrying once (a lost session or login) or fails with InternalFailure,
// leaves no token object behind, and the next request succeeds.
func TestFaultInjection(t *testing.T) {
	tok, faults := hsmtest.Open(t, softhsmtest.Create(t).Config)
	s := provider.New(tok, provider.Options{CacheTTL: -1})
	id := createKey(t, s)
	other := createKey(t, s)
	if _, err := s.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/f", KeyId: id}); err != nil {
		t.Fatal(err)
	}
	g, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	toggled, doomed := createKey(t, s), createKey(t, s)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := wrap.MarshalPublicKeyDER(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tokenObjects := func(t *testing.T) int {
		hs, err := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)})
		if err != nil {
			t.Fatal(err)
		}
		return len(hs)
	}
	ops := []struct {
		name  string
		calls []string
		run   func() error
	}{
		{"GenerateDataKey", []string{"C_GenerateRandom", "C_Encrypt", "C_FindObjects"}, func() error {
			_, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: "alias/f"})
			return err
		}},
		{"Decrypt", []string{"C_Decrypt", "C_DecryptInit"}, func() error {
			_, err := s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: g.CiphertextBlob})
			return err
		}},
		{"CreateKey", []string{"C_GenerateKey", "C_CreateObject"}, func() error {
			_, err := s.CreateKey(bg, &provider.CreateKeyRequest{})
			return err
		}},
		{"CreateKeyVersion", []string{"C_GenerateKey", "C_CreateObject"}, func() error {
			_, err := s.CreateKeyVersion(bg, &provider.KeyIdRequest{KeyId: id})
			return err
		}},
		{"GenerateAndExportDataKey", []string{"C_GenerateRandom", "C_Encrypt"}, func() error {
			_, err := s.GenerateAndExportDataKey(bg, &provider.GenerateAndExportDataKeyRequest{KeyId: id,
				PublicKeyBlob: base64.StdEncoding.EncodeToString(der), WrappingKeySpec: "RSA_2048", WrappingAlgorithm: "RSAES_OAEP_SHA_256"})
			return err
		}},
		{"Encrypt", []string{"C_EncryptInit", "C_Encrypt"}, func() error {
			_, err := s.Encrypt(bg, &provider.EncryptRequest{KeyId: id, Plaintext: "c2VjcmV0"})
			return err
		}},
		{"ReEncrypt", []string{"C_Decrypt", "C_Encrypt"}, func() error {
			_, err := s.ReEncrypt(bg, &provider.ReEncryptRequest{CiphertextBlob: g.CiphertextBlob, DestinationKeyId: other})
			return err
		}},
		{"DisableKey", []string{"C_CreateObject", "C_DestroyObject"}, func() error {
			_, err := s.DisableKey(bg, &provider.KeyIdRequest{KeyId: toggled})
			if err == nil {
				_, err = s.EnableKey(bg, &provider.KeyIdRequest{KeyId: toggled})
			}
			return err
		}},
		{"ScheduleKeyDeletion", []string{"C_CreateObject", "C_DestroyObject"}, func() error {
			_, err := s.ScheduleKeyDeletion(bg, &provider.ScheduleKeyDeletionRequest{KeyId: doomed, PendingWindowInDays: 7})
			if err == nil {
				_, err = s.CancelKeyDeletion(bg, &provider.KeyIdRequest{KeyId: doomed})
			}
			return err
		}},
		{"UpdateAlias", []string{"C_CreateObject", "C_GetAttributeValue"}, func() error {
			_, err := s.UpdateAlias(bg, &provider.AliasRequest{AliasName: "alias/f", KeyId: other})
			if err == nil {
				_, err = s.UpdateAlias(bg, &provider.AliasRequest{AliasName: "alias/f", KeyId: id})
			}
			return err
		}},
	}
	injected := 0
	for _, op := range ops {
		for _, call := range op.calls {
			for codeName, code := range hsmtest.Codes {
				t.Run(fmt.Sprintf("%s/%s/%s", op.name, call, codeName), func(t *testing.T) {
					before := tokenObjects(t)
					faults.Clear()
					faults.Add(hsmtest.Fault{Call: call, Code: code})
					hits := faults.Hits()
					err := op.run()
					faults.Clear()
					fired := faults.Hits() > hits
					if fired {
						injected++
					}
					retried := hsmtest.Retried(code)
					switch {
					case !fired:
						if err != nil {
							t.Fatalf("no fault fired, yet: %v", err)
						}
					case retried:
						if err != nil {
							t.Fatalf("a lost session/login must be retried once: %v", err)
						}
					case err == nil && call == "C_DestroyObject":
						// Destroying the superseded generation of a metadata
						// object failed after the new one was written: the change
						// is committed, and the next write of the object (the
						// second half of the operation here) removes the old one.
						if after := tokenObjects(t); after != before {
							t.Fatalf("%d token objects after %s, were %d", after, op.name, before)
						}
					case err == nil && (call == "C_GetAttributeValue" || call == "C_FindObjects"):
						// Data-object reads retry an unreadable object (SoftHSM's
						// concurrent-write quirks): a single fault there is survived.
					default:
						if provider.ErrorCode(err) != provider.CodeInternalFailure {
							t.Fatalf("got %v, want InternalFailure", err)
						}
						if after := tokenObjects(t); after != before && op.name != "CreateKey" && op.name != "CreateKeyVersion" {
							t.Fatalf("%d token objects after a failed %s, were %d", after, op.name, before)
						} else if after > before && err != nil {
							t.Fatalf("a failed %s left %d objects behind", op.name, after-before)
						}
					}
					if out, _, _ := s.PlaintextPoolState(); out != 0 {
						t.Fatalf("%d plaintext buffers not handed back after the fault", out)
					}
					// The pool recovers: the next request succeeds.
					if err := op.run(); err != nil {
						t.Fatalf("next request after the fault: %v", err)
					}
				})
			}
		}
	}
	t.Logf("%d faults fired (operation x call x code); every one survived", injected)
	if injected < 40 {
		t.Fatalf("only %d faults fired", injected)
	}
	// Added latency slows an operation but it succeeds.
	faults.Add(hsmtest.Fault{Call: "C_Encrypt", Delay: 30 * time.Millisecond})
	start := time.Now()
	if _, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id}); err != nil || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("latency fault: %v after %s", err, time.Since(start))
	}
	faults.Clear()
	// Every blob made before still decrypts.
	if _, err := s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: g.CiphertextBlob}); err != nil {
		t.Fatal(err)
	}
}

// A request that is cancelled, or times out waiting for a session, says
// nothing about the cached handles: it must not make the next requests
// search the token. And concurrent misses share one search each for the
// version key and the metadata (a search is linear in the token's objects).
func TestCachesSurviveCancelledRequestsAndShareSearches(t *testing.T) {
	created := softhsmtest.Create(t)
	var mu sync.Mutex
	calls := map[string]int{}
	cfg := created.Config
	cfg.MaxSessions = 2
	cfg.Wrap = func(m hsm.Module) hsm.Module {
		return hsm.Instrument(m, func(c string, _ time.Duration) { mu.Lock(); calls[c]++; mu.Unlock() })
	}
	tok, err := hsm.Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	count := func() (finds, copies int) {
		mu.Lock()
		defer mu.Unlock()
		f, c := calls["C_FindObjectsInit"], calls["C_CopyObject"]
		clear(calls)
		return f, c
	}
	s := provider.New(tok, provider.Options{})
	id := createKey(t, s)
	g, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	dec := &provider.DecryptRequest{CiphertextBlob: g.CiphertextBlob}
	if _, err := s.Decrypt(bg, dec); err != nil {
		t.Fatal(err)
	}
	parallel := func(s *provider.Service) {
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Decrypt(bg, dec); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	count()
	// Hold every pool session, so requests give up waiting for one.
	release := make(chan struct{})
	var held sync.WaitGroup
	for range 2 {
		held.Add(1)
		go hsm.Do(bg, tok, func(*hsm.Session) (int, error) { held.Done(); <-release; return 0, nil })
	}
	held.Wait()
	for _, d := range []time.Duration{0, 20 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(bg, d)
		if _, err := s.Decrypt(ctx, dec); err == nil {
			t.Fatal("a Decrypt without a session succeeded")
		}
		if _, err := s.GenerateDataKey(ctx, &provider.GenerateDataKeyRequest{KeyId: id}); err == nil {
			t.Fatal("a GenerateDataKey without a session succeeded")
		}
		cancel()
	}
	close(release)
	parallel(s)
	if finds, copies := count(); finds != 0 || copies != 0 {
		t.Fatalf("after cancelled requests, 16 Decrypts made %d searches and %d key copies; want none", finds, copies)
	}

	// A cold Service: 16 concurrent Decrypts of one blob.
	cold := provider.New(tok, provider.Options{})
	parallel(cold)
	if finds, _ := count(); finds != 2 {
		t.Fatalf("16 concurrent cold Decrypts made %d searches; want 2 (the version key, the metadata)", finds)
	}
}
