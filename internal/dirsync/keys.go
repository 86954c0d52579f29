package dirsync

import (
	"fmt"
	"hash/fnv"
	"strings"
	"unicode/utf8"
)

// UserBuckets is the number of partitions users (and email claims) are spread
// over. A page of ~200 users then batches into ~16 writes of ~12 rows, and no
// partition nears Azure's 2,000 entities/s. Changing it needs a migration.
const UserBuckets = 16

// Bucket returns the partition key for s: "b00".."b15".
func Bucket(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return bucketKey(int(h.Sum32() % UserBuckets))
}

// bucketKey is the partition key of bucket i (0..UserBuckets-1).
func bucketKey(i int) string { return fmt.Sprintf("b%02d", i) }

// maxKeyUnits is Azure Table Storage's limit on PartitionKey and RowKey:
// 1 KiB, counted in UTF-16 code units (512 of them).
const maxKeyUnits = 512

// ValidKey reports why s cannot be a table key ("" when it can): Azure forbids
// '/', '\\', '#', '?' and control characters, and limits keys to 1 KiB of
// UTF-16 (512 code units).
func ValidKey(s string) string {
	if s == "" {
		return "is empty"
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	units := 0
	for _, r := range s {
		units++
		if r >= 0x10000 {
			units++ // a surrogate pair
		}
	}
	if units > maxKeyUnits {
		return "is longer than 1 KiB (512 UTF-16 code units)"
	}
	for _, r := range s {
		switch {
		case r == '/' || r == '\\' || r == '#' || r == '?':
			return fmt.Sprintf("contains the character %q, which table keys cannot hold", r)
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			return "contains a control character"
		}
	}
	return ""
}

// EscapeKey turns any string into a valid table key that sorts the same way
// for ordinary text: forbidden characters, '%' and '|' (our separator),
// control characters (C0, DEL and C1, U+0080..U+009F) and bytes that are not
// valid UTF-8 become %XX, one per byte. It is used for emails and other
// values from outside. (Length is the caller's to check, with ValidKey.)
func EscapeKey(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1,
			r == '/' || r == '\\' || r == '#' || r == '?' || r == '%' || r == '|',
			r < 0x20 || (r >= 0x7f && r <= 0x9f):
			for _, c := range []byte(s[i : i+max(size, 1)]) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += max(size, 1)
	}
	return b.String()
}

// validObjectID reports whether id looks like an Entra object id (a GUID). Ids
// from Graph and from API paths are checked before they reach a key or a
// filter, so nothing from outside can inject into either.
func validObjectID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ValidObjectID is validObjectID for callers outside the package (the API
// validates path ids with it).
func ValidObjectID(id string) bool { return validObjectID(id) }
