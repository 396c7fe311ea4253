package hsm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/pkcs11"
)

// Token is one open, logged-in PKCS#11 token. It is safe for concurrent use.
type Token struct {
	lib    *Library
	api    Module
	slot   uint
	info   pkcs11.TokenInfo
	pin    string
	pool   *pool
	locks  *tokenLocks // shared by every Token of the same token in this process
	closed atomic.Bool
	calls  atomic.Int64 // module calls in flight, see enter

	keepers    []*keeper // see keeper
	nextKeeper atomic.Uint32

	probeMu sync.Mutex
	probes  map[string]bool // mechanism capability probes, by description

	derivePrivate atomic.Bool // the token refused a public derived secret (DeriveECDH1)

	loggedIn     atomic.Bool   // the first login is done
	sessionEpoch atomic.Uint64 // see SessionEpoch
}

// OpenURI opens the token a PKCS#11 URI names (see [ParseURI]).
func OpenURI(ctx context.Context, uri string) (*Token, error) {
	cfg, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	return Open(ctx, cfg)
}

// Open loads the module (or shares it), finds the token, opens the pool and
// logs in. A wrong PIN fails here with an error that says so and wraps
// CKR_PIN_INCORRECT.
func Open(ctx context.Context, cfg Config) (*Token, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pin, err := cfg.userPIN()
	if err != nil {
		return nil, err
	}
	lib, err := LoadLibrary(cfg.ModulePath)
	if err != nil {
		return nil, softHSMLoadHint(cfg.ModulePath, err)
	}
	t, err := openOn(ctx, lib, cfg, pin)
	if err != nil {
		lib.Close()
		return nil, err
	}
	return t, nil
}

func openOn(ctx context.Context, lib *Library, cfg Config, pin string) (*Token, error) {
	slots, err := lib.Slots()
	if err != nil {
		return nil, err
	}
	found, err := cfg.selectSlot(lib, slots)
	if err != nil {
		return nil, err
	}
	size := cfg.MaxSessions
	if size == 0 {
		size = DefaultMaxSessions
	}
	if m := found.Token.MaxRwSessionCount; m != pkcs11.CK_EFFECTIVELY_INFINITE && m != pkcs11.CK_UNAVAILABLE_INFORMATION && int(m) > 0 && int(m) < size {
		size = int(m)
	}
	wait := cfg.PoolWait
	if wait == 0 {
		wait = DefaultPoolWait
	}
	var api Module = lib.ctx
	if cfg.Wrap != nil {
		api = cfg.Wrap(api)
	}
	t := &Token{lib: lib, api: api, slot: found.ID, info: found.Token, pin: pin, probes: map[string]bool{},
		locks: locksFor(lib.path, trimLabel(found.Token.SerialNumber))}
	t.pool = newPool(t, size, wait)
	// The first keeper session, opened and logged in now so that a wrong
	// PIN fails Open, stays open for the Token's life: SoftHSM forgets every
	// object handle of a slot (and the login) when the application's last
	// session on it closes, and the pool may close sessions at any time.
	t.keepers = make([]*keeper, min(size, maxKeepers))
	for i := range t.keepers {
		t.keepers[i] = &keeper{}
	}
	first, err := t.openSession()
	if err != nil {
		return nil, err
	}
	t.keepers[0].s = first
	return t, nil
}

// openSession opens a read/write session and logs the user in. Login state is
// shared by all sessions of the process, so CKR_USER_ALREADY_LOGGED_IN is fine.
func (t *Token) openSession() (*Session, error) {
	h, err := t.api.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, ckr("C_OpenSession", err)
	}
	err = t.api.Login(h, pkcs11.CKU_USER, t.pin)
	if err == nil || IsCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		if t.loggedIn.Swap(true) && err == nil {
			// A login after the first that the module needed: it had
			// forgotten the login, so every session of the application
			// was closed meanwhile (the keepers' too).
			t.sessionEpoch.Add(1)
		}
	}
	if err != nil && !IsCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		_ = t.api.CloseSession(h)
		if IsCode(err, pkcs11.CKR_PIN_INCORRECT) {
			return nil, fmt.Errorf("hsm: login to token %q failed: wrong user PIN: %w", t.Label(), ckr("C_Login", err))
		}
		if IsCode(err, pkcs11.CKR_PIN_LOCKED) {
			return nil, fmt.Errorf("hsm: login to token %q failed: the user PIN is locked: %w", t.Label(), ckr("C_Login", err))
		}
		return nil, ckr("C_Login", err)
	}
	return &Session{tok: t, handle: h}, nil
}

