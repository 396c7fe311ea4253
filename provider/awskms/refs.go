package awskms

import (
	"strings"

	"github.com/p11kms/p11kms/wrap/nitro"

	"github.com/p11kms/p11kms/provider"
)

// refs translates between AWS key references and the core's, for one
// region and account, and checks Recipient attestation documents with
// attest.
type refs struct {
	region, account string
	attest          nitro.Verifier
}

// keyArn is arn:aws:kms:<region>:<account>:key/<id>.
func (r refs) keyArn(id string) string {
	if id == "" {
		return ""
	}
	return "arn:aws:kms:" + r.region + ":" + r.account + ":key/" + id
}

// aliasArn is arn:aws:kms:<region>:<account>:alias/<name> for alias/<name>.
func (r refs) aliasArn(alias string) string {
	return "arn:aws:kms:" + r.region + ":" + r.account + ":" + alias
}

const refsAccepted = "accepted a key id, arn:aws:kms:<region>:<account>:key/<id>, alias/<name> or arn:aws:kms:<region>:<account>:alias/<name>"

// coreRef translates the AWS key reference *ref in param (key id, key
// ARN, alias name, alias ARN) to the core's (key id or alias/<name>) in
// place. An ARN of another region or account is NotFoundException: the
// key is not here.
func (r refs) coreRef(param string, ref *string) error {
	s := *ref
	if s == "" {
		return invalid(param, "is required: %s", refsAccepted)
	}
	if !strings.HasPrefix(s, "arn:") {
		return nil
	}
	p := strings.SplitN(s, ":", 6)
	if len(p) != 6 || p[1] != "aws" || p[2] != "kms" || !(strings.HasPrefix(p[5], "key/") || strings.HasPrefix(p[5], "alias/")) {
		return errorf(CodeInvalidArn, "%s: %q is not a KMS key or alias ARN: %s", param, provider.Clip(s, 128), refsAccepted)
	}
	if p[3] != r.region || p[4] != r.account {
		return errorf(CodeNotFound, "%s: the ARN %s names region %q and account %q; this KMS serves region %s, account %s only",
			param, provider.Clip(s, 160), provider.Clip(p[3], 40), provider.Clip(p[4], 40), r.region, r.account)
	}
	*ref = strings.TrimPrefix(p[5], "key/")
	return nil
}

// optionalRef is coreRef for a parameter that may be absent.
func (r refs) optionalRef(param string, ref *string) error {
	if *ref == "" {
		return nil
	}
	return r.coreRef(param, ref)
}

// checkAliasName is AWS's rule for AliasName: alias/<name>, letters,
// digits, / _ and -, at most 256 characters, alias/aws/ reserved.
func checkAliasName(name string) error {
	const param = "AliasName"
	switch {
	case name == "":
		return invalid(param, "is required: alias/<name>")
	case !strings.HasPrefix(name, "alias/") || name == "alias/":
		return errorf(CodeInvalidAliasName, "%s: %q must be alias/<name>", param, provider.Clip(name, 64))
	case len(name) > 256:
		return errorf(CodeInvalidAliasName, "%s: %d characters: at most 256", param, len(name))
	case strings.HasPrefix(name, "alias/aws/"):
		return errorf(CodeInvalidAliasName, "%s: names starting with alias/aws/ are reserved for AWS managed keys", param)
	}
	for i := len("alias/"); i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '_' || c == '-') {
			return errorf(CodeInvalidAliasName, "%s: %q: after alias/ only letters, digits, / _ and - are accepted", param, provider.Clip(name, 64))
		}
	}
	return nil
}
