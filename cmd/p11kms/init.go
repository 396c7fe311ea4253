package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/internal/secretseal"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/softhsm"
)

func newInitCmd(g *globals) *cobra.Command {
	var label string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the embedded SoftHSM2 home and a token in it",
		Long: `init creates the p11kms home ($P11KMS_HOME, default ./.p11kms): softhsm2.conf,
tokens/, a random user PIN in user.pin and SO PIN in so.pin (mode 0600), and
a SoftHSM2 token labelled "kms". With --token-label it adds another token to
the same home. Running it again changes nothing that exists.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := softhsm.InitHome(g.home, label)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			h := res.Home
			if res.CreatedHome {
				fmt.Fprintf(out, "created home     %s\n", h.Dir)
				fmt.Fprintf(out, "  softhsm2.conf  %s\n", h.ConfPath)
				fmt.Fprintf(out, "  tokens         %s\n", h.TokensDir)
				fmt.Fprintf(out, "  user PIN       %s (mode 0600)\n", h.UserPINFile)
				fmt.Fprintf(out, "  SO PIN         %s (mode 0600)\n", h.SOPINFile)
			} else {
				fmt.Fprintf(out, "home             %s (exists)\n", h.Dir)
			}
			if res.TokenCreated {
				fmt.Fprintf(out, "created token    %q\n", res.TokenLabel)
			} else {
				fmt.Fprintf(out, "token            %q (exists)\n", res.TokenLabel)
			}
			fmt.Fprintf(out, "module           %s\n", h.ModulePath)
			akPath := filepath.Join(h.Dir, "access-keys.json")
			sealer, closeToken := g.initSealer(cmd)
			defer closeToken()
			admin, err := ensureAdminKey(akPath, sealer)
			if err != nil {
				return err
			}
			if admin != nil {
				fmt.Fprintf(out, "created access key for `p11kms serve` in %s (mode 0600); shown once:\n", akPath)
				fmt.Fprintf(out, "  AccessKeyId      %s\n  AccessKeySecret  %s\n", admin.AccessKeyId, admin.AccessKeySecret)
				if sealer == nil {
					fmt.Fprintf(out, "  (the secret is stored in plaintext until the first serve seals it with the token)\n")
				}
			}
			fmt.Fprintf(out, "inspect with     SOFTHSM2_CONF=%s pkcs11-tool --module %s --list-slots\n", h.ConfPath, h.ModulePath)
			return nil
		},
	}
	cmd.Flags().StringVar(&label, "token-label", softhsm.DefaultTokenLabel, "label of the token to create (1-32 characters)")
	return cmd
}

// initSealer is the sealer of the token serve will use, for the admin key
// init writes, and what closes it; nil (the secret is written in
// plaintext and sealed by the first serve) when that token does not open,
// e.g. init --token-label of another token in a home without the default.
func (g *globals) initSealer(cmd *cobra.Command) (wire.SecretSealer, func()) {
	tok, err := g.openToken(cmd.Context())
	if err != nil {
		return nil, func() {}
	}
	s, err := secretseal.New(cmd.Context(), tok)
	if err != nil {
		tok.Close()
		return nil, func() {}
	}
	return s, func() { tok.Close() }
}
