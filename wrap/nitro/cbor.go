package nitro

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// CBOR (RFC 8949) major types.
const (
	majorUint   = 0
	majorNegint = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7
)

// maxDepth bounds nesting; an attestation document nests three deep.
const maxDepth = 8

// item is one decoded CBOR data item: what this package reads of
// attestation documents (definite lengths only, no floats).
type item struct {
	major byte
	n     uint64 // uint, negint (-1-n), tag number, simple value, or length
	bytes []byte // bstr, tstr
	items []item // array; map as key, value, key, value, ...
	tag   *item  // the tagged item
}

var errCBOR = errors.New("not the CBOR of an attestation document")

func cborErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errCBOR, fmt.Sprintf(format, args...))
}

// decodeCBOR decodes exactly one item filling b.
func decodeCBOR(b []byte) (item, error) {
	it, rest, err := decodeItem(b, 0)
	if err != nil {
		return item{}, err
	}
	if len(rest) != 0 {
		return item{}, cborErr("%d bytes after the item", len(rest))
	}
	return it, nil
}

// head reads an item's initial byte and argument.
func head(b []byte) (major byte, n uint64, rest []byte, err error) {
	if len(b) == 0 {
		return 0, 0, nil, cborErr("truncated")
	}
	major, ai := b[0]>>5, b[0]&0x1f
	b = b[1:]
	switch {
	case ai < 24:
		return major, uint64(ai), b, nil
	case ai > 27:
		return 0, 0, nil, cborErr("indefinite or reserved length (additional information %d)", ai)
	}
	size := 1 << (ai - 24)
	if len(b) < size {
		return 0, 0, nil, cborErr("truncated argument")
	}
	var buf [8]byte
	copy(buf[8-size:], b[:size])
	return major, binary.BigEndian.Uint64(buf[:]), b[size:], nil
}

func decodeItem(b []byte, depth int) (item, []byte, error) {
	if depth > maxDepth {
		return item{}, nil, cborErr("nested deeper than %d", maxDepth)
	}
	major, n, b, err := head(b)
	if err != nil {
		return item{}, nil, err
	}
	it := item{major: major, n: n}
	switch major {
	case majorUint, majorNegint:
	case majorBytes, majorText:
		if n > uint64(len(b)) {
			return item{}, nil, cborErr("a string of %d bytes in %d", n, len(b))
		}
		it.bytes, b = b[:n], b[n:]
	case majorArray, majorMap:
		count := n
		if major == majorMap {
			count = 2 * n
		}
		if count > uint64(len(b)) { // every item takes at least one byte
			return item{}, nil, cborErr("%d items in %d bytes", count, len(b))
		}
		it.items = make([]item, 0, count)
		for i := uint64(0); i < count; i++ {
			var sub item
			if sub, b, err = decodeItem(b, depth+1); err != nil {
				return item{}, nil, err
			}
			it.items = append(it.items, sub)
		}
	case majorTag:
		inner, rest, err := decodeItem(b, depth+1)
		if err != nil {
			return item{}, nil, err
		}
		it.tag, b = &inner, rest
	case majorSimple:
		if n < 20 || n > 23 {
			return item{}, nil, cborErr("simple value or float %d", n)
		}
	}
	return it, b, nil
}

func (it item) isNull() bool { return it.major == majorSimple && (it.n == 22 || it.n == 23) }

// field returns the value of a text key of a map.
func (it item) field(key string) (item, bool) {
	for i := 0; i+1 < len(it.items); i += 2 {
		if k := it.items[i]; k.major == majorText && string(k.bytes) == key {
			return it.items[i+1], true
		}
	}
	return item{}, false
}

// AppendHead appends a CBOR item head (RFC 8949 3: major type 0 to 7, a
// definite argument n), for whoever builds documents (signers, tests);
// the content of strings, arrays and maps follows it.
func AppendHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major<<5|byte(n))
	case n <= 0xff:
		return append(b, major<<5|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, major<<5|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, major<<5|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, major<<5|27), n)
}

// SigStructure is COSE's Sig_structure for COSE_Sign1 (RFC 9052 4.4):
// ["Signature1", protected, external_aad (empty), payload], the bytes an
// ES384 signature covers (hashed with SHA-384).
func SigStructure(protected, payload []byte) []byte {
	b := AppendHead(nil, majorArray, 4)
	b = append(AppendHead(b, majorText, 10), "Signature1"...)
	b = append(AppendHead(b, majorBytes, uint64(len(protected))), protected...)
	b = AppendHead(b, majorBytes, 0)
	return append(AppendHead(b, majorBytes, uint64(len(payload))), payload...)
}