// closeWait bounds how long Close waits for calls in flight.
const closeWait = 30 * time.Second

// Close waits for the calls in flight to finish (new ones fail with
// ErrClosed at once), closes the sessions and releases the module. If calls
// are still in the module after 30 s, the module stays loaded — unloading
// it under them would crash the process — and Close says so.
func (t *Token) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	if n := t.waitForCalls(closeWait); n > 0 {
		return fmt.Errorf("hsm: closing token %q: %d calls still in the module after %s; the module stays loaded", t.Label(), n, closeWait)
	}
	t.pool.closeIdle()
	for _, k := range t.keepers {
		k.mu.Lock()
		if k.s != nil {
			_ = t.api.CloseSession(k.s.handle)
			k.s = nil
		}
		k.mu.Unlock()
	}
	return t.lib.Close()
}

// enter counts a use of the module that is about to start; it fails with
// ErrClosed once Close has begun. Every entry point that calls the module
// (Do, onKeeper, the re-index in lockObjects, Mechanisms) brackets its
// calls with enter and leave, so Close can wait for them. The count is
// raised before closed is read and Close sets closed before it reads the
// count: a use that saw the Token open is always waited for.
func (t *Token) enter() error {
	t.calls.Add(1)
	if t.closed.Load() {
		t.calls.Add(-1)
		return ErrClosed
	}
	return nil
}

// leave ends a use begun by a successful enter.
func (t *Token) leave() { t.calls.Add(-1) }

