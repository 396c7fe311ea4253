package provider

import (
	"context"
	"slices"
	"sync"
	"time"
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
	m  *keyMeta
	at time.Time
}

type cachedAlias struct {
	keyID string
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

func (c *metaCache) key(id string) *keyMeta {
	if c.ttl <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.keys[id]
	if !ok || time.Since(e.at) > c.ttl {
		return nil
	}
	return e.m.clone()
}

func (c *metaCache) putKey(m *keyMeta) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	c.keys[m.KeyId] = cachedKey{m: m.clone(), at: time.Now()}
	c.mu.Unlock()
}

func (c *metaCache) dropKey(id string) {
	c.mu.Lock()
	delete(c.keys, id)
	c.mu.Unlock()
}

func (c *metaCache) alias(name string) (string, bool) {
	if c.ttl <= 0 {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.aliases[name]
	if !ok || time.Since(e.at) > c.ttl {
		return "", false
	}
	return e.keyID, true
}

func (c *metaCache) putAlias(name, keyID string) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	c.aliases[name] = cachedAlias{keyID: keyID, at: time.Now()}
	c.mu.Unlock()
}

func (c *metaCache) dropAlias(name string) {
	c.mu.Lock()
	delete(c.aliases, name)
	c.mu.Unlock()
}

// readKey returns a key's metadata from the cache or the token.
func (s *Service) readKey(ctx context.Context, keyID string) (*keyMeta, error) {
	if m := s.cache.key(keyID); m != nil {
		return m, nil
	}
	m, _, err := s.loadKey(ctx, keyID)
	if err != nil {
		return nil, err
	}
	s.cache.putKey(m)
	return m, nil
}

// readAlias returns the key id an alias points to, from the cache or the token.
func (s *Service) readAlias(ctx context.Context, name string) (string, error) {
	if id, ok := s.cache.alias(name); ok {
		return id, nil
	}
	a, _, err := s.loadAlias(ctx, name)
	if err != nil {
		return "", err
	}
	s.cache.putAlias(name, a.KeyId)
	return a.KeyId, nil
}
