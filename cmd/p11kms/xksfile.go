package main

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/provider/xks"
)

// addXKSFileCmds adds the `p11kms xks` commands that change the XKS
// configuration file: its SigV4 credentials (written sealed under the
// token's key), sealing a file written by hand, and the status of its keys.
func addXKSFileCmds(cmd *cobra.Command, g *globals) {
	x := &xksFlags{}
	cmd.PersistentFlags().StringVar(&x.config, "xks-config", "", "XKS configuration file (default $P11KMS_HOME/xks.json)")
	cred := &cobra.Command{Use: "credential", Short: "The SigV4 credentials AWS KMS signs XKS requests with (secrets sealed in the file)"}
	cred.AddCommand(&cobra.Command{
		Use:   "create",
		Short: "Create a SigV4 credential; its secret is printed once, the file holds it sealed",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return createXKSCredential(cmd, g, x) },
	}, &cobra.Command{
		Use:   "delete ACCESS_KEY_ID",
		Short: "Delete a SigV4 credential (the file keeps at least one)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return updateXKSFile(cmd, g, x, "credential "+args[0]+" deleted", func(f *xks.File) error {
				i := slices.IndexFunc(f.Credentials, func(c xks.Credential) bool { return c.AccessKeyID == args[0] })
				if i < 0 {
					return fmt.Errorf("no credential %s in %s", args[0], x.path)
				}
				f.Credentials = slices.Delete(f.Credentials, i, i+1)
				return nil
			})
		},
	}, &cobra.Command{
		Use:   "list",
		Short: "List the SigV4 credentials' access key ids (secrets not shown; no token needed)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := xks.LoadFile(x.filePath(g))
			if err != nil {
				return err
			}
			for _, c := range f.Credentials {
				fmt.Fprintln(cmd.OutOrStdout(), c.AccessKeyID)
			}
			return nil
		},
	})
	seal := &cobra.Command{
		Use:   "seal",
		Short: "Seal the plaintext secretAccessKey values of the file under the token's key (serve does it on load when it can write the file)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return updateXKSFile(cmd, g, x, "secrets sealed", func(*xks.File) error { return nil })
		},
	}
	cmd.AddCommand(cred, seal, keyStatusCmd(g, x, "disable-key", true), keyStatusCmd(g, x, "enable-key", false))
}

// keyStatusCmd is disable-key or enable-key: the external key's keyStatus.
func keyStatusCmd(g *globals, x *xksFlags, name string, disabled bool) *cobra.Command {
	status := map[bool]string{true: "DISABLED", false: "ENABLED"}[disabled]
	return &cobra.Command{
		Use:   name + " EXTERNAL_KEY_ID",
		Short: "Set an external key's keyStatus to " + status + " (a disabled key refuses Encrypt and Decrypt with InvalidStateException)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return updateXKSFile(cmd, g, x, "external key "+args[0]+" "+status, func(f *xks.File) error {
				k, ok := f.Keys[args[0]]
				if !ok {
					return fmt.Errorf("no external key %s in %s (keys lists: %v)", args[0], x.path, keyIDs(f))
				}
				k.Disabled = disabled
				f.Keys[args[0]] = k
				return nil
			})
		},
	}
}

func keyIDs(f *xks.File) []string {
	ids := make([]string, 0, len(f.Keys))
	for id := range f.Keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// createXKSCredential adds a fresh random credential (crypto/rand, as
// access keys): an id of 24 characters A-Z 2-7 (15 bytes, Base32) and a
// 44-character secret (32 bytes, Base64), and prints both once.
func createXKSCredential(cmd *cobra.Command, g *globals, x *xksFlags) error {
	rnd := make([]byte, 15+32)
	_, _ = rand.Read(rnd) // never fails (crypto/rand.Read crashes the program rather than return an error)
	defer clear(rnd)
	c := xks.Credential{AccessKeyID: base32.StdEncoding.EncodeToString(rnd[:15]), SecretAccessKey: base64.StdEncoding.EncodeToString(rnd[15:])}
	err := updateXKSFile(cmd, g, x, "credential "+c.AccessKeyID+" created", func(f *xks.File) error {
		f.Credentials = append(f.Credentials, c)
		return nil
	})
	if err != nil {
		return err
	}
	return printJSON(cmd, map[string]string{"accessKeyId": c.AccessKeyID, "secretAccessKey": c.SecretAccessKey})
}

// updateXKSFile changes the XKS configuration file with its secrets sealed
// (new ones, and any left in plaintext) and says, on standard error, what
// changed and when running servers apply it.
func updateXKSFile(cmd *cobra.Command, g *globals, x *xksFlags, done string, change func(*xks.File) error) error {
	x.path = x.filePath(g)
	tok, err := g.openToken(cmd.Context())
	if err != nil {
		return fmt.Errorf("xks: secrets are sealed with the token: %w", err)
	}
	defer tok.Close()
	s, err := xksSealer(cmd.Context(), tok)
	if err != nil {
		return err
	}
	n, err := xks.UpdateFile(x.path, s, change)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s in %s (%d secret(s) sealed now); running `p11kms serve --xks` processes apply it on SIGHUP "+
		"(kill -HUP <serve pid>; with --processes the first process passes it to the others)\n", cmd.CommandPath(), done, x.path, n)
	return nil
}
