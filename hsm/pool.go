package hsm

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// Session is one open, logged-in PKCS#11 session borrowed from a token's
// pool. It is valid only inside the function it was passed to.
type Session struct {
	tok    *Token
	handle pkcs11.SessionHandle
	// discard makes Do close the session instead of returning it to the
	// pool: it holds a session object that must not outlive the call and
	// could not be destroyed (closing a session destroys its objects).
	discard bool
}

// Handle returns the raw session handle (for diagnostics and tests).
func (s *Session) Handle() pkcs11.SessionHandle { return s.handle }

// pool is a bounded set of sessions. sem holds one token per session that
// may exist; idle holds open sessions not in use.
type pool struct {
	tok   *Token
	sem   chan struct{}
	wait  time.Duration
	mu    sync.Mutex
	idle  []*Session
	inUse atomic.Int64
}

func newPool(t *Token, size int, wait time.Duration) *pool {
	return &pool{tok: t, sem: make(chan struct{}, size), wait: wait}
}

// acquire waits for a free place in the pool.
func (p *pool) acquire(ctx context.Context) error {
	select {
	case p.sem <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(p.wait)
	defer timer.Stop()
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hsm: waiting for a free session: %w", ctx.Err())
	case <-timer.C:
		return fmt.Errorf("hsm: no free session after %s (pool of %d sessions all busy)", p.wait, cap(p.sem))
	}
}

// get returns an idle session or opens a new one; the caller owns a place.
func (p *pool) get(ctx context.Context) (*Session, error) {
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		s := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		p.inUse.Add(1)
		return s, nil
	}
	p.mu.Unlock()
	s, err := p.tok.openSession()
	if err != nil {
		<-p.sem
		return nil, err
	}
	p.inUse.Add(1)
	return s, nil
}

// put returns a healthy session to the pool.
func (p *pool) put(s *Session) {
	p.inUse.Add(-1)
	p.mu.Lock()
	if p.tok.closed.Load() {
		p.mu.Unlock()
		_ = p.tok.api.CloseSession(s.handle)
	} else {
		p.idle = append(p.idle, s)
		p.mu.Unlock()
	}
	<-p.sem
}

// replace closes a broken session and opens a fresh one in its place.
func (p *pool) replace(s *Session) (*Session, error) {
	_ = p.tok.api.CloseSession(s.handle) // it is broken: its close error tells nothing
	p.tok.sessionEpoch.Add(1)
	ns, err := p.tok.openSession()
	if err != nil {
		p.inUse.Add(-1)
		<-p.sem
		return nil, err
	}
	return ns, nil
}

// drop closes a session and frees its place.
func (p *pool) drop(s *Session) {
	_ = p.tok.api.CloseSession(s.handle)
	p.inUse.Add(-1)
	<-p.sem
}

// closeIdle closes every idle session.
func (p *pool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, s := range idle {
		_ = p.tok.api.CloseSession(s.handle)
	}
}

// Do runs fn with a session borrowed from t's pool. If fn fails because the
// session is unusable (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
// CKR_USER_NOT_LOGGED_IN), the session is dropped, a fresh logged-in session
// replaces it and fn runs once more. fn must therefore leave nothing behind
// when it fails with one of those codes — true of every single PKCS#11 call,
// since a call on an invalid session does nothing.
func Do[T any](ctx context.Context, t *Token, fn func(*Session) (T, error)) (T, error) {
	var zero T
	if err := t.enter(); err != nil {
		return zero, err
	}
	defer t.leave()
	s, err := t.pool.get(ctx)
	if err != nil {
		return zero, err
	}
	// held is the session to close when Do returns without putting it
	// back — also when fn panics: its state is unknown, and a session
	// lost to a panic would take its place in the pool with it for ever.
	held := s
	defer func() {
		if held != nil {
			t.pool.drop(held)
		}
	}()
	res, err := fn(s)
	if err != nil && sessionBroken(err) {
		held = nil // replace closes it, and frees its place if it fails
		if s, err = t.pool.replace(s); err != nil {
			return zero, err
		}
		held = s
		res, err = fn(s)
		if err != nil && sessionBroken(err) {
			return zero, err
		}
	}
	if err != nil && !stateless(err) || s.discard {
		// A failed call may leave an operation active in the session
		// (C_EncryptInit done, C_Encrypt failed): never hand it out again.
		return res, err
	}
	held = nil
	t.pool.put(s)
	return res, err
}

// stateless reports whether err leaves the session as it was: not a PKCS#11
// error at all, or one of the answers that single-step calls (lookups,
// attribute reads, *Init refusals) give without starting an operation.
func stateless(err error) bool {
	code, ok := CodeOf(err)
	if !ok {
		return true
	}
	switch code {
	case pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_ATTRIBUTE_SENSITIVE,
		pkcs11.CKR_ATTRIBUTE_TYPE_INVALID, pkcs11.CKR_ATTRIBUTE_VALUE_INVALID, pkcs11.CKR_TEMPLATE_INCONSISTENT,
		pkcs11.CKR_TEMPLATE_INCOMPLETE, pkcs11.CKR_USER_ALREADY_LOGGED_IN:
		return true
	}
	return false
}

// do is Do without a result.
func do(ctx context.Context, t *Token, fn func(*Session) error) error {
	_, err := Do(ctx, t, func(s *Session) (struct{}, error) { return struct{}{}, fn(s) })
	return err
}
