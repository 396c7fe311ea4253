package awskms

import (
	"strconv"
	"strings"

	"github.com/p11kms/p11kms/provider"
)

// Listing limits, as AWS documents them (Limit 1 to 1000, default 100);
// a page holds at most provider.MaxPageSize items, and Truncated says
// when there are more.
const (
	defaultLimit = 100
	maxLimit     = 1000
	markerPrefix = "p11kms-"
)

// window returns where the page a listing's Limit and Marker ask for
// starts, and how many items it may hold.
func window(limitParam *int, marker string) (offset, limit int, err error) {
	if err := intRange("Limit", limitParam, 1, maxLimit); err != nil {
		return 0, 0, err
	}
	limit = defaultLimit
	if limitParam != nil {
		limit = *limitParam
	}
	limit = min(limit, provider.MaxPageSize)
	if marker == "" {
		return 0, limit, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(marker, markerPrefix))
	if !strings.HasPrefix(marker, markerPrefix) || err != nil || n < 1 {
		return 0, 0, errorf(CodeInvalidMarker, "Marker %q is not a NextMarker this server returned", provider.Clip(marker, 64))
	}
	return n, limit, nil
}

// listPage is one core page: its items and the listing's total.
type listPage[T any] func(number, size int) (items []T, total int, err error)

// slice returns the items [offset, offset+limit) of a core listing, read
// through pages of MaxPageSize, and the NextMarker ("" at the end).
func slice[T any](offset, limit int, page listPage[T]) (items []T, next string, err error) {
	size := provider.MaxPageSize
	total := -1
	for number := offset/size + 1; len(items) < limit && (total < 0 || (number-1)*size < total); number++ {
		got, t, err := page(number, size)
		if err != nil {
			return nil, "", err
		}
		total = t
		from := max(offset-(number-1)*size, 0)
		for i := from; i < len(got) && len(items) < limit; i++ {
			items = append(items, got[i])
		}
		if len(got) < size {
			break
		}
	}
	if end := offset + len(items); end < total {
		next = markerPrefix + strconv.Itoa(end)
	}
	return items, next, nil
}
