package hsm_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
)

// A session copy of a token key is made (C_CopyObject) while other
// goroutines search for the token key by ID: no search may find the copy
// as well (SoftHSM2 gives a copy its source's CKA_TOKEN until the template
// is applied, see Token.excludingSearches).
func TestSessionCopiesNeverMatchTokenSearches(t *testing.T) {
	tok := softhsmtest.New(t)
	id := []byte("search-race-key1")
	h, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{ID: id, Label: "search-race", Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	const copies, searchers = 400, 3
	var done atomic.Bool
	var searches atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < searchers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				got, err := tok.FindSecretKeyByID(bg, id)
				searches.Add(1)
				if err != nil || got != h {
					t.Errorf("search by ID during copies: %v, %v (want handle %v)", got, err, h)
					return
				}
			}
		}()
	}
	for i := 0; i < copies && !t.Failed(); i++ {
		c, err := tok.CopyToSession(bg, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := tok.DestroySessionObject(bg, c); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	t.Logf("%d copies, %d searches", copies, searches.Load())
}

// Writers of one process race to create one data object while readers
// read it: exactly one creation wins, and no reader ever sees a value
// other than the winner's (a losing creation is refused before it exists).
func TestLosingCreationIsNeverVisible(t *testing.T) {
	tok := softhsmtest.New(t)
	const app, rounds, writers = "p11kms-create-race", 15, 4
	for r := 0; r < rounds; r++ {
		label := fmt.Sprint("name", r)
		var wins atomic.Int32
		var winner atomic.Value
		seen := make(chan string, 1000)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var readers sync.WaitGroup
		for i := 0; i < 2; i++ {
			readers.Add(1)
			go func() {
				defer readers.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if o, err := tok.FindData(bg, app, label); err == nil {
						select {
						case seen <- string(o.Value):
						default:
						}
					}
				}
			}()
		}
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				v := fmt.Sprint("writer", w)
				_, err := tok.CreateData(bg, app, label, []byte(v))
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(v)
				case !errors.Is(err, hsm.ErrExists) || !errors.Is(err, hsm.ErrNotWritten):
					t.Errorf("writer %d: %v", w, err)
				}
			}(w)
		}
		wg.Wait()
		close(stop)
		readers.Wait()
		close(seen)
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d creations won, want 1", r, wins.Load())
		}
		for v := range seen {
			if v != winner.Load() {
				t.Fatalf("round %d: a reader saw %q, but %q won", r, v, winner.Load())
			}
		}
		hs, err := tok.FindObjects(bg, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
			pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, app),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
		if err != nil || len(hs) != 1 {
			t.Fatalf("round %d: %d objects named %s (%v), want 1", r, len(hs), label, err)
		}
	}
}

// CreateFreshData skips the search before creating, not the check after:
// a second creation of one label is still refused and leaves nothing.
func TestCreateFreshDataStillRefusesARival(t *testing.T) {
	tok := softhsmtest.New(t)
	const app = "p11kms-fresh"
	if _, err := tok.CreateFreshData(bg, app, "k1", []byte("first")); err != nil {
		t.Fatal(err)
	}
	_, err := tok.CreateFreshData(bg, app, "k1", []byte("second"))
	if !errors.Is(err, hsm.ErrExists) || !errors.Is(err, hsm.ErrNotWritten) {
		t.Fatalf("second creation: %v, want ErrExists and ErrNotWritten", err)
	}
	o, err := tok.FindData(bg, app, "k1")
	if err != nil || string(o.Value) != "first" {
		t.Fatalf("after the refused creation: %v %v", o, err)
	}
}
