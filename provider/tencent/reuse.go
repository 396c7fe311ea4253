package tencent

import (
	"context"
	"encoding/hex"
	"strconv"
	"time"
)

// RetargetGrace is how long after its first use a TC3 signature may come
// back with another X-TC-Action, X-TC-Region or X-TC-Version (over the
// connection of its first use, for a state-changing action). Within
// RetargetGrace a retarget always passes; after 2 × RetargetGrace it is
// always refused (the first use is remembered by its RetargetGrace-wide
// time slot, so in between it depends on where the first use fell).
const RetargetGrace = 2 * time.Second

// The TC3 signature-reuse rule. X-TC-Action, X-TC-Region and X-TC-Version
// are not signed (the official SDKs sign only content-type;host), and
// honest calls with the same parameters in one second carry identical
// signatures (the timestamp has second resolution). So a captured request
// could be sent again, or as another action on the same parameters. The
// signature memory keeps two things per signature: each target (action,
// region, version) it was used for, and its first use (target, time,
// connection). A request is then accepted when:
//
//   - it is the signature's first use; or
//   - its target was used before and its action changes no state
//     (repeatable): identical reads repeat freely within the window; a
//     state-changing action is performed at most once per signature, so a
//     captured EnableKey cannot undo a later DisableKey; or
//   - its target is new for the signature, it arrives within RetargetGrace
//     of the first use and, for a state-changing action, over the same
//     connection (RemoteAddr) as the first use: an honest SDK client sends
//     DescribeKey then DisableKey on one KeyId in one second over its
//     kept-alive connection, with one signature; a captured DescribeKey
//     sent as DisableKey over another connection is refused. (A read may
//     take a new target from any connection within the grace: it changes
//     nothing.)

//
// The replay memory holds digests only, so a signature's first use is four
// values: "first" (the signature was used), "use" (its target), and its
// time slot, alone and with its connection. They are recorded slot and
// target first and "first" last, so a request that sees the signature used
// also sees its first target and slot (two identical honest requests
// claimed at once, on one node or two, are handled as one after the other).

// reuse is one TC3 request's place in the signature memory.
type reuse struct {
	secretID string
	sig      string // the signature, hex
	target   string // action, region, version
	conn     string // the connection it came over (RemoteAddr)
	write    bool   // the action changes state
}

func newReuse(a *tc3Authorization, p *request, remoteAddr string) reuse {
	return reuse{secretID: a.secretID, sig: hex.EncodeToString(a.signature), target: p.target(), conn: remoteAddr, write: !repeatable[p.action]}
}

func (u reuse) first() string { return "tc3 first\n" + u.sig }
func (u reuse) use() string   { return "tc3 use\n" + u.sig + "\n" + u.target }

// slotValue is the first use's slot; with conn "" any connection.
func (u reuse) slotValue(slot int64, conn string) string {
	return "tc3 slot\n" + u.sig + "\n" + strconv.FormatInt(slot, 10) + "\n" + conn
}

// slot is now's RetargetGrace-wide time slot.
func slot(now time.Time) int64 { return now.UnixNano() / int64(RetargetGrace) }

// peekReuse applies the rule while authenticating, recording nothing.
func (h *handler) peekReuse(ctx context.Context, u reuse, now time.Time) error {
	if used, err := h.replay.Peek(ctx, u.secretID, u.use(), h.refuse); err != nil || used {
		return cmpErr(err, used && u.write)
	}
	if seen, err := h.replay.Peek(ctx, u.secretID, u.first(), h.refuse); err != nil || !seen {
		return err
	}
	return h.withinGrace(ctx, u, now)
}

// claimReuse applies the rule once the request passed its checks and
// records it: a first use, or a retarget within the grace (its target, so
// a read may repeat it and a write may not).
func (h *handler) claimReuse(ctx context.Context, u reuse, now time.Time) error {
	if used, err := h.replay.Peek(ctx, u.secretID, u.use(), h.refuse); err != nil || used {
		return cmpErr(err, used && u.write)
	}
	seen, err := h.replay.Peek(ctx, u.secretID, u.first(), h.refuse)
	if err != nil {
		return err
	}
	if !seen {
		for _, v := range []string{u.slotValue(slot(now), ""), u.slotValue(slot(now), u.conn), u.use()} {
			if _, err := h.replay.Seen(ctx, u.secretID, v, h.refuse); err != nil {
				return err
			}
		}
		if seen, err = h.replay.Seen(ctx, u.secretID, u.first(), h.refuse); err != nil || !seen {
			return err
		}
		// Another request used the signature meanwhile: the identical
		// ones are one use (a write performed once), the others retargets.
		if u.write {
			return performedOnce()
		}
		return nil
	}
	if err := h.withinGrace(ctx, u, now); err != nil {
		return err
	}
	// Recording the target is the claim itself (one SET NX): of identical
	// writes that all passed the peeks above at once, one records it and
	// the others find it recorded.
	used, err := h.replay.Seen(ctx, u.secretID, u.use(), h.refuse)
	return cmpErr(err, used && u.write)
}

// withinGrace passes when the signature's first use fell in now's slot or
// the one before (over the same connection, for a write), else refuses.
func (h *handler) withinGrace(ctx context.Context, u reuse, now time.Time) error {
	conn := ""
	if u.write {
		conn = u.conn
	}
	s := slot(now)
	for _, sl := range []int64{s, s - 1} {
		if seen, err := h.replay.Peek(ctx, u.secretID, u.slotValue(sl, conn), h.refuse); err != nil || seen {
			return err
		}
	}
	return errorf(CodeSignatureFailure, "this signature was already used for another action, region or version")
}

// cmpErr is err, or, for a write whose target was used, performedOnce.
func cmpErr(err error, writeUsed bool) error {
	if err == nil && writeUsed {
		return performedOnce()
	}
	return err
}

// performedOnce refuses a state-changing action repeated with one signature.
func performedOnce() error {
	return errorf(CodeSignatureFailure, "this signature already performed this action: a TC3 signature changes state "+
		"at most once (X-TC-Action is not signed); sign the request again")
}

// repeatable are the Tencent actions that change no stored state: a TC3
// signature may repeat for them. Every other action, known or not,
// changes state.
var repeatable = map[string]bool{
	"DescribeKey": true, "DescribeKeys": true, "ListKeys": true, "GetKeyRotationStatus": true, "GetServiceStatus": true,
	"GenerateRandom": true, "GenerateDataKey": true, "Encrypt": true, "Decrypt": true, "ReEncrypt": true,
}

// target is what a TC3 signature does not sign: the action, region and
// version it is used for.
func (p *request) target() string { return p.action + "\n" + p.region + "\n" + p.version }
