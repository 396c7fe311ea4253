package state

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/p11kms/p11kms/internal/state/redistest"
)

// openNode opens one node's view of the shared state.
func openNode(t *testing.T, url string, opts RedisOptions) *Redis {
	t.Helper()
	r, err := OpenRedis(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// rawClient is a plain client for looking at what the nodes wrote.
func rawClient(t *testing.T, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 2})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisReplaySeenByTheOtherNode(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	opts := RedisOptions{Secret: []byte("shared node secret")}
	a, b := openNode(t, srv.URL(2), opts), openNode(t, srv.URL(2), opts)
	const window = 90 * time.Second
	if mustSeen(t, a, "AK1", "nonce-1", window) {
		t.Fatal("first nonce reported seen")
	}
	if !mustSeen(t, b, "AK1", "nonce-1", window) {
		t.Fatal("replay to the other node not seen")
	}
	if mustSeen(t, b, "AK2", "nonce-1", window) {
		t.Fatal("same nonce from another access key reported seen")
	}

	ctx := context.Background()
	keys, err := rawClient(t, srv).Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	format := regexp.MustCompile(`^p11kms:replay:[A-Za-z0-9_-]{22}$`)
	if len(keys) != 2 {
		t.Fatalf("keys in Redis: %q, want 2 replay keys", keys)
	}
	for _, k := range keys {
		if !format.MatchString(k) || strings.Contains(k, "AK1") || strings.Contains(k, "nonce") {
			t.Errorf("key %q: want p11kms:replay:<22 base64url chars of digest>, with no raw id or nonce", k)
		}
		ttl, err := rawClient(t, srv).PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > window {
			t.Errorf("key %q: PTTL %v (%v), want in (0, %v]", k, ttl, err, window)
		}
		// The value is the claim's random token (see claimScript): 16
		// bytes, base64url, nothing derived from the id or the nonce.
		if v, _ := rawClient(t, srv).Get(ctx, k).Result(); !format.MatchString("p11kms:replay:" + v) {
			t.Errorf("key %q holds %q, want a 22-character base64url token", k, v)
		}
	}

	// A node with another Secret computes other digests: the secret must be
	// shared (documented on RedisOptions.Secret).
	other := openNode(t, srv.URL(2), RedisOptions{Secret: []byte("another secret")})
	if mustSeen(t, other, "AK1", "nonce-1", window) {
		t.Fatal("a node with another Secret matched the digest")
	}
}

func TestRedisLimiterSharedByTwoNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	const ratePerSecond, burst = 200.0, 10
	var allowed atomic.Int64
	var limiters []*RedisLimiter
	for range 2 {
		l, err := openNode(t, srv.URL(0), RedisOptions{}).Limiter(ratePerSecond, burst)
		if err != nil {
			t.Fatal(err)
		}
		limiters = append(limiters, l)
	}
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for _, l := range limiters {
		for range 2 { // two goroutines per node
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					ok, err := l.Allow(ctx, "AK1")
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						allowed.Add(1)
					}
				}
			})
		}
	}
	for allowed.Load() < 600 && !t.Failed() { // about 3 s of allowance
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	// Everything allowed from start to end: the burst plus rate × elapsed.
	want := burst + ratePerSecond*elapsed.Seconds()
	got := float64(allowed.Load())
	t.Logf("two nodes allowed %v in %v; the limit is %.0f", got, elapsed, want)
	if got > want*1.1 || got < want*0.9 {
		t.Fatalf("two nodes allowed %v in %v, want %.0f ± 10%%", got, elapsed, want)
	}
}

