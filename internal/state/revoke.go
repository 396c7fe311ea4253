package state

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// accessKeysRevoked is the set of revoked access key ids. Ids are not
// secrets (every request names its own); the set grows only by what
// operators delete.
func (r *Redis) accessKeysRevoked() string { return r.prefix + "access-keys:revoked" }

// Revoke implements Changes: SADD the ids to the revoked set, INCR the
// version counter and PUBLISH, in one transaction.
func (r *Redis) Revoke(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return fmt.Errorf("state: Revoke: no access key id")
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		if id == "" {
			return fmt.Errorf("state: Revoke: an empty access key id")
		}
		members[i] = id
	}
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, r.accessKeysRevoked(), members...)
		p.Incr(ctx, r.accessKeysVersion())
		p.Publish(ctx, r.accessKeysChannel(), "changed")
		return nil
	})
	if err != nil {
		return unavailable("SADD/INCR/PUBLISH", err)
	}
	return nil
}

// Revoked implements Changes: SMEMBERS of the revoked set.
func (r *Redis) Revoked(ctx context.Context) ([]string, error) {
	ids, err := r.client.SMembers(ctx, r.accessKeysRevoked()).Result()
	if err != nil {
		return nil, unavailable("SMEMBERS", err)
	}
	return ids, nil
}

// Revoke does nothing in process: the node's own file is the only one.
func (LocalChanges) Revoke(context.Context, ...string) error { return nil }

// Revoked is always empty in process.
func (LocalChanges) Revoked(context.Context) ([]string, error) { return nil, nil }
