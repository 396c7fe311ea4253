package hsm_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/hsmtest"
	"github.com/p11kms/p11kms/internal/softhsmtest"
)

// Close waits for the calls in flight — here a C_GenerateRandom held in the
// module for 300 ms — before it unloads the module; calls that start after
// Close began fail with ErrClosed. Before, Close unloaded the module under
// such a call.
func TestCloseWaitsForCallsInFlight(t *testing.T) {
	tok, faults := hsmtest.Open(t, softhsmtest.Create(t).Config)
	key, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Label: "k", Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	const hold = 300 * time.Millisecond
	faults.Add(hsmtest.Fault{Call: "C_GenerateRandom", Delay: hold, Times: 1})
	slow := make(chan error, 1)
	// The held call cannot end before begun+hold, so neither can a Close
	// that waits for it: a lower bound that a slow machine only widens.
	begun := time.Now()
	go func() {
		_, err := tok.Random(bg, 16)
		slow <- err
	}()
	for faults.Hits() == 0 { // the slow call is inside the module
		time.Sleep(time.Millisecond)
	}
	// Busy callers beside it, on the pool and on the keepers.
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			iv := make([]byte, hsm.GCMIVSize)
			for {
				if _, err := tok.EncryptGCM(bg, key, iv, []byte("data"), []byte("aad")); err != nil {
					errs <- err
					return
				}
				c, err := tok.CopyToSession(bg, key)
				if err != nil {
					errs <- err
					return
				}
				_ = tok.DestroySessionObject(bg, c)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := tok.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closedAfter := time.Since(begun)
	if err := <-slow; err != nil {
		t.Fatalf("the call in flight at Close failed: %v", err)
	}
	if closedAfter < hold {
		t.Fatalf("Close returned %s after the held call began, before its hold (%s) ended", closedAfter, hold)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, hsm.ErrClosed) {
			t.Errorf("a caller racing Close got %v, want ErrClosed", err)
		}
	}
	if _, err := tok.Random(bg, 4); !errors.Is(err, hsm.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// A panic inside a token call (a bug around a module call) must not take
// the session's place in the pool with it: after more panics than the pool
// has sessions, calls still get one, and none is counted as in use.
func TestPanicInCallFreesItsSession(t *testing.T) {
	created := softhsmtest.Create(t)
	tok, err := hsm.Open(bg, created.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	for i := range tok.PoolSize() + 2 {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatalf("call %d did not panic", i)
				}
			}()
			_, _ = hsm.Do(bg, tok, func(*hsm.Session) (int, error) { panic("a bug") })
		}()
	}
	if n := tok.SessionsInUse(); n != 0 {
		t.Fatalf("%d sessions still in use after the panics", n)
	}
	if _, err := tok.Random(bg, 8); err != nil {
		t.Fatalf("a call after the panics: %v", err)
	}
}