func TestRedisChangesReachTheOtherNode(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := openNode(t, srv.URL(0), RedisOptions{}), openNode(t, srv.URL(0), RedisOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan time.Time, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Watch(ctx, func() { changed <- time.Now() })
	}()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, since time.Time) {
		t.Helper()
		select {
		case at := <-changed:
			t.Logf("%s: seen by the other node after %v", what, at.Sub(since))
		case <-time.After(30 * time.Second): // a hang guard, not the 1-s claim
			t.Fatalf("%s: never seen by the other node", what)
		}
	}
	// Let b read the first version and subscribe before the first change.
	for {
		n, err := a.client.PubSubNumSub(ctx, a.accessKeysChannel()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n[a.accessKeysChannel()] > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	now := time.Now()
	if err := a.Notify(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor("Notify", now)

	// A lost message (only the counter moved): the periodic check catches it.
	now = time.Now()
	if err := a.client.Incr(ctx, a.accessKeysVersion()).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor("counter only", now)
	select {
	case <-changed:
		t.Fatal("one change called onChange twice")
	default:
	}

	// Redis restarts (without persistence: the counter is gone): a change
	// made after it returns still reaches the other node, which reloads at
	// some point after the change.
	srv.Stop()
	srv.Restart()
	for a.Notify(ctx) != nil {
		time.Sleep(20 * time.Millisecond)
	}
	notified := time.Now()
	for {
		select {
		case at := <-changed:
			if at.After(notified) {
				t.Logf("after a Redis restart: seen by the other node after %v", at.Sub(notified))
				return
			}
		case <-time.After(30 * time.Second):
			t.Fatal("after a Redis restart: change never seen by the other node")
		}
	}
}

func TestRedisDownFailsClosedAndResumes(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprintf("persistent=%v", persistent), func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{Persistent: persistent})
			r := openNode(t, srv.URL(0), RedisOptions{})
			l, err := r.Limiter(1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			const window = time.Minute
			if mustSeen(t, r, "AK1", "before", window) {
				t.Fatal("first nonce reported seen")
			}

			srv.Stop()
			began := time.Now()
			if seen, err := r.Seen(ctx, "AK1", []byte("during"), window); !errors.Is(err, ErrUnavailable) || seen {
				t.Fatalf("Seen while Redis is down = %v, %v; want false, ErrUnavailable", seen, err)
			}
			t.Logf("Seen while Redis is down answered in %v", time.Since(began))
			if ok, err := l.Allow(ctx, "AK1"); !errors.Is(err, ErrUnavailable) || ok {
				t.Fatalf("Allow while Redis is down = %v, %v; want false, ErrUnavailable", ok, err)
			}
			if err := r.Ready(ctx); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Ready while Redis is down = %v, want ErrUnavailable", err)
			}
			if err := r.Notify(ctx); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Notify while Redis is down = %v, want ErrUnavailable", err)
			}

			srv.Restart()
			// The client reconnects by itself: no new Redis value is made.
			for hangGuard := time.Now().Add(30 * time.Second); r.Ready(ctx) != nil; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(hangGuard) {
					t.Fatalf("still not ready 30 s after Redis restarted: %v", r.Ready(ctx))
				}
			}
			if mustSeen(t, r, "AK1", "after", window) {
				t.Fatal("new nonce after the restart reported seen")
			}
			if !mustSeen(t, r, "AK1", "after", window) {
				t.Fatal("replay after the restart accepted")
			}
			if ok, err := l.Allow(ctx, "AK1"); err != nil || !ok {
				t.Fatalf("Allow after the restart = %v, %v (EVALSHA must fall back to EVAL)", ok, err)
			}
			// "during" was never stored: it is new now, accepted once.
			if mustSeen(t, r, "AK1", "during", window) {
				t.Fatal("nonce refused while down reported seen after")
			}
			// A nonce stored before the stop: kept only if Redis persisted it.
			if seen := mustSeen(t, r, "AK1", "before", window); seen != persistent {
				t.Fatalf("nonce stored before the stop: seen=%v after the restart, want %v", seen, persistent)
			}
		})
	}
}

func TestParseStateURL(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"", "scheme"},
		{"localhost:6379", "scheme"},
		{"http://h:1/0", `scheme "http"`},
		{"redis:///0", "no host"},
		{"redis://h:1/x", "database"},
		{"redis://h:1/0/1", "path"},
		{"redis://u:secretpw@h:1/x", "database"},
		{"redis://h:1/0?bogus=1", "bogus"},
		{"redis://%zz", "escape"},
	} {
		_, err := ParseStateURL(tc.url)
		if err == nil {
			t.Errorf("ParseStateURL(%q) accepted", tc.url)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "--state") || !strings.Contains(msg, "redis://[user:password@]host:port/db") ||
			!strings.Contains(msg, tc.want) || strings.Contains(msg, "secretpw") {
			t.Errorf("ParseStateURL(%q) = %q: want --state, the accepted form and %q, no password", tc.url, msg, tc.want)
		}
	}
	o, err := ParseStateURL("redis://127.0.0.1:6390/3")
	if err != nil || o.Addr != "127.0.0.1:6390" || o.DB != 3 {
		t.Fatalf("ParseStateURL(redis://127.0.0.1:6390/3) = %+v, %v", o, err)
	}
}

