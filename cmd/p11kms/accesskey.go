package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/internal/secretseal"
	"github.com/p11kms/p11kms/internal/state"
	"github.com/p11kms/p11kms/provider/wire"
)

func (g *globals) accessKeysPath(flag string) string {
	if flag != "" {
		return flag
	}
	return filepath.Join(g.home, "access-keys.json")
}

func newAccessKeyCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "accesskey",
		Short: "Manage the server's access keys (file written atomically, mode 0600)",
	}
	cmd.PersistentFlags().StringVar(&file, "access-keys", "", "access-keys file (default $P11KMS_HOME/access-keys.json)")
	var stateURL string
	cmd.PersistentFlags().StringVar(&stateURL, "state", "", "the serve nodes' shared state ("+state.StateURLForm+
		"): create and delete announce the change there; a deleted key is refused by every node within a second")
	var actions, keys, prefix, desc string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an access key; its secret is printed once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if prefix != "LTAI" && prefix != "AKID" && prefix != "AKIA" {
				return usageError{fmt.Errorf("--id-prefix %q: accepted LTAI (Alibaba style), AKID (Tencent style) or AKIA (AWS style)", prefix)}
			}
			sh, err := openShared(stateURL)
			if err != nil {
				return err
			}
			defer sh.Close()
			k := wire.NewAccessKey(prefix, wire.Policy{Actions: splitList(actions), Keys: splitList(keys)})
			k.Description = desc
			err = g.updateAccessKeys(cmd, file, func(ks *[]wire.AccessKey) error {
				*ks = append(*ks, k)
				return nil
			})
			if err != nil {
				return err
			}
			if err := sh.Notify(cmd.Context()); err != nil {
				return fmt.Errorf("access key %s created in the file, but the other nodes were not told (they see it at their next change): %w", k.AccessKeyId, err)
			}
			if err := printJSON(cmd, k); err != nil {
				return err
			}
			takesEffect(cmd)
			return nil
		},
	}
	create.Flags().StringVar(&actions, "actions", "*", "comma-separated allowed actions (wildcards: GenerateDataKey,Decrypt or *)")
	create.Flags().StringVar(&keys, "keys", "*", "comma-separated allowed key ids or aliases (wildcards: alias/payments*,key-1)")
	create.Flags().StringVar(&prefix, "id-prefix", "LTAI", "LTAI, AKID or AKIA (AWS: the SDKs and CLI sign with any id; AKIA keeps the AWS look)")
	create.Flags().StringVar(&desc, "description", "", "free text")
	list := &cobra.Command{
		Use:   "list",
		Short: "List access keys (secrets not shown)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := wire.ReadAccessKeysFile(g.accessKeysPath(file))
			if err != nil {
				return err
			}
			return printJSON(cmd, list)
		},
	}
	del := &cobra.Command{
		Use:   "delete ACCESS_KEY_ID",
		Short: "Delete an access key",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := deleteAccessKey(cmd, g, file, stateURL, args[0]); err != nil {
				return err
			}
			takesEffect(cmd)
			return nil
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

// updateAccessKeys changes the access-keys file with its secrets sealed
// under the token's key (internal/secretseal): the new one and any left in
// plaintext by an older p11kms.
func (g *globals) updateAccessKeys(cmd *cobra.Command, file string, change func(*[]wire.AccessKey) error) error {
	tok, err := g.openToken(cmd.Context())
	if err != nil {
		return fmt.Errorf("access keys: secrets are sealed with the token: %w", err)
	}
	defer tok.Close()
	s, err := secretseal.New(cmd.Context(), tok)
	if err != nil {
		return err
	}
	return wire.UpdateSealedAccessKeysFile(g.accessKeysPath(file), s, change)
}

// takesEffect tells, on standard error, when a change of the access-keys
// file reaches the running servers.
func takesEffect(cmd *cobra.Command) {
	fmt.Fprintf(cmd.ErrOrStderr(), "takes effect in every running `p11kms serve` on this file within %s (file watch and a check every %s; SIGHUP reloads at once)\n",
		wire.WatchInterval, wire.WatchInterval)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ensureAdminKey creates the access-keys file with one admin key if it does
// not exist, and returns that key (or nil if the file existed).
func ensureAdminKey(path string, s wire.SecretSealer) (*wire.AccessKey, error) {
	var created *wire.AccessKey
	err := wire.UpdateSealedAccessKeysFile(path, s, func(ks *[]wire.AccessKey) error {
		if len(*ks) > 0 {
			return errExists
		}
		k := wire.NewAccessKey("LTAI", wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}})
		k.Description = "admin (created by p11kms init)"
		*ks = append(*ks, k)
		shown := k // sealAll seals the entry in the file, not this copy
		created = &shown
		return nil
	})
	if errors.Is(err, errExists) {
		return nil, nil
	}
	return created, err
}

var errExists = errors.New("exists")

// deleteAccessKey removes id from the file; with a shared state it first
// revokes it there, for every node whatever their own files say, inside
// the file's update: if Redis is down the file is not changed and the
// command can be run again.
func deleteAccessKey(cmd *cobra.Command, g *globals, file, stateURL, id string) error {
	sh, err := openShared(stateURL)
	if err != nil {
		return err
	}
	defer sh.Close()
	return g.updateAccessKeys(cmd, file, func(ks *[]wire.AccessKey) error {
		i := slices.IndexFunc(*ks, func(k wire.AccessKey) bool { return k.AccessKeyId == id })
		if i < 0 {
			return fmt.Errorf("access key %s: %w", id, wire.ErrAccessKeyNotFound)
		}
		if err := sh.Revoke(cmd.Context(), id); err != nil {
			return fmt.Errorf("access key %s: not deleted: the other nodes could not be told: %w", id, err)
		}
		*ks = slices.Delete(*ks, i, i+1)
		return nil
	})
}

// shared is the access-key announcements of --state (nothing without it).
type shared struct {
	state.Changes
	Close func() error
}

// openShared opens --state for announcing access-key changes; a bad URL is
// a usage error, before anything is written.
func openShared(stateURL string) (shared, error) {
	if stateURL == "" {
		return shared{Changes: state.LocalChanges{}, Close: func() error { return nil }}, nil
	}
	r, err := state.OpenRedis(stateURL, state.RedisOptions{})
	if err != nil {
		return shared{}, usageError{err}
	}
	return shared{Changes: r, Close: r.Close}, nil
}
