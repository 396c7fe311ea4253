package tencent

import (
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/p11kms/p11kms/provider/wire"
)

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

// reuse is one TC3 request's place in the signature memory.
type reuse struct {
	sig    string // SecretId and signature
	target string // action, region, version
	conn   string // the connection it came over (RemoteAddr)
	write  bool   // the action changes state
}

// lookupFunc is the signature memory's Seen (which records) or Peek.
type lookupFunc func(value string, now time.Time, extra string) (bool, string)

func newReuse(a *tc3Authorization, p *request, remoteAddr string) reuse {
	return reuse{sig: a.secretID + "\n" + hex.EncodeToString(a.signature), target: p.target(), conn: remoteAddr, write: !repeatable[p.action]}
}

// checkReuse applies the rule above: lookup is the signature memory's Peek
// while authenticating and its Seen once the request passed its checks.
func checkReuse(u reuse, now time.Time, lookup lookupFunc) error {
	used, prev := lookup("use\n"+u.sig+"\n"+u.target, now, "")
	if used {
		switch {
		case prev == wire.ErrReplayCacheFull:
			return replayMemoryFull()
		case u.write:
			return errorf(CodeSignatureFailure, "this signature already performed this action: a TC3 signature changes state "+
				"at most once (X-TC-Action is not signed); sign the request again")
		}
		return nil // a read repeats
	}
	seen, first := lookup("first\n"+u.sig, now, u.conn+"\n"+strconv.FormatInt(now.UnixNano(), 10))
	if !seen {
		return nil
	}
	if first == wire.ErrReplayCacheFull {
		return replayMemoryFull()
	}
	conn, at, ok := parseFirst(first)
	if !ok || now.Sub(at) > RetargetGrace || (u.write && conn != u.conn) {
		return errorf(CodeSignatureFailure, "this signature was already used for another action, region or version")
	}
	return nil
}

// parseFirst reads a first use back: its connection and time.
func parseFirst(s string) (conn string, at time.Time, ok bool) {
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		return "", time.Time{}, false
	}
	ns, err := strconv.ParseInt(s[i+1:], 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return s[:i], time.Unix(0, ns), true
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

// replayMemoryFull refuses a request the replay memory has no room for
// (fail closed: it cannot be told from a replay).
func replayMemoryFull() error {
	return errorf(CodeRequestLimitExceeded, "the server's replay memory is full: retry later")
}
