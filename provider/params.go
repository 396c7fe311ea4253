package provider

import (
	"errors"
	"regexp"
	"strconv"

	"github.com/p11kms/p11kms/wrap"
)

// Paging limits and defaults, as Alibaba Cloud KMS states them.
const (
	DefaultPageSize = 10
	MaxPageSize     = 100
)

// pageSpec is a validated page of a listing.
type pageSpec struct{ number, size int }

// parsePage validates PageNumber and PageSize. nil is absent (page 1, 10
// per page); a given value, 0 included, must be in range.
func parsePage(number, size *int) (pageSpec, error) {
	pg := pageSpec{number: 1, size: DefaultPageSize}
	if number != nil {
		if *number < 1 {
			return pageSpec{}, InvalidParam("PageNumber", "%d: accepted an integer of 1 or more (default 1)", *number)
		}
		pg.number = *number
	}
	if size != nil {
		if *size < 1 || *size > MaxPageSize {
			return pageSpec{}, InvalidParam("PageSize", "%d: accepted an integer from 1 to %d (default %d)", *size, MaxPageSize, DefaultPageSize)
		}
		pg.size = *size
	}
	return pg, nil
}

// bounds returns the slice bounds of the page in a listing of total items.
func (pg pageSpec) bounds(total int) (from, to int) {
	from = min((pg.number-1)*pg.size, total)
	return from, min(from+pg.size, total)
}

// rotationIntervalPattern is Alibaba's RotationInterval: an integer and a
// unit (d, h, m or s).
var rotationIntervalPattern = regexp.MustCompile(`^([0-9]{1,10})([dhms])$`)

var secondsPer = map[string]int64{"d": 86400, "h": 3600, "m": 60, "s": 1}

// parseRotationInterval accepts an integer with a unit d, h, m or s
// ("30d", "168h", "10080m", "604800s") between 7 and 365 days, and returns
// it in seconds.
func parseRotationInterval(s string) (int64, error) {
	m := rotationIntervalPattern.FindStringSubmatch(s)
	var secs int64
	if m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64) // at most 10 digits: no overflow below
		secs = n * secondsPer[m[2]]
	}
	if m == nil || secs < MinRotationDays*86400 || secs > MaxRotationDays*86400 {
		return 0, InvalidParam("RotationInterval", "%q: accepted an integer with a unit d, h, m or s, from %d to %d days (e.g. 30d, 168h, 10080m, 604800s)",
			Clip(s, 32), MinRotationDays, MaxRotationDays)
	}
	return secs, nil
}

// rotationPolicy validates EnableAutomaticRotation and RotationInterval
// together: the interval is required with rotation on and refused with it
// off (it would be ignored). It returns the interval in seconds (0: off).
func rotationPolicy(enable bool, interval string) (int64, error) {
	switch {
	case !enable && interval != "":
		return 0, InvalidParam("RotationInterval", "is accepted only with EnableAutomaticRotation true")
	case !enable:
		return 0, nil
	case interval == "":
		return 0, InvalidParam("RotationInterval", "is required with EnableAutomaticRotation: an integer with a unit d, h, m or s, from %d to %d days (e.g. 30d)",
			MinRotationDays, MaxRotationDays)
	}
	return parseRotationInterval(interval)
}

// dataKeyLength applies KeySpec and NumberOfBytes: a given NumberOfBytes
// wins, but KeySpec must be valid either way.
func dataKeyLength(keySpec string, numberOfBytes *int) (int, error) {
	n := 32
	switch keySpec {
	case "", "AES_256":
	case "AES_128":
		n = 16
	default:
		return 0, InvalidParam("KeySpec", "%q: accepted AES_256, AES_128", Clip(keySpec, 32))
	}
	if numberOfBytes == nil {
		return n, nil
	}
	if *numberOfBytes < 1 || *numberOfBytes > MaxDataKeyBytes {
		return 0, InvalidParam("NumberOfBytes", "%d: accepted an integer from 1 to %d", *numberOfBytes, MaxDataKeyBytes)
	}
	return *numberOfBytes, nil
}

// checkContext bounds the EncryptionContext (the JSON limit is applied by the
// front-ends; this bounds what a library caller can pass).
func checkContext(param string, ec wrap.EncryptionContext) error {
	n := 0
	for k, v := range ec {
		n += len([]rune(k)) + len([]rune(v)) + 6
	}
	if n > MaxEncryptionContextChars {
		return InvalidParam(param, "about %d characters as JSON: at most %d", n, MaxEncryptionContextChars)
	}
	return nil
}

// ParseEncryptionContext parses the JSON text of an EncryptionContext
// parameter named param (EncryptionContext, SourceEncryptionContext, ...) of
// at most maxChars characters. A bad value is InvalidParameter naming param
// once, with what is accepted.
func ParseEncryptionContext(param, s string, maxChars int) (wrap.EncryptionContext, error) {
	ec, err := wrap.ParseEncryptionContextJSON(s, maxChars)
	if err != nil {
		var pe *wrap.ParamError
		if errors.As(err, &pe) {
			return nil, InvalidParam(param, "%s", pe.Msg)
		}
		return nil, InvalidParam(param, "must be a JSON object of string values, like {\"k\":\"v\"}")
	}
	return ec, nil
}
