package tencent

import (
	"context"
	"strconv"
	"time"
)

// RetargetGrace is how long after its first use a TC3 signature may come
// back with another X-TC-Action, X-TC-Region or X-TC-Version (see
// claimReuse). Within RetargetGrace a retarget always passes; after
// 2 × RetargetGrace it is always refused (the first use is remembered by
// its RetargetGrace-wide time slot, so in between it depends on where the
// first use fell in its slot).
const RetargetGrace = 2 * time.Second

// retargeted refuses a TC3 signature that comes back for another target.
func retargeted() error {
	return errorf(CodeSignatureFailure, "this signature was already used for another action, region or version")
}

// The signature-reuse rule. X-TC-Action, X-TC-Region and X-TC-Version are
// not signed, so a captured request could be replayed as another action on
// the same parameters (a DescribeKey as a DisableKey). Each signature is
// remembered (value "tc3 sig"), with each target it was accepted for
// ("tc3 sig target") and the time slot of its first use ("tc3g sig slot").
// It may come back with its first target at any time within the window
// (identical honest calls in one second carry identical signatures), with
// another target only while its first use's slot is this slot or the one
// before (RetargetGrace): honest SDK callers do sign, say, DescribeKey and
// then DisableKey on the same KeyId within one second, and those two
// requests carry the same signature.
func sigValue(sig string) string            { return "tc3\n" + sig }
func targetValue(sig, target string) string { return "tc3\n" + sig + "\n" + target }
func slotValue(sig string, slot int64) string {
	return "tc3g\n" + sig + "\n" + strconv.FormatInt(slot, 10)
}

// slot is now's RetargetGrace-wide time slot.
func slot(now time.Time) int64 { return now.UnixNano() / int64(RetargetGrace) }

// peekReuse applies the rule while authenticating, recording nothing.
func (h *handler) peekReuse(ctx context.Context, secretID, sig, target string, now time.Time) error {
	if seen, err := h.replay.Peek(ctx, secretID, sigValue(sig), h.refuse); err != nil || !seen {
		return err
	}
	if seen, err := h.replay.Peek(ctx, secretID, targetValue(sig, target), h.refuse); err != nil || seen {
		return err
	}
	return h.withinGrace(ctx, secretID, sig, now)
}

// claimReuse applies the rule once the request passed its checks and
// records the signature's first use: its slot and its target first, the
// signature last, so that a request that sees the signature also sees its
// first target and slot (two identical honest requests claimed at once,
// on one node or two, both pass). A retarget within the grace records
// nothing: only the first target may come back later.
func (h *handler) claimReuse(ctx context.Context, secretID, sig, target string, now time.Time) error {
	if seen, err := h.replay.Peek(ctx, secretID, targetValue(sig, target), h.refuse); err != nil || seen {
		return err
	}
	used, err := h.replay.Peek(ctx, secretID, sigValue(sig), h.refuse)
	if err != nil {
		return err
	}
	if !used {
		if err := h.record(ctx, secretID, slotValue(sig, slot(now))); err != nil {
			return err
		}
		if err := h.record(ctx, secretID, targetValue(sig, target)); err != nil {
			return err
		}
		seen, err := h.replay.Seen(ctx, secretID, sigValue(sig), h.refuse)
		if err != nil || !seen {
			return err
		}
		// Another request used the signature meanwhile: both recorded
		// their target, so the checks below pass within the grace.
	}
	if seen, err := h.replay.Peek(ctx, secretID, targetValue(sig, target), h.refuse); err != nil || seen {
		return err
	}
	return h.withinGrace(ctx, secretID, sig, now)
}

// withinGrace passes when the signature's first use fell in now's slot or
// the one before, else refuses the retarget.
func (h *handler) withinGrace(ctx context.Context, secretID, sig string, now time.Time) error {
	s := slot(now)
	for _, sl := range []int64{s, s - 1} {
		if seen, err := h.replay.Peek(ctx, secretID, slotValue(sig, sl), h.refuse); err != nil || seen {
			return err
		}
	}
	return retargeted()
}

// record remembers value (already known to be new, or harmlessly not).
func (h *handler) record(ctx context.Context, secretID, value string) error {
	_, err := h.replay.Seen(ctx, secretID, value, h.refuse)
	return err
}

// target is what a TC3 signature does not sign: the action, region and
// version it is used for.
func (p *request) target() string { return p.action + "\n" + p.region + "\n" + p.version }
