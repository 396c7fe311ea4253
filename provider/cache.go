package provider

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/p11kms/p11kms/hsm"
)

// DefaultCacheTTL bounds how stale cached metadata may be: a change made by
// another process (disable, rotation, alias update) is seen within it.
// Changes made through this Service are seen at once, and an unknown key id
// or alias always re-reads the token.
const DefaultCacheTTL = time.Second

// metaCache holds recently read key metadata and aliases.
type metaCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	keys    map[string]cachedKey
	aliases map[string]cachedAlias
}

type cachedKey struct {
	m   *keyMeta
	obj *hsm.DataObject // the metadata object it was read from (refreshed by handle)
	at  time.Time
}

type cachedAlias struct {
	keyID string
	obj   *hsm.DataObject
	at    time.Time
}

func newMetaCache(ttl time.Duration) *metaCache {
	return &metaCache{ttl: ttl, keys: map[string]cachedKey{}, aliases: map[string]cachedAlias{}}
}

func (m *keyMeta) clone() *keyMeta {
	c := *m
	c.Versions = slices.Clone(m.Versions)
	return &c
}

// key returns a fresh cached entry, or (for a stale one) the object to
// refresh it from. The entry is shared: callers must not modify it (clone
// it first).
func (c *metaCache) key(id string) (*keyMeta, *hsm.DataObject) {
	if c.ttl <= 0 {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.keys[id]
	if !ok {
		return nil, nil
	}
	if time.Since(e.at) > c.ttl {
		return nil, e.obj
	}
	return e.m, nil
}

func (c *metaCache) putKey(m *keyMeta, obj *hsm.DataObject) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	c.keys[m.KeyId] = cachedKey{m: m.clone(), obj: obj, at: time.Now()} // our own copy: m may be changed later
	c.mu.Unlock()
}

func (c *metaCache) dropKey(id string) {
	c.mu.Lock()
	delete(c.keys, id)
	c.mu.Unlock()
}

func (c *metaCache) alias(name string) (string, bool, *hsm.DataObject) {
	if c.ttl <= 0 {
		return "", false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.aliases[name]
	if !ok {
		return "", false, nil
	}
	if time.Since(e.at) > c.ttl {
		return "", false, e.obj
	}
	return e.keyID, true, nil
}

func (c *metaCache) putAlias(name, keyID string, obj *hsm.DataObject) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	c.aliases[name] = cachedAlias{keyID: keyID, obj: obj, at: time.Now()}
	c.mu.Unlock()
}

func (c *metaCache) dropAlias(name string) {
	c.mu.Lock()
	delete(c.aliases, name)
	c.mu.Unlock()
}

// readKey returns a key's metadata from the cache or the token.
func (s *Service) readKey(ctx context.Context, keyID string) (*keyMeta, error) {
	m, stale := s.cache.key(keyID)
	if m != nil {
		return m, nil
	}
	if stale != nil {
		// Refresh by handle: no C_FindObjects unless the object was replaced.
		if obj, err := s.tok.RereadData(ctx, stale); err == nil {
			var fresh keyMeta
			if json.Unmarshal(obj.Value, &fresh) == nil && fresh.KeyId == keyID {
				s.cache.putKey(&fresh, obj)
				return &fresh, nil
			}
		}
	}
	m, err := s.searchKey(ctx, keyID)
	if err != nil {
		s.cache.dropKey(keyID)
		return nil, err
	}
	return m, nil
}

// searchKey loads a key's metadata with a search and caches it. With the
// cache on, concurrent misses of one key share one search (linear in the
// token's objects); a write of this process is in the cache before it
// returns, so no caller joins a search older than its own write.
func (s *Service) searchKey(ctx context.Context, keyID string) (*keyMeta, error) {
	load := func(ctx context.Context) (*keyMeta, error) {
		m, obj, err := s.loadKey(ctx, keyID)
		if err != nil {
			return nil, err
		}
		s.cache.putKey(m, obj)
		return m, nil
	}
	if s.cache.ttl <= 0 {
		return load(ctx)
	}
	r, err, _ := s.keyLoads.Do(keyID, func() (any, error) { return load(context.WithoutCancel(ctx)) })
	if err != nil {
		return nil, err
	}
	return r.(*keyMeta), nil
}

// readAlias returns the key id an alias points to, from the cache or the token.
func (s *Service) readAlias(ctx context.Context, name string) (string, error) {
	id, ok, stale := s.cache.alias(name)
	if ok {
		return id, nil
	}
	if stale != nil {
		if obj, err := s.tok.RereadData(ctx, stale); err == nil {
			var a aliasMeta
			if json.Unmarshal(obj.Value, &a) == nil && a.KeyId != "" {
				s.cache.putAlias(name, a.KeyId, obj)
				return a.KeyId, nil
			}
		}
	}
	a, obj, err := s.loadAlias(ctx, name)
	if err != nil {
		s.cache.dropAlias(name)
		return "", err
	}
	s.cache.putAlias(name, a.KeyId, obj)
	return a.KeyId, nil
}
