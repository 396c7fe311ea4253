// Package state holds the security state a p11kms node keeps per request —
// replay memory, rate limits and the news that access keys changed — in
// process (the embedded default) or shared by every node through Redis
// (--state redis://host:port/db). It owns no HTTP and no dialect: the
// request pipeline calls it and maps its errors to wire codes.
//
// # Integration (as cmd/p11kms/servestate.go and provider/wire use it)
//
// Build once at start-up and log what it holds:
//
//	st, err := state.Open(state.Config{URL: flagState, Window: longestNonceWindow,
//		MaxRate: flagReplayMaxRate, Rate: flagRate, Burst: flagBurst, Secret: nodeSecret})
//	log.Info(st.Describe) // e.g. "state: in process; replay memory 95 MiB for 3600000 requests (30m0s × 2000/s)"
//	defer st.Close()
//
// Per signed request, after the signature verified and after the policy
// check (so unauthenticated, unauthorized and throttled requests consume no
// replay memory — issue 17 finding 3):
//
//	ok, err := st.Limiter.Allow(ctx, accessKeyID)   // if st.Limiter != nil
//	seen, err := st.Replay.Seen(ctx, accessKeyID, nonceOrSignature, dialectWindow)
//
// Map the errors in the one error table, fail closed:
//   - errors.Is(err, state.ErrUnavailable): the dialect's service-unavailable
//     code (Redis unreachable); never treat the request as new or allowed.
//   - errors.Is(err, state.ErrThrottled), or Allow's false: the dialect's
//     throttling code (only this access key is over its share).
//   - seen: the dialect's replay (bad nonce / signature reused) code.
//   - any other error is a programming error (empty id or nonce, a window
//     longer than the in-process store's): InternalError.
//
// /readyz: st.Ready(ctx) — nil in process; with Redis an error while it is
// down. The client reconnects by itself; nothing to restart.
//
// Access-key changes: after writing access-keys.json, call
// st.Changes.Notify(ctx); every node runs go st.Changes.Watch(ctx, reload)
// and reloads the file when called (within about a second: pub/sub, with a
// 500-ms version-counter check behind it). In process Notify is a no-op
// and Watch only waits: watching the file itself is the server's job.
//
// Tests of the server start Redis with redistest.Start(t, redistest.Options{})
// and pass srv.URL(db) as --state; srv.Stop and srv.Restart take it away
// and bring it back mid-test.
//
// # Interfaces
//
//   - ReplayStore: Seen(ctx, accessKeyID, nonce, window) (seen, err) and
//     Peek (recording nothing). Memory (NewMemory(window, maxRate)) and
//     Redis implement it.
//   - RateLimiter: Allow(ctx, accessKeyID) (bool, error). LocalLimiter
//     (NewLocalLimiter) and RedisLimiter (Redis.Limiter) implement it.
//   - Changes: Notify(ctx) error, Revoke(ctx, ids...) (the ids deleted,
//     refused by every node: SADD <prefix>access-keys:revoked, raw ids,
//     which are not secrets), Revoked(ctx) and Watch(ctx, onChange).
//     LocalChanges and Redis implement it.
//
// # What is stored
//
// Never an access key id or a nonce: a 16-byte HMAC-SHA256 digest of
// (len(id) || id || nonce). In process the key is random per process, in
// Redis it is HKDF-SHA256 of the configured Secret, which every node must
// share (without one the key prefix is used; see RedisOptions.Secret).
//
// In process, Memory holds 9 fixed tables of digests, one per 1/8 of the
// window, cleared whole when their time is past: about 27 bytes per request
// of capacity (window × maxRate), 24 measured per remembered request, all
// allocated at start-up (TestMemoryBytesPerRequest). The memory is lost
// with the process: a restart forgets the last window's nonces.
//
// In Redis, each nonce is SET <prefix>replay:<digest> <token> NX PX
// <window ms> in a Lua script that also counts the call's own token as
// claimed (a retried claim is not a replay);
// each access key's rate is a GCRA "theoretical arrival time" at
// <prefix>rate:<digest>, updated by one Lua script (EVALSHA) on Redis's
// clock; access-key changes are INCR <prefix>access-keys:version plus
// PUBLISH <prefix>access-keys. A Redis restart keeps the nonces only if
// Redis persists them (appendonly yes, appendfsync always); without
// persistence the nonces of the last window are forgotten and may replay
// once — the same window as an in-process restart.
//
// While Redis is down, go-redis logs each failed dial through its own
// logger (redis.SetLogger replaces it); no secret is in those lines.
//
// # Concurrency
//
// Every type here is safe for concurrent use. Memory and LocalLimiter take
// one mutex per call; the Redis types are one round trip per call.
package state
