package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/softhsm"
)

// globals are the flags every command shares.
type globals struct {
	token string // --token / P11KMS_TOKEN
	home  string // --home / P11KMS_HOME
}

// usageError marks an error as a usage error (exit status 2).
type usageError struct{ error }

// exitError carries an exit status for an error already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func exitCode(err error) (int, bool) {
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code, true
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(os.Stderr, "p11kms:", ue.error)
		return 2, true
	}
	return 0, false
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "p11kms",
		Short: "A key-management service whose keys live in a PKCS#11 token",
		Long: `p11kms keeps customer master keys as non-exportable AES keys inside a PKCS#11
token and hands out data keys encrypted under them and wrapped under a
caller's public key (Alibaba Cloud KMS GenerateAndExportDataKey, Tencent
Cloud KMS GenerateDataKey with EncryptionPublicKey).

Every command uses the embedded SoftHSM2 home ($P11KMS_HOME, default
./.p11kms; create it with 'p11kms init') unless --token or P11KMS_TOKEN names
another token by PKCS#11 URI. Every path attribute given must match (token,
serial, manufacturer, model, slot-id, ... as RFC 7512 defines them, e.g. the
pkcs11:model=...;manufacturer=...;serial=...;token=... form p11tool prints);
a URI that gives no module (module-path or module-name) or no PIN, such as
pkcs11:token=device, takes what it lacks from the home.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&g.token, "token", os.Getenv("P11KMS_TOKEN"),
		"PKCS#11 URI of the token (RFC 7512), e.g. pkcs11:token=kms?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/kms.pin (env P11KMS_TOKEN)")
	root.PersistentFlags().StringVar(&g.home, "home", softhsm.HomeDir(), "p11kms home holding the embedded SoftHSM2 tokens (env P11KMS_HOME)")
	root.AddCommand(newInitCmd(g), newTokenCmd(g), newKMSCmd(g), newAWSCmd(g), newAccessKeyCmd(g), newAuditCmd(g), newBenchCmd(g), newImporterCmd(g), newVodCmd(g), newServeCmd(g), newXKSCmd(g))
	for _, c := range root.Commands() {
		refuseUnknownSubcommands(c)
	}
	return root
}

// openToken opens the token the flags select.
func (g *globals) openToken(ctx context.Context) (*hsm.Token, error) {
	return g.openTokenURI(ctx, g.token)
}

func (g *globals) openTokenURI(ctx context.Context, uri string) (*hsm.Token, error) {
	cfg, err := softhsm.ResolveToken(uri, g.home)
	if errors.Is(err, hsm.ErrInvalidURI) || errors.Is(err, hsm.ErrInvalidConfig) {
		return nil, usageError{fmt.Errorf("--token: %w", err)} // a bad flag value: exit status 2
	}
	if err != nil {
		return nil, err
	}
	return hsm.Open(ctx, cfg)
}

// noArgs and exactArgs are cobra's argument checks as usage errors (exit 2).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)}
	}
	return nil
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %d argument(s), got %d", cmd.CommandPath(), n, len(args))}
		}
		return nil
	}
}

// refuseUnknownSubcommands makes a command group answer an unknown or
// missing subcommand with a usage error (exit 2) instead of help and exit 0.
func refuseUnknownSubcommands(c *cobra.Command) {
	if !c.HasSubCommands() || c.Run != nil || c.RunE != nil {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageError{fmt.Errorf("%s needs a subcommand; see %s --help", cmd.CommandPath(), cmd.CommandPath())}
		}
		return usageError{fmt.Errorf("%s: unknown action %q; see %s --help", cmd.CommandPath(), args[0], cmd.CommandPath())}
	}
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
}