// TestConcurrentSeenAcceptsEachNonceOnce sends every nonce from several
// goroutines (two nodes for Redis): exactly one of them may see it new.
func TestConcurrentSeenAcceptsEachNonceOnce(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	mem, err := NewMemory(time.Minute, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	nodeA, nodeB := openNode(t, srv.URL(0), RedisOptions{}), openNode(t, srv.URL(0), RedisOptions{})
	for name, stores := range map[string][]ReplayStore{"memory": {mem, mem}, "redis": {nodeA, nodeB}} {
		t.Run(name, func(t *testing.T) {
			const nonces, senders = 300, 4
			var fresh [nonces]atomic.Int32
			var wg sync.WaitGroup
			for g := range senders {
				store := stores[g%len(stores)]
				wg.Go(func() {
					for i := range nonces {
						seen, err := store.Seen(context.Background(), "AK1", []byte(fmt.Sprint("n", i)), time.Minute)
						if err != nil {
							t.Error(err)
							return
						}
						if !seen {
							fresh[i].Add(1)
						}
					}
				})
			}
			wg.Wait()
			for i := range fresh {
				if n := fresh[i].Load(); n != 1 {
					t.Errorf("nonce %d accepted %d times, want once", i, n)
				}
			}
		})
	}
}

// Revoke announces the change to the other node and every node lists the
// revoked ids; the in-process Changes revokes nothing.
func TestRedisRevokeReachesTheOtherNode(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := openNode(t, srv.URL(0), RedisOptions{}), openNode(t, srv.URL(0), RedisOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Watch(ctx, func() { changed <- struct{}{} })
	}()
	defer func() { cancel(); <-done }()
	if ids, err := b.Revoked(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("revoked before any: %q %v", ids, err)
	}
	if err := a.Revoke(ctx); err == nil {
		t.Fatal("Revoke of no id accepted")
	}
	if err := a.Revoke(ctx, "AK1", "AK2"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(30 * time.Second): // a hang guard
		t.Fatal("a revocation never reached the other node")
	}
	ids, err := b.Revoked(ctx)
	if err != nil || strings.Join(sortedCopy(ids), ",") != "AK1,AK2" {
		t.Fatalf("revoked seen by the other node: %q %v", ids, err)
	}
	if ids, err := (LocalChanges{}).Revoked(ctx); err != nil || ids != nil {
		t.Fatalf("in process: %q %v", ids, err)
	}
	srv.Stop()
	if _, err := b.Revoked(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Revoked with Redis down: %v, want ErrUnavailable", err)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}

// delayingProxy forwards TCP to addr, holding Redis's first reply that
// follows a client write containing marker for hold: long enough that the
// client's read times out and it retries the command.
func delayingProxy(t *testing.T, addr, marker string, hold time.Duration) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var armed atomic.Bool
	armed.Store(true)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go proxyConn(c, addr, marker, hold, &armed)
		}
	}()
	return l.Addr().String()
}

// proxyConn is one proxied connection of delayingProxy.
func proxyConn(c net.Conn, addr, marker string, hold time.Duration, armed *atomic.Bool) {
	defer c.Close()
	up, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer up.Close()
	var delayNext atomic.Bool
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				up.Close()
				return
			}
			if strings.Contains(string(buf[:n]), marker) && armed.CompareAndSwap(true, false) {
				delayNext.Store(true)
			}
			if _, err := up.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		if delayNext.CompareAndSwap(true, false) {
			time.Sleep(hold) // the reply arrives after the client gave up
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// TestRetriedClaimIsNotItsOwnReplay: Redis runs a claim but its reply is
// lost (held past the client's 1-s read timeout); the client retries the
// claim. Before the claim carried a per-call token, the retry's SET NX
// found the key it had just set and an honest request was refused as a
// replay (11 of 4.1 million in the 30-min two-node sustain run). Now the
// retry finds its own token: the request is new, and a real replay of
// the same nonce is still refused.
func TestRetriedClaimIsNotItsOwnReplay(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := delayingProxy(t, srv.Addr(), "replay:", 1500*time.Millisecond)
	r := openNode(t, "redis://"+proxy+"/2", RedisOptions{})
	ctx := context.Background()
	if err := r.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	seen, err := r.Seen(ctx, "AK1", []byte("nonce-1"), time.Minute)
	if err != nil {
		t.Fatalf("Seen through a lost reply: %v", err)
	}
	if seen {
		t.Fatal("a claim retried after its reply was lost was refused as its own replay")
	}
	if seen, err := r.Seen(ctx, "AK1", []byte("nonce-1"), time.Minute); err != nil || !seen {
		t.Fatalf("the same nonce again: seen %v, err %v; want a replay", seen, err)
	}
}
