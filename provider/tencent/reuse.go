package tencent

import (
	"encoding/hex"
	"time"

	"github.com/p11kms/p11kms/provider/wire"
)

// RetargetGrace is how long after its first use a TC3 signature may come
// back with another X-TC-Action, X-TC-Region or X-TC-Version (over the
// connection of its first use, for a state-changing action). Within
// RetargetGrace a retarget always passes; after 2 × RetargetGrace it is
// always refused.
const RetargetGrace = 2 * time.Second

// The TC3 signature-reuse rule is the pipeline's wire.SignatureReuse: TC3
// signs neither X-TC-Action nor X-TC-Region nor X-TC-Version, so a
// signature is remembered with the targets it was used for; a write (the
// table row's Write, or an action p11kms does not serve) is performed at
// most once per signature, a read may repeat.

// signatureUse is a TC3 request's place in the signature memory.
func signatureUse(a *tc3Authorization, p *request, remoteAddr string) wire.SignatureUse {
	act, served := actions[p.action]
	return wire.SignatureUse{AccessKeyID: a.secretID, Signature: hex.EncodeToString(a.signature),
		Target: p.action + "\n" + p.region + "\n" + p.version, Conn: remoteAddr, Write: !served || act.Write}
}
