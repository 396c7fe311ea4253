package wire

import (
	"context"
	"strconv"
	"time"
)

// SignatureReuse is the replay rule of a scheme whose signature covers the
// request's parameters but not its target (the action, region, version):
// Tencent's TC3, whose official SDKs sign only content-type;host and the
// body. Honest calls with the same parameters in one second carry
// identical signatures (the timestamp has second resolution), so a
// captured request could be sent again, or as another action on the same
// parameters. The memory keeps, per signature, each target it was used
// for and its first use (target, time, connection). A request is accepted
// when:
//
//   - it is the signature's first use; or
//   - its target was used before and its action is a read (Action.Write
//     false): identical reads repeat freely within the window; a write is
//     performed at most once per signature (Repeated), so a captured
//     EnableKey cannot undo a later DisableKey; or
//   - its target is new for the signature, it arrives within Grace of the
//     first use and, for a write, over the same connection as the first
//     use (else Retargeted): an honest SDK client sends DescribeKey then
//     DisableKey on one KeyId in one second over its kept-alive connection,
//     with one signature; a captured DescribeKey sent as DisableKey over
//     another connection is refused. Within Grace a retarget always
//     passes; after 2 × Grace it is always refused (the first use is
//     remembered by its Grace-wide time slot).
//
// The memory holds digests only, so a first use is four values: "first"
// (the signature was used), "use" (its target), and its time slot, alone
// and with its connection. They are recorded slot and target first and
// "first" last, so a request that sees the signature used also sees its
// first target and slot (identical requests claimed at once, on one node
// or two, are handled as one after the other).
type SignatureReuse struct {
	Cache  *ReplayCache
	Grace  time.Duration
	Refuse func(Refusal) error // the dialect's refusals (Repeated, Retargeted, and the memory's)
}

// SignatureUse is one request's place in the signature memory.
type SignatureUse struct {
	AccessKeyID string
	Signature   string // hex
	Target      string // action, region, version
	Conn        string // the connection it came over (RemoteAddr)
	Write       bool   // the action changes stored state (its table row's Write)
}

func (u SignatureUse) first() string { return "tc3 first\n" + u.Signature }
func (u SignatureUse) use() string   { return "tc3 use\n" + u.Signature + "\n" + u.Target }

// slotValue is the first use's slot; with conn "" any connection.
func (u SignatureUse) slotValue(slot int64, conn string) string {
	return "tc3 slot\n" + u.Signature + "\n" + strconv.FormatInt(slot, 10) + "\n" + conn
}

func (r *SignatureReuse) slot(now time.Time) int64 { return now.UnixNano() / int64(r.Grace) }

func (r *SignatureReuse) peek(ctx context.Context, u SignatureUse, value string) (bool, error) {
	return r.Cache.Peek(ctx, u.AccessKeyID, value, r.Refuse)
}

func (r *SignatureReuse) seen(ctx context.Context, u SignatureUse, value string) (bool, error) {
	return r.Cache.Seen(ctx, u.AccessKeyID, value, r.Refuse)
}

// Peek applies the rule while verifying, recording nothing.
func (r *SignatureReuse) Peek(ctx context.Context, u SignatureUse, now time.Time) error {
	if used, err := r.peek(ctx, u, u.use()); err != nil || used {
		return r.repeated(err, used && u.Write)
	}
	if seen, err := r.peek(ctx, u, u.first()); err != nil || !seen {
		return err
	}
	return r.withinGrace(ctx, u, now)
}

// Claim applies the rule once the request passed its checks and records
// it: a first use, or a retarget within the grace (its target, so a read
// may repeat it and a write may not).
func (r *SignatureReuse) Claim(ctx context.Context, u SignatureUse, now time.Time) error {
	if used, err := r.peek(ctx, u, u.use()); err != nil || used {
		return r.repeated(err, used && u.Write)
	}
	seen, err := r.peek(ctx, u, u.first())
	if err != nil {
		return err
	}
	if !seen {
		for _, v := range []string{u.slotValue(r.slot(now), ""), u.slotValue(r.slot(now), u.Conn), u.use()} {
			if _, err := r.seen(ctx, u, v); err != nil {
				return err
			}
		}
		// Another request used the signature meanwhile: the identical
		// ones are one use (a write performed once), the others retargets.
		seen, err = r.seen(ctx, u, u.first())
		return r.repeated(err, seen && u.Write)
	}
	if err := r.withinGrace(ctx, u, now); err != nil {
		return err
	}
	// Recording the target is the claim itself (one SET NX): of identical
	// writes that all passed the peeks above at once, one records it and
	// the others find it recorded.
	used, err := r.seen(ctx, u, u.use())
	return r.repeated(err, used && u.Write)
}

// withinGrace passes when the signature's first use fell in now's slot or
// the one before (over the same connection, for a write), else refuses.
func (r *SignatureReuse) withinGrace(ctx context.Context, u SignatureUse, now time.Time) error {
	conn := ""
	if u.Write {
		conn = u.Conn
	}
	s := r.slot(now)
	for _, sl := range []int64{s, s - 1} {
		if seen, err := r.peek(ctx, u, u.slotValue(sl, conn)); err != nil || seen {
			return err
		}
	}
	return r.Refuse(Retargeted)
}

// repeated is err, or, for a write whose target was used, Repeated.
func (r *SignatureReuse) repeated(err error, writeUsed bool) error {
	if err == nil && writeUsed {
		return r.Refuse(Repeated)
	}
	return err
}