// waitForCalls waits until no use of the module is in flight or max has
// passed, and returns how many are left.
func (t *Token) waitForCalls(max time.Duration) int64 {
	deadline := time.Now().Add(max)
	pause := 50 * time.Microsecond
	for {
		n := t.calls.Load()
		if n <= 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// Label returns the token label.
func (t *Token) Label() string { return trimLabel(t.info.Label) }

// Serial returns the token serial number.
func (t *Token) Serial() string { return trimLabel(t.info.SerialNumber) }

// SlotID returns the slot the token is in.
func (t *Token) SlotID() uint { return t.slot }

// ModulePath returns the PKCS#11 module path.
func (t *Token) ModulePath() string { return t.lib.path }

// Info returns the token information as read at Open.
func (t *Token) Info() pkcs11.TokenInfo { return t.info }

// SessionEpoch changes whenever session objects made before may be gone:
// a session of this Token turned out broken (closed by the module, the
// token removed) or the login had been lost, which closes every session of
// the application. While it keeps the value read before a session object
// was made, that object exists (unless its maker destroyed it) and its
// handle names it: a module reuses a handle only for an object made after
// the loss, which no session of this Token can make before noticing it.
func (t *Token) SessionEpoch() uint64 { return t.sessionEpoch.Load() }

// SessionsInUse returns how many sessions are borrowed right now.
func (t *Token) SessionsInUse() int { return int(t.pool.inUse.Load()) }

// PoolSize returns the bound on open sessions.
func (t *Token) PoolSize() int { return cap(t.pool.sem) }

// Mechanisms lists the mechanisms the token offers.
func (t *Token) Mechanisms() ([]uint, error) {
	if err := t.enter(); err != nil {
		return nil, err
	}
	defer t.leave()
	ms, err := t.api.GetMechanismList(t.slot)
	if err != nil {
		return nil, ckr("C_GetMechanismList", err)
	}
	out := make([]uint, len(ms))
	for i, m := range ms {
		out[i] = m.Mechanism
	}
	return out, nil
}

// Ping checks that the token answers and the session is logged in.
func (t *Token) Ping(ctx context.Context) error {
	_, err := t.Random(ctx, 1)
	if err != nil {
		return fmt.Errorf("hsm: token %q not ready: %w", t.Label(), err)
	}
	return nil
}

// CheckOpen returns ErrClosed once the token is closed.
func (t *Token) CheckOpen() error {
	if t.closed.Load() {
		return ErrClosed
	}
	return nil
}

// tokenLocks serialise what SoftHSM2 cannot do concurrently. Every Token
// opened on the same token in this process shares them.
//
// Creating session objects needs no lock: SoftHSM2 < 2.7 fails concurrent
// creations of token objects (issue #573: the object files race
// C_FindObjects), which the object lock already serialises, but keeps
// session objects in memory.
//
//   - objects (a mutex, then an flock on a per-token lock file in the system
//     temp directory) serialises every change to the set of token objects —
//     creating or destroying a persistent object, and the whole
//     create-then-check protocol of a data-object write — across the
//     goroutines and the processes of one host. See [Token.lockObjects].
//   - scan (in-process only) keeps every search of the token's objects out
//     of the calls that write a token object or copy an object. See
//     [Token.excludingSearches].
type tokenLocks struct {
	objects sync.Mutex
	file    *os.File // the host-wide lock file, nil if it cannot be opened
	scan    sync.RWMutex
}

var allLocks sync.Map // module path + "\x00" + serial -> *tokenLocks

func locksFor(module, serial string) *tokenLocks {
	if l, ok := allLocks.Load(module + "\x00" + serial); ok {
		return l.(*tokenLocks)
	}
	tl := &tokenLocks{}
	sum := sha256.Sum256([]byte(module + "\x00" + serial))
	path := filepath.Join(os.TempDir(), "p11kms-token-"+hex.EncodeToString(sum[:8])+".lock")
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		tl.file = f
	}
	l, loaded := allLocks.LoadOrStore(module+"\x00"+serial, tl)
	if loaded && tl.file != nil {
		tl.file.Close()
	}
	return l.(*tokenLocks)
}

// lockObjects takes the token's object lock (in-process, then host-wide)
// and brings this process's view of the token's objects up to date.
//
// Why: SoftHSM2 2.6.1 (file backend) keeps a per-process index of a token's
// object files and re-reads the directory only when the token's on-disk
// generation counter differs from the value it last saw. Creating or
// destroying a persistent object increments the on-disk counter and
// records the result as seen — without re-reading the directory. So when
// another process added or removed an object since this process last
// looked, this process's own creation hides that change from it until some
// other process changes the token again; after the load stops, for ever
// (Forbidden.KeyNotFound for a key that exists; found by the two-process
// soak, reproduced by TestOwnCreationKeepsOtherProcessObjectsVisible).
// Any call that reads the token object (C_GetTokenInfo) re-indexes when the
// counter moved; made under the host-wide lock, no other p11kms process can
// move it again before this process's own change, so nothing is hidden.
// Processes that do not take the lock (pkcs11-tool, other applications)
// can still hide their changes from a p11kms process that writes at the
// same moment.
func (t *Token) lockObjects() {
	l := t.locks
	l.objects.Lock()
	if l.file != nil {
		for syscall.Flock(int(l.file.Fd()), syscall.LOCK_EX) == syscall.EINTR {
		}
	}
	if t.enter() == nil { // a closed Token's module may be unloaded: no call at all
		_, _ = t.api.GetTokenInfo(t.slot) // re-index if another process changed the token
		t.leave()
	}
}

// excludingSearches returns fn made to run while no search of this process
// runs (searches hold tokenLocks.scan shared, see [Session.find]). Every
// call that creates a token object, changes a token object's attributes or
// copies an object runs so.
//
// Why, for SoftHSM2 2.6.1:
//   - It writes a new token object's file several times while it creates
//     the object, under an fcntl lock, which does not exclude threads of one
//     process. A C_FindObjectsInit in another thread walks every token
//     object and may read the half-written file: it then records a stale
//     generation for the object, and some later call re-reads the object,
//     emptying its attributes first — a search at that moment misses an
//     object that exists.
//   - C_CopyObject first copies every attribute of the source, CKA_TOKEN and
//     CKA_ID included, and applies the template (CKA_TOKEN=false for a
//     session copy) after: meanwhile the copy matches a search for the
//     token object, which then finds two (found as "more than one object
//     matches" by TestMediaKeyCreationRace in provider/vod).
//
// Searches are rare (the provider caches handles) and short calls are
// serialised inside SoftHSM anyway, so the exclusion costs little.
func (t *Token) excludingSearches(fn func(*Session) (ObjectHandle, error)) func(*Session) (ObjectHandle, error) {
	return func(s *Session) (ObjectHandle, error) {
		t.locks.scan.Lock()
		defer t.locks.scan.Unlock()
		return fn(s)
	}
}

func (t *Token) unlockObjects() {
	l := t.locks
	if l.file != nil {
		_ = syscall.Flock(int(l.file.Fd()), syscall.LOCK_UN)
	}
	l.objects.Unlock()
}
