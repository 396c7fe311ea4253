package state

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The replay tables live outside the Go heap, in anonymous mappings: the
// garbage collector neither scans them nor counts them as live heap (with
// them on the heap, GOGC would let garbage grow to their size before a
// collection, so RSS would reach twice the estimate), and a table dropped
// whole gives its pages back to the kernel (MADV_DONTNEED), so a node's
// RSS follows what the window actually holds.

// newTable maps a zeroed table of n digests.
func newTable(n int) ([]digest, error) {
	b, err := unix.Mmap(-1, 0, n*digestSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("state: mapping a replay table of %d MiB: %w", n*digestSize>>20, err)
	}
	return unsafe.Slice((*digest)(unsafe.Pointer(&b[0])), n), nil
}

// tableBytes is t's mapping as bytes.
func tableBytes(t []digest) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&t[0])), len(t)*digestSize)
}

// clearTable zeroes t and returns its pages to the kernel (they read as
// zero until written again).
func clearTable(t []digest) {
	if err := unix.Madvise(tableBytes(t), unix.MADV_DONTNEED); err != nil {
		clear(t)
	}
}

// freeTable unmaps t; t must not be used after.
func freeTable(t []digest) error {
	return unix.Munmap(tableBytes(t))
}
